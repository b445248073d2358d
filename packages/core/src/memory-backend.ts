import { systemClock, type Clock, type TimerHandle } from './clock.js';
import { CeleriacError, ErrorCode } from './errors.js';
import {
  READY_STATES,
  TaskState,
  type ResultBackend,
  type ResultBackendCapabilities,
  type ResultMeta,
  type StoredSchedule,
  type StoredScheduleList,
  type WaitOptions,
} from './result-backend.js';

interface Waiter {
  done(meta: ResultMeta): void;
  fail(err: Error): void;
}

interface Entry<T> {
  value: T;
  expiresAt: number;
}

export interface MemoryResultBackendOptions {
  /** @default the system clock */
  clock?: Clock;
}

/**
 * Results, counters, leases, revocations, token buckets and runtime schedules in process memory, with
 * the same semantics as the Redis backend. Values are deep-copied on the way in and out, as a real
 * store would. Every operation runs to completion in one turn of the event loop, which is what makes
 * the schedules' compare-and-set atomic here.
 */
export class MemoryResultBackend implements ResultBackend {
  readonly name = 'memory';
  readonly capabilities: ResultBackendCapabilities = { counters: true, leases: true, revocations: true, rateLimits: true, schedules: true };
  private readonly clock: Clock;
  private readonly results = new Map<string, Entry<ResultMeta>>();
  private readonly counters = new Map<string, Entry<number>>();
  private readonly leases = new Map<string, Entry<string>>();
  private readonly revoked = new Map<string, Entry<true>>();
  private readonly buckets = new Map<string, { tokens: number; at: number }>();
  private readonly waiters = new Map<string, Set<Waiter>>();
  private readonly schedules = new Map<string, StoredSchedule>();
  /** The rev of the latest schedule write (one counter for every id; an object, so views made with Object.create share it). */
  private readonly scheduleRevs = { latest: 0 };
  private closed = false;
  private writes = 0;

  constructor(opts: MemoryResultBackendOptions = {}) {
    this.clock = opts.clock ?? systemClock;
  }

  private live<T>(map: Map<string, Entry<T>>, key: string): T | undefined {
    const e = map.get(key);
    if (e === undefined) return undefined;
    if (e.expiresAt <= this.clock.now()) {
      map.delete(key);
      return undefined;
    }
    return e.value;
  }

  /**
   * Drop expired entries now and then, so a long-lived process does not grow without bound. Maps keep
   * insertion order, which is nearly expiry order, so each sweep stops at the first live entry.
   */
  private sweep(): void {
    if (++this.writes % 1024 !== 0) return;
    const now = this.clock.now();
    for (const map of [this.results, this.counters, this.leases, this.revoked] as Map<string, Entry<unknown>>[]) {
      for (const [k, e] of map) {
        if (e.expiresAt > now) break;
        map.delete(k);
      }
    }
  }

  set(taskId: string, meta: ResultMeta, opts: { ttlMs: number }): Promise<void> {
    const current = this.live(this.results, taskId);
    if (current?.state === TaskState.SUCCESS) return Promise.resolve();
    const value = copyMeta(meta);
    if (current !== undefined) this.results.delete(taskId); // re-insert at the end: Map order stays close to expiry order
    this.results.set(taskId, { value, expiresAt: this.clock.now() + opts.ttlMs });
    this.sweep();
    if (READY_STATES.has(meta.state)) {
      const ws = this.waiters.get(taskId);
      if (ws !== undefined) {
        this.waiters.delete(taskId);
        for (const w of ws) w.done(copyMeta(value));
      }
    }
    return Promise.resolve();
  }

  get(taskId: string): Promise<ResultMeta | undefined> {
    const v = this.live(this.results, taskId);
    return Promise.resolve(v === undefined ? undefined : copyMeta(v));
  }

