import type { Clock, TimerHandle } from '../clock.js';

interface Timer {
  readonly id: number;
  at: number;
  readonly fn: () => void;
}

/** A clock whose time moves only when told. Timers run in time order; promises settle between them. */
export interface FakeClock extends Clock {
  /** Move time forward by `ms`, running every timer that falls due, in order, settling promises after each. */
  advance(ms: number): Promise<void>;
  /** Let pending promise chains settle without moving time. */
  flush(): Promise<void>;
  /** Number of timers waiting. */
  readonly pending: number;
}

const realSetImmediate = setImmediate;

/** Settle every pending promise chain (a few turns of the real event loop). */
export async function flushPromises(turns = 3): Promise<void> {
  for (let i = 0; i < turns; i++) await new Promise<void>((r) => realSetImmediate(r));
}

export function createFakeClock(start = Date.UTC(2026, 0, 1)): FakeClock {
  let now = start;
  let seq = 0;
  const timers = new Map<number, Timer>();
  const due = (limit: number): Timer | undefined => {
    let best: Timer | undefined;
    for (const t of timers.values()) if (t.at <= limit && (best === undefined || t.at < best.at || (t.at === best.at && t.id < best.id))) best = t;
    return best;
  };
  return {
    now: () => now,
    setTimeout(fn, ms) {
      const id = ++seq;
      timers.set(id, { id, at: now + Math.max(0, ms), fn });
      return { __timer: true, id } as unknown as TimerHandle;
    },
    clearTimeout(handle) {
      timers.delete((handle as unknown as { id: number }).id);
    },
    async advance(ms) {
      const target = now + ms;
      await flushPromises();
      for (let t = due(target); t !== undefined; t = due(target)) {
        timers.delete(t.id);
        now = Math.max(now, t.at);
        t.fn();
        await flushPromises();
      }
      now = target;
      await flushPromises();
    },
    flush: () => flushPromises(),
    get pending() {
      return timers.size;
    },
  };
}
