import {
  CeleriacError,
  ErrorCode,
  msgpackSerializer,
  READY_STATES,
  silentLogger,
  wrapError,
  type FactoryContext,
  type Logger,
  type ResultBackend,
  type ResultBackendCapabilities,
  type ResultMeta,
  type UrlOptions,
  type WaitOptions,
} from '@celeriac/core';
import { Redis, type RedisOptions } from 'ioredis';
import { connectionUrl, parseOptions } from './options.js';
import { pyJson } from './python-json.js';
import { defineScripts, type Scripts } from './redis-scripts.js';
import { fromCeleryGroup, fromCeleryMeta, toCeleryGroup, toCeleryMeta } from './result-meta.js';

/** Options of the Celery-format Redis result backend. In a URL they are query parameters. */
export interface CeleryRedisResultBackendOptions {
  /**
   * Celery's `result_backend_transport_options['global_keyprefix']`: prepended to every key, with
   * `_` added unless it ends in one of `:_-.` (as Celery does). @default ''
   */
  prefix?: string;
  /** @default 10_000 */
  connectTimeoutMs?: number;
}

/** Constructor options of {@link CeleryRedisResultBackend}. */
export interface CeleryRedisResultBackendConfig extends CeleryRedisResultBackendOptions {
  /** @default 'redis://127.0.0.1:6379' */
  url?: string | URL;
  redis?: RedisOptions;
  /** @default silent */
  logger?: Logger;
}

const KINDS = { prefix: 'string', connectTimeoutMs: 'int' } as const;

const GROUP = 'group:';

type Listener = (value: Buffer) => void;

/**
 * Results in Celery's Redis backend format, readable by Python's `AsyncResult.get()` and by
 * celeriac's:
 *
 * - `celery-task-meta-<id>` holds Celery's JSON (`status`, `result`, `traceback`, `children`,
 *   `date_done`, `task_id`, plus `name`/`retries` as with `result_extended`), set with an expiry and
 *   PUBLISHed on a channel of the same name, in one script that also refuses to overwrite a SUCCESS;
 * - a failure is Celery's exception dict (`exc_type`, `exc_message`, `exc_module`): a celeriac error's
 *   `name` is `exc_type`, its `message` the single argument, its `stack` the `traceback`;
 * - a group's member list (celeriac's `group:<id>`) is `celery-taskset-meta-<id>` as Celery saves it;
 * - counters, leases and revocations (celeriac features Celery keeps elsewhere) live under
 *   `celeriac-*` keys.
 *
 * `wait` subscribes first, then reads, as Celery's ResultConsumer does. JSON is written; JSON and
 * msgpack results are read.
 */
export class CeleryRedisResultBackend implements ResultBackend {
  readonly name = 'celery-redis';
  readonly capabilities: ResultBackendCapabilities = { counters: true, leases: true, revocations: true, rateLimits: false, schedules: false };
  readonly prefix: string;
  private readonly url: URL;
  private readonly redisOptions: RedisOptions;
  private readonly connectTimeoutMs: number;
  private readonly logger: Logger;
  private readonly main: Redis;
  private readonly scripts: Scripts;
  private subscriber: Redis | undefined;
  private readonly channels = new Map<string, Set<Listener>>();
  private readonly pendingSubscribe = new Map<string, Promise<void>>();
  private readonly waiters = new Set<(err: Error) => void>();
  private subscriberWasReady = false;
  private closing: Promise<void> | undefined;

  constructor(config: CeleryRedisResultBackendConfig = {}) {
    const { url, redis, logger, ...rest } = config;
    const o = parseOptions<CeleryRedisResultBackendOptions>('Celery Redis result backend', rest, KINDS);
    const p = o.prefix ?? '';
    this.prefix = p === '' || /[:_\-.]$/.test(p) ? p : `${p}_`;
    this.connectTimeoutMs = o.connectTimeoutMs ?? 10_000;
    this.url = new URL(url ?? 'redis://127.0.0.1:6379');
    this.redisOptions = redis ?? {};
    this.logger = logger ?? silentLogger;
    this.main = this.newClient('celeriac-celery-results', true);
    this.main.on('error', (err: unknown) => this.logger.warn('celery result backend error', { error: String(err) }));
    this.scripts = defineScripts(this.main);
  }

  private newClient(name: string, pipelining: boolean): Redis {
    return new Redis(connectionUrl(this.url), {
      lazyConnect: true,
      connectTimeout: this.connectTimeoutMs,
      maxRetriesPerRequest: 20,
      connectionName: name,
      enableAutoPipelining: pipelining,
      ...this.redisOptions,
    } as RedisOptions & { replyMapping?: 'legacy' });
  }

