import { FilesError, type FilesErrorCode } from '../../../src/files/files.errors';

/** The FilesError `run` throws (synchronously); fails the test if it throws nothing or something else. */
export function thrownFilesError(run: () => unknown): FilesError {
  let thrown: unknown;
  try {
    run();
  } catch (error) {
    thrown = error;
  }
  if (!(thrown instanceof FilesError)) {
    throw new Error(`expected a FilesError, got ${thrown === undefined ? 'no error' : String(thrown)}`);
  }
  return thrown;
}

/** The FilesError `promise` rejects with; fails the test if it resolves or rejects with something else. */
export async function rejectedFilesError(promise: Promise<unknown>): Promise<FilesError> {
  const outcome = await promise.then(
    () => undefined,
    (error: unknown) => error,
  );
  if (!(outcome instanceof FilesError)) {
    throw new Error(`expected a rejection with FilesError, got ${outcome === undefined ? 'a resolution' : String(outcome)}`);
  }
  return outcome;
}

/** Asserts `run` throws a FilesError with this code and param. */
export function expectFilesError(run: () => unknown, code: FilesErrorCode, param: string | null): FilesError {
  const error = thrownFilesError(run);
  expect({ code: error.code, param: error.param }).toEqual({ code, param });
  return error;
}
