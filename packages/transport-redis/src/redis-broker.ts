import {
  type Broadcast,
  type Broker,
  type BrokerCapabilities,
  type BrokerEvent,
  type BrokerEventSource,
  CeleriacError,
  type Clock,
  CLOSE_GRACE_MS,
  type ConsumeOptions,
  type DeadLetter,
  type DeadLetterOptions,
  type DeadLetters,
  type Delivery,
  ErrorCode,
  type FactoryContext,
  type Headers,
  type Logger,
  type OutgoingMessage,
  type PublishOptions,
  type QueueStats,
  serverTarget,
  settleWithin,
  silentLogger,
  type UrlOptions,
} from '@celeriac/core';
import { connectionError, ConsumerKit, decodeHeaderFrame } from '@celeriac/core/transport';
import { Cluster, Redis, type RedisOptions } from 'ioredis';
import { RedisAdapter, type ConsumerHost } from './consumer.js';
import { broadcastChannel } from './keys.js';
import { connectionUrl, resolveOptions, type RedisBrokerOptions, type ResolvedRedisBrokerOptions } from './options.js';
import { QueueHandle } from './queue.js';
import { defineScripts, scriptsOf, type RedisClient, type Scripts } from './scripts.js';

/** Constructor options of {@link RedisBroker}: where to connect, plus the broker options. */
export interface RedisBrokerConfig extends RedisBrokerOptions {
  /** `redis://[user:password@]host:port[/db]` or `rediss://…`. @default 'redis://127.0.0.1:6379' */
  url?: string | URL;
  /** Extra ioredis options for every connection the broker opens (TLS, sentinels, …). */
  redis?: RedisOptions;
  /** @default silent */
  logger?: Logger;
  /** The clock lease renewals run on (tests freeze it to play a stalled process). @default the system clock */
  clock?: Clock;
}

/**
 * The Redis broker. Every state change is one Lua script (see `lua/`); all keys of a queue share
 * the hash tag `{<prefix>:<queue>}`, so it runs on Redis Cluster too.
 *
 * Guarantees: at-least-once delivery under a lease of `visibilityTimeoutMs` that core renews;
 * a settle from a holder that lost its lease is refused with ERR_STALE_DELIVERY; delays, retries and
 * dead letters live in Redis. Not guaranteed: durability beyond what the server's persistence gives
 * (run Redis with `appendonly yes` and `maxmemory-policy noeviction`).
 */
export class RedisBroker implements Broker, BrokerEventSource, ConsumerHost {
  readonly name = 'redis';
  readonly capabilities: BrokerCapabilities;
  readonly visibilityTimeoutMs: number;
  /** Server, user and database: a result-redis backend with the same `writeTarget` has results stored with acks. */
  readonly resultWriteTarget: string | undefined;
  readonly options: ResolvedRedisBrokerOptions;
  readonly claimBatch: number;
  readonly blockTimeoutMs: number;
  private readonly url: URL;
  private readonly redisOptions: RedisOptions;
  private readonly logger: Logger;
  private main: RedisClient | undefined;
  private scripts: Scripts | undefined;
  private subscriber: RedisClient | undefined;
  private readonly queues = new Map<string, QueueHandle>();
  /** Consumption: the prefetch bound, settle-once, held deliveries, lease renewal, give-back at close. */
  private readonly kit: ConsumerKit;
  private readonly blockers = new Set<RedisClient>();
  private readonly listeners = new Set<(e: BrokerEvent) => void>();
  private readonly channels = new Map<string, Set<(body: Uint8Array) => void>>();
  private connecting: Promise<void> | undefined;
  private closing: Promise<void> | undefined;
  private wasReady = false;
  private reportedOutage = false;

  constructor(config: RedisBrokerConfig = {}) {
    const { url, redis, logger, clock, ...opts } = config;
    this.options = resolveOptions(opts);
    this.url = new URL(url ?? 'redis://127.0.0.1:6379');
    this.redisOptions = redis ?? {};
    this.logger = logger ?? silentLogger;
    this.visibilityTimeoutMs = this.options.visibilityTimeoutMs;
    // On a cluster a task's queue and its result live on different nodes: one script cannot do both.
    this.resultWriteTarget = this.options.cluster ? undefined : serverTarget('redis', this.url, REDIS_DEFAULTS);
    this.kit = new ConsumerKit({
      ...(clock === undefined ? {} : { clock }),
      visibilityTimeoutMs: this.visibilityTimeoutMs,
      onError: (err) => this.report(err),
      classify: connectionError,
    });
    this.claimBatch = this.options.claimBatch;
    this.blockTimeoutMs = this.options.blockTimeoutMs;
    this.capabilities = {
      delayedDelivery: 'native',
      priorities: 10,
      deadLetter: 'native',
      redeliveryCount: true,
      broadcast: true,
      maxMessageBytes: this.options.maxMessageBytes,
      transactionalPublish: false,
    };
  }

