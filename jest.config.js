// Jest with ESM-only NestJS 12: TypeScript and Nest's own .js files are both compiled to CommonJS by
// SWC (ts-jest cannot compile `import.meta` inside @nestjs/common).
const swcTs = [
  '@swc/jest',
  {
    jsc: {
      parser: { syntax: 'typescript', decorators: true },
      transform: { legacyDecorator: true, decoratorMetadata: true },
      target: 'es2022',
      keepClassNames: true,
    },
    module: { type: 'commonjs' },
    sourceMaps: 'inline',
  },
];
const swcJs = ['@swc/jest', { jsc: { parser: { syntax: 'ecmascript' }, target: 'es2022' }, module: { type: 'commonjs' } }];

const base = {
  testEnvironment: 'node',
  transform: { '^.+\\.ts$': swcTs, '^.+\\.m?js$': swcJs },
  transformIgnorePatterns: ['/node_modules/(?!@nestjs/)'],
  moduleFileExtensions: ['ts', 'js', 'json'],
};

/** Tiers that talk to real PostgreSQL and S3: backends come from test/support/global-setup.ts. */
const withBackends = (name, timeout) => ({
  ...base,
  displayName: name,
  testMatch: [`<rootDir>/test/${name}/**/*.spec.ts`],
  globalSetup: '<rootDir>/test/support/global-setup.ts',
  globalTeardown: '<rootDir>/test/support/global-teardown.ts',
  // Jest ignores `testTimeout` inside a project entry; a setup file sets it per tier.
  setupFilesAfterEnv: [`<rootDir>/test/support/setup/timeout-${timeout / 1000}s.ts`],
});

module.exports = {
  projects: [
    { ...base, displayName: 'unit', testMatch: ['<rootDir>/test/unit/**/*.spec.ts'] },
    withBackends('http', 30_000),
    withBackends('integration', 60_000),
    withBackends('e2e', 120_000),
    // The example host imports files-api by its package name, as a real host does; here that name
    // is the source.
    {
      ...withBackends('examples', 120_000),
      testMatch: ['<rootDir>/examples/*/test/**/*.spec.ts'],
      moduleNameMapper: { '^files-api$': '<rootDir>/src/index.ts' },
    },
    // `npm pack` of the built package (npm test builds first) installed into a throwaway host.
    withBackends('package', 300_000),
  ],
};