  wait(taskId: string, opts: WaitOptions): Promise<ResultMeta> {
    const v = this.live(this.results, taskId);
    if (v !== undefined && READY_STATES.has(v.state)) return Promise.resolve(copyMeta(v));
    if (this.closed) return Promise.reject(new CeleriacError(ErrorCode.CLOSED, 'result backend is closed'));
    return new Promise<ResultMeta>((resolve, reject) => {
      let set = this.waiters.get(taskId);
      if (set === undefined) {
        set = new Set();
        this.waiters.set(taskId, set);
      }
      const waiters = set;
      const cleanup = () => {
        if (timer !== undefined) this.clock.clearTimeout(timer);
        opts.signal?.removeEventListener('abort', onAbort);
        waiters.delete(waiter);
        if (waiters.size === 0 && this.waiters.get(taskId) === waiters) this.waiters.delete(taskId);
      };
      const waiter: Waiter = {
        done: (meta) => {
          cleanup();
          resolve(meta);
        },
        fail: (err) => {
          cleanup();
          reject(err);
        },
      };
      const onAbort = () => {
        cleanup();
        reject(new CeleriacError(ErrorCode.ABORTED, `wait for ${taskId} aborted`, { cause: opts.signal?.reason }));
      };
      // Infinity (or any non-finite timeout) waits without a timer.
      const timer: TimerHandle | undefined = Number.isFinite(opts.timeoutMs)
        ? this.clock.setTimeout(() => {
            cleanup();
            reject(new CeleriacError(ErrorCode.TIMEOUT, `no result for task ${taskId} within ${opts.timeoutMs} ms`));
          }, opts.timeoutMs)
        : undefined;
      waiters.add(waiter);
      if (opts.signal?.aborted) onAbort();
      else opts.signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  delete(taskId: string): Promise<void> {
    this.results.delete(taskId);
    return Promise.resolve();
  }

  incr(key: string, by: number, opts: { ttlMs: number }): Promise<number> {
    const value = (this.live(this.counters, key) ?? 0) + by;
    this.counters.set(key, { value, expiresAt: this.clock.now() + opts.ttlMs });
    return Promise.resolve(value);
  }

  acquireLease(name: string, holder: string, ttlMs: number): Promise<boolean> {
    const current = this.live(this.leases, name);
    if (current !== undefined && current !== holder) return Promise.resolve(false);
    this.leases.set(name, { value: holder, expiresAt: this.clock.now() + ttlMs });
    return Promise.resolve(true);
  }

  renewLease(name: string, holder: string, ttlMs: number): Promise<boolean> {
    if (this.live(this.leases, name) !== holder) return Promise.resolve(false);
    this.leases.set(name, { value: holder, expiresAt: this.clock.now() + ttlMs });
    return Promise.resolve(true);
  }

  releaseLease(name: string, holder: string): Promise<boolean> {
    if (this.live(this.leases, name) !== holder) return Promise.resolve(false);
    this.leases.delete(name);
    return Promise.resolve(true);
  }

  revoke(taskId: string, ttlMs: number): Promise<void> {
    this.revoked.set(taskId, { value: true, expiresAt: this.clock.now() + ttlMs });
    return Promise.resolve();
  }

  listRevoked(): Promise<string[]> {
    const now = this.clock.now();
    return Promise.resolve([...this.revoked].filter(([, e]) => e.expiresAt > now).map(([id]) => id));
  }

  isRevoked(taskId: string): Promise<boolean> {
    return Promise.resolve(this.live(this.revoked, taskId) === true);
  }

  takeTokens(bucket: string, limit: number, windowMs: number): Promise<{ ok: boolean; retryInMs: number }> {
    const now = this.clock.now();
    const ratePerMs = limit / windowMs;
    const b = this.buckets.get(bucket) ?? { tokens: limit, at: now };
    b.tokens = Math.min(limit, b.tokens + (now - b.at) * ratePerMs);
    b.at = now;
    this.buckets.set(bucket, b);
    if (b.tokens >= 1) {
      b.tokens -= 1;
      return Promise.resolve({ ok: true, retryInMs: 0 });
    }
    return Promise.resolve({ ok: false, retryInMs: Math.ceil((1 - b.tokens) / ratePerMs) });
  }

  getSchedule(id: string): Promise<StoredSchedule | undefined> {
    const s = this.schedules.get(id);
    return Promise.resolve(s === undefined ? undefined : { ...s });
  }

  listSchedules(): Promise<StoredScheduleList> {
    return Promise.resolve({ version: this.scheduleRevs.latest, schedules: [...this.schedules.values()].map((s) => ({ ...s })) });
  }

  schedulesVersion(): Promise<number> {
    return Promise.resolve(this.scheduleRevs.latest);
  }

  putSchedule(id: string, data: string, expectedRev: number): Promise<number> {
    if (typeof data !== 'string') return Promise.reject(new TypeError('schedule data must be a string'));
    if ((this.schedules.get(id)?.rev ?? 0) !== expectedRev) return Promise.resolve(0);
    const rev = ++this.scheduleRevs.latest;
    this.schedules.set(id, { id, rev, data });
    return Promise.resolve(rev);
  }

  deleteSchedule(id: string): Promise<boolean> {
    if (!this.schedules.delete(id)) return Promise.resolve(false);
    this.scheduleRevs.latest++;
    return Promise.resolve(true);
  }

  close(): Promise<void> {
    if (this.closed) return Promise.resolve();
    this.closed = true;
    for (const ws of [...this.waiters.values()]) {
      for (const w of [...ws]) w.fail(new CeleriacError(ErrorCode.CLOSED, 'result backend closed while waiting'));
    }
    return Promise.resolve();
  }

  /** Number of `wait()` calls still listening (tests check that none leak). */
  get listenerCount(): number {
    let n = 0;
    for (const s of this.waiters.values()) n += s.size;
    return n;
  }
}

/** A deep copy as a real store would give, without structuredClone's cost for the common flat case. */
function copyMeta(meta: ResultMeta): ResultMeta {
  const out = { ...meta };
  if (typeof meta.result === 'object' && meta.result !== null) out.result = structuredClone(meta.result);
  if (typeof meta.progress === 'object' && meta.progress !== null) out.progress = structuredClone(meta.progress);
  if (meta.error !== undefined) out.error = { ...meta.error };
  if (meta.children !== undefined) out.children = [...meta.children];
  return out;
}

export function createMemoryResultBackend(opts: MemoryResultBackendOptions = {}): MemoryResultBackend {
  return new MemoryResultBackend(opts);
}
