import {
  CeleriacError,
  ErrorCode,
  type DeadLetter,
  type Headers,
  type OutgoingMessage,
  type PublishOptions,
  type QueueStats,
} from '@celeriac/core';
import { Coalescer, type PreparedResultWrite } from '@celeriac/core/transport';
import type { Database, SqlClient } from './database.js';
import { classifyError, rejectClassified, staleDelivery } from './errors.js';
import type { ListenHandle, Listener } from './listener.js';
import { queueStatements, type QueueStatements } from './queue-sql.js';
import { foldWrites, RESULT_WRITE_KIND, resultAndAckStatement, resultWriteParams, type ResultWrite } from './results-sql.js';
import { channelName, ChannelKind, quoteIdent } from './sql.js';

/** `PublishOptions` plus the transaction to publish in. */
export interface PostgresPublishOptions extends PublishOptions {
  /**
   * Publish inside the caller's transaction: a client (a `pg` Client inside `BEGIN`, or an adapter
   * with `query(text, values): Promise<{ rows }>`) on which the insert and its NOTIFY run, so the
   * message exists — and claimers are woken — only if that transaction commits. Not coalesced with
   * other publishes. The statement has one parameter, `$1`, a JSON string.
   */
  transaction?: SqlClient;
}

/** A claimed message, as the kit's adapter hands it out. */
export interface PgMessage {
  /** The message id it was published with. */
  readonly id: string;
  readonly body: Buffer;
  readonly headers: Headers;
  /** How often it was claimed, 1 on the first delivery (expired leases included). */
  readonly deliveries: number;
  readonly priority: number;
  /** The row's id (a bigint as text): with `token`, names this delivery to ack, nack, extend and release. */
  readonly row: string;
  /** The claim's fencing token (a bigint as text): a settle with an older token is refused. */
  readonly token: string;
}

/** How a message is settled other than by ack (see the `settle` statement). */
export interface NackVerdict {
  /** false: dead-letter with `reason`. true: claimable again (after `delayMs` if given). */
  requeue: boolean;
  delayMs?: number;
  reason?: string;
}

/** What {@link PgQueue} needs from its broker. */
export interface PgQueueConfig {
  /** The broker's connections. */
  readonly db: Database;
  /** The queue's name: the `queue` column of its rows. */
  readonly name: string;
  /** The lease a claim takes and `extend` renews. */
  readonly visibilityTimeoutMs: number;
  /** The longest a claim waits for a notification before it looks at the table again. */
  readonly pollIntervalMs: number;
  /** Called with the number of message rows a statement updated or deleted (each leaves a dead row version). */
  readonly churned?: (rows: number) => void;
}

interface PublishItem {
  /** The message id. */
  i: string;
  /** Priority 0–9. */
  p: number;
  /** Delay in ms. */
  d: number;
  /** The headers as a JSON string. */
  h: string;
  body: Buffer;
}

interface SettleItem {
  msg: PgMessage;
  mode: 'r' | 'u' | 'd' | 'x';
  delayMs: number;
  reason: string;
}

interface AckWrite extends ResultWrite {
  msg: PgMessage;
  channel: string;
}

interface ClaimRow {
  /** null in the one row of a claim that got nothing (it carries wait_ms). */
  row: string | null;
  token: string;
  message_id: string;
  priority: number;
  deliveries: number;
  headers: Headers;
  body: Buffer;
  was_visible_at: Date;
  wait_ms: number | null;
}

/** The most messages or deliveries in one statement. */
const MAX_BATCH = 500;
/** Publishes sent as soon as this many wait, so the server stores some while the rest are encoded. */
const EAGER_PUBLISHES = 64;
/** Rows a purge, redrive or dead-letter purge statement handles at most. */
const SWEEP_BATCH = 1000;
/** The shortest wait when the table says something is claimable but the claim got nothing (a row another session holds locked). */
const MIN_WAIT_MS = 10;
const MAX_TIMER_MS = 2_147_483_647;

/**
 * One queue of the PostgreSQL broker: its rows in `<schema>.message`, its statements, and the calls
 * coalesced per turn of the event loop (publishes as one multi-row insert, acks, extends and the other
 * settles as one statement each over `unnest` arrays).
 *
 * This is the queue model the transport kit's pull adapter calls: `claim` (waits on LISTEN/NOTIFY,
 * bounded by `pollIntervalMs`), `ack`, `nack`, `extend`, `release`. It keeps no deliveries of its own:
 * prefetch, settle-once and give-back at close are the kit's.
 */
