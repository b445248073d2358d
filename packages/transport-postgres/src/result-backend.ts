import {
  CeleriacError,
  ErrorCode,
  READY_STATES,
  serverTarget,
  silentLogger,
  type FactoryContext,
  type Logger,
  type ResultBackend,
  type ResultBackendCapabilities,
  type ResultMeta,
  type StoredSchedule,
  type StoredScheduleList,
  type UrlOptions,
  type WaitOptions,
} from '@celeriac/core';
import { Coalescer, type PreparedResultWrite } from '@celeriac/core/transport';
import type { ClientConfig } from 'pg';
import { Database } from './database.js';
import { classifyError, rejectClassified } from './errors.js';
import type { ListenHandle } from './listener.js';
import {
  resolveResultBackendOptions,
  urlOptions,
  type PostgresResultBackendOptions,
  type ResolvedResultBackendOptions,
} from './options.js';
import { foldWrites, RESULT_WRITE_KIND, resultStatements, resultWriteParams, type ResultStatements, type ResultWrite } from './results-sql.js';
import { channelName, ChannelKind, taskDigest } from './sql.js';

/** Constructor options of {@link PostgresResultBackend}. */
export interface PostgresResultBackendConfig extends PostgresResultBackendOptions {
  /** `postgres://[user[:password]@]host[:port]/database`. @default 'postgres://postgres@127.0.0.1:5432/postgres' */
  url?: string | URL;
  /** Extra `pg` client options for every connection (TLS objects, …). */
  pg?: ClientConfig;
  /** @default silent */
  logger?: Logger;
}

type SetItem = ResultWrite;

interface RegisterItem {
  taskId: string;
  waitMs: number | null;
}

interface Waiting {
  readonly taskId: string;
  readonly callbacks: Set<() => void>;
}

/**
 * Results, counters, leases, revocations and token buckets in PostgreSQL (the same schema as the
 * broker; tables are created or checked on first use).
 *
 * - `set` upserts; a live SUCCESS is never overwritten; `expires_at` = now + `ttlMs`. The writes of
 *   one turn of the event loop are one statement.
 * - `wait` never polls: it reads; if nothing is ready it LISTENs on the schema's results channel, then
 *   marks the row as waited on (`waited_until`) and reads again in the same statement. A `set` of a
 *   ready state notifies only rows that are waited on — a result nobody waits for costs no NOTIFY,
 *   so result writes do not queue on the server's notification lock. Listeners are per task id in
 *   memory, removed when the wait settles; the channel is unlistened when no wait remains. After the
 *   LISTEN connection comes back, every waited id is read again (notifications sent meanwhile are lost).
 * - Expired rows are invisible at once and deleted in batches by a timer (`cleanupIntervalMs`).
 * - Runtime schedules are rows of `schedule` with a rev; a write is a short transaction that locks the
 *   one row of `schedule_version`, takes the next version as the rev and compares-and-sets, so writes
 *   are serialised and a listing read with the version in one statement is never older than it.
 *
 * Connections: one pool of `poolSize` (opened on demand) plus one LISTEN connection (on the first wait
 * that has to wait).
 */
export class PostgresResultBackend implements ResultBackend {
  readonly name = 'postgres';
  /** Every optional operation is there. */
  readonly capabilities: ResultBackendCapabilities = { counters: true, leases: true, revocations: true, rateLimits: true, schedules: true };
  /** The options in force, defaults filled in. */
  readonly options: ResolvedResultBackendOptions;
  /**
   * Server, user and database (`postgres://user@host:port/db`): a PostgreSQL broker with the same
   * `resultWriteTarget` stores a task's result and deletes its message in one statement (`prepareSet`).
   */
  readonly writeTarget: string;
  private readonly db: Database;
  private readonly sql: ResultStatements;
  private readonly channel: string;
  private readonly writer: Coalescer<SetItem, void>;
  private readonly reader: Coalescer<string, ResultMeta | undefined>;
  private readonly registrar: Coalescer<RegisterItem, ResultMeta | undefined>;
  private readonly revokedReader: Coalescer<string, boolean>;
  /** Waits by md5 hex of their task id. */
  private readonly waiting = new Map<string, Waiting>();
  private readonly failers = new Set<(err: Error) => void>();
  private listenHandle: ListenHandle | undefined;
  private connecting: Promise<void> | undefined;
  private closing: Promise<void> | undefined;

