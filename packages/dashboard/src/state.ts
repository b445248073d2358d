import type { RemoteEvent, ResultMeta, SerializedError } from '@celeriac/core';
import { clip, repr } from './repr.js';

/**
 * What the dashboard shows for a task. `state` is Celery's state names plus `RECEIVED` (a worker
 * holds it) and `PENDING` (sent again by a redrive and not yet received).
 */
export interface TaskView {
  id: string;
  name: string | null;
  queue: string | null;
  state: string;
  /** The worker's printable form of the arguments (Celery's `argsrepr`). */
  args: string | null;
  /** JSON text of the return value, at most 2 000 characters. */
  result: string | null;
  /** JSON text of the last progress value. */
  progress: string | null;
  /** The last error: of the failure, or of the run that was retried. */
  error: SerializedError | null;
  retries: number;
  deliveries: number;
  runtimeMs: number | null;
  queueWaitMs: number | null;
  /** `hostname:pid` of the worker that last reported on the task. */
  worker: string | null;
  /** The dead-letter reason while the message sits in the dead-letter queue. */
  deadLettered: string | null;
  revokedReason: string | null;
  /** When the retry is due (epoch ms), for RETRY. */
  retryAt: number | null;
  /** Epoch ms, as seen by the dashboard. */
  receivedAt: number | null;
  startedAt: number | null;
  finishedAt: number | null;
  updatedAt: number;
  /** Where this view comes from: events seen by the dashboard, or a result-backend look-up. */
  source: 'events' | 'backend';
}

export type WorkerStatus = 'online' | 'offline' | 'lost';

export interface WorkerView {
  id: string;
  hostname: string;
  pid: number;
  queues: string[];
  concurrency: number | null;
  active: number;
  processed: number;
  /** `online`; `offline` after a clean shutdown; `lost` when heartbeats stopped for `offlineAfterMs`. */
  status: WorkerStatus;
  /** Epoch ms at which the dashboard last heard from it. */
  lastSeen: number;
}

export interface RateSeries {
  /** Tasks finished (succeeded or failed) per second, oldest first; the last entry is the current second. */
  processed: number[];
  failed: number[];
}

export interface DashboardStateOptions {
  /** Tasks kept in memory, the most recently received first. @default 500 */
  maxTasks?: number;
  /** A worker not heard from for this long is shown as lost. @default 6_000 (3 missed 2 s heartbeats) */
  offlineAfterMs?: number;
  /** Queues always shown; others are added as workers and task events name them. @default ['default'] */
  queues?: readonly string[];
  /** At most this many queues are tracked. @default 100 */
  maxQueues?: number;
  /** Workers remembered (offline ones are forgotten first). @default 200 */
  maxWorkers?: number;
}

const RATE_WINDOW_S = 60;

class RateWindow {
  private readonly processed = new Int32Array(RATE_WINDOW_S);
  private readonly failed = new Int32Array(RATE_WINDOW_S);
  private readonly stamp = new Float64Array(RATE_WINDOW_S).fill(-1);

  add(now: number, failed: boolean): void {
    const sec = Math.floor(now / 1000);
    const i = sec % RATE_WINDOW_S;
    if (this.stamp[i] !== sec) {
      this.stamp[i] = sec;
      this.processed[i] = 0;
      this.failed[i] = 0;
    }
    this.processed[i]!++;
    if (failed) this.failed[i]!++;
  }

  series(now: number): RateSeries {
    const last = Math.floor(now / 1000);
    const processed: number[] = [];
    const failed: number[] = [];
    for (let sec = last - RATE_WINDOW_S + 1; sec <= last; sec++) {
      const i = sec % RATE_WINDOW_S;
      const current = this.stamp[i] === sec;
      processed.push(current ? this.processed[i]! : 0);
      failed.push(current ? this.failed[i]! : 0);
    }
    return { processed, failed };
  }
}