export class PgQueue {
  /** The queue's name. */
  readonly name: string;
  /** The NOTIFY channel claimers of this queue listen on. */
  readonly channel: string;
  private readonly db: Database;
  private readonly sql: QueueStatements;
  private readonly leaseMs: number;
  private readonly pollIntervalMs: number;
  private readonly churned: (rows: number) => void;
  private readonly publisher: Coalescer<PublishItem, void>;
  private readonly acker: Coalescer<PgMessage, boolean>;
  private readonly extender: Coalescer<PgMessage, boolean>;
  private readonly settler: Coalescer<SettleItem, boolean>;
  /** Acks with a result write, by the result schema (usually one). */
  private readonly resultAckers = new Map<string, Coalescer<AckWrite, boolean>>();
  private wakeups: Wakeups | undefined;
  /**
   * Set by a claim that came back empty after waiting: until `until` (local time, when the next
   * message becomes claimable) nothing is, unless a notification moved the wake-ups past `epoch`.
   */
  private idle: { epoch: number; until: number } | undefined;
  private closed = false;

  constructor(config: PgQueueConfig) {
    this.db = config.db;
    this.name = config.name;
    this.leaseMs = config.visibilityTimeoutMs;
    this.pollIntervalMs = config.pollIntervalMs;
    this.churned = config.churned ?? (() => undefined);
    this.channel = channelName(this.db.schema, ChannelKind.QUEUE, config.name);
    this.sql = queueStatements(this.db.s);
    this.publisher = new Coalescer(async (items) => {
      await this.db.query(this.sql.publishRows, this.publishRows(items));
      return new Array<void>(items.length);
    }, MAX_BATCH, EAGER_PUBLISHES);
    this.acker = new Coalescer((msgs) => this.fenced(this.sql.ack, msgs, []), MAX_BATCH);
    this.extender = new Coalescer((msgs) => this.fenced(this.sql.extend, msgs, [this.leaseMs]), MAX_BATCH);
    this.settler = new Coalescer(async (items) => {
      const rows = await this.db.query<{ row: string | null }>(this.sql.settle, [
        items.map((it) => it.msg.row),
        items.map((it) => it.msg.token),
        items.map((it) => it.mode),
        items.map((it) => it.delayMs),
        items.map((it) => it.reason),
        this.channel,
      ]);
      this.churned(rows.length);
      const done = new Set(rows.map((r) => r.row));
      return items.map((it) => done.has(it.msg.row));
    }, MAX_BATCH);
  }

  /** The parameters of `publish`: one JSON document (what a Knex-style adapter passes through unchanged). */
  private publishDoc(items: readonly PublishItem[]): string {
    return JSON.stringify({ q: this.name, c: this.channel, m: items.map((it) => ({ i: it.i, p: it.p, d: it.d, h: it.h, b: it.body.toString('base64') })) });
  }

  /** The parameters of `publishRows`: arrays (half the server's work of the JSON document; measured 21k → 33k rows/s). */
  private publishRows(items: readonly PublishItem[]): unknown[] {
    return [this.name, this.channel, items.map((it) => it.i), items.map((it) => it.p), items.map((it) => it.d), items.map((it) => it.h), items.map((it) => it.body)];
  }

  /** Run a fenced statement over (row, token) arrays; true per message whose token still matched. */
  private async fenced(sql: string, msgs: readonly PgMessage[], extra: unknown[]): Promise<boolean[]> {
    const rows = await this.db.query<{ row: string }>(sql, [msgs.map((m) => m.row), msgs.map((m) => m.token), ...extra]);
    this.churned(rows.length);
    const done = new Set(rows.map((r) => r.row));
    return msgs.map((m) => done.has(m.row));
  }

  /**
   * Store a message, ready now or after `delayMs` (a due time: 1 ms to weeks), at `priority` 0–9
   * (9 most urgent). Resolves once committed. Publishes of one turn of the event loop share one
   * INSERT; with `transaction`, the insert runs on that client instead and commits with it.
   */
  publish(msg: OutgoingMessage, opts?: PostgresPublishOptions): Promise<void> {
    return this.publishBatch([msg], opts);
  }

