import {
  CeleriacError,
  CLOSE_GRACE_MS,
  ErrorCode,
  settleWithin,
  newId,
  silentLogger,
  type Broadcast,
  type Broker,
  type BrokerCapabilities,
  type BrokerEvent,
  type BrokerEventSource,
  type ConsumeOptions,
  type DeadLetter,
  type DeadLetterOptions,
  type DeadLetters,
  type Delivery,
  type FactoryContext,
  type Headers,
  type Logger,
  type NackOptions,
  type OutgoingMessage,
  type PublishOptions,
  type QueueSpec,
  type QueueStats,
  type UrlOptions,
} from '@celeriac/core';
import { Redis, type RedisOptions } from 'ioredis';
import {
  buildEnvelope,
  markRedelivered,
  parseEnvelope,
  parseUnacked,
  serializeEnvelope,
  unackedValue,
  type KombuEnvelope,
  type ParsedEnvelope,
} from './kombu-envelope.js';
import { KombuKeys, SEP } from './kombu-keys.js';
import { connectionUrl, parseOptions } from './options.js';
import { defineScripts, type Scripts } from './redis-scripts.js';
import { kombuStep, parseIsoMs, PROP, toKombuPriority } from './wire.js';

/** Options of the kombu-compatible Redis broker. In a URL they are query parameters with the same names. */
export interface KombuRedisBrokerOptions {
  /**
   * kombu's `visibility_timeout`: how long an unacked delivery of a dead consumer waits before it is
   * restored. Python workers sharing the queues must use the same value
   * (`broker_transport_options = {'visibility_timeout': seconds}`): a Python worker restores what is
   * older than its own timeout, and this broker renews its leases every third of its own.
   * @default 3_600_000 (kombu's 3600 s)
   */
  visibilityTimeoutMs?: number;
  /** kombu's `global_keyprefix`, prepended verbatim to every key (include your separator). @default '' */
  prefix?: string;
  /**
   * How often due delayed messages are moved onto their queue and visible unacked messages (of dead
   * consumers, Node or Python) are restored. Also the most a delayed message is late.
   * @default 250
   */
  sweepIntervalMs?: number;
  /**
   * How long a consumer's blocking wait lasts before it looks again. A consumer wakes at once for a
   * message pushed to a queue's main list; one pushed only to a priority sub-list while the consumer
   * is idle is seen within this time.
   * @default 1000
   */
  blockTimeoutMs?: number;
  /**
   * The priority (celeriac's 0–9, 9 the most urgent) of a message published without one. kombu's
   * default, 9 here (kombu's 0), puts it in the queue's main list, which kombu consumes first — as a
   * Python producer does. 0 puts it in the last list instead, which is what celeriac's other brokers do
   * with unprioritized messages.
   * @default 9
   */
  defaultPriority?: number;
  /** Add kombu's binding (`_kombu.binding.<queue>`) when a queue is declared, as Celery does. @default true */
  bindings?: boolean;
  /** @default 67_108_864 (64 MiB) */
  maxMessageBytes?: number;
}

export type ResolvedKombuRedisOptions = Required<KombuRedisBrokerOptions>;

export const KOMBU_REDIS_DEFAULTS: ResolvedKombuRedisOptions = {
  visibilityTimeoutMs: 3_600_000,
  prefix: '',
  sweepIntervalMs: 250,
  blockTimeoutMs: 1000,
  defaultPriority: 9,
  bindings: true,
  maxMessageBytes: 64 * 1024 * 1024,
};

const KINDS = {
  visibilityTimeoutMs: 'int',
  prefix: 'string',
  sweepIntervalMs: 'int',
  blockTimeoutMs: 'int',
  defaultPriority: 'int',
  bindings: 'bool',
  maxMessageBytes: 'int',
} as const;

/** Validate options and fill in defaults. */
export function resolveKombuRedisOptions(input: UrlOptions | KombuRedisBrokerOptions = {}): ResolvedKombuRedisOptions {
  const o = { ...KOMBU_REDIS_DEFAULTS, ...parseOptions<KombuRedisBrokerOptions>('kombu Redis broker', input, KINDS) };
  if (o.visibilityTimeoutMs < 1000) throw new RangeError('visibilityTimeoutMs must be at least 1000');
  if (o.sweepIntervalMs < 10) throw new RangeError('sweepIntervalMs must be at least 10');
  if (o.blockTimeoutMs < 100) throw new RangeError('blockTimeoutMs must be at least 100');
  if (o.defaultPriority > 9) throw new RangeError('defaultPriority must be from 0 to 9');
  return o;
}