  constructor(config: PostgresResultBackendConfig = {}) {
    const { url, pg, logger, ...opts } = config;
    this.options = resolveResultBackendOptions(opts);
    const log = logger ?? silentLogger;
    const where = new URL(url ?? 'postgres://postgres@127.0.0.1:5432/postgres');
    this.writeTarget = writeTargetOf(where);
    this.db = new Database({
      url: where,
      schema: this.options.prefix,
      migrate: this.options.migrate,
      poolSize: this.options.poolSize,
      connectTimeoutMs: this.options.connectTimeoutMs,
      logger: log,
      role: 'results',
      pg,
      onError: () => undefined, // logged by the database; calls reject on their own
      onReconnected: () => this.recheck(),
    });
    this.sql = resultStatements(this.db.s);
    this.channel = channelName(this.db.schema, ChannelKind.RESULTS);
    this.writer = new Coalescer((items) => this.writeBatch(items), 500);
    this.reader = new Coalescer(async (ids) => {
      const rows = await this.db.query<{ task_id: string; meta: ResultMeta }>(this.sql.get, [ids]);
      const byId = new Map(rows.map((r) => [r.task_id, r.meta]));
      return ids.map((id) => byId.get(id));
    }, 1000);
    this.registrar = new Coalescer((items) => this.registerBatch(items), 500);
    this.revokedReader = new Coalescer(async (ids) => {
      const rows = await this.db.query<{ task_id: string }>(this.sql.isRevoked, [ids]);
      const revoked = new Set(rows.map((r) => r.task_id));
      return ids.map((id) => revoked.has(id));
    }, 1000);
  }

  /** The schema (the `prefix` option) the tables live in. */
  get schema(): string {
    return this.db.schema;
  }

  /** @internal The connections (tests). */
  get database(): Database {
    return this.db;
  }

  /** @internal Task ids waited on right now (tests check nothing is left behind). */
  get waitingCount(): number {
    return this.waiting.size;
  }

  /** Connect and check (or migrate) the schema; the first call of any method does it too. */
  connect(): Promise<void> {
    if (this.closing !== undefined) return Promise.reject(new CeleriacError(ErrorCode.CLOSED, 'result backend is closed'));
    this.connecting ??= this.db.connect().then(
      () => this.db.startCleanup(this.sql.cleanup, this.options.cleanupIntervalMs),
      (err: unknown) => {
        this.connecting = undefined;
        throw err;
      },
    );
    return this.connecting;
  }

  /** Connected and open, or the reason why not; connects on first use. */
  private ready(): Promise<void> {
    if (this.closing !== undefined) return Promise.reject(new CeleriacError(ErrorCode.CLOSED, 'result backend is closed'));
    return this.db.isConnected ? Promise.resolve() : this.connect();
  }

  private async writeBatch(items: SetItem[]): Promise<void[]> {
    await this.db.query(this.sql.set, resultWriteParams(foldWrites(items), this.channel));
    return new Array<void>(items.length);
  }

  /**
   * `set` as a write a PostgreSQL broker on the same server and database runs together with its ack,
   * in one statement (kind `postgres-set-result`; a stored SUCCESS is kept and waiters are notified,
   * exactly as `set`). The schema must exist (the backend connected once).
   */
  prepareSet(taskId: string, meta: ResultMeta, opts: { ttlMs: number }): PreparedResultWrite {
    checkId(taskId);
    return {
      kind: RESULT_WRITE_KIND,
      keys: [this.db.schema, taskId],
      args: [meta.state, encodeMeta(meta), ttlArg(opts.ttlMs) ?? -1, taskDigest(taskId), this.channel],
    };
  }