  /** Store several messages, in order (one INSERT per 500, one after the other). */
  publishBatch(msgs: readonly OutgoingMessage[], opts?: PostgresPublishOptions): Promise<void> {
    let items: PublishItem[];
    try {
      items = msgs.map((m) => publishItem(m, opts));
    } catch (err) {
      return Promise.reject(err as Error);
    }
    if (opts?.transaction !== undefined) {
      if (typeof (opts.transaction as Partial<SqlClient> | null)?.query !== 'function') {
        return Promise.reject(new TypeError('transaction must be a client with query(text, values), inside BEGIN'));
      }
      return this.publishIn(opts.transaction, items, 'transactional publish');
    }
    try {
      this.db.check();
    } catch (err) {
      return Promise.reject(err as Error);
    }
    if (items.length === 1) return this.publisher.add(items[0]!);
    // A batch keeps its order: its own statements, one after the other (coalesced publishes of one
    // tick may run as concurrent statements, so they have no order between them).
    return this.publishIn(this.db.pool, items, 'publish');
  }

  /** In order, 500 per statement: on the pool as arrays, in a caller's transaction as one JSON document. */
  private async publishIn(client: SqlClient, items: readonly PublishItem[], doing: string): Promise<void> {
    this.db.check();
    const mine = client === this.db.pool;
    for (let i = 0; i < items.length; i += MAX_BATCH) {
      const chunk = items.slice(i, i + MAX_BATCH);
      try {
        await (mine ? client.query(this.sql.publishRows, this.publishRows(chunk)) : client.query(this.sql.publish, [this.publishDoc(chunk)]));
      } catch (err) {
        throw classifyError(err, doing);
      }
    }
  }

  /**
   * Claim up to `max` messages under a lease of `visibilityTimeoutMs`. When none is claimable, waits
   * — for a NOTIFY (publish, requeue, redrive), the next delay coming due or lease expiring, at most
   * `pollIntervalMs`, or `signal` — then claims once more; so it may resolve `[]`. Never busy-polls:
   * an idle claimer runs one statement per wait (a claim that comes back empty says when the next
   * message becomes claimable, and a claim called again right after an empty one, with no
   * notification in between, waits first). Messages come in claim order: priority 9 first, then
   * FIFO. What it claimed is returned even when `signal` aborted meanwhile (give it back with
   * `release(…, false)`).
   */
  async claim(max: number, signal?: AbortSignal): Promise<PgMessage[]> {
    if (!Number.isInteger(max) || max < 1) throw new RangeError(`max must be an integer >= 1, got ${String(max)}`);
    this.db.check();
    if (isAborted(signal)) return [];
    const w = this.listen();
    let seen = w.epoch;
    let nextMs: number | null;
    const idle = this.idle;
    if (idle !== undefined && w.listening && idle.epoch === seen && Date.now() < idle.until) {
      // The last claim found nothing, no notification came since and nothing is due yet: wait first.
      nextMs = idle.until === Infinity ? null : idle.until - Date.now();
    } else {
      let got = await this.claimOnce(max);
      if (got.msgs.length > 0 || isAborted(signal)) return got.msgs;
      if (!w.listening) {
        // The first claim: a NOTIFY sent before LISTEN took effect is not seen, so once it has (or
        // after pollIntervalMs, if the LISTEN connection cannot be had), look again before waiting.
        await w.ready(this.pollIntervalMs, signal);
        if (isAborted(signal) || this.closed) return [];
        seen = w.epoch;
        got = await this.claimOnce(max);
        if (got.msgs.length > 0 || isAborted(signal)) return got.msgs;
      }
      nextMs = got.nextMs;
    }
    const waitMs = nextMs === null ? this.pollIntervalMs : Math.min(this.pollIntervalMs, Math.max(MIN_WAIT_MS, nextMs));
    await w.wait(seen, waitMs, signal);
    if (isAborted(signal) || this.closed) return [];
    const epoch = w.epoch;
    const started = Date.now();
    const got = await this.claimOnce(max);
    if (got.msgs.length === 0) this.idle = { epoch, until: got.nextMs === null ? Infinity : started + got.nextMs };
    return got.msgs;
  }

  /** One claim statement, no waiting. */
  async tryClaim(max: number): Promise<PgMessage[]> {
    return (await this.claimOnce(max)).msgs;
  }