/** Constructor options of {@link KombuRedisBroker}. */
export interface KombuRedisBrokerConfig extends KombuRedisBrokerOptions {
  /** `redis://[user:password@]host:port[/db]`. @default 'redis://127.0.0.1:6379' */
  url?: string | URL;
  /** Extra ioredis options. */
  redis?: RedisOptions;
  /** @default silent */
  logger?: Logger;
}

const SWEEP_BATCH = 100;

/** Seconds with a random sub-millisecond part: a claim's score doubles as its ownership token. */
function scoreNow(ms = Date.now()): string {
  return ((ms + Math.random() * 0.999) / 1000).toFixed(6);
}

function scoreAt(ms: number): string {
  return (ms / 1000).toFixed(6);
}

type RedisClient = Redis;

/** A running `consume()`: what close() needs to stop it. */
interface ConsumerState {
  readonly ac: AbortController;
  /** Claimed, not yet handed out. */
  readonly buffer: KombuDelivery[];
  readonly blocking: RedisClient;
  /** Suspended at `yield` (only the caller can resume it). */
  atYield: boolean;
  readonly done: Promise<void>;
}

/**
 * A broker that speaks kombu's Redis transport, so Node and Python Celery workers share queues:
 *
 * - messages are kombu's JSON envelopes (base64 body, `properties` with `delivery_tag`,
 *   `delivery_info`, `body_encoding`), LPUSHed to the queue's list or its priority sub-list
 *   (`queue\x06\x16{3,6,9}`) and taken from the consuming end in kombu's priority order;
 * - a delivery is recorded in kombu's `unacked` hash and `unacked_index` zset — in the same step as
 *   the pop (a Lua script) — and removed on ack, so Python's `restore_visible` sweeps see exactly
 *   what is in flight; this broker renews its leases (the index score), so a Python sweep never
 *   restores a live Node delivery, and it runs the same sweep itself (under `unacked_mutex`), so a
 *   dead Python worker's deliveries come back;
 * - delays live in Redis: a delayed message is parked in `unacked` with its index score back-dated by
 *   the visibility timeout, so it becomes "visible" exactly when due. This broker's sweep moves it to
 *   its queue on time; a Python worker's `restore_visible` moves it too, later (every ~100 s, ten at a
 *   time), so nothing is stranded when no Node process runs. A message whose `eta` header lies in the
 *   future when it is delivered (a Python `countdown`) is parked the same way instead of being held in
 *   memory.
 */
export class KombuRedisBroker implements Broker, BrokerEventSource {
  readonly name = 'kombu-redis';
  readonly capabilities: BrokerCapabilities;
  readonly visibilityTimeoutMs: number;
  readonly options: ResolvedKombuRedisOptions;
  readonly keys: KombuKeys;
  readonly deadLetters: DeadLetters;
  readonly broadcast: Broadcast;
  private readonly url: URL;
  private readonly redisOptions: RedisOptions;
  private readonly logger: Logger;
  private readonly main: RedisClient;
  private scripts!: Scripts;
  private subscriber: RedisClient | undefined;
  private readonly channelListeners = new Map<string, Set<(body: Uint8Array) => void>>();
  private readonly listeners = new Set<(e: BrokerEvent) => void>();
  private readonly declared = new Set<string>();
  private readonly consumers = new Set<ConsumerState>();
  /** Deliveries handed out and not settled: given back at close, as kombu's restore_at_shutdown. */
  readonly unsettled = new Set<KombuDelivery>();
  private sweepTimer: NodeJS.Timeout | undefined;
  private sweeping: Promise<void> | undefined;
  private connecting: Promise<void> | undefined;
  private closing: Promise<void> | undefined;
  private wasReady = false;

