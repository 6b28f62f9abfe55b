/** Calls fn and returns what it threw, failing the test if it did not throw: for assertions on the error itself. */
export function thrownBy(fn: () => unknown): Error {
  try {
    fn();
  } catch (error) {
    return error as Error;
  }
  throw new Error('expected the call to throw');
}