  /** One claim statement: the messages, or (none claimed) the ms until the next becomes claimable (null: empty queue). */
  private async claimOnce(max: number): Promise<{ msgs: PgMessage[]; nextMs: number | null }> {
    const rows = await this.db.query<ClaimRow>(this.sql.claim, [this.name, Math.min(max, MAX_BATCH), this.leaseMs]);
    const first = rows[0];
    if (first === undefined || first.row === null) return { msgs: [], nextMs: first?.wait_ms ?? null };
    this.churned(rows.length);
    if (rows.length > 1) rows.sort(claimOrder);
    const msgs = rows.map((r) => ({
      id: r.message_id,
      body: r.body,
      headers: r.headers,
      deliveries: r.deliveries,
      priority: r.priority,
      row: r.row!,
      token: r.token,
    }));
    return { msgs, nextMs: null };
  }

  /** Ms until the next message becomes claimable (a delay or a lease), null when the queue is empty. */
  async nextVisibleMs(): Promise<number | null> {
    const rows = await this.db.query<{ wait_ms: number | null }>(this.sql.nextVisible, [this.name]);
    return rows[0]?.wait_ms ?? null;
  }

  /** The queue's wake-ups, listening from the first claim until the broker closes. */
  private listen(): Wakeups {
    this.wakeups ??= new Wakeups(this.db.listener, this.channel);
    return this.wakeups;
  }

  /** Wake every waiting claim (after a reconnect: notifications sent meanwhile were lost). */
  wakeAll(): void {
    this.wakeups?.wakeAll();
  }

  /** Delete a finished message. Rejects with ERR_STALE_DELIVERY when its lease was lost. */
  ack(msg: PgMessage): Promise<void> {
    return this.acker.add(msg).then(settledOrStale, rejectClassified);
  }

  /**
   * Store a result (a `postgres-set-result` write prepared by this package's result backend on the
   * same database) and delete the message, in one statement with the other such acks of the tick. The
   * result is stored even when the lease was lost (the call then rejects with ERR_STALE_DELIVERY), as
   * a separate `set` and `ack` would. Throws synchronously for a write of another kind.
   */
  ackWithResult(msg: PgMessage, write: PreparedResultWrite): Promise<void> {
    const [schema, taskId] = write.keys;
    const [state, json, ttl, , channel] = write.args;
    if (write.kind !== RESULT_WRITE_KIND || schema === undefined || taskId === undefined || typeof channel !== 'string') {
      throw new CeleriacError(ErrorCode.UNSUPPORTED, `the PostgreSQL broker cannot run a "${write.kind}" result write`);
    }
    let acker = this.resultAckers.get(schema);
    if (acker === undefined) {
      const sql = resultAndAckStatement(quoteIdent(schema), this.db.s);
      acker = new Coalescer(async (items: AckWrite[]) => {
        const params = resultWriteParams(foldWrites(items), items[0]!.channel);
        const rows = await this.db.query<{ row: string | null }>(sql, [...params, items.map((it) => it.msg.row), items.map((it) => it.msg.token)]);
        this.churned(rows.length);
        const done = new Set(rows.map((r) => r.row));
        return items.map((it) => done.has(it.msg.row));
      }, MAX_BATCH);
      this.resultAckers.set(schema, acker);
    }
    const item: AckWrite = { msg, taskId, state: String(state), json: String(json), ttlMs: Number(ttl) < 0 ? null : Number(ttl), channel };
    return acker.add(item).then(settledOrStale, rejectClassified);
  }

  /**
   * Requeue now (at its old place), requeue after `delayMs`, or dead-letter with `reason`
   * (`requeue: false`). Rejects with ERR_STALE_DELIVERY when its lease was lost.
   */
  nack(msg: PgMessage, verdict: NackVerdict): Promise<void> {
    let item: SettleItem;
    if (!verdict.requeue) item = { msg, mode: 'x', delayMs: 0, reason: verdict.reason ?? '' };
    else if (verdict.delayMs !== undefined && verdict.delayMs > 0) {
      if (!Number.isFinite(verdict.delayMs)) return Promise.reject(new RangeError(`delayMs must be finite, got ${String(verdict.delayMs)}`));
      item = { msg, mode: 'd', delayMs: verdict.delayMs, reason: '' };
    } else item = { msg, mode: 'r', delayMs: 0, reason: '' };
    return this.settler.add(item).then(settledOrStale, rejectClassified);
  }

  /** Renew the lease for another `visibilityTimeoutMs`. Rejects with ERR_STALE_DELIVERY when it was lost. */
  extend(msg: PgMessage): Promise<void> {
    return this.extender.add(msg).then(settledOrStale, rejectClassified);
  }

