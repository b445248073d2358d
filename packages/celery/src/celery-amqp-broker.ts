import {
  CeleriacError,
  CLOSE_GRACE_MS,
  settleWithin,
  ErrorCode,
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
  type HeaderValue,
  type Logger,
  type NackOptions,
  type OutgoingMessage,
  type PublishOptions,
  type QueueSpec,
  type QueueStats,
  type UrlOptions,
} from '@celeriac/core';
import { connect, type Channel, type ChannelModel, type ConfirmChannel, type ConsumeMessage, type Message, type Options } from 'amqplib';
import { DelayTopology, LEVELS } from './amqp-delay.js';
import { parseOptions } from './options.js';
import { parseIsoMs, PROP, PROPERTY_KEYS } from './wire.js';

/** Options of the Celery-compatible AMQP broker. In a URL they are query parameters. */
export interface CeleryAmqpBrokerOptions {
  /**
   * `x-max-priority` of declared queues. 0 declares them as Celery does by default (no arguments) and
   * refuses priorities; set it to Celery's `task_queue_max_priority` when the Python side sets one,
   * or the two declarations conflict. @default 0
   */
  maxPriority?: number;
  /**
   * Name prefix of this package's own exchanges and queues (delay levels, dead letters, broadcast).
   * @default 'celeriac'
   */
  prefix?: string;
  /** Declare Celery's exchange and binding for each queue (`Exchange(name)`, routing key = name). @default true */
  celeryTopology?: boolean;
  /** @default 134_217_728 (RabbitMQ's default max message size, 128 MiB) */
  maxMessageBytes?: number;
  /** AMQP heartbeat in seconds. @default 60 */
  heartbeat?: number;
}

export type ResolvedCeleryAmqpOptions = Required<CeleryAmqpBrokerOptions>;

const DEFAULTS: ResolvedCeleryAmqpOptions = {
  maxPriority: 0,
  prefix: 'celeriac',
  celeryTopology: true,
  maxMessageBytes: 128 * 1024 * 1024,
  heartbeat: 60,
};

const KINDS = { maxPriority: 'int', prefix: 'string', celeryTopology: 'bool', maxMessageBytes: 'int', heartbeat: 'int' } as const;

export function resolveCeleryAmqpOptions(input: UrlOptions | CeleryAmqpBrokerOptions = {}): ResolvedCeleryAmqpOptions {
  const o = { ...DEFAULTS, ...parseOptions<CeleryAmqpBrokerOptions>('Celery AMQP broker', input, KINDS) };
  if (o.maxPriority > 255) throw new RangeError('maxPriority must be from 0 to 255');
  return o;
}

export interface CeleryAmqpBrokerConfig extends CeleryAmqpBrokerOptions {
  /** @default 'amqp://guest:guest@127.0.0.1:5672' */
  url?: string | URL;
  /** @default silent */
  logger?: Logger;
}

/** Headers RabbitMQ adds when it dead-letters (the delay levels); tables cannot be header values here. */
const DROPPED = /^x-(death|first-death-|last-death-)/;

function toBuffer(body: Uint8Array): Buffer {
  return Buffer.isBuffer(body) ? body : Buffer.from(body.buffer, body.byteOffset, body.byteLength);
}

/**
 * A broker that publishes and consumes exactly as Celery does on RabbitMQ: to the default exchange
 * with the queue as routing key, task headers in `application_headers`, Celery's properties
 * (`correlation_id`, `reply_to`, `delivery_mode` 2, `priority`, `expiration`, content type and
 * encoding), queues declared as Celery declares them (classic, durable, no arguments unless
 * `maxPriority`). Consumers ack after the task ran (celeriac's ack-late; Celery acks early by
 * default).
 *
 * What Celery does not have: delays live in RabbitMQ (binary TTL levels, see {@link DelayTopology};
 * a delivered message whose `eta` lies in the future is moved there instead of being held unacked,
 * so RabbitMQ's `consumer_timeout` never fires on it), and dead letters go to `<prefix>.dead.<queue>`
 * (Celery's queue has no dead-letter exchange, and declaring one would conflict with Celery's
 * declaration).
 */