  private async registerBatch(items: RegisterItem[]): Promise<(ResultMeta | undefined)[]> {
    const byId = new Map<string, number | null>();
    for (const it of items) {
      const prev = byId.get(it.taskId);
      byId.set(it.taskId, prev === undefined ? it.waitMs : prev === null || it.waitMs === null ? null : Math.max(prev, it.waitMs));
    }
    const rows = await this.db.query<{ task_id: string; meta: ResultMeta | null }>(this.sql.register, [[...byId.keys()], [...byId.values()]]);
    const metas = new Map(rows.map((r) => [r.task_id, r.meta ?? undefined]));
    return items.map((it) => metas.get(it.taskId));
  }

  // set, get and isRevoked are on every task's path: plain promise chains, no extra async frames.

  /** Store a state for `ttlMs` (Infinity: forever); a live SUCCESS is kept. Writes of one tick share a statement. */
  set(taskId: string, meta: ResultMeta, opts: { ttlMs: number }): Promise<void> {
    let item: SetItem;
    try {
      checkId(taskId);
      item = { taskId, state: meta.state, json: encodeMeta(meta), ttlMs: ttlArg(opts.ttlMs) };
    } catch (err) {
      return Promise.reject(err as Error);
    }
    return this.ready().then(() => this.writer.add(item)).then(noop, rejectClassified);
  }

  /** The stored state, or undefined (PENDING: unknown or expired). Reads of one tick share a statement. */
  get(taskId: string): Promise<ResultMeta | undefined> {
    try {
      checkId(taskId);
    } catch (err) {
      return Promise.reject(err as Error);
    }
    return this.ready().then(() => this.reader.add(taskId)).catch(rejectClassified);
  }