  constructor(config: KombuRedisBrokerConfig = {}) {
    const { url, redis, logger, ...opts } = config;
    this.options = resolveKombuRedisOptions(opts);
    this.visibilityTimeoutMs = this.options.visibilityTimeoutMs;
    this.keys = new KombuKeys(this.options.prefix);
    this.url = new URL(url ?? 'redis://127.0.0.1:6379');
    this.redisOptions = redis ?? {};
    this.logger = logger ?? silentLogger;
    this.capabilities = {
      delayedDelivery: 'emulated',
      priorities: 4,
      deadLetter: 'emulated',
      redeliveryCount: false,
      broadcast: true,
      maxMessageBytes: this.options.maxMessageBytes,
      transactionalPublish: false,
    };
    this.main = this.newClient('celeriac-kombu', true);
    this.main.on('error', (err: unknown) => this.emit({ type: 'error', error: err }));
    this.main.on('ready', () => {
      if (this.wasReady) this.emit({ type: 'reconnected' });
      this.wasReady = true;
    });
    this.deadLetters = {
      list: (queue, o) => this.deadList(queue, o),
      redrive: (queue, ids) => this.deadRedrive(queue, ids),
      purge: (queue) => this.deadPurge(queue),
    };
    this.broadcast = {
      publish: async (channel, body) => {
        await this.main.publish(this.keys.broadcast(channel), Buffer.from(body.buffer, body.byteOffset, body.byteLength));
      },
      subscribe: (channel, fn) => this.subscribe(channel, fn),
    };
  }

  private newClient(name: string, pipelining: boolean): RedisClient {
    return new Redis(connectionUrl(this.url), {
      lazyConnect: true,
      maxRetriesPerRequest: 20,
      connectionName: name,
      enableAutoPipelining: pipelining,
      ...this.redisOptions,
    } as RedisOptions & { replyMapping?: 'legacy' });
  }