  /** `celery-task-meta-<id>`, or `celery-taskset-meta-<id>` for celeriac's `group:<id>`. */
  key(taskId: string): string {
    return taskId.startsWith(GROUP)
      ? `${this.prefix}celery-taskset-meta-${taskId.slice(GROUP.length)}`
      : `${this.prefix}celery-task-meta-${taskId}`;
  }

  private own(kind: string, id: string): string {
    return `${this.prefix}celeriac-${kind}-${id}`;
  }

  private check(): void {
    if (this.closing !== undefined) throw new CeleriacError(ErrorCode.CLOSED, 'result backend is closed');
  }

  private async run<T>(fn: () => Promise<T>): Promise<T> {
    this.check();
    try {
      return await fn();
    } catch (err) {
      throw wrapped(err);
    }
  }

  private encode(taskId: string, meta: ResultMeta): string {
    try {
      if (taskId.startsWith(GROUP)) return pyJson(toCeleryGroup(taskId.slice(GROUP.length), meta.children ?? []));
      return pyJson(toCeleryMeta(taskId, meta));
    } catch (err) {
      throw new CeleriacError(ErrorCode.SERIALIZATION, `result is not JSON-serializable: ${String(err)}`, { cause: err });
    }
  }

  private decode(taskId: string, value: Buffer): ResultMeta | undefined {
    let raw: unknown;
    try {
      raw = value[0] === 0x7b ? JSON.parse(value.toString('utf8')) : msgpackSerializer.decode(value);
    } catch (err) {
      throw new CeleriacError(ErrorCode.SERIALIZATION, `stored result of ${taskId} is neither JSON nor msgpack`, { cause: err });
    }
    return taskId.startsWith(GROUP) ? fromCeleryGroup(raw) : fromCeleryMeta(raw);
  }

  set(taskId: string, meta: ResultMeta, opts: { ttlMs: number }): Promise<void> {
    return this.run(async () => {
      const ttl = Number.isFinite(opts.ttlMs) ? Math.max(1, Math.ceil(opts.ttlMs)) : 0;
      await this.scripts.setResult([this.key(taskId)], [this.encode(taskId, meta), ttl]);
    });
  }

  get(taskId: string): Promise<ResultMeta | undefined> {
    return this.run(async () => {
      const v = await this.main.getBuffer(this.key(taskId));
      return v === null ? undefined : this.decode(taskId, v);
    });
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
    const channel = this.key(taskId);
    return new Promise<ResultMeta>((resolve, reject) => {
      let settled = false;
      let timer: NodeJS.Timeout | undefined;
      const finish = (fn: () => void) => {
        if (settled) return;
        settled = true;
        if (timer !== undefined) clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        this.waiters.delete(fail);
        this.unlisten(channel, onMessage);
        fn();
      };
      const fail = (err: Error) => finish(() => reject(err));
      const onAbort = () => fail(new CeleriacError(ErrorCode.ABORTED, `wait for ${taskId} aborted`, { cause: signal?.reason }));
      const onMeta = (meta: ResultMeta | undefined) => {
        if (meta !== undefined && READY_STATES.has(meta.state)) finish(() => resolve(meta));
      };
      const onMessage: Listener = (value) => {
        try {
          onMeta(this.decode(taskId, value));
        } catch (err) {
          fail(err as Error);
        }
      };
      this.waiters.add(fail);
      signal?.addEventListener('abort', onAbort, { once: true });
      if (Number.isFinite(opts.timeoutMs)) {
        timer = setTimeout(
          () => fail(new CeleriacError(ErrorCode.TIMEOUT, `no result for task ${taskId} within ${opts.timeoutMs} ms`)),
          Math.max(0, opts.timeoutMs),
        );
      }
      // Subscribed first, then read: a result stored in between is seen one way or the other.
      this.listen(channel, onMessage)
        .then(() => (settled ? undefined : this.get(taskId)))
        .then(onMeta, (err: unknown) => fail(wrapped(err)));
    });
  }

  private async listen(channel: string, fn: Listener): Promise<void> {
    let set = this.channels.get(channel);
    if (set === undefined) {
      set = new Set();
      this.channels.set(channel, set);
      set.add(fn);
      const sub = await this.subscriberClient();
      const p = sub.subscribe(channel).then(() => undefined);
      this.pendingSubscribe.set(channel, p);
      try {
        await p;
      } finally {
        this.pendingSubscribe.delete(channel);
      }
      return;
    }
    set.add(fn);
    await this.pendingSubscribe.get(channel);
  }

  private unlisten(channel: string, fn: Listener): void {
    const set = this.channels.get(channel);
    if (set === undefined || !set.delete(fn) || set.size > 0) return;
    this.channels.delete(channel);
    const sub = this.subscriber;
    if (sub?.status === 'ready') sub.unsubscribe(channel).catch(() => undefined);
  }