  /**
   * Give messages back, claimable at once at their old place. `counted: false` for messages claimed
   * but never handed out (their delivery count is decremented again); `true` for ones handed out and
   * not settled (a shutdown). Messages whose lease was already lost are skipped silently.
   */
  async release(msgs: readonly PgMessage[], counted: boolean): Promise<void> {
    if (msgs.length === 0) return;
    const mode = counted ? 'r' : 'u';
    await Promise.all(msgs.map((msg) => this.settler.add({ msg, mode, delayMs: 0, reason: '' }))).catch(rejectClassified);
  }

  /** Delete every ready and delayed message (leased ones stay); returns how many. */
  async purge(): Promise<number> {
    this.db.check();
    let total = 0;
    for (;;) {
      const rows = await this.db.query<{ n: number }>(this.sql.purge, [this.name, SWEEP_BATCH]);
      const n = rows[0]?.n ?? 0;
      this.churned(n);
      total += n;
      if (n < SWEEP_BATCH) return total;
    }
  }

  /** Counts of ready (claimable now), delayed, in-flight (leased) and dead messages. */
  async stats(): Promise<QueueStats> {
    this.db.check();
    const rows = await this.db.query<{ ready: number; delayed: number; in_flight: number; dead: number }>(this.sql.stats, [this.name]);
    const r = rows[0];
    return { ready: r?.ready ?? 0, delayed: r?.delayed ?? 0, inFlight: r?.in_flight ?? 0, dead: r?.dead ?? 0 };
  }

  /** The oldest `limit` dead letters. */
  async deadList(limit = 100): Promise<DeadLetter[]> {
    if (!Number.isInteger(limit) || limit < 1) throw new RangeError(`limit must be an integer >= 1, got ${String(limit)}`);
    this.db.check();
    const rows = await this.db.query<{ message_id: string; headers: Headers; body: Buffer; reason: string; dead_at_ms: number }>(
      this.sql.deadList,
      [this.name, limit],
    );
    return rows.map((r) => ({ id: r.message_id, queue: this.name, body: r.body, headers: r.headers, reason: r.reason, deadAt: Math.round(r.dead_at_ms) }));
  }

  /** Move dead letters (all, or those with these message ids) back to the tail of their level; returns how many moved. */
  async deadRedrive(ids?: readonly string[]): Promise<number> {
    this.db.check();
    let moved = 0;
    if (ids !== undefined) {
      for (let i = 0; i < ids.length; i += SWEEP_BATCH) {
        const chunk = ids.slice(i, i + SWEEP_BATCH);
        const rows = await this.db.query<{ n: number }>(this.sql.deadRedrive, [this.name, chunk, chunk.length, this.channel]);
        moved += rows[0]?.n ?? 0;
      }
      return moved;
    }
    for (;;) {
      const rows = await this.db.query<{ n: number }>(this.sql.deadRedrive, [this.name, null, SWEEP_BATCH, this.channel]);
      const n = rows[0]?.n ?? 0;
      moved += n;
      if (n < SWEEP_BATCH) return moved;
    }
  }

  /** Delete every dead letter; returns how many. */
  async deadPurge(): Promise<number> {
    this.db.check();
    let total = 0;
    for (;;) {
      const rows = await this.db.query<{ n: number }>(this.sql.deadPurge, [this.name, SWEEP_BATCH]);
      const n = rows[0]?.n ?? 0;
      total += n;
      if (n < SWEEP_BATCH) return total;
    }
  }

  /** Every coalesced call made so far has settled. */
  async drain(): Promise<void> {
    await Promise.all([
      this.publisher.drain(),
      this.acker.drain(),
      this.extender.drain(),
      this.settler.drain(),
      ...[...this.resultAckers.values()].map((c) => c.drain()),
    ]);
  }

  /** Stop listening and wake every waiting claim (they resolve with what they got, or []). */
  close(): void {
    this.closed = true;
    this.wakeups?.close();
    this.wakeups = undefined;
  }
}

function publishItem(m: OutgoingMessage, opts: PublishOptions | undefined): PublishItem {
  const priority = opts?.priority ?? 0;
  if (!Number.isInteger(priority) || priority < 0 || priority > 9) throw new RangeError(`priority must be an integer from 0 to 9, got ${String(priority)}`);
  const delayMs = opts?.delayMs ?? 0;
  if (!Number.isFinite(delayMs) || delayMs < 0) throw new RangeError(`delayMs must be a finite number >= 0, got ${String(delayMs)}`);
  if (typeof m.id !== 'string' || m.id === '' || m.id.includes('\0')) throw new TypeError('a message id must be a non-empty string without NUL');
  const body = Buffer.from(m.body.buffer, m.body.byteOffset, m.body.byteLength);
  return { i: m.id, p: priority, d: delayMs, h: JSON.stringify(m.headers), body };
}