interface WorkerRecord {
  id: string;
  hostname: string;
  pid: number;
  queues: string[];
  concurrency: number | null;
  active: number;
  processed: number;
  cleanOffline: boolean;
  lastSeen: number;
}

const FINAL = new Set(['SUCCESS', 'FAILURE', 'REVOKED']);

/** Whether a task in `state` can still change by itself (revoke makes sense). */
export function isActiveState(state: string): boolean {
  return !FINAL.has(state);
}

/**
 * The dashboard's in-memory picture, built from every worker's events: recent tasks (bounded),
 * workers and their liveness, queues seen, and per-queue throughput over the last minute. Pure:
 * time is passed in, so it is tested without clocks or servers.
 */
export class DashboardState {
  /** Configured queues first, then discovered ones. Shared with the metrics collector (live list). */
  readonly queues: string[];
  private readonly tasksById = new Map<string, TaskView>();
  private readonly workersById = new Map<string, WorkerRecord>();
  private readonly rates = new Map<string, RateWindow>();
  private readonly changed = new Set<string>();
  private readonly maxTasks: number;
  private readonly maxQueues: number;
  private readonly maxWorkers: number;
  readonly offlineAfterMs: number;
  /** Set when a worker changed or a queue was discovered; cleared by `takeOverviewDirty`. */
  private overviewDirty = false;

  constructor(opts: DashboardStateOptions = {}) {
    this.maxTasks = positive(opts.maxTasks, 500, 'maxTasks');
    this.maxQueues = positive(opts.maxQueues, 100, 'maxQueues');
    this.maxWorkers = positive(opts.maxWorkers, 200, 'maxWorkers');
    this.offlineAfterMs = positive(opts.offlineAfterMs, 6_000, 'offlineAfterMs');
    this.queues = [...new Set(opts.queues ?? ['default'])];
  }

  /** Apply one event received at `now` (the dashboard's clock, not the sender's: hosts' clocks differ). */
  apply(e: RemoteEvent, now: number): void {
    switch (e.type) {
      case 'worker:ready':
        this.touchWorker(e.workerId, e.hostname, e.pid, now, (w) => {
          w.queues = [...e.queues];
          w.concurrency = e.concurrency;
          w.active = 0;
          w.cleanOffline = false;
        });
        for (const q of e.queues) this.addQueue(q);
        return;
      case 'worker:heartbeat':
        this.touchWorker(e.workerId, e.hostname, e.pid, now, (w) => {
          w.active = e.active;
          w.processed = e.processed;
          w.concurrency = e.concurrency;
          w.cleanOffline = false;
        });
        return;
      case 'worker:offline':
        this.touchWorker(e.workerId, e.hostname, e.pid, now, (w) => {
          w.active = 0;
          w.cleanOffline = true;
        });
        return;
      case 'task:received':
        this.updateTask(e.taskId, now, e, true, (t) => {
          t.state = 'RECEIVED';
          t.args = clip(e.argsRepr, 2_000);
          t.receivedAt = now;
          t.deadLettered = null;
          t.startedAt = null;
          t.finishedAt = null;
          t.runtimeMs = null;
          t.retryAt = null;
        });
        return;
      case 'task:started':
        this.updateTask(e.taskId, now, e, false, (t) => {
          t.state = 'STARTED';
          t.startedAt = now;
          t.queueWaitMs = e.queueWaitMs;
        });
        return;
      case 'task:progress':
        this.updateTask(e.taskId, now, e, false, (t) => {
          t.state = 'PROGRESS';
          t.progress = repr(e.progress, 500);
        });
        return;
      case 'task:retried':
        this.updateTask(e.taskId, now, e, false, (t) => {
          t.state = 'RETRY';
          t.error = boundError(e.error);
          t.retries = e.retries + 1;
          t.retryAt = now + e.delayMs;
        });
        return;
      case 'task:succeeded':
        this.updateTask(e.taskId, now, e, false, (t) => {
          t.state = 'SUCCESS';
          t.result = repr(e.result);
          t.error = null;
          t.runtimeMs = e.runtimeMs;
          t.finishedAt = now;
        });
        this.rate(e.queue).add(now, false);
        return;
      case 'task:failed':
        this.updateTask(e.taskId, now, e, false, (t) => {
          t.state = 'FAILURE';
          t.error = boundError(e.error);
          t.runtimeMs = e.runtimeMs;
          t.finishedAt = now;
        });
        this.rate(e.queue).add(now, true);
        return;
      case 'task:revoked':
        this.updateTask(e.taskId, now, e, false, (t) => {
          t.state = 'REVOKED';
          t.revokedReason = e.reason;
          t.finishedAt = now;
        });
        return;
      case 'task:dead-lettered':
        this.updateTask(e.taskId, now, e, false, (t) => {
          t.deadLettered = clip(e.reason, 1_000);
          if (t.state !== 'FAILURE') t.state = 'FAILURE';
          t.finishedAt ??= now;
        });
        return;
      default:
        return;
    }
  }

