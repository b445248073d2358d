/** True when CI=true: a missing server or tool fails the run instead of skipping tests. */
export function underCi(env: NodeJS.ProcessEnv = process.env): boolean {
  return env['CI'] === 'true';
}

/**
 * The one policy for tests whose server or tool is missing: locally, write one line
 * `skipping <tests>: <reason>` to stderr and return false (the caller skips); under CI=true, throw
 * `<reason>; <ciHint>` instead, since CI must provide everything.
 */
export function skipOrFail(tests: string, reason: string, ciHint: string): false {
  if (underCi()) throw new Error(`${reason}; ${ciHint}`);
  process.stderr.write(`skipping ${tests}: ${reason}\n`);
  return false;
}