export class CeleryAmqpBroker implements Broker, BrokerEventSource {
  readonly name = 'celery-amqp';
  readonly capabilities: BrokerCapabilities;
  readonly options: ResolvedCeleryAmqpOptions;
  readonly deadLetters: DeadLetters;
  readonly broadcast: Broadcast;
  readonly delays: DelayTopology;
  private readonly url: URL;
  private readonly logger: Logger;
  private conn: ChannelModel | undefined;
  private connecting: Promise<ChannelModel> | undefined;
  private pub: ConfirmChannel | undefined;
  private admin: Channel | undefined;
  private readonly listeners = new Set<(e: BrokerEvent) => void>();
  private readonly declaredQueues = new Set<string>();
  private topology: Promise<void> | undefined;
  /** Running consumers; `atYield`: suspended where it handed out a delivery (only its caller resumes it). */
  private readonly consumers = new Set<{ ac: AbortController; atYield: boolean; done: Promise<void> }>();
  /** Every open consumer channel: closed one by one before the connection (see `doClose`). */
  private readonly channels = new Set<Channel>();
  /** Per queue: deliveries this broker holds unsettled (stats.inFlight; RabbitMQ tells only its management API). */
  private readonly inFlight = new Map<string, number>();
  private everConnected = false;
  private closing: Promise<void> | undefined;

  constructor(config: CeleryAmqpBrokerConfig = {}) {
    const { url, logger, ...opts } = config;
    this.options = resolveCeleryAmqpOptions(opts);
    this.url = new URL(url ?? 'amqp://guest:guest@127.0.0.1:5672');
    this.logger = logger ?? silentLogger;
    this.delays = new DelayTopology(`${this.options.prefix}.delay`);
    this.capabilities = {
      delayedDelivery: 'emulated',
      priorities: this.options.maxPriority > 0 ? Math.min(10, this.options.maxPriority + 1) : 0,
      deadLetter: 'emulated',
      redeliveryCount: false,
      broadcast: true,
      maxMessageBytes: this.options.maxMessageBytes,
      transactionalPublish: false,
    };
    this.deadLetters = {
      list: (q, o) => this.deadList(q, o),
      redrive: (q, ids) => this.deadRedrive(q, ids),
      purge: (q) => this.deadPurge(q),
    };
    this.broadcast = {
      publish: (channel, body) => this.broadcastPublish(channel, body),
      subscribe: (channel, fn) => this.broadcastSubscribe(channel, fn),
    };
  }