  /**
   * The first ready state (SUCCESS, FAILURE, REVOKED): at once if stored, else on a NOTIFY, never by
   * polling. Rejects with ERR_TIMEOUT, ERR_ABORTED or ERR_CLOSED; outlives connection failures.
   */
  wait(taskId: string, opts: WaitOptions): Promise<ResultMeta> {
    const signal = opts.signal;
    try {
      checkId(taskId);
      if (this.closing !== undefined) throw new CeleriacError(ErrorCode.CLOSED, 'result backend is closed');
      if (signal?.aborted === true) throw new CeleriacError(ErrorCode.ABORTED, `wait for ${taskId} aborted`, { cause: signal.reason });
    } catch (err) {
      return Promise.reject(err as Error);
    }
    return new Promise<ResultMeta>((resolve, reject) => {
      let settled = false;
      let timer: NodeJS.Timeout | undefined;
      let retryTimer: NodeJS.Timeout | undefined;
      let handle: ListenHandle | undefined;
      const finish = (fn: () => void) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        clearTimeout(retryTimer);
        signal?.removeEventListener('abort', onAbort);
        this.failers.delete(fail);
        handle?.remove();
        fn();
      };
      const fail = (err: Error) => finish(() => reject(err));
      const onAbort = () => fail(new CeleriacError(ErrorCode.ABORTED, `wait for ${taskId} aborted`, { cause: signal?.reason }));
      const onMeta = (meta: ResultMeta | undefined) => {
        if (meta !== undefined && READY_STATES.has(meta.state)) finish(() => resolve(meta));
      };
      // A wait outlives connection failures: a step that fails with a retryable error runs again
      // (after 0.25 s, doubling to 2 s) until the wait settles; any other error fails the wait.
      const attempt = (step: () => Promise<void>, delayMs = 250): void => {
        step().catch((err: unknown) => {
          if (settled) return;
          const e = classifyError(err);
          if (!(e instanceof CeleriacError && e.retryable)) return fail(e);
          retryTimer = setTimeout(() => attempt(step, Math.min(2_000, delayMs * 2)), delayMs);
        });
      };
      const reread = () => {
        if (!settled) attempt(async () => onMeta(await this.get(taskId)));
      };
      this.failers.add(fail);
      signal?.addEventListener('abort', onAbort, { once: true });
      if (Number.isFinite(opts.timeoutMs)) {
        timer = setTimeout(
          () => fail(new CeleriacError(ErrorCode.TIMEOUT, `no result for task ${taskId} within ${opts.timeoutMs} ms`)),
          Math.max(0, opts.timeoutMs),
        );
      }
      const waitMs = Number.isFinite(opts.timeoutMs) ? Math.max(1, Math.ceil(opts.timeoutMs)) : null;
      attempt(async () => {
        // Most waits find the result stored (or soon): a read, no LISTEN, no write.
        onMeta(await this.get(taskId));
        if (settled) return;
        handle ??= this.watch(taskId, reread);
        await handle.ready;
        if (settled) return;
        // Marked and read in one statement, after LISTEN is on: a result stored before the mark is
        // returned here; one stored after it notifies.
        onMeta(await this.registrar.add({ taskId, waitMs }));
      });
    });
  }

  /** Call `onNotify` when task `taskId` is announced (or the LISTEN connection came back); remove when done. */
  private watch(taskId: string, onNotify: () => void): ListenHandle {
    const digest = taskDigest(taskId);
    let w = this.waiting.get(digest);
    if (w === undefined) {
      w = { taskId, callbacks: new Set() };
      this.waiting.set(digest, w);
    }
    const entry = w;
    entry.callbacks.add(onNotify);
    this.listenHandle ??= this.db.listener.listen(this.channel, (payload) => this.notified(payload));
    const handle = this.listenHandle;
    let removed = false;
    return {
      ready: handle.ready,
      remove: () => {
        if (removed) return;
        removed = true;
        entry.callbacks.delete(onNotify);
        if (entry.callbacks.size === 0 && this.waiting.get(digest) === entry) this.waiting.delete(digest);
        if (this.waiting.size === 0 && this.listenHandle === handle) {
          this.listenHandle = undefined;
          handle.remove();
        }
      },
    };
  }

  private notified(payload: string): void {
    for (const digest of payload.split('\n')) {
      const w = this.waiting.get(digest);
      if (w !== undefined) for (const fn of [...w.callbacks]) fn();
    }
  }

  /** After a reconnect of the LISTEN connection: read every waited task again. */
  private recheck(): void {
    for (const w of [...this.waiting.values()]) for (const fn of [...w.callbacks]) fn();
  }

  /** Forget a result (a wait in progress keeps waiting for the next one). */
  delete(taskId: string): Promise<void> {
    return this.run(async () => {
      checkId(taskId);
      await this.db.query(this.sql.delete, [taskId]);
    });
  }

  /** Add `by` to a counter, atomically across clients; it expires `ttlMs` after the last change. Returns the new value. */
  incr(key: string, by: number, opts: { ttlMs: number }): Promise<number> {
    if (!Number.isInteger(by)) return Promise.reject(new RangeError(`by must be an integer, got ${String(by)}`));
    return this.run(async () => {
      const rows = await this.db.query<{ value: string }>(this.sql.incr, [key, by, ttlArg(opts.ttlMs)]);
      return Number(rows[0]?.value);
    });
  }

  /** True if `holder` took the lease (nobody held it, or the holder's lease expired), on the server's clock. */
  acquireLease(name: string, holder: string, ttlMs: number): Promise<boolean> {
    return this.run(async () => (await this.db.query(this.sql.acquireLease, [name, holder, leaseTtl(ttlMs)])).length === 1);
  }

  /** True if `holder` still held the lease and now holds it for `ttlMs` more. */
  renewLease(name: string, holder: string, ttlMs: number): Promise<boolean> {
    return this.run(async () => (await this.db.query(this.sql.renewLease, [name, holder, leaseTtl(ttlMs)])).length === 1);
  }

  /** True if `holder` held the lease and gave it up. */
  releaseLease(name: string, holder: string): Promise<boolean> {
    return this.run(async () => (await this.db.query(this.sql.releaseLease, [name, holder])).length === 1);
  }

  /** Remember `taskId` as revoked for `ttlMs` (Infinity: forever). */
  revoke(taskId: string, ttlMs: number): Promise<void> {
    return this.run(async () => {
      checkId(taskId);
      await this.db.query(this.sql.revoke, [taskId, ttlArg(ttlMs)]);
    });
  }

  /** Whether `taskId` is revoked (reads of one tick share a statement). */
  isRevoked(taskId: string): Promise<boolean> {
    try {
      checkId(taskId);
    } catch (err) {
      return Promise.reject(err as Error);
    }
    return this.ready().then(() => this.revokedReader.add(taskId)).catch(rejectClassified);
  }

  /** Every revoked task id whose revocation has not expired. */
  listRevoked(): Promise<string[]> {
    return this.run(async () => (await this.db.query<{ task_id: string }>(this.sql.listRevoked)).map((r) => r.task_id));
  }

  /** Take a token from a bucket of `limit` refilled over `windowMs`, shared by every client (server clock). */
  takeTokens(bucket: string, limit: number, windowMs: number): Promise<{ ok: boolean; retryInMs: number }> {
    if (!Number.isInteger(limit) || limit < 1) return Promise.reject(new RangeError(`limit must be an integer >= 1, got ${String(limit)}`));
    if (!Number.isFinite(windowMs) || windowMs <= 0) return Promise.reject(new RangeError(`windowMs must be > 0, got ${String(windowMs)}`));
    return this.run(async () => {
      const rows = await this.db.query<{ taken: boolean; tokens: number }>(this.sql.takeTokens, [bucket, limit, windowMs]);
      const r = rows[0];
      if (r === undefined) throw new CeleriacError(ErrorCode.CONNECTION, 'takeTokens returned no row', { retryable: true });
      if (r.taken) return { ok: true, retryInMs: 0 };
      return { ok: false, retryInMs: Math.max(1, Math.ceil(((1 - r.tokens) * windowMs) / limit)) };
    });
  }

  /** The schedule record of `id`, or undefined. */
  getSchedule(id: string): Promise<StoredSchedule | undefined> {
    return this.run(async () => {
      checkScheduleId(id);
      const r = (await this.db.query<{ rev: string; data: string }>(this.sql.getSchedule, [id]))[0];
      return r === undefined ? undefined : { id, rev: Number(r.rev), data: r.data };
    });
  }

  /** Every schedule record and the version they are at least as new as (one snapshot). */
  listSchedules(): Promise<StoredScheduleList> {
    return this.run(async () => {
      const rows = await this.db.query<{ version: string; id: string | null; rev: string | null; data: string | null }>(this.sql.listSchedules);
      const schedules: StoredSchedule[] = [];
      for (const r of rows) if (r.id !== null) schedules.push({ id: r.id, rev: Number(r.rev), data: r.data ?? '' });
      return { version: Number(rows[0]?.version ?? 0), schedules };
    });
  }

  /** The rev of the latest schedule write (0 before any). */
  schedulesVersion(): Promise<number> {
    return this.run(async () => Number((await this.db.query<{ version: string }>(this.sql.schedulesVersion))[0]?.version ?? 0));
  }

  /** Compare-and-set: store `data` under `id` if its rev is `expectedRev` (0: none yet); the new rev, or 0. */
  putSchedule(id: string, data: string, expectedRev: number): Promise<number> {
    if (!Number.isSafeInteger(expectedRev) || expectedRev < 0) return Promise.reject(new RangeError(`expectedRev must be an integer >= 0, got ${String(expectedRev)}`));
    if (typeof data !== 'string' || data.includes('\0')) return Promise.reject(new TypeError('schedule data must be a string without NUL'));
    return this.run(async () => {
      checkScheduleId(id);
      return this.db.transaction(async (q) => {
        const rev = (await q<{ rev: string }>(this.sql.nextScheduleRev))[0]!.rev;
        const done =
          expectedRev === 0 ? await q(this.sql.createSchedule, [id, rev, data]) : await q(this.sql.replaceSchedule, [id, rev, data, expectedRev]);
        return done.length === 1 ? { commit: true, value: Number(rev) } : { commit: false, value: 0 };
      });
    });
  }

  /** Remove the schedule record of `id`; true if there was one. */
  deleteSchedule(id: string): Promise<boolean> {
    return this.run(async () => {
      checkScheduleId(id);
      return this.db.transaction(async (q) => {
        await q(this.sql.nextScheduleRev);
        const gone = (await q(this.sql.deleteSchedule, [id])).length === 1;
        return { commit: gone, value: gone };
      });
    });
  }

  /** Delete expired rows now (the timer does it every `cleanupIntervalMs`); returns how many went. */
  cleanup(): Promise<number> {
    return this.run(() => this.db.cleanup(this.sql.cleanup));
  }

  private async run<T>(fn: () => Promise<T>): Promise<T> {
    await this.ready();
    try {
      return await fn();
    } catch (err) {
      throw classifyError(err);
    }
  }

  /** Idempotent, returns the same promise. Pending waits reject with ERR_CLOSED; the connections close. */
  close(): Promise<void> {
    this.closing ??= this.doClose();
    return this.closing;
  }

  private async doClose(): Promise<void> {
    await Promise.all([this.writer.drain(), this.reader.drain(), this.registrar.drain(), this.revokedReader.drain()]);
    const err = new CeleriacError(ErrorCode.CLOSED, 'result backend closed while waiting');
    for (const fail of [...this.failers]) fail(err);
    await this.db.close();
  }
}