  onEvent(listener: (event: BrokerEvent) => void): () => void {
    this.listeners.add(listener);
    return () => {
      this.listeners.delete(listener);
    };
  }

  private emit(event: BrokerEvent): void {
    for (const l of this.listeners) {
      try {
        l(event);
      } catch (err) {
        this.logger.warn('broker event listener threw', { error: String(err) });
      }
    }
  }

  /** @internal Report a connection problem once per outage. */
  report(err: unknown): void {
    if (this.closing !== undefined) return;
    this.logger.warn('redis broker error', { error: String(err) });
    if (this.reportedOutage) return;
    this.reportedOutage = true;
    this.emit({ type: 'error', error: connectionError(err) });
  }

  /** @internal A new connection with the broker's settings. */
  newClient(extra: RedisOptions, role = 'main'): RedisClient {
    const base: ClientOptions = {
      lazyConnect: true,
      // Visible in CLIENT LIST, so an operator can tell what each connection is for.
      connectionName: `celeriac:${this.options.prefix}:${role}`.replace(/[^\x21-\x7e]/g, '_'),
      connectTimeout: this.options.connectTimeoutMs,
      maxRetriesPerRequest: this.options.maxRetriesPerRequest,
      ...this.redisOptions,
      ...extra,
    };
    if (this.options.cluster) {
      const port = this.url.port === '' ? 6379 : Number(this.url.port);
      const redisOptions: ClientOptions = { ...base };
      if (this.url.username !== '') redisOptions.username = decodeURIComponent(this.url.username);
      if (this.url.password !== '') redisOptions.password = decodeURIComponent(this.url.password);
      if (this.url.protocol === 'rediss:') redisOptions.tls ??= {};
      return new Cluster([{ host: this.url.hostname, port }], {
        lazyConnect: true,
        redisOptions,
      });
    }
    return new Redis(connectionUrl(this.url), base as RedisOptions & { replyMapping?: 'legacy' });
  }

  /** Core's guard calls it once (and again after a failed attempt). */
  connect(opts?: { signal?: AbortSignal }): Promise<void> {
    if (this.closing !== undefined) return Promise.reject(new CeleriacError(ErrorCode.CLOSED, 'broker is closed'));
    this.connecting = this.doConnect(opts?.signal);
    return this.connecting;
  }

  private async doConnect(signal: AbortSignal | undefined): Promise<void> {
    signal?.throwIfAborted();
    const client = this.newClient({});
    defineScripts(client);
    client.on('error', (err: unknown) => this.report(err));
    client.on('ready', () => {
      this.reportedOutage = false;
      if (this.wasReady) this.emit({ type: 'reconnected' });
      this.wasReady = true;
    });
    const onAbort = () => client.disconnect();
    signal?.addEventListener('abort', onAbort, { once: true });
    try {
      await client.connect();
    } catch (err) {
      client.disconnect();
      throw err; // core's guard names the broker and wraps it (ERR_CONNECTION, retryable)
    } finally {
      signal?.removeEventListener('abort', onAbort);
    }
    this.main = client;
    this.scripts = scriptsOf(client);
  }

  private ready(): Scripts {
    if (this.closing !== undefined) throw new CeleriacError(ErrorCode.CLOSED, 'broker is closed');
    if (this.scripts === undefined) throw new CeleriacError(ErrorCode.CONNECTION, 'broker is not connected; call connect() first');
    return this.scripts;
  }

  private queue(name: string): QueueHandle {
    let q = this.queues.get(name);
    if (q === undefined) {
      q = new QueueHandle(this.options.prefix, name, this.ready(), this.visibilityTimeoutMs);
      this.queues.set(name, q);
    }
    return q;
  }