  onEvent(listener: (event: BrokerEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private emit(e: BrokerEvent): void {
    if (e.type === 'error') this.logger.warn('celery amqp broker error', { error: String(e.error) });
    for (const l of this.listeners) l(e);
  }

  async connect(): Promise<void> {
    await this.connection();
  }

  /** The live connection, (re)connecting when there is none. */
  private connection(): Promise<ChannelModel> {
    if (this.closing !== undefined) return Promise.reject(new CeleriacError(ErrorCode.CLOSED, 'broker is closed'));
    if (this.conn !== undefined) return Promise.resolve(this.conn);
    this.connecting ??= (async () => {
      const u = new URL(this.url.href);
      u.searchParams.set('heartbeat', String(this.options.heartbeat));
      const conn = await connect(u.href, { clientProperties: { connection_name: 'celeriac-celery' } });
      conn.on('error', (err: Error) => this.emit({ type: 'error', error: err }));
      conn.on('close', () => {
        if (this.conn === conn) {
          this.conn = undefined;
          this.pub = undefined;
          this.admin = undefined;
          this.topology = undefined;
        }
      });
      const pub = await conn.createConfirmChannel();
      pub.on('error', (err: Error) => this.emit({ type: 'error', error: err }));
      pub.on('close', () => {
        if (this.pub === pub) this.pub = undefined;
      });
      this.conn = conn;
      this.pub = pub;
      if (this.everConnected) this.emit({ type: 'reconnected' });
      this.everConnected = true;
      return conn;
    })().finally(() => {
      this.connecting = undefined;
    });
    return this.connecting;
  }

  private async publisher(): Promise<ConfirmChannel> {
    const conn = await this.connection();
    if (this.pub === undefined) {
      const pub = await conn.createConfirmChannel();
      pub.on('error', (err: Error) => this.emit({ type: 'error', error: err }));
      pub.on('close', () => {
        if (this.pub === pub) this.pub = undefined;
      });
      this.pub = pub;
    }
    return this.pub;
  }

  /** A channel for declarations and checks; a failed check (404) closes it, so one is made again. */
  private async adminChannel(): Promise<Channel> {
    const conn = await this.connection();
    if (this.admin === undefined) {
      const ch = await conn.createChannel();
      ch.on('error', () => undefined);
      ch.on('close', () => {
        if (this.admin === ch) this.admin = undefined;
      });
      this.admin = ch;
    }
    return this.admin;
  }

  private ensureTopology(): Promise<void> {
    this.topology ??= (async () => {
      const ch = await this.adminChannel();
      await this.delays.declare(ch);
    })().catch((err: unknown) => {
      this.topology = undefined;
      throw err;
    });
    return this.topology;
  }

  deadQueue(queue: string): string {
    return `${this.options.prefix}.dead.${queue}`;
  }

  private queueArgs(): Options.AssertQueue {
    return this.options.maxPriority > 0 ? { durable: true, arguments: { 'x-max-priority': this.options.maxPriority } } : { durable: true };
  }

  async declareQueue(queue: string, _spec?: QueueSpec): Promise<void> {
    await this.ensureTopology();
    const ch = await this.adminChannel();
    // As kombu declares Celery's queue: durable, not exclusive, not auto-delete, no arguments.
    await ch.assertQueue(queue, this.queueArgs());
    if (this.options.celeryTopology) {
      await ch.assertExchange(queue, 'direct', { durable: true });
      await ch.bindQueue(queue, queue, queue);
    }
    await this.delays.bind(ch, queue);
    await ch.assertQueue(this.deadQueue(queue), { durable: true });
    this.declaredQueues.add(queue);
  }

  /** AMQP properties and application headers of a message (PROP keys become properties). */
  private publishOptions(msg: OutgoingMessage, opts: PublishOptions | undefined, delayed: boolean): Options.Publish {
    const h = msg.headers;
    const headers: Record<string, HeaderValue> = {};
    for (const k in h) if (!PROPERTY_KEYS.has(k)) headers[k] = h[k]!;
    const o: Options.Publish = { headers, messageId: msg.id, deliveryMode: 2 };
    const str = (k: string) => (typeof h[k] === 'string' ? (h[k] as string) : undefined);
    const ct = str(PROP.contentType);
    const ce = str(PROP.contentEncoding);
    const corr = str(PROP.correlationId);
    const reply = str(PROP.replyTo);
    if (ct !== undefined) o.contentType = ct;
    if (ce !== undefined) o.contentEncoding = ce;
    if (corr !== undefined) o.correlationId = corr;
    if (reply !== undefined && reply !== '') o.replyTo = reply;
    if (typeof h[PROP.deliveryMode] === 'number') o.deliveryMode = h[PROP.deliveryMode] as number;
    const header = h[PROP.priority];
    const priority = opts?.priority ?? (typeof header === 'number' ? header : undefined);
    if (priority !== undefined && this.options.maxPriority > 0) o.priority = Math.min(priority, this.options.maxPriority);
    // Celery sets `expiration` from `expires`; RabbitMQ then drops the message once expired. Not on
    // the way through the delay levels, where it would expire early and skip ahead.
    const exp = str(PROP.expiration);
    if (exp !== undefined && !delayed) o.expiration = exp;
    return o;
  }

  private async send(ch: ConfirmChannel, exchange: string, routingKey: string, body: Buffer, options: Options.Publish): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      ch.publish(exchange, routingKey, body, options, (err: unknown) => (err === null || err === undefined ? resolve() : reject(err as Error)));
    });
  }

  async publish(queue: string, msg: OutgoingMessage, opts?: PublishOptions): Promise<void> {
    const delayMs = opts?.delayMs ?? 0;
    const options = this.publishOptions(msg, opts, delayMs > 0);
    const ch = await this.publisher();
    if (delayMs > 0) {
      await this.ensureTopology();
      await this.send(ch, this.delays.entry, this.delays.routingKey(queue, delayMs), toBuffer(msg.body), options);
    } else {
      // Celery's "anon-exchange": the default exchange, routing key = queue name.
      await this.send(ch, '', queue, toBuffer(msg.body), options);
    }
  }

  async publishBatch(queue: string, msgs: readonly OutgoingMessage[], opts?: PublishOptions): Promise<void> {
    // Confirms are awaited together: one round trip for the batch.
    await Promise.all(msgs.map((m) => this.publish(queue, m, opts)));
  }

  /** Re-publish a delivered message (same properties and headers) with a delay, as a new message. */
  async republishDelayed(queue: string, m: Message, delayMs: number, extraHeaders: Record<string, HeaderValue> = {}): Promise<void> {
    const p = m.properties;
    const headers: Record<string, unknown> = {};
    for (const [k, v] of Object.entries((p.headers ?? {}) as Record<string, unknown>)) if (!DROPPED.test(k)) headers[k] = v;
    Object.assign(headers, extraHeaders);
    const options: Options.Publish = { headers, messageId: newId(), deliveryMode: (p.deliveryMode as number | undefined) ?? 2 };
    if (typeof p.contentType === 'string') options.contentType = p.contentType;
    if (typeof p.contentEncoding === 'string') options.contentEncoding = p.contentEncoding;
    if (typeof p.correlationId === 'string') options.correlationId = p.correlationId;
    if (typeof p.replyTo === 'string') options.replyTo = p.replyTo;
    if (typeof p.priority === 'number') options.priority = p.priority;
    const ch = await this.publisher();
    await this.ensureTopology();
    await this.send(ch, this.delays.entry, this.delays.routingKey(queue, delayMs), m.content, options);
  }

  /** Publish a copy to the queue's dead letters with the reason. */
  async deadLetter(queue: string, m: Message, reason: string): Promise<void> {
    const p = m.properties;
    const headers: Record<string, unknown> = {};
    for (const [k, v] of Object.entries((p.headers ?? {}) as Record<string, unknown>)) if (!DROPPED.test(k)) headers[k] = v;
    headers['x-celeriac-reason'] = reason;
    headers['x-celeriac-dead-at'] = Date.now();
    const options: Options.Publish = { headers, messageId: (p.messageId as string | undefined) ?? newId(), deliveryMode: 2 };
    if (typeof p.contentType === 'string') options.contentType = p.contentType;
    if (typeof p.contentEncoding === 'string') options.contentEncoding = p.contentEncoding;
    if (typeof p.correlationId === 'string') options.correlationId = p.correlationId;
    if (typeof p.replyTo === 'string') options.replyTo = p.replyTo;
    if (typeof p.priority === 'number') options.priority = p.priority;
    const ch = await this.publisher();
    await this.send(ch, '', this.deadQueue(queue), m.content, options);
  }

  countInFlight(queue: string, by: number): void {
    this.inFlight.set(queue, (this.inFlight.get(queue) ?? 0) + by);
  }

  consume(queue: string, opts: ConsumeOptions): AsyncIterable<Delivery> {
    const ac = new AbortController();
    const outer = opts.signal;
    const onAbort = () => ac.abort(outer?.reason);
    if (outer?.aborted === true) ac.abort(outer.reason);
    else outer?.addEventListener('abort', onAbort, { once: true });
    return { [Symbol.asyncIterator]: () => this.consumeLoop(queue, opts.prefetch, ac, () => outer?.removeEventListener('abort', onAbort)) };
  }

  private async *consumeLoop(queue: string, prefetch: number, ac: AbortController, detach: () => void): AsyncGenerator<Delivery> {
    if (this.closing !== undefined) throw new CeleriacError(ErrorCode.CLOSED, 'broker is closed');
    const conn = await this.connection();
    const ch = await conn.createChannel();
    const signal = ac.signal;
    let finished!: () => void;
    const state = { ac, atYield: false, done: new Promise<void>((r) => (finished = r)) };
    this.channels.add(ch);
    ch.once('close', () => this.channels.delete(ch));
    this.consumers.add(state);
    const buffer: ConsumeMessage[] = [];
    let wake: (() => void) | undefined;
    let failure: Error | undefined;
    const poke = () => {
      const w = wake;
      wake = undefined;
      w?.();
    };
    ch.on('error', (err: Error) => {
      failure = err;
      poke();
    });
    ch.on('close', () => {
      failure ??= new CeleriacError(ErrorCode.CONNECTION, `channel of consumer on ${queue} closed`, { retryable: true });
      poke();
    });
    signal.addEventListener('abort', poke, { once: true });
    const open = new Set<AmqpDelivery>();
    let tag: string | undefined;
    try {
      await ch.prefetch(prefetch);
      const ok = await ch.consume(queue, (m) => {
        if (m === null) {
          failure ??= new CeleriacError(ErrorCode.CONNECTION, `consumer on ${queue} was cancelled by the server`, { retryable: true });
        } else buffer.push(m);
        poke();
      });
      tag = ok.consumerTag;
      while (!signal.aborted) {
        if (failure !== undefined) throw failure;
        const m = buffer.shift();
        if (m === undefined) {
          await new Promise<void>((r) => {
            wake = r;
            if (signal.aborted || failure !== undefined || buffer.length > 0) poke();
          });
          continue;
        }
        const eta = parseIsoMs(m.properties.headers?.['eta']);
        if (eta !== null && eta > Date.now()) {
          // Celery would hold it unacked until its ETA (and meet consumer_timeout); RabbitMQ holds it.
          await this.republishDelayed(queue, m, eta - Date.now());
          ch.ack(m);
          continue;
        }
        const d = new AmqpDelivery(this, ch, queue, m, () => {
          open.delete(d);
          poke();
        });
        open.add(d);
        this.countInFlight(queue, 1);
        state.atYield = true;
        yield d;
        state.atYield = false;
      }
    } finally {
      state.atYield = false;
      detach();
      this.consumers.delete(state);
      if (tag !== undefined) await ch.cancel(tag).catch(() => undefined);
      // Received but never handed out: back to the queue at once.
      for (const m of buffer.splice(0)) {
        try {
          ch.nack(m, false, true);
        } catch {
          // the channel is gone: RabbitMQ requeued them
        }
      }
      finished();
      // Handed out and not settled: the channel stays open until they are (closing it would requeue
      // them), in the background — the consumer has ended; the broker's close ends the wait.
      void (async () => {
        while (open.size > 0 && failure === undefined && this.closing === undefined) {
          await new Promise<void>((r) => {
            const w = () => {
              this.closeWaiters.delete(w);
              r();
            };
            wake = w;
            this.closeWaiters.add(w);
          });
        }
        await ch.close().catch(() => undefined);
      })();
    }
  }

  private readonly closeWaiters = new Set<() => void>();

  /** Ready messages of the queue, and its messages waiting in the delay levels. */
  async purge(queue: string): Promise<number> {
    const ch = await this.adminChannel();
    const r = await ch.purgeQueue(queue);
    return r.messageCount + (await this.purgeDelayed(queue));
  }

  /**
   * The delay levels are shared by every queue: take this queue's messages out one by one (by the
   * queue name at the end of their routing key); the others go back when the channel closes, with
   * their expiry unchanged.
   */
  private async purgeDelayed(queue: string): Promise<number> {
    const admin = await this.adminChannel();
    const counts = await Promise.all(Array.from({ length: LEVELS }, (_, k) => admin.checkQueue(this.delays.queue(k))));
    if (counts.every((c) => c.messageCount === 0)) return 0;
    const conn = await this.connection();
    const ch = await conn.createChannel();
    let n = 0;
    try {
      for (let k = 0; k < LEVELS; k++) {
        for (let i = 0; i < counts[k]!.messageCount; i++) {
          const m = await ch.get(this.delays.queue(k), { noAck: false });
          if (m === false) break;
          if (m.fields.routingKey.endsWith(`.${queue}`) && m.fields.routingKey.split('.').length === LEVELS + queue.split('.').length) {
            ch.ack(m);
            n++;
          }
        }
      }
    } finally {
      await ch.close().catch(() => undefined);
    }
    return n;
  }

  async stats(queue: string): Promise<QueueStats> {
    const ch = await this.adminChannel();
    const [q, dead, delayed] = await Promise.all([ch.checkQueue(queue), ch.checkQueue(this.deadQueue(queue)), this.delays.waiting(ch)]);
    return { ready: q.messageCount, delayed, inFlight: this.inFlight.get(queue) ?? 0, dead: dead.messageCount };
  }

  private async deadList(queue: string, o: DeadLetterOptions = {}): Promise<DeadLetter[]> {
    const conn = await this.connection();
    const ch = await conn.createChannel();
    const out: DeadLetter[] = [];
    try {
      // Read without taking: every message got here goes back when the channel closes.
      const limit = o.limit ?? 100;
      while (out.length < limit) {
        const m = await ch.get(this.deadQueue(queue), { noAck: false });
        if (m === false) break;
        const h = deliveryHeaders(m);
        out.push({
          id: messageIdOf(m),
          queue,
          body: new Uint8Array(m.content),
          headers: h,
          reason: typeof h['x-celeriac-reason'] === 'string' ? h['x-celeriac-reason'] : '',
          deadAt: typeof h['x-celeriac-dead-at'] === 'number' ? h['x-celeriac-dead-at'] : null,
        });
      }
    } finally {
      await ch.close().catch(() => undefined);
    }
    return out;
  }

  private async deadRedrive(queue: string, ids?: readonly string[]): Promise<number> {
    const want = ids === undefined ? undefined : new Set(ids);
    const conn = await this.connection();
    const ch = await conn.createChannel();
    let n = 0;
    try {
      for (;;) {
        const m = await ch.get(this.deadQueue(queue), { noAck: false });
        if (m === false) break;
        if (want !== undefined && !want.has(messageIdOf(m))) continue;
        const p = m.properties;
        const headers: Record<string, unknown> = {};
        for (const [k, v] of Object.entries((p.headers ?? {}) as Record<string, unknown>)) {
          if (!k.startsWith('x-celeriac-') && !DROPPED.test(k)) headers[k] = v;
        }
        const options: Options.Publish = { headers, messageId: (p.messageId as string | undefined) ?? newId(), deliveryMode: 2 };
        if (typeof p.contentType === 'string') options.contentType = p.contentType;
        if (typeof p.contentEncoding === 'string') options.contentEncoding = p.contentEncoding;
        if (typeof p.correlationId === 'string') options.correlationId = p.correlationId;
        if (typeof p.replyTo === 'string') options.replyTo = p.replyTo;
        await this.send(await this.publisher(), '', queue, m.content, options);
        ch.ack(m);
        n++;
      }
    } finally {
      await ch.close().catch(() => undefined);
    }
    return n;
  }

  private async deadPurge(queue: string): Promise<number> {
    const ch = await this.adminChannel();
    return (await ch.purgeQueue(this.deadQueue(queue))).messageCount;
  }

  /**
   * Publish a Celery monitoring event as Celery does on RabbitMQ: to the topic exchange `celeryev`,
   * routing key = event type with `-` → `.`, `delivery_mode` 1, the hostname in the headers.
   */
  async publishCeleryEvent(routingKey: string, event: Uint8Array, hostname: string): Promise<void> {
    if (!this.eventsExchange) {
      const admin = await this.adminChannel();
      await admin.assertExchange('celeryev', 'topic', { durable: true });
      this.eventsExchange = true;
    }
    const ch = await this.publisher();
    await this.send(ch, 'celeryev', routingKey, toBuffer(event), {
      headers: { hostname },
      contentType: 'application/json',
      contentEncoding: 'utf-8',
      deliveryMode: 1,
    });
  }

  private eventsExchange = false;

  /** One direct exchange carries every broadcast channel (the routing key is the channel). */
  private get broadcastExchange(): string {
    return `${this.options.prefix}.broadcast`;
  }

  private async broadcastPublish(channel: string, body: Uint8Array): Promise<void> {
    const admin = await this.adminChannel();
    await admin.assertExchange(this.broadcastExchange, 'direct', { durable: false });
    const ch = await this.publisher();
    await this.send(ch, this.broadcastExchange, channel, toBuffer(body), { deliveryMode: 1 });
  }

  private async broadcastSubscribe(channel: string, fn: (body: Uint8Array) => void): Promise<() => Promise<void>> {
    const conn = await this.connection();
    const ch = await conn.createChannel();
    ch.on('error', () => undefined);
    await ch.assertExchange(this.broadcastExchange, 'direct', { durable: false });
    const q = await ch.assertQueue('', { exclusive: true, autoDelete: true });
    await ch.bindQueue(q.queue, this.broadcastExchange, channel);
    await ch.consume(
      q.queue,
      (m) => {
        if (m === null) return;
        try {
          fn(new Uint8Array(m.content));
        } catch {
          // a listener's failure is its own
        }
      },
      { noAck: true },
    );
    return async () => {
      await ch.close().catch(() => undefined);
    };
  }

  /** Idempotent. Consumers stop; unsettled deliveries go back to their queues when the connection closes. */
  close(): Promise<void> {
    this.closing ??= this.doClose();
    return this.closing;
  }

  private async doClose(): Promise<void> {
    const waits: Promise<void>[] = [];
    for (const c of this.consumers) {
      c.ac.abort(new CeleriacError(ErrorCode.CLOSED, 'broker closing'));
      // One suspended at `yield` cannot be resumed from here; its channel is closed below.
      if (!c.atYield) waits.push(c.done);
    }
    for (const w of this.closeWaiters) w();
    this.closeWaiters.clear();
    await settleWithin(Promise.allSettled(waits), CLOSE_GRACE_MS / 4);
    // Every consumer channel closes before the connection: its close-ok comes after RabbitMQ processed
    // the acks sent on it (amqplib does not order frames across channels, so a connection close could
    // overtake acks still queued on a channel, and RabbitMQ would requeue acked messages).
    await settleWithin(Promise.allSettled([...this.channels].map(closeChannel)), CLOSE_GRACE_MS / 4);
    await this.connecting?.catch(() => undefined);
    const conn = this.conn;
    this.conn = undefined;
    if (conn !== undefined) await conn.close().catch(() => undefined);
  }
}