  private async subscriberClient(): Promise<Redis> {
    if (this.subscriber === undefined) {
      const sub = this.newClient('celeriac-celery-results-subscriber', false);
      sub.on('error', (err: unknown) => this.logger.warn('celery result subscriber error', { error: String(err) }));
      sub.on('messageBuffer', (ch: Buffer, message: Buffer) => {
        for (const fn of [...(this.channels.get(ch.toString()) ?? [])]) fn(message);
      });
      // Publishes made while reconnecting are lost: read again what is waited for (Celery does the same).
      sub.on('ready', () => {
        if (this.subscriberWasReady) this.recheck();
        this.subscriberWasReady = true;
      });
      this.subscriber = sub;
    }
    if (this.subscriber.status === 'wait') await this.subscriber.connect();
    return this.subscriber;
  }

  private recheck(): void {
    for (const channel of this.channels.keys()) {
      this.main
        .getBuffer(channel)
        .then((v) => {
          if (v !== null) for (const fn of [...(this.channels.get(channel) ?? [])]) fn(v);
        })
        .catch(() => undefined);
    }
  }

  delete(taskId: string): Promise<void> {
    return this.run(async () => {
      await this.main.del(this.key(taskId));
    });
  }

  incr(key: string, by: number, opts: { ttlMs: number }): Promise<number> {
    if (!Number.isInteger(by)) return Promise.reject(new RangeError(`by must be an integer, got ${String(by)}`));
    return this.run(async () => {
      const k = this.own('counter', key);
      const m = this.main.multi().incrby(k, by);
      if (Number.isFinite(opts.ttlMs)) m.pexpire(k, Math.max(1, Math.ceil(opts.ttlMs)));
      const res = await m.exec();
      const v = res?.[0]?.[1];
      if (typeof v !== 'number') throw new CeleriacError(ErrorCode.CONNECTION, 'INCRBY returned no number', { retryable: true });
      return v;
    });
  }

  acquireLease(name: string, holder: string, ttlMs: number): Promise<boolean> {
    return this.run(async () => (await this.main.set(this.own('lease', name), holder, 'PX', Math.max(1, Math.ceil(ttlMs)), 'NX')) === 'OK');
  }

  renewLease(name: string, holder: string, ttlMs: number): Promise<boolean> {
    return this.run(async () => (await this.scripts.renew([this.own('lease', name)], [holder, Math.max(1, Math.ceil(ttlMs))])) === 1);
  }

  releaseLease(name: string, holder: string): Promise<boolean> {
    return this.run(async () => (await this.scripts.unlock([this.own('lease', name)], [holder])) === 1);
  }

  revoke(taskId: string, ttlMs: number): Promise<void> {
    return this.run(async () => {
      const finite = Number.isFinite(ttlMs);
      const ttl = Math.max(1, Math.ceil(ttlMs));
      const m = this.main.multi();
      if (finite) m.set(this.own('revoked', taskId), '1', 'PX', ttl);
      else m.set(this.own('revoked', taskId), '1');
      m.zadd(this.own('revoked', 'index'), finite ? Date.now() + ttl : '+inf', taskId);
      await m.exec();
    });
  }

  isRevoked(taskId: string): Promise<boolean> {
    return this.run(async () => (await this.main.exists(this.own('revoked', taskId))) === 1);
  }

  listRevoked(): Promise<string[]> {
    return this.run(async () => {
      const index = this.own('revoked', 'index');
      const now = Date.now();
      await this.main.zremrangebyscore(index, '-inf', `(${now}`);
      return this.main.zrangebyscore(index, now, '+inf');
    });
  }

  /** Idempotent: pending waits reject with ERR_CLOSED; both connections close. */
  close(): Promise<void> {
    this.closing ??= this.doClose();
    return this.closing;
  }

  private async doClose(): Promise<void> {
    const err = new CeleriacError(ErrorCode.CLOSED, 'result backend closed while waiting');
    for (const fail of [...this.waiters]) fail(err);
    this.channels.clear();
    for (const c of [this.main, this.subscriber]) {
      if (c === undefined) continue;
      try {
        if (c.status === 'ready') await c.quit();
      } catch {
        // disconnect below
      }
      c.disconnect();
    }
  }
}

function wrapped(err: unknown): Error {
  if (err instanceof CeleriacError || err instanceof TypeError || err instanceof RangeError) return err;
  return wrapError(err, ErrorCode.CONNECTION, undefined, true);
}

/** The factory for `redis://` result backend URLs in Celery-protocol mode. */
export function createCeleryRedisResultBackend(url: URL, options: UrlOptions, context: FactoryContext = {}): CeleryRedisResultBackend {
  return new CeleryRedisResultBackend({
    ...parseOptions<CeleryRedisResultBackendOptions>('Celery Redis result backend', options, KINDS),
    url,
    ...(context.logger === undefined ? {} : { logger: context.logger }),
  });
}