  /** Queues need no declaration on Redis: their keys appear with the first message. */
  declareQueue(queue: string): Promise<void> {
    try {
      this.queue(queue);
      return Promise.resolve();
    } catch (err) {
      return Promise.reject(err as Error);
    }
  }

  /** Resolves once Redis has run the publish script. Concurrent publishes to a queue share one call. */
  /**
   * Publishes in one turn of the event loop share one script call (so a batch needs no method of its
   * own: core's `publishBatch` fallback publishes each). Core's guard wraps driver errors.
   */
  publish(queue: string, msg: OutgoingMessage, opts?: PublishOptions): Promise<void> {
    try {
      return this.queue(queue).publish(msg, opts);
    } catch (err) {
      return Promise.reject(err as Error);
    }
  }

  consume(queue: string, opts: ConsumeOptions): AsyncIterable<Delivery> {
    return this.kit.consume(queue, new RedisAdapter(this, this.queue(queue)), opts);
  }

  /** @internal */
  createBlockingClient(): RedisClient {
    const client = this.newClient({
      // A blocking wait rides out reconnects; its own bound plus ioredis' guard keep it from hanging.
      maxRetriesPerRequest: null,
      blockingTimeout: this.blockTimeoutMs + 2_000,
    }, 'blocking');
    client.on('error', () => undefined); // reported through the failing command
    this.blockers.add(client);
    client.once('end', () => this.blockers.delete(client));
    return client;
  }

  purge(queue: string): Promise<number> {
    try {
      return this.queue(queue).purge();
    } catch (err) {
      return Promise.reject(err as Error);
    }
  }

  stats(queue: string): Promise<QueueStats> {
    try {
      return this.queue(queue).stats();
    } catch (err) {
      return Promise.reject(err as Error);
    }
  }

  readonly deadLetters: DeadLetters = {
    list: async (queue: string, opts?: DeadLetterOptions): Promise<DeadLetter[]> => {
      const limit = opts?.limit ?? 100;
      if (!Number.isInteger(limit) || limit < 1) throw new RangeError(`limit must be an integer >= 1, got ${String(limit)}`);
      const k = this.queue(queue).keys;
      const flat = await this.ready().deadList([k.dead, k.deadInfo, k.msg], [limit]);
      const out: DeadLetter[] = [];
      for (let i = 0; i + 3 < flat.length; i += 4) {
        const payload = flat[i + 3];
        if (!(payload instanceof Buffer)) continue; // purged meanwhile
        const info = flat[i + 2] instanceof Buffer ? (flat[i + 2] as Buffer).toString('utf8') : '0|';
        const { headers, body } = readStored(payload);
        out.push({
          id: (flat[i] as Buffer).toString('utf8'),
          queue,
          body,
          headers,
          reason: info.slice(info.indexOf('|') + 1),
          deadAt: flat[i + 1] as number,
        });
      }
      return out;
    },
    redrive: async (queue: string, ids?: readonly string[]): Promise<number> => {
      const k = this.queue(queue).keys;
      const keys = [...k.ready, k.dead, k.deadInfo, k.marker];
      const scripts = this.ready();
      if (ids !== undefined) {
        let moved = 0;
        for (let i = 0; i < ids.length; i += 1000) moved += await scripts.deadRedrive(keys, ['ids', ...ids.slice(i, i + 1000)]);
        return moved;
      }
      let moved = 0;
      for (;;) {
        const n = await scripts.deadRedrive(keys, ['*', 1000]);
        moved += n;
        if (n < 1000) return moved;
      }
    },
    purge: async (queue: string): Promise<number> => {
      const k = this.queue(queue).keys;
      const scripts = this.ready();
      let total = 0;
      for (;;) {
        const n = await scripts.deadPurge([k.dead, k.deadInfo, k.msg], [1000]);
        total += n;
        if (n < 1000) return total;
      }
    },
  };

