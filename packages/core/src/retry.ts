/** Retry options, flat and named after Celery's. */
export interface RetryOptions {
  /** Retries after the first run: 3 means up to 4 runs. @default 0 */
  maxRetries?: number;
  /** Base of the exponential backoff: retry n waits retryBackoffMs × 2^n. @default 1000 */
  retryBackoffMs?: number;
  /** Cap of the backoff. @default 600_000 */
  retryBackoffMaxMs?: number;
  /** Full jitter: wait a random time between 0 and the backoff. @default true */
  retryJitter?: boolean;
  /** Retry only errors that are instances of these. @default every error */
  retryOn?: readonly (abstract new (...args: never[]) => Error)[];
  /** Never retry errors that are instances of these. */
  dontRetryOn?: readonly (abstract new (...args: never[]) => Error)[];
}

/** The delay before retry number `retries` (0 for the first retry). */
export function backoffDelayMs(retries: number, opts: RetryOptions, random: () => number = Math.random): number {
  const base = opts.retryBackoffMs ?? 1000;
  const cap = opts.retryBackoffMaxMs ?? 600_000;
  const exp = Math.min(cap, base * 2 ** Math.min(retries, 52));
  return (opts.retryJitter ?? true) ? Math.floor(random() * (exp + 1)) : exp;
}

/**
 * `instanceof` one of `classes`. An error rebuilt from another thread (`remote: true`) matches by
 * class name, since its prototype chain could not cross.
 */
export function matchesAny(err: unknown, classes: RetryOptions['retryOn']): boolean {
  if (classes === undefined) return false;
  const remote = (err as { remote?: unknown } | null)?.remote === true;
  return classes.some((C) => err instanceof C || (remote && (err as Error).name === C.name));
}