function claimOrder(a: ClaimRow, b: ClaimRow): number {
  if (a.priority !== b.priority) return b.priority - a.priority;
  const t = a.was_visible_at.getTime() - b.was_visible_at.getTime();
  if (t !== 0) return t;
  // Row ids are bigints as text: a shorter one is smaller.
  const x = a.row ?? '';
  const y = b.row ?? '';
  return x.length - y.length || (x < y ? -1 : x > y ? 1 : 0);
}

/** Read at call time (a signal may abort while a claim awaits). */
function isAborted(signal: AbortSignal | undefined): boolean {
  return signal?.aborted === true;
}

function settledOrStale(ok: boolean): void {
  if (!ok) throw staleDelivery();
}

interface Waiter {
  deadline: number;
  timer: NodeJS.Timeout | undefined;
  wake(): void;
  arm(): void;
}

/**
 * Wake-ups of one queue's claims. A NOTIFY with payload '0' (something claimable now) bumps
 * `epoch`, so a claim that saw the table empty and then starts waiting returns at once when a publish
 * landed in between; a positive payload (ms until a delay is due) shortens every wait — and the
 * waits that start later, through `dueAt` — to that time.
 */
class Wakeups {
  epoch = 0;
  listening = false;
  private readonly handle: ListenHandle;
  private readonly waiters = new Set<Waiter>();
  /** Local time the earliest announced delay is due (Infinity: none pending). */
  private dueAt = Infinity;
  private closed = false;

  constructor(listener: Listener, channel: string) {
    this.handle = listener.listen(channel, (payload) => this.notified(payload));
    this.handle.ready.then(
      () => {
        this.listening = true;
      },
      () => undefined,
    );
  }

  /** Wait until LISTEN is confirmed, at most `ms` (a claim goes on without it: the poll catches up). */
  async ready(ms: number, signal: AbortSignal | undefined): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    let onAbort: (() => void) | undefined;
    try {
      await Promise.race([
        this.handle.ready,
        new Promise<void>((resolve) => {
          timer = setTimeout(resolve, ms);
          onAbort = resolve;
          signal?.addEventListener('abort', onAbort, { once: true });
        }),
      ]);
    } catch (err) {
      if (!(err instanceof CeleriacError && err.code === ErrorCode.CLOSED)) throw err;
    } finally {
      clearTimeout(timer);
      if (onAbort !== undefined) signal?.removeEventListener('abort', onAbort);
    }
  }

  private notified(payload: string): void {
    const ms = Number(payload);
    if (!(ms > 0)) {
      this.wakeAll();
      return;
    }
    const at = Date.now() + ms;
    if (at < this.dueAt) this.dueAt = at;
    for (const w of this.waiters) {
      if (at < w.deadline) {
        w.deadline = at;
        w.arm();
      }
    }
  }

  wakeAll(): void {
    this.epoch++;
    for (const w of [...this.waiters]) w.wake();
  }

  /** Resolve when `epoch` moves past `seen`, after `ms`, at an announced due time, or on `signal`. */
  wait(seen: number, ms: number, signal: AbortSignal | undefined): Promise<void> {
    if (this.epoch !== seen || this.closed || signal?.aborted === true) return Promise.resolve();
    const now = Date.now();
    if (this.dueAt <= now) this.dueAt = Infinity;
    return new Promise<void>((resolve) => {
      const onAbort = () => w.wake();
      const w: Waiter = {
        deadline: Math.min(now + ms, this.dueAt),
        timer: undefined,
        wake: () => {
          clearTimeout(w.timer);
          signal?.removeEventListener('abort', onAbort);
          this.waiters.delete(w);
          resolve();
        },
        arm: () => {
          clearTimeout(w.timer);
          w.timer = setTimeout(() => w.wake(), Math.min(MAX_TIMER_MS, Math.max(0, w.deadline - Date.now())));
        },
      };
      this.waiters.add(w);
      signal?.addEventListener('abort', onAbort, { once: true });
      w.arm();
    });
  }

  close(): void {
    this.closed = true;
    this.handle.remove();
    this.wakeAll();
  }
}