function noop(): void {
  // resolves set() with undefined
}

function checkId(taskId: string): void {
  if (typeof taskId !== 'string' || taskId === '') throw new TypeError('a task id must be a non-empty string');
  if (taskId.includes('\0')) throw new TypeError('a task id must not contain a NUL character');
}

function checkScheduleId(id: string): void {
  if (typeof id !== 'string' || id === '') throw new TypeError('a schedule id must be a non-empty string');
  if (id.includes('\0')) throw new TypeError('a schedule id must not contain a NUL character');
}

/** Results are stored as JSON (`undefined` properties dropped, a `Date` becomes its ISO string). */
export function encodeMeta(meta: ResultMeta): string {
  try {
    return JSON.stringify(meta);
  } catch (err) {
    throw new CeleriacError(ErrorCode.SERIALIZATION, `result is not JSON-serializable: ${String(err)}`, { cause: err });
  }
}

/** Milliseconds until expiry: whole, at least 1; null (kept forever) for a non-finite ttl. */
export function ttlArg(ttlMs: number): number | null {
  if (!Number.isFinite(ttlMs)) return null;
  return Math.max(1, Math.ceil(ttlMs));
}

/** A lease always expires: a non-finite ttl is refused. */
function leaseTtl(ttlMs: number): number {
  if (!Number.isFinite(ttlMs) || ttlMs <= 0) throw new RangeError(`ttlMs must be a finite number > 0, got ${String(ttlMs)}`);
  return Math.ceil(ttlMs);
}

/** Where a result write lands: `postgres://user@host:port/database` (the scheme spelled one way). */
export function writeTargetOf(url: URL): string {
  return serverTarget('postgres', url, { port: 5432, path: `/${url.username}` });
}

/** The factory core's URL table calls for `postgres://` and `postgresql://` result backend URLs. */
export function createPostgresResultBackend(url: URL, options: UrlOptions, context: FactoryContext = {}): PostgresResultBackend {
  return new PostgresResultBackend({
    ...(resolveResultBackendOptions(urlOptions(url, options)) as PostgresResultBackendOptions),
    url,
    ...(context.logger === undefined ? {} : { logger: context.logger }),
  });
}
