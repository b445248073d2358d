import type { SuiteApi } from '../src/testing/index.js';

/** Run a suite's registration with a capturing api: full test name → test function. */
export function collectTests(register: (api: SuiteApi) => void): Map<string, () => Promise<void>> {
  const tests = new Map<string, () => Promise<void>>();
  const path: string[] = [];
  register({
    describe(name, fn) {
      path.push(name);
      fn();
      path.pop();
    },
    it(name, fn) {
      tests.set([...path, name].join(' > '), fn);
    },
  });
  return tests;
}