  onEvent(listener: (event: BrokerEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private emit(e: BrokerEvent): void {
    if (e.type === 'error') this.logger.warn('kombu redis broker error', { error: String(e.error) });
    for (const l of this.listeners) l(e);
  }

  connect(): Promise<void> {
    if (this.closing !== undefined) return Promise.reject(new CeleriacError(ErrorCode.CLOSED, 'broker is closed'));
    this.connecting ??= (async () => {
      if (this.main.status === 'wait') await this.main.connect();
      this.scripts = defineScripts(this.main);
      this.armSweep(0);
    })().catch((err: unknown) => {
      this.connecting = undefined;
      throw err;
    });
    return this.connecting;
  }

  private check(): void {
    if (this.closing !== undefined) throw new CeleriacError(ErrorCode.CLOSED, 'broker is closed');
  }

  async declareQueue(queue: string, _spec?: QueueSpec): Promise<void> {
    this.check();
    this.declared.add(queue);
    // What kombu's queue_bind writes for Celery's `Queue(name, Exchange(name), routing_key=name)`.
    if (this.options.bindings) await this.main.sadd(this.keys.binding(queue), `${queue}${SEP}${SEP}${queue}`);
  }

  /** The kombu priority of a publish: the option, else the message's header, else the default. */
  private kombuPriority(msg: OutgoingMessage, opts: PublishOptions | undefined): number {
    const header = msg.headers[PROP.priority];
    const p = opts?.priority ?? (typeof header === 'number' ? header : this.options.defaultPriority);
    return toKombuPriority(p);
  }

  async publish(queue: string, msg: OutgoingMessage, opts?: PublishOptions): Promise<void> {
    this.check();
    const pri = this.kombuPriority(msg, opts);
    const json = serializeEnvelope(buildEnvelope(msg, '', queue, pri));
    const delayMs = opts?.delayMs ?? 0;
    if (delayMs > 0) await this.park(queue, msg.id, unackedValue(json, '', queue), Date.now() + delayMs, null);
    else await this.main.lpush(this.keys.list(queue, kombuStep(pri)), json);
  }

  async publishBatch(queue: string, msgs: readonly OutgoingMessage[], opts?: PublishOptions): Promise<void> {
    this.check();
    if ((opts?.delayMs ?? 0) > 0) {
      await Promise.all(msgs.map((m) => this.publish(queue, m, opts)));
      return;
    }
    const byList = new Map<string, string[]>();
    for (const m of msgs) {
      const pri = this.kombuPriority(m, opts);
      const list = this.keys.list(queue, kombuStep(pri));
      let l = byList.get(list);
      if (l === undefined) byList.set(list, (l = []));
      l.push(serializeEnvelope(buildEnvelope(m, '', queue, pri)));
    }
    await Promise.all([...byList].map(([list, jsons]) => this.main.lpush(list, ...jsons)));
  }

  /**
   * Park a message in `unacked` until `dueMs`. `claimScore` null: a new message; otherwise only if
   * the caller's claim still owns it. Returns false when it does not.
   */
  async park(queue: string, tag: string, value: string | null, dueMs: number, claimScore: string | null): Promise<boolean> {
    const k = this.keys;
    const r = await this.scripts.park(
      [k.unacked, k.unackedIndex, k.delayed(queue)],
      [tag, claimScore ?? '', scoreAt(dueMs - this.visibilityTimeoutMs), Math.round(dueMs), value ?? ''],
    );
    return r === 1;
  }

  consume(queue: string, opts: ConsumeOptions): AsyncIterable<Delivery> {
    this.check();
    this.declared.add(queue);
    const ac = new AbortController();
    const outer = opts.signal;
    const onAbort = () => ac.abort(outer?.reason);
    if (outer?.aborted === true) ac.abort(outer.reason);
    else outer?.addEventListener('abort', onAbort, { once: true });
    return { [Symbol.asyncIterator]: () => this.consumeLoop(queue, opts.prefetch, ac, () => outer?.removeEventListener('abort', onAbort)) };
  }

  private async *consumeLoop(queue: string, prefetch: number, ac: AbortController, detach: () => void): AsyncGenerator<Delivery> {
    const signal = ac.signal;
    const blocking = this.newClient('celeriac-kombu-consumer', false);
    blocking.on('error', () => undefined); // reported by the main connection; the wait below retries
    let finished!: () => void;
    const state: ConsumerState = {
      ac,
      buffer: [],
      blocking,
      atYield: false,
      done: new Promise<void>((r) => (finished = r)),
    };
    this.consumers.add(state);
    const buffer = state.buffer;
    let held = 0;
    let wake: (() => void) | undefined;
    const wakeUp = () => {
      const w = wake;
      wake = undefined;
      w?.();
    };
    const onAbort = () => {
      wakeUp();
      blocking.disconnect(); // ends a blocked BLMOVE at once
    };
    signal.addEventListener('abort', onAbort, { once: true });
    const k = this.keys;
    const lists = k.lists(queue);
    try {
      while (!signal.aborted) {
        const next = buffer.shift();
        if (next !== undefined) {
          held++;
          next.onSettle = () => {
            held--;
            wakeUp();
          };
          this.unsettled.add(next);
          state.atYield = true;
          yield next;
          state.atYield = false;
          continue;
        }
        if (prefetch - held <= 0) {
          await new Promise<void>((r) => {
            wake = r;
            if (signal.aborted) r();
          });
          continue;
        }
        const score = scoreNow();
        let claimed: string[];
        try {
          claimed = await this.scripts.claim([k.unacked, k.unackedIndex, k.dead(queue), ...lists], [score, prefetch - held, Date.now()]);
        } catch (err) {
          if (signal.aborted || this.closing !== undefined) break;
          throw err;
        }
        if (claimed.length === 0) {
          await this.waitForMessage(blocking, lists[0]!, signal);
          continue;
        }
        for (const json of claimed) {
          const d = await this.admit(queue, json, score);
          if (d !== undefined) buffer.push(d);
        }
      }
    } finally {
      state.atYield = false;
      detach();
      signal.removeEventListener('abort', onAbort);
      // Claimed but never handed out: back to the front of the queue, not counted as a delivery.
      await Promise.allSettled(buffer.splice(0).map((d) => d.giveBack()));
      blocking.disconnect();
      this.consumers.delete(state);
      finished();
    }
  }

  /** Block until the queue's main list has a message (BLMOVE onto itself moves nothing), or the timeout. */
  private async waitForMessage(blocking: RedisClient, list: string, signal: AbortSignal): Promise<void> {
    if (signal.aborted) return;
    try {
      if (blocking.status === 'wait') await blocking.connect();
      await blocking.blmove(list, list, 'RIGHT', 'RIGHT', this.options.blockTimeoutMs / 1000);
    } catch (err) {
      if (signal.aborted || this.closing !== undefined) return;
      this.logger.warn('kombu redis: blocking wait failed; retrying', { error: String(err) });
      await new Promise((r) => setTimeout(r, 200));
    }
  }

  /**
   * Turn a claimed envelope into a delivery — or park it when its `eta` lies in the future, or
   * dead-letter it when it is not a readable kombu message.
   */
  private async admit(queue: string, json: string, score: string): Promise<KombuDelivery | undefined> {
    let p: ParsedEnvelope;
    try {
      p = parseEnvelope(json);
    } catch (err) {
      // The claim script vetted the tag; anything else unreadable goes to the dead letters.
      const tag = /"delivery_tag":\s*"([^"]+)"/.exec(json)?.[1];
      if (tag !== undefined) await this.moveOut(queue, tag, score, 'left', this.deadRecord(json, `ERR_SERIALIZATION: ${(err as Error).message}`), this.keys.dead(queue));
      return undefined;
    }
    const eta = parseIsoMs(p.headers['eta']);
    if (eta !== null && eta > Date.now()) {
      // Celery holds ETA tasks in worker memory; here the broker holds them until due.
      await this.park(queue, p.tag, null, eta, score);
      return undefined;
    }
    return new KombuDelivery(this, queue, p, json, score);
  }

