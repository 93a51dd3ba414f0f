// Per-tier test timeout: Jest ignores `testTimeout` inside a project entry.
jest.setTimeout(300_000);
