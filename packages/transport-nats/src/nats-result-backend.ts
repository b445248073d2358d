import {
  CeleriacError,
  ErrorCode,
  READY_STATES,
  TaskState,
  newId,
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
import { JetStreamApiCodes, JetStreamApiError, StorageType, jetstreamManager } from '@nats-io/jetstream';
import { Kvm, type KV } from '@nats-io/kv';
import type { Msg, NatsConnection } from '@nats-io/transport-node';
import { errorText, openConnection, type NatsConnectionOptions } from './connection.js';
import { isTransient, jsPublishOnce, MSG_ID_HEADER, withRetry, WRONG_LAST_SEQUENCE, type ApiError, type PubAck } from './jetstream-publish.js';
import { checkPrefix, token, untoken } from './names.js';
import { Outbox } from './outbox.js';
import { Requester } from './requester.js';
import { positiveInt, setConnection, type NatsStorage } from './options.js';

/**
 * Options of the JetStream KV result backend; in a URL's query string under the same names
 * (`nats://127.0.0.1:4222?prefix=myapp&resultsMaxAgeMs=604800000`). The broker's options may appear in
 * the same URL and are ignored here, so one URL can serve as broker and result backend.
 */
export interface NatsResultBackendOptions extends NatsConnectionOptions {
  /** The bucket is `<prefix>_results` (stream `KV_<prefix>_results`). @default 'celeriac' */
  prefix?: string;
  /**
   * The bucket's `max_age`: nats-server 2.9 has no per-key TTL, so this bucket-wide age is the hard
   * limit of every entry. A `ttlMs` below it is honoured exactly (expired entries read as absent and
   * are dropped by the bucket later); a `ttlMs` above it is capped at it. Set it to your app's
   * `resultExpiresMs` (or more) when you create the bucket: an existing bucket keeps its age.
   * @default 86_400_000 (one day, core's default `resultExpiresMs`)
   */
  resultsMaxAgeMs?: number;
  /** Storage of the bucket when this backend creates it. @default 'file' */
  storage?: NatsStorage;
  /** Replicas of the bucket when this backend creates it. @default 1 */
  replicas?: number;
  /** @default silent */
  logger?: Logger;
}

const BROKER_ONLY = new Set([
  'visibilityTimeoutMs', 'maxAckPending', 'duplicateWindowMs', 'deadLetterMaxAgeMs', 'priorities', 'maxMessageBytes', 'pullExpiresMs',
]);

/** The backend options a URL's query string sets. */
export function backendOptionsFromUrl(o: UrlOptions): NatsResultBackendOptions {
  const out: NatsResultBackendOptions = {};
  for (const [k, v] of Object.entries(o)) {
    if (BROKER_ONLY.has(k) || ['servers', 'user', 'pass', 'token', 'tls', 'timeoutMs', 'connectionName'].includes(k)) continue;
    if (k === 'prefix') out.prefix = String(v);
    else if (k === 'resultsMaxAgeMs' || k === 'replicas') {
      if (typeof v !== 'number') throw new RangeError(`${k} must be a number, got ${JSON.stringify(v)}`);
      out[k] = v;
    } else if (k === 'storage') {
      if (v !== 'file' && v !== 'memory') throw new RangeError(`storage must be "file" or "memory", got ${JSON.stringify(v)}`);
      out.storage = v;
    } else throw new RangeError(`unknown NATS option "${k}" in the URL`);
  }
  setConnection(o, out);
  return out;
}

/** How long a wait goes without a notification before it reads its key again (see `recheck`). */
const RECHECK_MS = 5_000;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Every value is `{ x: expiresAt (epoch ms), v: value }`, so expiry below the bucket's age is exact. */
interface Stored<T> {
  x: number;
  v: T;
}

function encode<T>(v: T, ttlMs: number): Uint8Array {
  return encoder.encode(JSON.stringify({ x: Date.now() + ttlMs, v } satisfies Stored<T>));
}

function isConflict(err: unknown): boolean {
  return (
    err instanceof JetStreamApiError &&
    (err.code === JetStreamApiCodes.StreamWrongLastSequence || err.code === JetStreamApiCodes.StreamWrongLastSequenceUnknown)
  );
}

/** One key's last record. */
interface KvRecord {
  revision: number;
  operation: string;
  value: Uint8Array;
}

const EMPTY = new Uint8Array(0);

interface Waiter {
  readonly id: string;
  /** Date.now() when the waiter last read its key. */
  readAt: number;
  check(): void;
  fail(err: Error): void;
}

/**
 * celeriac's result backend on a JetStream KV bucket (nats-server 2.9+), so NATS-only deployments need
 * no Redis.
 *
 * - Results are keys `r.<task id>` of the bucket `<prefix>_results` (history 1).
 * - A stored SUCCESS is never overwritten: every write after the first is a compare-and-set on the
 *   key's revision, re-read on conflict.
 * - `wait()` listens on a core NATS subject to which the bucket republishes every result write
 *   (stream `republish`, server 2.9): one plain subscription per waiter, no consumer, no polling. It
 *   subscribes first, then reads the key, so a result stored in between is not missed; after a
 *   reconnect every waiter reads its key again, and a wait that heard nothing for 5 s reads it again
 *   (republish is at-most-once: a notification from a stream leader that died never comes).
 * - Counters (`c.`), leases (`l.`), revocations (`v.`) and token buckets (`t.`) are keys of the same
 *   bucket, changed by compare-and-set loops (serialized per key within one client, so contention is
 *   only between processes).
 * - Expiry: see {@link NatsResultBackendOptions.resultsMaxAgeMs}. Leases and expiries compare the
 *   clocks of the processes involved: keep them in sync (NTP).
 * - Runtime schedules live in their own bucket, `<prefix>_schedules` (history 1, no max age, so they
 *   never expire), created on first use: key `s.<id>` holds core's record as is, its KV revision is
 *   the record's rev, a write is a publish with `Nats-Expected-Last-Subject-Sequence` (the server's
 *   compare-and-set), a removal a `KV-Operation: DEL` marker written the same way, and the stream's
 *   last sequence is the version. Listing reads the bucket message by message from the stream leader.
 */
export class NatsResultBackend implements ResultBackend {
  readonly name = 'nats';
  readonly capabilities: ResultBackendCapabilities = { counters: true, leases: true, revocations: true, rateLimits: true, schedules: true };
  readonly bucket: string;
  /** The runtime schedules' bucket (stream `KV_<prefix>_schedules`). */
  readonly schedulesBucket: string;
  private readonly notifyPrefix: string;
  private readonly logger: Logger;
  private conn: NatsConnection | undefined;
  private requester: Requester | undefined;
  /** The bucket's stream allows direct gets (buckets created on 2.9+ do). */
  private direct = false;
  private readonly outbox = new Outbox();
  private kvReady: Promise<KV> | undefined;
  private schedulesReady: Promise<KV> | undefined;
  private closing: Promise<void> | undefined;
  private readonly waiters = new Set<Waiter>();
  /** Re-reads the keys of long waits now and then (see `recheck`); runs while anyone waits. */
  private recheckTimer: NodeJS.Timeout | undefined;
  private readonly locks = new Map<string, Promise<unknown>>();

  constructor(
    private readonly url: URL,
    private readonly opts: NatsResultBackendOptions = {},
  ) {
    const prefix = checkPrefix(opts.prefix ?? 'celeriac');
    this.bucket = `${prefix}_results`;
    this.schedulesBucket = `${prefix}_schedules`;
    this.notifyPrefix = `${prefix}.results`;
    this.logger = opts.logger ?? silentLogger;
    positiveInt('resultsMaxAgeMs', opts.resultsMaxAgeMs ?? 86_400_000, 1_000);
    positiveInt('replicas', opts.replicas ?? 1);
  }

  /** Connects and opens (or creates) the bucket on first use. */
  private kv(): Promise<KV> {
    if (this.closing !== undefined) return Promise.reject(new CeleriacError(ErrorCode.CLOSED, 'result backend is closed'));
    this.kvReady ??= this.open().catch((err: unknown) => {
      this.kvReady = undefined;
      throw err;
    });
    return this.kvReady;
  }

  private async open(): Promise<KV> {
    const nc = await openConnection(this.url, this.opts);
    try {
      const republish = { src: `$KV.${this.bucket}.r.>`, dest: `${this.notifyPrefix}.>` };
      const kv = await new Kvm(nc).create(this.bucket, {
        history: 1,
        ttl: this.opts.resultsMaxAgeMs ?? 86_400_000,
        storage: this.opts.storage === 'memory' ? StorageType.Memory : StorageType.File,
        replicas: this.opts.replicas ?? 1,
        republish,
      });
      // A bucket created elsewhere without the republish: add it, or wait() would never be woken.
      const jsm = await jetstreamManager(nc);
      const info = await jsm.streams.info(`KV_${this.bucket}`);
      if (info.config.republish?.src !== republish.src || info.config.republish.dest !== republish.dest) {
        await jsm.streams.update(`KV_${this.bucket}`, { ...info.config, republish });
      }
      this.direct = info.config.allow_direct === true;
      if (this.closing !== undefined) throw new CeleriacError(ErrorCode.CLOSED, 'result backend is closed');
      this.conn = nc;
      this.requester = new Requester(nc, this.outbox, this.opts.timeoutMs ?? 10_000);
      void this.watchStatus(nc);
      return kv;
    } catch (err) {
      await nc.close().catch(() => undefined);
      throw err instanceof CeleriacError ? err : new CeleriacError(ErrorCode.CONNECTION, `cannot open the KV bucket ${this.bucket}: ${errorText(err)}`, { cause: err });
    }
  }

  private async watchStatus(nc: NatsConnection): Promise<void> {
    for await (const s of nc.status()) {
      if (s.type === 'disconnect') {
        this.requester?.failAll('disconnected from the NATS server');
      } else if (s.type === 'reconnect') {
        // Republished notifications are at-most-once: a waiter may have missed one while disconnected.
        for (const w of this.waiters) w.check();
      } else if (s.type === 'error') {
        this.logger.warn('NATS result backend error', { error: errorText(s.error) });
      }
    }
  }

  /**
   * The stream's republish is at-most-once: a notification sent by a stream leader that dies (a node of
   * a cluster stopped), or lost while this client was not connected to the server that had it, never
   * comes. A wait that has heard nothing for RECHECK_MS reads its key again — a read per waiter every
   * few seconds, never a busy poll.
   */
  private recheck(): void {
    const due = Date.now() - RECHECK_MS;
    for (const w of this.waiters) if (w.readAt <= due) w.check();
  }

  /** Run `fn` after the previous operation on `key` of this client settled. */
  private serialize<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.locks.get(key) ?? Promise.resolve();
    const run = prev.then(fn, fn);
    const tail = run.catch(() => undefined);
    this.locks.set(key, tail);
    void tail.then(() => {
      if (this.locks.get(key) === tail) this.locks.delete(key);
    });
    return run;
  }

  /**
   * Run an idempotent operation again on a transient failure (no answer in time, JetStream restarting),
   * with a growing pause. Only for reads and for writes that may safely happen twice.
   */
  private async retry<T>(fn: () => Promise<T>, attempts = 8): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await fn();
      } catch (err) {
        if (attempt >= attempts || this.closing !== undefined || !isTransient(err)) throw err;
        await new Promise((r) => setTimeout(r, Math.min(2_000, 100 * 2 ** attempt)));
      }
    }
  }

  /**
   * Write a key (`expected`: compare-and-set on its revision, 0 = only if absent). The write goes
   * through the requester and the outbox, coalesced with the turn's other writes. Returns false when
   * the compare-and-set lost.
   */
  private async write(key: string, data: Uint8Array, expected?: number): Promise<boolean> {
    const hdrs: Record<string, string> = expected === undefined ? {} : { 'Nats-Expected-Last-Subject-Sequence': String(expected) };
    const r = await jsPublishOnce(this.requester!, `$KV.${this.bucket}.${key}`, data, hdrs);
    if ('ack' in r) return true;
    if (r.error.err_code === WRONG_LAST_SEQUENCE) return false;
    throw new CeleriacError(ErrorCode.CONNECTION, `KV write refused: ${r.error.description ?? r.error.code} (${r.error.err_code ?? r.error.code})`);
  }

  /**
   * A key's last record: a direct get through the requester (coalesced with the turn's other requests),
   * or the client's `get` on a bucket without direct access.
   */
  private async read(key: string): Promise<KvRecord | null> {
    const kv = await this.kv();
    if (!this.direct) return kv.get(key);
    const r = await this.requester!.request(`$JS.API.DIRECT.GET.KV_${this.bucket}.$KV.${this.bucket}.${key}`, EMPTY);
    const code = r.headers?.code ?? 0;
    if (code === 404) return null;
    if (code !== 0) throw new CeleriacError(ErrorCode.CONNECTION, `KV read failed: ${code} ${r.headers?.description ?? ''}`);
    const op = r.headers?.get('KV-Operation') ?? '';
    return { revision: Number(r.headers?.get('Nats-Sequence')), operation: op === '' ? 'PUT' : op, value: r.data };
  }

  /**
   * A key's last record read from the stream leader (`STREAM.MSG.GET`), never from a replica that may lag:
   * what `wait()` reads after subscribing, so a result stored before the subscription is always seen.
   */
  private async readLeader(key: string, bucket = this.bucket): Promise<KvRecord | null> {
    return this.getMessage(bucket, { last_by_subj: `$KV.${bucket}.${key}` });
  }

  /** `STREAM.MSG.GET` on a bucket's stream (served by the stream leader): one message, or null when none matches. */
  private async getMessage(bucket: string, request: { last_by_subj: string } | { seq: number; next_by_subj: string }): Promise<(KvRecord & { subject: string }) | null> {
    await this.kv();
    const r = await this.requester!.request(`$JS.API.STREAM.MSG.GET.KV_${bucket}`, encoder.encode(JSON.stringify(request)));
    const answer = JSON.parse(decoder.decode(r.data)) as {
      message?: { subject: string; seq: number; hdrs?: string; data?: string };
      error?: { code: number; description?: string };
    };
    if (answer.error !== undefined) {
      if (answer.error.code === 404) return null;
      throw new CeleriacError(ErrorCode.CONNECTION, `KV read failed: ${answer.error.description ?? answer.error.code}`);
    }
    const m = answer.message!;
    const hdrs = m.hdrs === undefined ? '' : Buffer.from(m.hdrs, 'base64').toString('utf8');
    const op = /KV-Operation:\s*(DEL|PURGE)/i.exec(hdrs)?.[1]?.toUpperCase() ?? 'PUT';
    return { subject: m.subject, revision: m.seq, operation: op, value: m.data === undefined ? EMPTY : Buffer.from(m.data, 'base64') };
  }


  /** The live value of a record, or undefined when absent, deleted or expired. */
  private live<T>(e: KvRecord | null): T | undefined {
    if (e === null || e.operation !== 'PUT') return undefined;
    let s: Stored<T>;
    try {
      s = JSON.parse(decoder.decode(e.value)) as Stored<T>;
    } catch {
      return undefined; // not a value this backend wrote
    }
    return typeof s.x === 'number' && s.x > Date.now() ? s.v : undefined;
  }

  /**
   * Compare-and-set loop on one key: `decide` sees the live value and returns the new value to write
   * (with its ttl), or `undefined` to write nothing. Returns what `decide` returned.
   */
  private async cas<T, R>(key: string, decide: (current: T | undefined) => { write?: { value: T; ttlMs: number }; result: R }): Promise<R> {
    for (;;) {
      const e = await this.retry(() => this.read(key));
      const { write, result } = decide(this.live<T>(e));
      if (write === undefined) return result;
      if (await this.write(key, encode(write.value, write.ttlMs), e === null ? 0 : e.revision)) return result;
    }
  }

  /** Writing the same state twice is harmless, so a transient failure is retried. */
  set(taskId: string, meta: ResultMeta, opts: { ttlMs: number }): Promise<void> {
    return this.retry(() => this.setOnce(taskId, meta, opts));
  }

  private async setOnce(taskId: string, meta: ResultMeta, opts: { ttlMs: number }): Promise<void> {
    await this.kv();
    const key = `r.${token(taskId)}`;
    const data = encode(meta, opts.ttlMs);
    // First write of a task id: one round trip. Later writes: compare-and-set, never over a SUCCESS.
    if (await this.write(key, data, 0)) return;
    await this.serialize(key, () =>
      this.cas<ResultMeta, void>(key, (current) =>
        current?.state === TaskState.SUCCESS ? { result: undefined } : { write: { value: meta, ttlMs: opts.ttlMs }, result: undefined },
      ),
    );
  }

  async get(taskId: string): Promise<ResultMeta | undefined> {
    return this.live<ResultMeta>(await this.retry(() => this.read(`r.${token(taskId)}`)));
  }

  async wait(taskId: string, opts: WaitOptions): Promise<ResultMeta> {
    await this.kv();
    const nc = this.conn!;
    const subject = `${this.notifyPrefix}.${token(taskId)}`;
    return new Promise<ResultMeta>((resolve, reject) => {
      let settled = false;
      let timer: NodeJS.Timeout | undefined;
      const finish = (fn: () => void) => {
        if (settled) return;
        settled = true;
        this.waiters.delete(waiter);
        if (this.waiters.size === 0 && this.recheckTimer !== undefined) {
          clearInterval(this.recheckTimer);
          this.recheckTimer = undefined;
        }
        if (timer !== undefined) clearTimeout(timer);
        opts.signal?.removeEventListener('abort', onAbort);
        try {
          sub.unsubscribe();
        } catch {
          // connection already closed
        }
        fn();
      };
      const offer = (meta: ResultMeta | undefined) => {
        if (meta !== undefined && READY_STATES.has(meta.state)) finish(() => resolve(meta));
      };
      const onAbort = () =>
        finish(() => reject(new CeleriacError(ErrorCode.ABORTED, `wait for ${taskId} aborted`, { cause: opts.signal?.reason })));
      const sub = nc.subscribe(subject, {
        callback: (_err, msg: Msg) => {
          if ((msg.headers?.get('KV-Operation') ?? '') !== '') return; // DEL or PURGE
          try {
            const s = JSON.parse(decoder.decode(msg.data)) as Stored<ResultMeta>;
            if (s.x > Date.now()) offer(s.v);
          } catch {
            // not a value this backend wrote
          }
        },
      });
      const waiter: Waiter = {
        id: taskId,
        readAt: Date.now(),
        check: () => {
          waiter.readAt = Date.now();
          this.readLeader(`r.${token(taskId)}`).then(
            (e) => offer(this.live<ResultMeta>(e)),
            (err: unknown) => this.logger.warn('result re-read failed', { error: errorText(err) }),
          );
        },
        fail: (err) => finish(() => reject(err)),
      };
      this.waiters.add(waiter);
      this.recheckTimer ??= setInterval(() => this.recheck(), RECHECK_MS).unref();
      if (Number.isFinite(opts.timeoutMs)) {
        timer = setTimeout(
          () => finish(() => reject(new CeleriacError(ErrorCode.TIMEOUT, `no result for task ${taskId} within ${opts.timeoutMs} ms`))),
          Math.max(0, opts.timeoutMs),
        );
      }
      if (opts.signal?.aborted === true) {
        onAbort();
        return;
      }
      opts.signal?.addEventListener('abort', onAbort, { once: true });
      // Subscribed before reading, on the same connection: the server registers the subscription before it
      // serves the read, so a result stored after the read is republished to us — no flush round trip needed.
      const key = `r.${token(taskId)}`;
      this.retry(() => this.readLeader(key)).then(
        (e) => offer(this.live<ResultMeta>(e)),
        (err: unknown) => finish(() => reject(err as Error)),
      );
    });
  }

  async delete(taskId: string): Promise<void> {
    const kv = await this.kv();
    await this.retry(() => kv.delete(`r.${token(taskId)}`));
  }

  incr(key: string, by: number, opts: { ttlMs: number }): Promise<number> {
    const k = `c.${token(key)}`;
    return this.serialize(k, () =>
      this.cas<number, number>(k, (current) => {
        const value = (current ?? 0) + by;
        return { write: { value, ttlMs: opts.ttlMs }, result: value };
      }),
    );
  }

  acquireLease(name: string, holder: string, ttlMs: number): Promise<boolean> {
    const k = `l.${token(name)}`;
    return this.serialize(k, () =>
      this.cas<string, boolean>(k, (current) =>
        current !== undefined && current !== holder ? { result: false } : { write: { value: holder, ttlMs }, result: true },
      ),
    );
  }

  renewLease(name: string, holder: string, ttlMs: number): Promise<boolean> {
    const k = `l.${token(name)}`;
    return this.serialize(k, () =>
      this.cas<string, boolean>(k, (current) => (current !== holder ? { result: false } : { write: { value: holder, ttlMs }, result: true })),
    );
  }

  releaseLease(name: string, holder: string): Promise<boolean> {
    const k = `l.${token(name)}`;
    return this.serialize(k, async () => {
      const kv = await this.kv();
      for (;;) {
        const e = await this.retry(() => this.read(k));
        if (this.live<string>(e) !== holder) return false;
        try {
          await kv.delete(k, { previousSeq: e!.revision });
          return true;
        } catch (err) {
          if (!isConflict(err)) throw err;
        }
      }
    });
  }

  async revoke(taskId: string, ttlMs: number): Promise<void> {
    await this.kv();
    await this.retry(() => this.write(`v.${token(taskId)}`, encode(true, ttlMs)));
  }

  async isRevoked(taskId: string): Promise<boolean> {
    return this.live<boolean>(await this.retry(() => this.read(`v.${token(taskId)}`))) === true;
  }

  takeTokens(bucket: string, limit: number, windowMs: number): Promise<{ ok: boolean; retryInMs: number }> {
    const k = `t.${token(bucket)}`;
    return this.serialize(k, () =>
      this.cas<{ tokens: number; at: number }, { ok: boolean; retryInMs: number }>(k, (current) => {
        const now = Date.now();
        const ratePerMs = limit / windowMs;
        const b = current ?? { tokens: limit, at: now };
        const tokens = Math.min(limit, b.tokens + Math.max(0, now - b.at) * ratePerMs);
        if (tokens >= 1) return { write: { value: { tokens: tokens - 1, at: now }, ttlMs: windowMs }, result: { ok: true, retryInMs: 0 } };
        return { result: { ok: false, retryInMs: Math.max(1, Math.ceil((1 - tokens) / ratePerMs)) } };
      }),
    );
  }

  /** Opens (or creates) the schedules bucket on first use. */
  private schedulesKv(): Promise<KV> {
    if (this.closing !== undefined) return Promise.reject(new CeleriacError(ErrorCode.CLOSED, 'result backend is closed'));
    this.schedulesReady ??= (async () => {
      await this.kv();
      try {
        return await new Kvm(this.conn!).create(this.schedulesBucket, {
          history: 1,
          storage: this.opts.storage === 'memory' ? StorageType.Memory : StorageType.File,
          replicas: this.opts.replicas ?? 1,
        });
      } catch (err) {
        throw new CeleriacError(ErrorCode.CONNECTION, `cannot open the KV bucket ${this.schedulesBucket}: ${errorText(err)}`, { cause: err });
      }
    })().catch((err: unknown) => {
      this.schedulesReady = undefined;
      throw err;
    });
    return this.schedulesReady;
  }

  /**
   * Publish a schedule record (or a DEL marker) if the key's last revision is `expected` (0: none).
   * A transient failure is retried with the same `Nats-Msg-Id`, so a write that was stored but not
   * acknowledged is answered by the server's duplicate check, not taken for a lost compare-and-set.
   */
  private async publishSchedule(key: string, data: Uint8Array, expected: number, del = false): Promise<{ ack: PubAck } | { error: ApiError }> {
    await this.schedulesKv();
    const hdrs: Record<string, string> = { 'Nats-Expected-Last-Subject-Sequence': String(expected), [MSG_ID_HEADER]: newId() };
    if (del) hdrs['KV-Operation'] = 'DEL';
    return withRetry(() => jsPublishOnce(this.requester!, `$KV.${this.schedulesBucket}.${key}`, data, hdrs), 8, () => this.closing !== undefined);
  }

  private async readSchedule(key: string): Promise<KvRecord | null> {
    await this.schedulesKv();
    return this.retry(() => this.readLeader(key, this.schedulesBucket));
  }

  async getSchedule(id: string): Promise<StoredSchedule | undefined> {
    const e = await this.readSchedule(`s.${token(id)}`);
    return e === null || e.operation !== 'PUT' ? undefined : { id, rev: e.revision, data: decoder.decode(e.value) };
  }

  /**
   * Every record, read message by message from the stream leader (`STREAM.MSG.GET` with `next_by_subj`):
   * one request per key, and it always ends, at the stream's last message. (An ordered consumer — the
   * client's `kv.history()` — now and then never signalled its end here.)
   */
  async listSchedules(): Promise<StoredScheduleList> {
    await this.schedulesKv();
    const version = await this.schedulesVersion(); // before the listing: never newer than what it lists
    const bucket = this.schedulesBucket;
    const filter = `$KV.${bucket}.s.>`;
    const skip = `$KV.${bucket}.s.`.length;
    const schedules: StoredSchedule[] = [];
    for (let seq = 1; ; ) {
      const from = seq;
      const m = await this.retry(() => this.getMessage(bucket, { seq: from, next_by_subj: filter }));
      if (m === null) break;
      if (m.operation === 'PUT') schedules.push({ id: untoken(m.subject.slice(skip)), rev: m.revision, data: decoder.decode(m.value) });
      seq = m.revision + 1;
    }
    return { version, schedules };
  }


  async schedulesVersion(): Promise<number> {
    await this.schedulesKv();
    const r = await this.retry(() => this.requester!.request(`$JS.API.STREAM.INFO.KV_${this.schedulesBucket}`, EMPTY));
    const info = JSON.parse(decoder.decode(r.data)) as { state?: { last_seq?: number }; error?: ApiError };
    if (info.error !== undefined) throw new CeleriacError(ErrorCode.CONNECTION, `cannot read the schedules bucket: ${info.error.description ?? info.error.code}`);
    return info.state?.last_seq ?? 0;
  }

  async putSchedule(id: string, data: string, expectedRev: number): Promise<number> {
    if (!Number.isSafeInteger(expectedRev) || expectedRev < 0) throw new RangeError(`expectedRev must be an integer >= 0, got ${String(expectedRev)}`);
    const key = `s.${token(id)}`;
    const bytes = encoder.encode(data);
    let r = await this.publishSchedule(key, bytes, expectedRev);
    if ('error' in r && r.error.err_code === WRONG_LAST_SEQUENCE && expectedRev === 0) {
      // "No record" may be a DEL marker left by a removal: expect that marker instead.
      const e = await this.readSchedule(key);
      if (e !== null && e.operation !== 'PUT') r = await this.publishSchedule(key, bytes, e.revision);
    }
    if ('ack' in r) return r.ack.seq;
    if (r.error.err_code === WRONG_LAST_SEQUENCE) return 0;
    throw new CeleriacError(ErrorCode.CONNECTION, `KV write refused: ${r.error.description ?? r.error.code} (${r.error.err_code ?? r.error.code})`);
  }

  async deleteSchedule(id: string): Promise<boolean> {
    const key = `s.${token(id)}`;
    for (;;) {
      const e = await this.readSchedule(key);
      if (e === null || e.operation !== 'PUT') return false;
      const r = await this.publishSchedule(key, EMPTY, e.revision, true);
      if ('ack' in r) return true;
      if (r.error.err_code !== WRONG_LAST_SEQUENCE) {
        throw new CeleriacError(ErrorCode.CONNECTION, `KV delete refused: ${r.error.description ?? r.error.code} (${r.error.err_code ?? r.error.code})`);
      }
    }
  }

  /** Idempotent: rejects every pending `wait()` with ERR_CLOSED and closes the connection. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      for (const w of [...this.waiters]) w.fail(new CeleriacError(ErrorCode.CLOSED, 'result backend closed while waiting'));
      if (this.recheckTimer !== undefined) clearInterval(this.recheckTimer);
      this.recheckTimer = undefined;
      await this.kvReady?.catch(() => undefined);
      await this.schedulesReady?.catch(() => undefined);
      this.outbox.flush();
      const nc = this.conn;
      if (nc !== undefined && !nc.isClosed()) {
        await nc.flush().catch(() => undefined);
        this.requester?.close();
        await nc.close();
      }
    })();
    return this.closing;
  }
}

/**
 * The factory core's URL table calls for `nats://` result backends:
 * `nats://[user:pass@]host:4222?prefix=myapp&resultsMaxAgeMs=86400000`.
 */
export function createNatsResultBackend(url: URL, options: UrlOptions = {}, context: FactoryContext = {}): NatsResultBackend {
  const opts = backendOptionsFromUrl(options);
  if (context.logger !== undefined) opts.logger = context.logger;
  return new NatsResultBackend(url, opts);
}
