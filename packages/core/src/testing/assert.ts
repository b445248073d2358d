import { CeleriacError } from '../errors.js';

/** Runner-agnostic assertions for the conformance suites (they cannot import the runner's `expect`). */
export function fail(message: string): never {
  throw new Error(message);
}

/** Deep equality by JSON form, with `what` in the message. */
export function assertEqual<T>(actual: T, expected: T, what: string): void {
  const a = JSON.stringify(actual);
  const e = JSON.stringify(expected);
  if (a !== e) fail(`${what}: expected ${e}, got ${a}`);
}

/** `p` rejects with a CeleriacError of this `code`. */
export async function rejectsWith(p: Promise<unknown>, code: string, what: string): Promise<void> {
  try {
    await p;
  } catch (err) {
    if (err instanceof CeleriacError && err.code === code) return;
    fail(`${what}: expected ${code}, got ${String(err)}`);
  }
  fail(`${what}: expected ${code}, but it resolved`);
}