  /** move.lua for a delivery this process claimed. */
  async moveOut(queue: string, tag: string, score: string, side: 'left' | 'right' | 'none', value: string, dest: string): Promise<boolean> {
    const k = this.keys;
    const r = await this.scripts.move([k.unacked, k.unackedIndex, k.delayed(queue), dest], [tag, 'eq', score, '', side, value, '']);
    return r === 1;
  }

  async extendLease(tag: string, score: string): Promise<string | undefined> {
    const next = scoreNow();
    const r = await this.scripts.extend([this.keys.unackedIndex], [tag, score, next]);
    return r === 1 ? next : undefined;
  }

  deadRecord(envJson: string, reason: string): string {
    return JSON.stringify({ reason, deadAt: Date.now(), message: envJson });
  }

  listFor(queue: string, kombuPriority: number): string {
    return this.keys.list(queue, kombuStep(kombuPriority));
  }

  // ---------------------------------------------------------------------------------------------
  // The sweep: due delayed messages to their queues; visible unacked messages (dead consumers) back.

  private armSweep(delayMs: number): void {
    if (this.closing !== undefined) return;
    this.sweepTimer = setTimeout(() => {
      this.sweepTimer = undefined;
      this.sweeping = this.sweep()
        .catch((err: unknown) => this.logger.warn('kombu redis sweep failed', { error: String(err) }))
        .then((more) => this.armSweep(more === true ? 0 : this.options.sweepIntervalMs));
    }, delayMs);
    this.sweepTimer.unref?.();
  }

  /** One sweep; true when there may be more to do right away. */
  async sweep(): Promise<boolean> {
    let more = false;
    for (const q of this.declared) {
      if (this.closing !== undefined) return false;
      if ((await this.promoteDue(q)) >= SWEEP_BATCH) more = true;
    }
    const r = await this.restoreVisible();
    // Again at once only while progress is made (entries nobody can restore must not spin the loop).
    if (r.found >= SWEEP_BATCH && r.moved > 0) more = true;
    return more;
  }

  /** Move a queue's due delayed messages onto its lists. Returns how many were looked at. */
  private async promoteDue(queue: string): Promise<number> {
    const k = this.keys;
    const tags = await this.main.zrangebyscore(k.delayed(queue), '-inf', Date.now(), 'LIMIT', 0, SWEEP_BATCH);
    for (const tag of tags) {
      const [value, score] = await Promise.all([this.main.hget(k.unacked, tag), this.main.zscore(k.unackedIndex, tag)]);
      if (value === null || score === null) {
        // Restored by someone else (a Python sweep), or purged.
        await this.main.zrem(k.delayed(queue), tag);
        continue;
      }
      let env: KombuEnvelope;
      try {
        env = parseUnacked(value).env;
      } catch {
        await this.main.multi().hdel(k.unacked, tag).zrem(k.unackedIndex, tag).zrem(k.delayed(queue), tag).exec();
        continue;
      }
      const json = serializeEnvelope(env);
      const pri = typeof env.properties.priority === 'number' ? env.properties.priority : 0;
      await this.scripts.move(
        [k.unacked, k.unackedIndex, k.delayed(queue), this.listFor(queue, pri)],
        [tag, 'eq', score, value, 'right', json, ''],
      );
    }
    return tags.length;
  }

