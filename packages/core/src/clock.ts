/** Time source used by core, the memory broker and the memory backend, so tests can use a fake clock. */
export interface Clock {
  now(): number;
  setTimeout(fn: () => void, ms: number): TimerHandle;
  clearTimeout(handle: TimerHandle): void;
}
export type TimerHandle = { readonly __timer: true } | NodeJS.Timeout;

export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => setTimeout(fn, Math.max(0, ms)),
  clearTimeout: (handle) => clearTimeout(handle as NodeJS.Timeout),
};

/** A promise that resolves after `ms` on `clock`, or rejects when `signal` aborts. */
export function sleep(clock: Clock, ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason as Error);
      return;
    }
    const onAbort = () => {
      clock.clearTimeout(handle);
      reject(signal?.reason as Error);
    };
    const handle = clock.setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/**
 * How long closing may spend, on top of the time given to running tasks, giving deliveries back and
 * closing connections when the broker does not answer. What is not done by then is abandoned: the
 * broker delivers it again after its lease (or at once, when the connection is gone).
 */
export const CLOSE_GRACE_MS = 2_000;

/**
 * Wait for `p` at most `ms`: true when it settled (resolved or rejected) in time, false when the time
 * ran out first. Never rejects; the timer is cleared either way.
 */
export function settleWithin(p: Promise<unknown>, ms: number, clock: Clock = systemClock): Promise<boolean> {
  if (ms <= 0) return Promise.race([p.then(() => true, () => true), Promise.resolve(false)]);
  return new Promise((resolve) => {
    const timer = clock.setTimeout(() => resolve(false), ms);
    const done = () => {
      clock.clearTimeout(timer);
      resolve(true);
    };
    p.then(done, done);
  });
}