/** Close a channel and wait for it to be closed, whoever started closing it. */
function closeChannel(ch: Channel): Promise<void> {
  return new Promise<void>((resolve) => {
    ch.once('close', () => resolve());
    ch.close().catch(() => undefined);
  });
}

function messageIdOf(m: Message): string {
  const p = m.properties;
  return (p.messageId as string | undefined) ?? (p.correlationId as string | undefined) ?? `${m.fields.deliveryTag}`;
}

/** A delivered message's headers: application headers plus the properties under the PROP names. */
function deliveryHeaders(m: Message): Headers {
  const p = m.properties;
  const out: Headers = {};
  for (const [k, v] of Object.entries((p.headers ?? {}) as Record<string, unknown>)) {
    if (!DROPPED.test(k)) out[k] = v as HeaderValue;
  }
  if (typeof p.contentType === 'string') out[PROP.contentType] = p.contentType;
  if (typeof p.contentEncoding === 'string') out[PROP.contentEncoding] = p.contentEncoding;
  if (typeof p.correlationId === 'string') out[PROP.correlationId] = p.correlationId;
  if (typeof p.replyTo === 'string') out[PROP.replyTo] = p.replyTo;
  if (typeof p.deliveryMode === 'number') out[PROP.deliveryMode] = p.deliveryMode;
  if (typeof p.priority === 'number') out[PROP.priority] = p.priority;
  if (typeof p.expiration === 'string') out[PROP.expiration] = p.expiration;
  return out;
}