  /**
   * kombu's `restore_visible`: deliveries whose index score is older than the visibility timeout
   * (their consumer died, Node or Python) go back to the consuming end of their queue, flagged as
   * redelivered. Under kombu's `unacked_mutex`, so one sweeper at a time (Python's included).
   */
  private async restoreVisible(): Promise<{ found: number; moved: number }> {
    const k = this.keys;
    const cutoff = (Date.now() - this.visibilityTimeoutMs) / 1000;
    const found = await this.main.zrangebyscore(k.unackedIndex, '-inf', cutoff, 'WITHSCORES', 'LIMIT', 0, SWEEP_BATCH);
    if (found.length === 0) return { found: 0, moved: 0 };
    const token = newId();
    const locked = await this.main.set(k.unackedMutex, token, 'PX', 300_000, 'NX');
    if (locked !== 'OK') return { found: 0, moved: 0 };
    let moved = 0;
    try {
      const bindingCache = new Map<string, string[]>();
      for (let i = 0; i + 1 < found.length; i += 2) {
        const tag = found[i]!;
        const score = found[i + 1]!;
        const value = await this.main.hget(k.unacked, tag);
        if (value === null) {
          moved += await this.main.zrem(k.unackedIndex, tag);
          continue;
        }
        let entry: ReturnType<typeof parseUnacked>;
        try {
          entry = parseUnacked(value);
        } catch {
          continue; // not ours to judge; kombu would log and drop it
        }
        const queue = await this.lookup(entry.exchange, entry.routingKey, bindingCache);
        if (queue === undefined) continue;
        const pri = typeof entry.env.properties.priority === 'number' ? entry.env.properties.priority : 0;
        moved += await this.scripts.move(
          [k.unacked, k.unackedIndex, k.delayed(queue), this.listFor(queue, pri)],
          [tag, 'eq', score, value, 'right', serializeEnvelope(markRedelivered(entry.env)), serializeEnvelope(entry.env)],
        );
      }
    } finally {
      await this.scripts.unlock([k.unackedMutex], [token]).catch(() => undefined);
    }
    return { found: found.length / 2, moved };
  }

  /** kombu's `_lookup` for a direct exchange: the anonymous exchange routes by queue name. */
  private async lookup(exchange: string, routingKey: string, cache: Map<string, string[]>): Promise<string | undefined> {
    if (exchange === '') return routingKey === '' ? undefined : routingKey;
    let members = cache.get(exchange);
    if (members === undefined) {
      members = await this.main.smembers(this.keys.binding(exchange));
      cache.set(exchange, members);
    }
    for (const m of members) {
      const [rk, , queue] = m.split(SEP);
      if (rk === routingKey && queue !== undefined && queue !== '') return queue;
    }
    return routingKey === '' ? undefined : routingKey;
  }

  // ---------------------------------------------------------------------------------------------

  async purge(queue: string): Promise<number> {
    this.check();
    const k = this.keys;
    return this.scripts.purge([k.unacked, k.unackedIndex, k.delayed(queue), ...k.lists(queue)], []);
  }

  async stats(queue: string): Promise<QueueStats> {
    this.check();
    const k = this.keys;
    const [lens, delayedTags, dead] = await Promise.all([
      Promise.all(k.lists(queue).map((l) => this.main.llen(l))),
      this.main.zrange(k.delayed(queue), '0', '-1'),
      this.main.llen(k.dead(queue)),
    ]);
    const delayed = new Set(delayedTags);
    // In flight: kombu keeps one `unacked` hash for every queue; count this queue's entries.
    let inFlight = 0;
    let cursor = '0';
    do {
      const [next, flat] = await this.main.hscan(k.unacked, cursor, 'COUNT', 1000);
      cursor = next;
      for (let i = 0; i + 1 < flat.length; i += 2) {
        if (delayed.has(flat[i]!)) continue;
        try {
          const e = parseUnacked(flat[i + 1]!);
          if ((e.exchange === '' ? e.routingKey : e.env.properties.delivery_info.routing_key) === queue) inFlight++;
        } catch {
          // not a kombu entry
        }
      }
    } while (cursor !== '0');
    return { ready: lens.reduce((a, b) => a + b, 0), delayed: delayed.size, inFlight, dead };
  }

  // ---------------------------------------------------------------------------------------------
  // Dead letters (kombu has none): `_celeriac.dead.<queue>`, newest first.

  private async deadList(queue: string, o: DeadLetterOptions = {}): Promise<DeadLetter[]> {
    this.check();
    const limit = o.limit ?? 100;
    const raw = await this.main.lrange(this.keys.dead(queue), 0, limit - 1);
    const out: DeadLetter[] = [];
    for (const r of raw) {
      const d = parseDeadRecord(r);
      if (d === undefined) continue;
      out.push({ id: d.parsed?.tag ?? '', queue, body: d.parsed?.body ?? new Uint8Array(0), headers: d.parsed?.headers ?? {}, reason: d.reason, deadAt: d.deadAt });
    }
    return out;
  }