  readonly broadcast: Broadcast = {
    publish: async (channel: string, body: Uint8Array): Promise<void> => {
      const main = this.mainClient();
      await main.publish(broadcastChannel(this.options.prefix, channel), Buffer.from(body.buffer, body.byteOffset, body.byteLength));
    },
    subscribe: async (channel: string, onMessage: (body: Uint8Array) => void): Promise<() => Promise<void>> => {
      const sub = await this.subscriberClient();
      const name = broadcastChannel(this.options.prefix, channel);
      let set = this.channels.get(name);
      const handler = (body: Uint8Array) => onMessage(body);
      if (set === undefined) {
        set = new Set();
        this.channels.set(name, set);
        set.add(handler);
        try {
          await sub.subscribe(name);
        } catch (err) {
          set.delete(handler);
          if (set.size === 0) this.channels.delete(name);
          throw err;
        }
      } else set.add(handler);
      const handlers = set;
      let removed = false;
      return async () => {
        if (removed) return;
        removed = true;
        handlers.delete(handler);
        if (handlers.size === 0 && this.channels.get(name) === handlers) {
          this.channels.delete(name);
          if (this.subscriber !== undefined && this.closing === undefined) await this.subscriber.unsubscribe(name);
        }
      };
    },
  };

  private mainClient(): RedisClient {
    this.ready();
    return this.main!;
  }

  private async subscriberClient(): Promise<RedisClient> {
    this.mainClient();
    if (this.subscriber === undefined) {
      const sub = this.newClient({}, 'subscriber');
      sub.on('error', () => undefined); // the main connection reports outages
      sub.on('messageBuffer', (channel: Buffer, message: Buffer) => {
        const set = this.channels.get(channel.toString('utf8'));
        if (set === undefined) return;
        for (const fn of set) {
          try {
            fn(message);
          } catch (err) {
            this.logger.warn('broadcast subscriber threw', { error: String(err) });
          }
        }
      });
      this.subscriber = sub;
    }
    const sub = this.subscriber;
    if (sub.status === 'wait') await sub.connect();
    return sub;
  }

  /**
   * Idempotent. Stops every consumer (what they claimed and had not handed out goes back to the
   * head of its queue, uncounted), gives back deliveries handed out and not settled (counted, as
   * after a crash, but at once instead of after the visibility timeout), waits for coalesced calls,
   * then closes the connections.
   */
  close(): Promise<void> {
    this.closing ??= this.doClose();
    return this.closing;
  }

  private async doClose(): Promise<void> {
    // Bounded: while Redis does not answer nothing can be given back, so nothing is waited for past
    // the grace; the connections are then dropped, which fails every call still waiting.
    const by = Date.now() + CLOSE_GRACE_MS * 0.75;
    const within = (p: Promise<unknown>) => settleWithin(p, this.main?.status === 'ready' ? by - Date.now() : 0);
    await within(this.connecting ?? Promise.resolve());
    // Consumers stop (what they buffered goes back uncounted), then what was handed out and not
    // settled goes back counted, as after a crash but at once. The kit bounds both.
    await within(this.kit.close());
    await within(Promise.all([...this.queues.values()].map((q) => q.drain())));
    this.channels.clear();
    for (const b of this.blockers) b.disconnect();
    this.blockers.clear();
    const clients = [this.subscriber, this.main].filter((c): c is RedisClient => c !== undefined);
    this.subscriber = undefined;
    await Promise.all(clients.map((c) => quit(c)));
  }
}

/** A stored payload's headers and body; one another client wrote (not a header frame) as raw bytes. */
function readStored(payload: Buffer): { headers: Headers; body: Uint8Array } {
  try {
    return decodeHeaderFrame(payload);
  } catch {
    return { headers: {}, body: payload };
  }
}

async function quit(c: RedisClient): Promise<void> {
  if (c.status === 'ready') await settleWithin(c.quit(), CLOSE_GRACE_MS / 4);
  c.disconnect();
}

/** ioredis options without the reply-mapping generic (the broker always uses the legacy shapes). */
type ClientOptions = Omit<RedisOptions, 'replyMapping'>;

/**
 * The factory core's URL table calls for `redis://` and `rediss://` broker URLs. Query parameters
 * are {@link RedisBrokerOptions}; the rest of the URL is the connection.
 */
export function createRedisBroker(url: URL, options: UrlOptions, context: FactoryContext = {}): RedisBroker {
  const opts: UrlOptions = { ...options };
  // The prefix is a name: keep it as written (the URL parser turns "007" into 7).
  const rawPrefix = url.searchParams.get('prefix');
  if (rawPrefix !== null) opts['prefix'] = rawPrefix;
  return new RedisBroker({
    ...(resolveOptions(opts) as RedisBrokerOptions),
    url,
    ...(context.logger === undefined ? {} : { logger: context.logger }),
  });
}

/** What a Redis URL leaves out: the port, and database 0. */
const REDIS_DEFAULTS = { port: 6379, path: '/0' };
