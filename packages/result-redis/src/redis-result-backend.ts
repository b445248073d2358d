import {
  CeleriacError,
  ErrorCode,
  READY_STATES,
  serverTarget,
  silentLogger,
  wrapError,
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
import { type PreparedResultWrite, Coalescer } from '@celeriac/core/transport';
import { Cluster, Redis, type RedisOptions } from 'ioredis';
import { decodeMeta, encodeMeta, ttlArg } from './codec.js';
import { resolveOptions, type RedisResultBackendOptions, type ResolvedResultBackendOptions } from './options.js';
import { defineScripts, type RedisClient, type Scripts, type SetItem } from './scripts.js';
import { Subscriptions } from './subscriptions.js';

/** Constructor options of {@link RedisResultBackend}. */
export interface RedisResultBackendConfig extends RedisResultBackendOptions {
  /** `redis://[user:password@]host:port[/db]` or `rediss://…`. @default 'redis://127.0.0.1:6379' */
  url?: string | URL;
  /** Extra ioredis options for both connections. */
  redis?: RedisOptions;
  /** @default silent */
  logger?: Logger;
}

type ClientOptions = Omit<RedisOptions, 'replyMapping'>;

/**
 * Results, counters, leases, revocations, token buckets and runtime schedules in Redis.
 *
 * - `set` is one script: a stored SUCCESS is never overwritten; the key expires after `ttlMs`; a
 *   ready state (SUCCESS, FAILURE, REVOKED) is PUBLISHed on the task's channel.
 * - `wait` subscribes to the task's channel on the backend's one subscriber connection, then reads
 *   the key (so a result stored in between is not missed). No polling; the subscription is dropped
 *   when the last wait for that id settles.
 * - Result writes of one burst are one script call, reads one MGET (their own batching, not `autoPipelining`).
 * - Runtime schedules are one hash `<prefix>:{schedules}` (id → `<rev> <data>`) and a counter
 *   `<prefix>:{schedules}:version`; a write is one script that compares the rev and takes the next
 *   counter value as the new one (`lua/put-schedule.lua`), so it is atomic, and never expires.
 *
 * Two connections per backend: commands, and the shared subscriber (opened on the first `wait`).
 */
export class RedisResultBackend implements ResultBackend {
  readonly name = 'redis';
  readonly capabilities: ResultBackendCapabilities = { counters: true, leases: true, revocations: true, rateLimits: true, schedules: true };
  readonly options: ResolvedResultBackendOptions;
  /** Server, user and database of the results: a Redis broker with the same target stores a result with its ack. */
  readonly writeTarget: string | undefined;
  private readonly url: URL;
  private readonly redisOptions: RedisOptions;
  private readonly logger: Logger;
  private readonly main: RedisClient;
  private readonly scripts: Scripts;
  private subscriber: RedisClient | undefined;
  private subs: Subscriptions | undefined;
  private readonly waiters = new Set<(err: Error) => void>();
  private closing: Promise<void> | undefined;
  private subscriberWasReady = false;
  /** Results stored in one turn of the event loop: one script call (one per key on a cluster). */
  private readonly writer: Coalescer<SetItem, number>;
  /** Keys read in one turn of the event loop: one MGET (one GET per key on a cluster). */
  private readonly reader: Coalescer<string, string | null>;

  constructor(config: RedisResultBackendConfig = {}) {
    const { url, redis, logger, ...opts } = config;
    this.options = resolveOptions(opts);
    this.url = new URL(url ?? 'redis://127.0.0.1:6379');
    // A cluster spreads keys over nodes: no script can write a result and ack a queue there.
    this.writeTarget = this.options.cluster ? undefined : serverTarget('redis', this.url, REDIS_DEFAULTS);
    this.redisOptions = redis ?? {};
    this.logger = logger ?? silentLogger;
    this.main = this.newClient({ enableAutoPipelining: this.options.autoPipelining, connectionName: 'celeriac-results' });
    this.main.on('error', (err: unknown) => this.logger.warn('redis result backend error', { error: String(err) }));
    this.scripts = defineScripts(this.main);
    if (this.options.cluster) {
      // Keys of one batch live in different slots: send them one by one (auto-pipelined per node).
      this.writer = new Coalescer((items) => Promise.all(items.map(async (it) => (await this.scripts.setResults([it]))[0] ?? 0)), 1000);
      this.reader = new Coalescer((keys) => Promise.all(keys.map((k) => this.main.get(k))), 1000);
    } else {
      this.writer = new Coalescer((items) => this.scripts.setResults(items), 500);
      this.reader = new Coalescer((keys) => this.main.mget(keys), 1000);
    }
  }

  private newClient(extra: ClientOptions): RedisClient {
    const base: ClientOptions = {
      lazyConnect: true,
      connectTimeout: this.options.connectTimeoutMs,
      maxRetriesPerRequest: this.options.maxRetriesPerRequest,
      ...(this.redisOptions as ClientOptions),
      ...extra,
    };
    if (this.options.cluster) {
      const redisOptions: ClientOptions = { ...base };
      if (this.url.username !== '') redisOptions.username = decodeURIComponent(this.url.username);
      if (this.url.password !== '') redisOptions.password = decodeURIComponent(this.url.password);
      if (this.url.protocol === 'rediss:') redisOptions.tls ??= {};
      const port = this.url.port === '' ? 6379 : Number(this.url.port);
      return new Cluster([{ host: this.url.hostname, port }], {
        lazyConnect: true,
        redisOptions,
        enableAutoPipelining: base.enableAutoPipelining ?? false,
      });
    }
    const u = new URL(this.url.href);
    u.search = '';
    u.hash = '';
    return new Redis(u.href, base as RedisOptions & { replyMapping?: 'legacy' });
  }

  private key(kind: string, id: string): string {
    return `${this.options.prefix}:${kind}:${id}`;
  }

  /** The channel a task's ready state is published on (the same name as its key). */
  private channel(taskId: string): string {
    return this.key('result', taskId);
  }

  private check(): void {
    if (this.closing !== undefined) throw new CeleriacError(ErrorCode.CLOSED, 'result backend is closed');
  }

  private async run<T>(fn: () => Promise<T>): Promise<T> {
    this.check();
    try {
      return await fn();
    } catch (err) {
      return rejectWrapped(err);
    }
  }

  // set, get and isRevoked are on every task's path: plain promise chains, no extra async frames.

  set(taskId: string, meta: ResultMeta, opts: { ttlMs: number }): Promise<void> {
    let json: string;
    try {
      this.check();
      json = encodeMeta(meta);
    } catch (err) {
      return Promise.reject(err as Error);
    }
    const item = { key: this.key('result', taskId), json, ttlMs: ttlArg(opts.ttlMs), announce: READY_STATES.has(meta.state) };
    return this.writer.add(item).then(noop, rejectWrapped);
  }

  /**
   * `set` as a write a Redis broker on the same server and database runs together with its ack
   * (kind `redis-set-result`: KEYS[1] the result key; ARGV the JSON, the PX ttl (0: none) and the
   * channel to PUBLISH it on or ''; a stored SUCCESS is kept — the same as lua/set-result.lua).
   */
  prepareSet(taskId: string, meta: ResultMeta, opts: { ttlMs: number }): PreparedResultWrite {
    this.check();
    const key = this.key('result', taskId); // also the channel's name
    return { kind: 'redis-set-result', keys: [key], args: [encodeMeta(meta), ttlArg(opts.ttlMs), READY_STATES.has(meta.state) ? key : ''] };
  }

  get(taskId: string): Promise<ResultMeta | undefined> {
    try {
      this.check();
    } catch (err) {
      return Promise.reject(err as Error);
    }
    return this.reader.add(this.key('result', taskId)).then((json) => (json === null ? undefined : decodeMeta(json)), rejectWrapped);
  }

  wait(taskId: string, opts: WaitOptions): Promise<ResultMeta> {
    try {
      this.check();
    } catch (err) {
      return Promise.reject(err as Error);
    }
    const signal = opts.signal;
    if (signal?.aborted === true) {
      return Promise.reject(new CeleriacError(ErrorCode.ABORTED, `wait for ${taskId} aborted`, { cause: signal.reason }));
    }
    const subs = this.subscriptions();
    return new Promise<ResultMeta>((resolve, reject) => {
      let settled = false;
      let timer: NodeJS.Timeout | undefined;
      const finish = (fn: () => void) => {
        if (settled) return;
        settled = true;
        if (timer !== undefined) clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        this.waiters.delete(fail);
        sub.remove();
        fn();
      };
      const fail = (err: Error) => finish(() => reject(err));
      const onAbort = () =>
        fail(new CeleriacError(ErrorCode.ABORTED, `wait for ${taskId} aborted`, { cause: signal?.reason }));
      const onReady = (meta: ResultMeta | undefined) => {
        if (meta !== undefined && READY_STATES.has(meta.state)) finish(() => resolve(meta));
      };
      const sub = subs.add(this.channel(taskId), (message) => {
        try {
          onReady(decodeMeta(message));
        } catch (err) {
          fail(err as Error);
        }
      });
      this.waiters.add(fail);
      signal?.addEventListener('abort', onAbort, { once: true });
      if (Number.isFinite(opts.timeoutMs)) {
        timer = setTimeout(
          () => fail(new CeleriacError(ErrorCode.TIMEOUT, `no result for task ${taskId} within ${opts.timeoutMs} ms`)),
          Math.max(0, opts.timeoutMs),
        );
      }
      // Subscribed first, then read: a result stored in between is seen one way or the other.
      sub.subscribed
        .then(() => (settled ? undefined : this.get(taskId)))
        .then(onReady, (err: unknown) => fail(wrapError(err, ErrorCode.CONNECTION, undefined, true)));
    });
  }

  private subscriptions(): Subscriptions {
    if (this.subs === undefined) {
      const sub = this.newClient({ connectionName: 'celeriac-results-subscriber' });
      sub.on('error', (err: unknown) => this.logger.warn('redis result subscriber error', { error: String(err) }));
      // Publishes made while the subscriber was reconnecting are lost: re-read what is waited for.
      sub.on('ready', () => {
        if (this.subscriberWasReady) this.recheck();
        this.subscriberWasReady = true;
      });
      this.subscriber = sub;
      this.subs = new Subscriptions(sub);
    }
    return this.subs;
  }

  private recheck(): void {
    const subs = this.subs;
    if (subs === undefined) return;
    for (const channel of subs.channels()) {
      this.main
        .get(channel)
        .then((json) => {
          if (json !== null) subs.dispatch(channel, json);
        })
        .catch(() => undefined);
    }
  }

  delete(taskId: string): Promise<void> {
    return this.run(async () => {
      await this.main.del(this.key('result', taskId));
    });
  }

  incr(key: string, by: number, opts: { ttlMs: number }): Promise<number> {
    if (!Number.isInteger(by)) return Promise.reject(new RangeError(`by must be an integer, got ${String(by)}`));
    return this.run(() => this.scripts.incr(this.key('counter', key), by, ttlArg(opts.ttlMs)));
  }

  acquireLease(name: string, holder: string, ttlMs: number): Promise<boolean> {
    return this.run(async () => (await this.main.set(this.key('lease', name), holder, 'PX', ttlArg(ttlMs) || 1, 'NX')) === 'OK');
  }

  renewLease(name: string, holder: string, ttlMs: number): Promise<boolean> {
    return this.run(async () => (await this.scripts.renewLease(this.key('lease', name), holder, ttlArg(ttlMs) || 1)) === 1);
  }

  releaseLease(name: string, holder: string): Promise<boolean> {
    return this.run(async () => (await this.scripts.releaseLease(this.key('lease', name), holder)) === 1);
  }

  revoke(taskId: string, ttlMs: number): Promise<void> {
    return this.run(async () => {
      const ttl = ttlArg(ttlMs);
      if (ttl > 0) await this.main.set(this.key('revoked', taskId), '1', 'PX', ttl);
      else await this.main.set(this.key('revoked', taskId), '1');
      // An index (score = expiry) so a worker can list the whole set once at start.
      await this.main.zadd(this.key('revoked-index', 'all'), ttl > 0 ? Date.now() + ttl : '+inf', taskId);
    });
  }

  listRevoked(): Promise<string[]> {
    return this.run(async () => {
      const index = this.key('revoked-index', 'all');
      const now = Date.now();
      await this.main.zremrangebyscore(index, '-inf', `(${now}`);
      return this.main.zrangebyscore(index, now, '+inf');
    });
  }

  isRevoked(taskId: string): Promise<boolean> {
    try {
      this.check();
    } catch (err) {
      return Promise.reject(err as Error);
    }
    return this.reader.add(this.key('revoked', taskId)).then((v) => v !== null, rejectWrapped);
  }

  takeTokens(bucket: string, limit: number, windowMs: number): Promise<{ ok: boolean; retryInMs: number }> {
    if (!Number.isInteger(limit) || limit < 1) return Promise.reject(new RangeError(`limit must be an integer >= 1, got ${String(limit)}`));
    if (!Number.isFinite(windowMs) || windowMs <= 0) return Promise.reject(new RangeError(`windowMs must be > 0, got ${String(windowMs)}`));
    return this.run(async () => {
      const [ok, retry] = await this.scripts.takeTokens(this.key('bucket', bucket), limit, Math.ceil(windowMs));
      return { ok: ok === 1, retryInMs: ok === 1 ? 0 : retry };
    });
  }

  /** The schedules hash and its version counter: one hash tag, so one slot on a cluster. */
  private scheduleKeys(): [string, string] {
    const hash = `${this.options.prefix}:{schedules}`;
    return [hash, `${hash}:version`];
  }

  getSchedule(id: string): Promise<StoredSchedule | undefined> {
    return this.run(async () => {
      const value = await this.main.hget(this.scheduleKeys()[0], id);
      return value === null ? undefined : storedSchedule(id, value);
    });
  }

  listSchedules(): Promise<StoredScheduleList> {
    return this.run(async () => {
      const [version, flat] = await this.scripts.listSchedules(...this.scheduleKeys());
      const schedules: StoredSchedule[] = [];
      for (let i = 0; i + 1 < flat.length; i += 2) schedules.push(storedSchedule(flat[i]!, flat[i + 1]!));
      return { version: Number(version), schedules };
    });
  }

  schedulesVersion(): Promise<number> {
    return this.run(async () => Number((await this.main.get(this.scheduleKeys()[1])) ?? 0));
  }

  putSchedule(id: string, data: string, expectedRev: number): Promise<number> {
    if (!Number.isSafeInteger(expectedRev) || expectedRev < 0) return Promise.reject(new RangeError(`expectedRev must be an integer >= 0, got ${String(expectedRev)}`));
    return this.run(() => this.scripts.putSchedule(...this.scheduleKeys(), id, expectedRev, data));
  }

  deleteSchedule(id: string): Promise<boolean> {
    return this.run(async () => (await this.scripts.deleteSchedule(...this.scheduleKeys(), id)) === 1);
  }

  /** Idempotent. Pending waits reject with ERR_CLOSED; both connections are closed. */
  close(): Promise<void> {
    this.closing ??= this.doClose();
    return this.closing;
  }

  private async doClose(): Promise<void> {
    await Promise.all([this.writer.drain(), this.reader.drain()]);
    const err = new CeleriacError(ErrorCode.CLOSED, 'result backend closed while waiting');
    for (const fail of [...this.waiters]) fail(err);
    this.subs?.clear(err);
    await Promise.all([this.main, this.subscriber].filter((c): c is RedisClient => c !== undefined).map(quit));
  }
}

/** A hash value `<rev> <data>` as a record. */
function storedSchedule(id: string, value: string): StoredSchedule {
  const space = value.indexOf(' ');
  return { id, rev: Number(value.slice(0, space)), data: value.slice(space + 1) };
}

function noop(): void {
  // resolves set() with undefined
}

/** Driver failures become a retryable ERR_CONNECTION; celeriac and argument errors pass through. */
function rejectWrapped(err: unknown): never {
  if (err instanceof CeleriacError || err instanceof TypeError || err instanceof RangeError) throw err;
  throw wrapError(err, ErrorCode.CONNECTION, undefined, true);
}

async function quit(c: RedisClient): Promise<void> {
  try {
    if (c.status === 'ready') await c.quit();
  } catch {
    // disconnect below
  }
  c.disconnect();
}

/** The factory core's URL table calls for `redis://` and `rediss://` result backend URLs. */
export function createRedisResultBackend(url: URL, options: UrlOptions, context: FactoryContext = {}): RedisResultBackend {
  const opts: UrlOptions = { ...options };
  const rawPrefix = url.searchParams.get('prefix');
  if (rawPrefix !== null) opts['prefix'] = rawPrefix;
  return new RedisResultBackend({
    ...(resolveOptions(opts) as RedisResultBackendOptions),
    url,
    ...(context.logger === undefined ? {} : { logger: context.logger }),
  });
}

/** What a Redis URL leaves out: the port, and database 0. */
const REDIS_DEFAULTS = { port: 6379, path: '/0' };