class AmqpDelivery implements Delivery {
  readonly id: string;
  readonly body: Uint8Array;
  readonly headers: Headers;
  readonly deliveries: number;
  private settled = false;

  constructor(
    private readonly broker: CeleryAmqpBroker,
    private readonly ch: Channel,
    private readonly queue: string,
    private readonly m: ConsumeMessage,
    private readonly onSettle: () => void,
  ) {
    this.id = messageIdOf(m);
    this.body = new Uint8Array(m.content.buffer, m.content.byteOffset, m.content.byteLength);
    this.headers = deliveryHeaders(m);
    this.deliveries = m.fields.redelivered || this.headers['redelivered'] === true ? 2 : 1;
  }

  private done(): void {
    if (this.settled) return;
    this.settled = true;
    this.broker.countInFlight(this.queue, -1);
    this.onSettle();
  }

  private channelCall(fn: () => void): void {
    try {
      fn();
    } catch (err) {
      throw new CeleriacError(ErrorCode.STALE_DELIVERY, `delivery ${this.id}: its channel is closed (RabbitMQ requeued it)`, { cause: err });
    }
  }

  async ack(): Promise<void> {
    try {
      this.channelCall(() => this.ch.ack(this.m));
    } finally {
      this.done();
    }
  }

  async nack(opts: NackOptions): Promise<void> {
    try {
      if (!opts.requeue) {
        await this.broker.deadLetter(this.queue, this.m, opts.reason ?? 'rejected');
        this.channelCall(() => this.ch.ack(this.m));
      } else if (opts.delayMs !== undefined && opts.delayMs > 0) {
        await this.broker.republishDelayed(this.queue, this.m, opts.delayMs, { redelivered: true });
        this.channelCall(() => this.ch.ack(this.m));
      } else {
        this.channelCall(() => this.ch.nack(this.m, false, true));
      }
    } finally {
      this.done();
    }
  }
}

/** The factory for `amqp://` URLs in Celery-protocol mode. */
export function createCeleryAmqpBroker(url: URL, options: UrlOptions, context: FactoryContext = {}): CeleryAmqpBroker {
  const u = new URL(url.href);
  u.search = '';
  return new CeleryAmqpBroker({
    ...resolveCeleryAmqpOptions(options),
    url: u,
    ...(context.logger === undefined ? {} : { logger: context.logger }),
  });
}