  /** After a redrive: the message is back in its queue, waiting to be received again. */
  markRedriven(taskId: string, now: number): void {
    const t = this.tasksById.get(taskId);
    if (t === undefined) return;
    t.state = 'PENDING';
    t.deadLettered = null;
    t.updatedAt = now;
    this.changed.add(taskId);
  }

  task(id: string): TaskView | undefined {
    return this.tasksById.get(id);
  }

  /** Recent tasks, the most recently received first. */
  tasks(limit = this.maxTasks): TaskView[] {
    const all = [...this.tasksById.values()];
    const out: TaskView[] = [];
    for (let i = all.length - 1; i >= 0 && out.length < limit; i--) out.push(all[i]!);
    return out;
  }

  /** Tasks changed since the last call (for live pushes). */
  takeChangedTasks(): TaskView[] {
    const out: TaskView[] = [];
    for (const id of this.changed) {
      const t = this.tasksById.get(id);
      if (t !== undefined) out.push(t);
    }
    this.changed.clear();
    return out;
  }

  takeOverviewDirty(): boolean {
    const d = this.overviewDirty;
    this.overviewDirty = false;
    return d;
  }

  workers(now: number): WorkerView[] {
    return [...this.workersById.values()]
      .map((w) => ({
        id: w.id,
        hostname: w.hostname,
        pid: w.pid,
        queues: w.queues,
        concurrency: w.concurrency,
        active: w.active,
        processed: w.processed,
        status: this.statusOf(w, now),
        lastSeen: w.lastSeen,
      }))
      .sort((a, b) => a.hostname.localeCompare(b.hostname) || a.pid - b.pid || a.id.localeCompare(b.id));
  }

  workersOnline(now: number): number {
    let n = 0;
    for (const w of this.workersById.values()) if (this.statusOf(w, now) === 'online') n++;
    return n;
  }

  rateSeries(queue: string, now: number): RateSeries {
    return (this.rates.get(queue) ?? new RateWindow()).series(now);
  }

  hasQueue(queue: string): boolean {
    return this.queues.includes(queue);
  }

  /** Track a queue (ignored past `maxQueues`). */
  addQueue(queue: string): void {
    if (this.queues.includes(queue) || this.queues.length >= this.maxQueues) return;
    this.queues.push(queue);
    this.overviewDirty = true;
  }

  private statusOf(w: WorkerRecord, now: number): WorkerStatus {
    if (w.cleanOffline) return 'offline';
    return now - w.lastSeen > this.offlineAfterMs ? 'lost' : 'online';
  }

  private rate(queue: string): RateWindow {
    let r = this.rates.get(queue);
    if (r === undefined) {
      r = new RateWindow();
      this.rates.set(queue, r);
    }
    this.addQueue(queue);
    return r;
  }