  private async deadRedrive(queue: string, ids?: readonly string[]): Promise<number> {
    this.check();
    const k = this.keys;
    const want = ids === undefined ? undefined : new Set(ids);
    const raw = await this.main.lrange(k.dead(queue), 0, -1);
    let n = 0;
    // Oldest first, so redriven messages keep their order.
    for (const r of raw.reverse()) {
      const d = parseDeadRecord(r);
      if (d?.parsed === undefined) continue;
      if (want !== undefined && !want.has(d.parsed.tag)) continue;
      const json = serializeEnvelope(d.parsed.env);
      n += await this.scripts.redrive([k.dead(queue), this.listFor(queue, d.parsed.kombuPriority)], [r, json]);
    }
    return n;
  }

  private async deadPurge(queue: string): Promise<number> {
    this.check();
    const key = this.keys.dead(queue);
    const res = await this.main.multi().llen(key).del(key).exec();
    const n = res?.[0]?.[1];
    return typeof n === 'number' ? n : 0;
  }

  /**
   * Publish a Celery monitoring event as kombu's fanout exchange `celeryev` does on Redis: PUBLISH on
   * `/{db}.celeryev/{routing key}` (kombu's `fanout_prefix` and `fanout_patterns`, Celery's defaults),
   * carrying the same envelope as a task. What `celery events` and Flower receive.
   */
  async publishCeleryEvent(routingKey: string, event: Uint8Array, hostname: string): Promise<void> {
    this.check();
    const db = Number(this.url.pathname.replace(/^\//, '') || '0');
    const msg: OutgoingMessage = {
      id: newId(),
      body: event,
      headers: { hostname, [PROP.contentType]: 'application/json', [PROP.contentEncoding]: 'utf-8', [PROP.deliveryMode]: 1 },
    };
    const env = serializeEnvelope(buildEnvelope(msg, 'celeryev', routingKey, 0));
    await this.main.publish(`${this.options.prefix}/${Number.isInteger(db) ? db : 0}.celeryev/${routingKey}`, env);
  }

  // ---------------------------------------------------------------------------------------------

  private async subscribe(channel: string, fn: (body: Uint8Array) => void): Promise<() => Promise<void>> {
    this.check();
    const key = this.keys.broadcast(channel);
    if (this.subscriber === undefined) {
      const sub = this.newClient('celeriac-kombu-subscriber', false);
      sub.on('error', () => undefined);
      sub.on('messageBuffer', (ch: Buffer, message: Buffer) => {
        for (const l of this.channelListeners.get(ch.toString()) ?? []) {
          try {
            l(new Uint8Array(message));
          } catch {
            // a listener's failure is its own
          }
        }
      });
      this.subscriber = sub;
      await sub.connect();
    }
    const sub = this.subscriber;
    let set = this.channelListeners.get(key);
    if (set === undefined) {
      set = new Set();
      this.channelListeners.set(key, set);
      await sub.subscribe(key);
    }
    set.add(fn);
    return async () => {
      const s = this.channelListeners.get(key);
      if (s === undefined || !s.delete(fn) || s.size > 0) return;
      this.channelListeners.delete(key);
      if (sub.status === 'ready') await sub.unsubscribe(key);
    };
  }

  /**
   * Idempotent. Stops the sweep and every consumer (what they claimed but had not handed out goes
   * back at once), gives back unsettled deliveries (kombu's `restore_at_shutdown`), then closes the
   * connections.
   */
  close(): Promise<void> {
    this.closing ??= this.doClose();
    return this.closing;
  }

  private async doClose(): Promise<void> {
    if (this.sweepTimer !== undefined) clearTimeout(this.sweepTimer);
    // Bounded: while Redis does not answer nothing can be given back, so nothing is waited for past
    // the grace; dropping the connections then fails every call still waiting.
    const by = Date.now() + CLOSE_GRACE_MS * 0.75;
    const within = (p: Promise<unknown>) => settleWithin(p, this.main.status === 'ready' ? by - Date.now() : 0);
    const waits: Promise<unknown>[] = [];
    for (const c of this.consumers) {
      c.ac.abort(new CeleriacError(ErrorCode.CLOSED, 'broker closing'));
      if (c.atYield) {
        // Suspended where it handed out a delivery: nothing may resume it; give its claims back here.
        c.blocking.disconnect();
        waits.push(...c.buffer.splice(0).map((d) => d.giveBack()));
      } else waits.push(c.done);
    }
    await within(Promise.allSettled(waits));
    await within(this.sweeping ?? Promise.resolve());
    if (this.connecting !== undefined && this.main.status === 'ready') {
      await within(Promise.allSettled([...this.unsettled].map((d) => d.giveBack(true))));
    }
    this.unsettled.clear();
    for (const c of [this.main, this.subscriber]) {
      if (c === undefined) continue;
      if (c.status === 'ready') await settleWithin(c.quit(), CLOSE_GRACE_MS / 4);
      c.disconnect();
    }
    for (const c of this.consumers) c.blocking.disconnect();
  }
}

function parseDeadRecord(raw: string): { reason: string; deadAt: number | null; parsed: ParsedEnvelope | undefined } | undefined {
  try {
    const r = JSON.parse(raw) as { reason?: unknown; deadAt?: unknown; message?: unknown };
    let parsed: ParsedEnvelope | undefined;
    try {
      parsed = typeof r.message === 'string' ? parseEnvelope(r.message) : undefined;
    } catch {
      parsed = undefined;
    }
    return { reason: typeof r.reason === 'string' ? r.reason : '', deadAt: typeof r.deadAt === 'number' ? r.deadAt : null, parsed };
  } catch {
    return undefined;
  }
}

/** One delivery: its claim score is its ownership token in kombu's `unacked_index`. */
class KombuDelivery implements Delivery {
  readonly id: string;
  readonly body: Uint8Array;
  readonly headers: Headers;
  readonly deliveries: number;
  onSettle: (() => void) | undefined;
  private settled = false;

  constructor(
    private readonly broker: KombuRedisBroker,
    private readonly queue: string,
    private readonly parsed: ParsedEnvelope,
    private readonly json: string,
    private score: string,
  ) {
    this.id = parsed.tag;
    this.body = parsed.body;
    this.headers = parsed.headers;
    this.deliveries = parsed.redelivered ? 2 : 1;
  }

  private done(): void {
    if (this.settled) return;
    this.settled = true;
    this.broker.unsettled.delete(this);
    this.onSettle?.();
  }

  private stale(what: string): CeleriacError {
    return new CeleriacError(ErrorCode.STALE_DELIVERY, `cannot ${what} delivery ${this.id}: its lease was lost (it was restored or delivered again)`);
  }

  async ack(): Promise<void> {
    try {
      if (!(await this.broker.moveOut(this.queue, this.id, this.score, 'none', '', this.broker.keys.dead(this.queue)))) throw this.stale('ack');
    } finally {
      this.done();
    }
  }

  async nack(opts: NackOptions): Promise<void> {
    try {
      const b = this.broker;
      if (!opts.requeue) {
        const record = b.deadRecord(this.json, opts.reason ?? 'rejected');
        if (!(await b.moveOut(this.queue, this.id, this.score, 'left', record, b.keys.dead(this.queue)))) throw this.stale('dead-letter');
        return;
      }
      const again = serializeEnvelope(markRedelivered(this.parsed.env));
      if (opts.delayMs !== undefined && opts.delayMs > 0) {
        const value = unackedValue(again, this.parsed.exchange, this.parsed.routingKey);
        if (!(await b.park(this.queue, this.id, value, Date.now() + opts.delayMs, this.score))) throw this.stale('requeue');
        return;
      }
      // kombu's reject(requeue=True): back of the line, flagged as redelivered.
      const list = b.listFor(this.queue, this.parsed.kombuPriority);
      if (!(await b.moveOut(this.queue, this.id, this.score, 'left', again, list))) throw this.stale('requeue');
    } finally {
      this.done();
    }
  }

  async extend(): Promise<void> {
    if (this.settled) return;
    const next = await this.broker.extendLease(this.id, this.score);
    if (next === undefined) throw this.stale('extend');
    this.score = next;
  }

  /**
   * Put it back at the consuming end (delivered next). `redelivered`: it was handed out (close);
   * otherwise it was only claimed (a stopped consumer's buffer).
   */
  async giveBack(redelivered = false): Promise<void> {
    if (this.settled) return;
    const json = redelivered ? serializeEnvelope(markRedelivered(this.parsed.env)) : this.json;
    try {
      await this.broker.moveOut(this.queue, this.id, this.score, 'right', json, this.broker.listFor(this.queue, this.parsed.kombuPriority));
    } finally {
      this.done();
    }
  }
}

/** The factory for `redis://` URLs in Celery-protocol mode (see `celeryProtocol`). */
export function createKombuRedisBroker(url: URL, options: UrlOptions, context: FactoryContext = {}): KombuRedisBroker {
  return new KombuRedisBroker({
    ...resolveKombuRedisOptions(options),
    url,
    ...(context.logger === undefined ? {} : { logger: context.logger }),
  });
}
