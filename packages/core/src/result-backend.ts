import type { PreparedResultWrite } from './transport/adapter.js';
import type { SerializedError } from './errors.js';

export const TaskState = {
  PENDING: 'PENDING',
  STARTED: 'STARTED',
  PROGRESS: 'PROGRESS',
  RETRY: 'RETRY',
  SUCCESS: 'SUCCESS',
  FAILURE: 'FAILURE',
  REVOKED: 'REVOKED',
} as const;
export type TaskState = (typeof TaskState)[keyof typeof TaskState];

/** States after which a task never changes again (`wait()` resolves on them). */
export const READY_STATES: ReadonlySet<TaskState> = new Set([TaskState.SUCCESS, TaskState.FAILURE, TaskState.REVOKED]);

/** What a result backend stores per task id. Values must survive the backend's serializer. */
export interface ResultMeta {
  state: TaskState;
  /** The handler's return value, for SUCCESS. */
  result?: unknown;
  /** For FAILURE (and RETRY: the error that caused it). */
  error?: SerializedError;
  /** The last value given to `currentTask().progress()`, for PROGRESS. */
  progress?: unknown;
  name?: string;
  retries?: number;
  /** Epoch milliseconds of the last change. */
  dateDone?: number;
  /** Child task ids or a group's member ids (groups and chords). */
  children?: string[];
}

export interface ResultBackendCapabilities {
  readonly counters: boolean;
  readonly leases: boolean;
  readonly revocations: boolean;
  readonly rateLimits: boolean;
  /**
   * Runtime schedules (`app.schedules`, DESIGN.md §10): `getSchedule`, `listSchedules`,
   * `schedulesVersion`, `putSchedule` and `deleteSchedule` are all present. Absent means false, so a
   * backend written before this capability existed still type-checks and is refused cleanly
   * (`ERR_UNSUPPORTED`).
   */
  readonly schedules?: boolean;
}

/**
 * One runtime schedule as a result backend keeps it. The backend does not read `data` (text core
 * writes and reads); it keeps `rev`, the compare-and-set token of the record.
 */
export interface StoredSchedule {
  readonly id: string;
  /**
   * Positive, and greater than the rev of every earlier write to this backend's schedules — of any
   * id, deletions included — so a newer record of an id always has a larger rev (Redis: one counter;
   * NATS: the KV revision; memory: one counter; SQL: a sequence).
   */
  readonly rev: number;
  readonly data: string;
}

/** Every stored runtime schedule, and the version they are at least as new as. */
export interface StoredScheduleList {
  /** `schedulesVersion()` read before (or atomically with) the listing. */
  readonly version: number;
  readonly schedules: StoredSchedule[];
}

export interface WaitOptions {
  /** Infinity waits without a timeout. */
  timeoutMs: number;
  signal?: AbortSignal;
}

export interface ResultBackend {
  readonly name: string;
  readonly capabilities: ResultBackendCapabilities;
  /** Store a state. A stored SUCCESS is never overwritten. */
  set(taskId: string, meta: ResultMeta, opts: { ttlMs: number }): Promise<void>;
  /** undefined means PENDING (unknown, or expired). */
  get(taskId: string): Promise<ResultMeta | undefined>;
  /**
   * Resolve with the first ready state (SUCCESS, FAILURE, REVOKED); resolves at once if one is stored.
   * Waits on a notification, never a busy poll; leaves no listener behind when it settles.
   * Rejects with ERR_TIMEOUT after `timeoutMs`, or with ERR_ABORTED when `signal` aborts.
   */
  wait(taskId: string, opts: WaitOptions): Promise<ResultMeta>;
  delete(taskId: string): Promise<void>;
  /** Atomic counter (chords). Returns the new value. */
  incr?(key: string, by: number, opts: { ttlMs: number }): Promise<number>;
  /** A named lease (the beat leader): true if `holder` now holds it. */
  acquireLease?(name: string, holder: string, ttlMs: number): Promise<boolean>;
  renewLease?(name: string, holder: string, ttlMs: number): Promise<boolean>;
  releaseLease?(name: string, holder: string): Promise<boolean>;
  revoke?(taskId: string, ttlMs: number): Promise<void>;
  isRevoked?(taskId: string): Promise<boolean>;
  /**
   * Every task id revoked and not yet expired. A worker that subscribed to revoke broadcasts and then
   * listed the set needs no per-task `isRevoked` round trip.
   */
  listRevoked?(): Promise<string[]>;
  /** Token bucket of `limit` tokens refilled over `windowMs`, shared by every client of the backend. */
  takeTokens?(bucket: string, limit: number, windowMs: number): Promise<{ ok: boolean; retryInMs: number }>;
  /*
   * Runtime schedules: present together, and only, when `capabilities.schedules` is true. They are a
   * small compare-and-set store; what a schedule means (its next run, run count, catch-up) is core's,
   * written into `data`. Race-freedom comes from `putSchedule`'s compare-and-set being atomic in the
   * store. Schedules do not expire. The result-backend suite tests every line below.
   */
  /** The record of `id`, or undefined when there is none (never created, or deleted). */
  getSchedule?(id: string): Promise<StoredSchedule | undefined>;
  /** Every record (any order). Its `version` is never newer than the records listed. */
  listSchedules?(): Promise<StoredScheduleList>;
  /**
   * A number that grows with every write (`putSchedule` that took effect, `deleteSchedule` that
   * removed something): the rev of the latest write, 0 before any. Equal versions mean nothing was
   * written in between, so a poller lists only when it changed.
   */
  schedulesVersion?(): Promise<number>;
  /**
   * Compare-and-set: store `data` under `id` if its current rev is `expectedRev` (0: only if there is
   * no record) and return the new rev; return 0, writing nothing, when the current rev differs.
   */
  putSchedule?(id: string, data: string, expectedRev: number): Promise<number>;
  /** Remove the record of `id`; true if there was one. */
  deleteSchedule?(id: string): Promise<boolean>;
  /**
   * Set when `prepareSet` is available: names the server (and database) the backend writes to, so a
   * transport on the same one can store a result together with its ack (see `SettleAdapter.resultWriteTarget`
   * in `@celeriac/core/transport`).
   */
  readonly writeTarget?: string | undefined;
  /** Describe `set(taskId, meta, opts)` as a write a transport can run together with its ack. */
  prepareSet?(taskId: string, meta: ResultMeta, opts: { ttlMs: number }): PreparedResultWrite;
  /** Idempotent. */
  close(): Promise<void>;
}