  private touchWorker(id: string, hostname: string, pid: number, now: number, change: (w: WorkerRecord) => void): void {
    let w = this.workersById.get(id);
    if (w === undefined) {
      w = { id, hostname, pid, queues: [], concurrency: null, active: 0, processed: 0, cleanOffline: false, lastSeen: now };
      this.workersById.set(id, w);
      this.evictWorkers(now);
    }
    w.lastSeen = now;
    change(w);
    this.overviewDirty = true;
  }

  private evictWorkers(now: number): void {
    if (this.workersById.size <= this.maxWorkers) return;
    const gone = [...this.workersById.values()]
      .filter((w) => this.statusOf(w, now) !== 'online')
      .sort((a, b) => a.lastSeen - b.lastSeen);
    for (const w of gone) {
      if (this.workersById.size <= this.maxWorkers) return;
      this.workersById.delete(w.id);
    }
  }

  private updateTask(
    id: string,
    now: number,
    e: { name: string | null; queue: string; retries: number; deliveries: number; hostname: string; pid: number },
    moveToFront: boolean,
    change: (t: TaskView) => void,
  ): void {
    let t = this.tasksById.get(id);
    if (t === undefined) {
      t = emptyTask(id, now);
      this.tasksById.set(id, t);
    } else if (moveToFront) {
      this.tasksById.delete(id);
      this.tasksById.set(id, t);
    }
    if (e.name !== null) t.name = e.name;
    t.queue = e.queue;
    t.retries = Math.max(t.retries, e.retries);
    if (e.deliveries > 0) t.deliveries = e.deliveries;
    t.worker = `${e.hostname}:${e.pid}`;
    t.updatedAt = now;
    change(t);
    this.changed.add(id);
    this.addQueue(e.queue);
    while (this.tasksById.size > this.maxTasks) {
      const oldest = this.tasksById.keys().next().value as string;
      this.tasksById.delete(oldest);
      this.changed.delete(oldest);
    }
  }
}

function emptyTask(id: string, now: number): TaskView {
  return {
    id,
    name: null,
    queue: null,
    state: 'PENDING',
    args: null,
    result: null,
    progress: null,
    error: null,
    retries: 0,
    deliveries: 0,
    runtimeMs: null,
    queueWaitMs: null,
    worker: null,
    deadLettered: null,
    revokedReason: null,
    retryAt: null,
    receivedAt: null,
    startedAt: null,
    finishedAt: null,
    updatedAt: now,
    source: 'events',
  };
}

/** Errors are user data too: keep them bounded. */
function boundError(e: SerializedError): SerializedError {
  const out: SerializedError = { name: clip(String(e.name), 200), message: clip(String(e.message), 2_000) };
  if (e.code !== undefined) out.code = clip(String(e.code), 200);
  if (e.stack !== undefined) out.stack = clip(String(e.stack), 8_000);
  if (e.retryable !== undefined) out.retryable = e.retryable;
  return out;
}

/** A view of what a result backend holds for a task the dashboard has not seen. */
export function taskFromBackend(id: string, meta: ResultMeta, now: number): TaskView {
  const t = emptyTask(id, now);
  t.source = 'backend';
  t.state = meta.state;
  t.name = meta.name ?? null;
  t.retries = meta.retries ?? 0;
  if (meta.result !== undefined) t.result = repr(meta.result);
  if (meta.progress !== undefined) t.progress = repr(meta.progress, 500);
  if (meta.error !== undefined) t.error = boundError(meta.error);
  if (meta.dateDone !== undefined) {
    t.finishedAt = meta.dateDone;
    t.updatedAt = meta.dateDone;
  }
  return t;
}

function positive(v: number | undefined, dflt: number, name: string): number {
  if (v === undefined) return dflt;
  if (!Number.isFinite(v) || v <= 0) throw new RangeError(`${name} must be a number > 0, got ${String(v)}`);
  return v;
}
