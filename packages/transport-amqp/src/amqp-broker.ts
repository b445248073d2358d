import type { Channel, ChannelModel, Message, Options } from 'amqplib';
import {
  CeleriacError,
  CLOSE_GRACE_MS,
  settleWithin,
  ErrorCode,
  silentLogger,
  systemClock,
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
  type OutgoingMessage,
  type PublishOptions,
  type QueueSpec,
  type QueueStats,
  type UrlOptions,
} from '@celeriac/core';
import { encodeHeaderFrame } from '@celeriac/core/transport';
import { AmqpBroadcast } from './broadcast.js';
import { AmqpConsumer, type ConsumerHost } from './consumer.js';
import { delayRoutingKey, planDelay, queueWord } from './delay-plan.js';
import { deathOf, FRAME_TYPE, H, readMessage, userHeaders } from './headers.js';
import { errText, Link } from './link.js';
import { driverUrl, optionsFromUrl, resolveOptions, type AmqpBrokerOptions, type ResolvedOptions } from './options.js';
import {
  delayExchangeTopology,
  levelTopology,
  Names,
  prefixTopology,
  queueTopology,
  type Declaration,
  type QueueType,
} from './topology.js';

/** Code of the error a declaration gets when RabbitMQ refuses it (an existing queue with other arguments). */
export const ERR_TOPOLOGY = 'ERR_TOPOLOGY';

/**
 * The RabbitMQ broker (AMQP 0-9-1 on amqplib). Durable queues, persistent messages, publisher confirms
 * with a window of publishes in flight, per-consumer prefetch, dead letters with their reason, delays
 * held by RabbitMQ in TTL level queues, broadcast, and recovery from lost connections and channels.
 *
 * Not provided: a visibility timeout. A delivery stays with its consumer's channel until it is settled
 * or the channel closes (then RabbitMQ requeues it at once). RabbitMQ's `consumer_timeout` (30 min by
 * default on 3.10) closes the channel of a consumer that holds a delivery longer; see the README.
 */
export class AmqpBroker implements Broker, BrokerEventSource, ConsumerHost {
  readonly name = 'amqp';
  readonly capabilities: BrokerCapabilities;
  /** Undefined: AMQP has no lease; an unacked delivery returns when its channel closes. */
  readonly visibilityTimeoutMs = undefined;
  readonly options: ResolvedOptions;
  readonly names: Names;
  readonly link: Link;
  readonly deadLetters: DeadLetters;
  readonly broadcast: AmqpBroadcast;
  private prefixReady: Promise<void> | undefined;
  private delayExchangesReady: Promise<void> | undefined;
  private readonly queues = new Map<string, Promise<void>>();
  private readonly readyQueues = new Set<string>();
  private readonly levels = new Map<string, Promise<void>>();
  private readonly readyLevels = new Set<string>();
  private readonly consumers = new Set<AmqpConsumer>();
  private readonly stopped = new Set<AmqpConsumer>();
  private readonly inFlight = new Map<string, number>();
  private closing: Promise<void> | undefined;

  /**
   * @param url `amqp://user:pass@host:port/vhost`; query parameters amqplib knows (heartbeat,
   *   frameMax, channelMax) are passed on, this transport's own are read by `createAmqpBroker`.
   */
  constructor(url: string | URL, options: AmqpBrokerOptions = {}, context: FactoryContext = {}) {
    this.options = resolveOptions(options);
    this.names = new Names(this.options.prefix);
    this.capabilities = {
      delayedDelivery: 'native',
      priorities: this.options.queueType === 'classic' ? 10 : 0,
      deadLetter: 'native',
      redeliveryCount: true,
      broadcast: true,
      maxMessageBytes: this.options.maxMessageBytes,
      transactionalPublish: false,
    };
    const u = typeof url === 'string' ? new URL(url) : url;
    this.link = new Link({
      url: driverUrl(u),
      connectTimeoutMs: this.options.connectTimeoutMs,
      reconnectMaxDelayMs: this.options.reconnectMaxDelayMs,
      confirmWindow: this.options.confirmWindow,
      clock: context.clock ?? systemClock,
      logger: context.logger ?? options.logger ?? silentLogger,
      setup: (link) => this.setup(link),
    });
    // A returned message means a queue we thought declared is gone: declare again on next use.
    this.link.publisher.onReturned = () => this.forgetDeclarations();
    this.broadcast = new AmqpBroadcast({
      link: this.link,
      exchange: this.names.broadcastExchange,
      ensurePrefix: () => this.ensurePrefix(),
    });
    this.deadLetters = {
      list: (queue, opts) => this.listDead(queue, opts),
      redrive: (queue, ids) => this.redrive(queue, ids),
      purge: (queue) => this.purgeDead(queue),
    };
  }

  get queueType(): QueueType {
    return this.options.queueType;
  }

  get reconnectMaxDelayMs(): number {
    return this.options.reconnectMaxDelayMs;
  }

  onEvent(listener: (event: BrokerEvent) => void): () => void {
    return this.link.onEvent(listener);
  }

  connect(opts?: { signal?: AbortSignal }): Promise<void> {
    return this.link.connect(opts?.signal);
  }

  /** Idempotent. Waits briefly for unconfirmed publishes (up to `connectTimeoutMs` with `drain`). */
  close(opts?: { drain?: boolean }): Promise<void> {
    this.closing ??= (async () => {
      const consumers = [...this.consumers, ...this.stopped];
      this.consumers.clear();
      this.stopped.clear();
      // Channels first, each waiting for its close-ok, so acks already sent are processed before the
      // connection goes (amqplib does not order frames across channels).
      // While the connection is down nothing can be sent: the channels are gone and RabbitMQ has
      // requeued their deliveries already, so there is nothing to wait for (an outage never holds close).
      const up = this.link.isOpen;
      const lanes = Promise.all(consumers.map((c) => c.shutdown()));
      await settleWithin(lanes, up ? CLOSE_GRACE_MS / 2 : 0);
      await settleWithin(this.broadcast.close().catch(() => undefined), up ? CLOSE_GRACE_MS / 4 : 0);
      await this.link.close(!this.link.isOpen ? 0 : opts?.drain === true ? this.options.connectTimeoutMs : CLOSE_GRACE_MS / 4);
    })();
    return this.closing;
  }

  // ---- topology ----------------------------------------------------------------------------

  private async setup(link: Link): Promise<void> {
    const conn = link.connection!;
    const hadDelays = this.delayExchangesReady !== undefined;
    this.prefixReady = undefined;
    this.delayExchangesReady = undefined;
    const known = [...this.queues.keys()];
    const knownLevels = [...this.levels.keys()];
    this.forgetDeclarations();
    await this.ensurePrefix(conn);
    if (hadDelays) await this.ensureDelayExchanges(conn);
    const report = (err: unknown) => this.link.emit({ type: 'error', error: err });
    await Promise.all(known.map((q) => this.ensureQueue(q, conn).catch(report)));
    await Promise.all(knownLevels.map((q) => this.ensureLevels(q, conn).catch(report)));
  }

  private forgetDeclarations(): void {
    this.queues.clear();
    this.readyQueues.clear();
    this.levels.clear();
    this.readyLevels.clear();
  }

  /** Declare the exchanges every queue of the prefix uses (once per connection). */
  ensurePrefix(conn?: ChannelModel): Promise<void> {
    this.prefixReady ??= this.once(() => this.declareAll(prefixTopology(this.names), conn), () => {
      this.prefixReady = undefined;
    });
    return this.prefixReady;
  }

  private ensureDelayExchanges(conn?: ChannelModel): Promise<void> {
    this.delayExchangesReady ??= this.once(() => this.declareAll(delayExchangeTopology(this.names), conn), () => {
      this.delayExchangesReady = undefined;
    });
    return this.delayExchangesReady;
  }

  /** Run a declaration; forget it when it fails, so the next call tries again. */
  private once(run: () => Promise<void>, forget: () => void): Promise<void> {
    const p = run();
    p.catch(forget);
    return p;
  }

  /** Declare a logical queue's work and dead-letter queues (once per connection). */
  ensureQueue(queue: string, conn?: ChannelModel): Promise<void> {
    return this.cached(this.queues, this.readyQueues, queue, () => {
      const decls = queueTopology(this.names, queue, this.options);
      return this.ensurePrefix(conn).then(() => this.declareAll(decls, conn));
    });
  }

  /** Declare a logical queue's 32 delay level queues (on its first delay, stats or purge). */
  ensureLevels(queue: string, conn?: ChannelModel): Promise<void> {
    return this.cached(this.levels, this.readyLevels, queue, () => {
      const decls = levelTopology(this.names, queue, this.options);
      return Promise.all([this.ensureQueue(queue, conn), this.ensureDelayExchanges(conn)]).then(() => this.declareAll(decls, conn));
    });
  }

  private cached(map: Map<string, Promise<void>>, ready: Set<string>, queue: string, declare: () => Promise<void>): Promise<void> {
    let p = map.get(queue);
    if (p === undefined) {
      try {
        p = declare();
      } catch (err) {
        return Promise.reject(err as Error);
      }
      const mine = p;
      map.set(queue, p);
      p.then(
        () => {
          if (map.get(queue) === mine) ready.add(queue);
        },
        () => {
          if (map.get(queue) === mine) map.delete(queue);
        },
      );
    }
    return p;
  }

  invalidateQueue(queue: string): void {
    this.queues.delete(queue);
    this.readyQueues.delete(queue);
    this.levels.delete(queue);
    this.readyLevels.delete(queue);
  }

  /** Exchanges and queues first, then bindings; spread over the admin channels. */
  private async declareAll(decls: readonly Declaration[], conn?: ChannelModel): Promise<void> {
    const run = async (d: Declaration): Promise<void> => {
      await this.link.withAdmin(async (ch: Channel) => {
        switch (d.kind) {
          case 'exchange':
            await ch.assertExchange(d.name, d.type, { durable: d.durable });
            return;
          case 'queue':
            await ch.assertQueue(d.name, { durable: true, arguments: d.args });
            return;
          case 'bind-queue':
            await ch.bindQueue(d.queue, d.exchange, d.key);
            return;
          case 'bind-exchange':
            await ch.bindExchange(d.destination, d.source, d.key);
            return;
        }
      }, conn);
    };
    const phase = async (items: Declaration[]) => {
      try {
        await allOrServerError(items.map(run));
      } catch (err) {
        throw declareError(err);
      }
    };
    await phase(decls.filter((d) => d.kind === 'exchange' || d.kind === 'queue'));
    await phase(decls.filter((d) => d.kind === 'bind-queue' || d.kind === 'bind-exchange'));
  }

  declareQueue(queue: string, _spec?: QueueSpec): Promise<void> {
    // Classic queues are always declared with x-max-priority 9 and quorum queues never take one, so
    // the spec changes nothing (declaring the same queue with other arguments would be refused).
    return this.ensureQueue(queue);
  }

  workQueue(queue: string): string {
    return this.names.work(queue);
  }

  // ---- publishing --------------------------------------------------------------------------

  publish(queue: string, msg: OutgoingMessage, opts?: PublishOptions): Promise<void> {
    if (this.closing !== undefined) return Promise.reject(new CeleriacError(ErrorCode.CLOSED, 'broker is closed'));
    const props: Options.Publish = { persistent: true, mandatory: true, messageId: msg.id, type: FRAME_TYPE };
    if (opts?.priority !== undefined && this.options.queueType === 'classic') props.priority = opts.priority;
    const content = encodeHeaderFrame(msg.headers, msg.body);
    const delayMs = opts?.delayMs ?? 0;
    if (delayMs > 0 ? this.readyLevels.has(queue) : this.readyQueues.has(queue)) return this.send(queue, content, props, delayMs);
    return (delayMs > 0 ? this.ensureLevels(queue) : this.ensureQueue(queue)).then(() => this.send(queue, content, props, delayMs));
  }

  publishBatch(queue: string, msgs: readonly OutgoingMessage[], opts?: PublishOptions): Promise<void> {
    return Promise.all(msgs.map((m) => this.publish(queue, m, opts))).then(() => undefined);
  }

  /** Straight to the work queue, or into the delay levels (then `props.headers` gets the remainder). */
  private send(queue: string, content: Buffer, props: Options.Publish, delayMs: number): Promise<void> {
    const plan = delayMs > 0 ? planDelay(delayMs) : undefined;
    if (plan === undefined) return this.link.publisher.publish('', this.names.work(queue), content, props);
    const headers: Record<string, unknown> = { ...(props.headers as Record<string, unknown> | undefined) };
    if (plan.restMs > 0) headers[H.delayRest] = plan.restMs;
    else delete headers[H.delayRest];
    if (Object.keys(headers).length > 0) props.headers = headers;
    else delete props.headers;
    return this.link.publisher.publish(this.names.levelExchange(plan.entryLevel), delayRoutingKey(queueWord(queue), plan), content, props);
  }

  /**
   * A copy of a received message: same id, content, application headers and priority. A frame keeps its
   * headers in the content; a message another client published keeps its application headers in the table.
   */
  private copyProps(m: Message, extra: Record<string, unknown>): Options.Publish {
    const framed = m.properties.type === FRAME_TYPE;
    const headers: Record<string, unknown> = framed ? { ...extra } : { ...userHeaders(m.properties.headers as Record<string, unknown> | undefined), ...extra };
    const props: Options.Publish = { persistent: true, mandatory: true };
    if (Object.keys(headers).length > 0) props.headers = headers;
    if (framed) props.type = FRAME_TYPE;
    const id = m.properties.messageId as string | undefined;
    if (id !== undefined) props.messageId = id;
    const priority = m.properties.priority as number | undefined;
    if (typeof priority === 'number' && this.options.queueType === 'classic') props.priority = priority;
    return props;
  }

  async republish(queue: string, m: Message, handedOut: number, delayMs: number): Promise<void> {
    await (delayMs > 0 ? this.ensureLevels(queue) : this.ensureQueue(queue));
    await this.send(queue, m.content, this.copyProps(m, { [H.deliveries]: handedOut }), delayMs);
  }

  async deadLetter(queue: string, m: Message, handedOut: number, reason: string): Promise<void> {
    await this.ensureQueue(queue);
    const props = this.copyProps(m, { [H.deliveries]: handedOut, [H.reason]: reason, [H.deadAt]: Date.now() });
    await this.link.publisher.publish(this.names.deadExchange, queue, m.content, props);
  }

  // ---- consuming ---------------------------------------------------------------------------

  consume(queue: string, opts: ConsumeOptions): AsyncIterable<Delivery> {
    return {
      [Symbol.asyncIterator]: () => {
        if (this.closing !== undefined) throw new CeleriacError(ErrorCode.CLOSED, 'broker is closed');
        const c = new AmqpConsumer(this, queue, opts.prefetch, opts.signal);
        this.consumers.add(c);
        return c;
      },
    };
  }

  countInFlight(queue: string, delta: number): void {
    const n = (this.inFlight.get(queue) ?? 0) + delta;
    if (n <= 0) this.inFlight.delete(queue);
    else this.inFlight.set(queue, n);
  }

  /** A stopped consumer may still hold deliveries on open channels: keep it until close. */
  forget(consumer: AmqpConsumer): void {
    this.consumers.delete(consumer);
    this.stopped.add(consumer);
  }

  released(consumer: AmqpConsumer): void {
    this.stopped.delete(consumer);
  }

  // ---- inspection and maintenance ------------------------------------------------------------

  private async count(name: string): Promise<number> {
    return (await this.link.withAdmin((ch) => ch.checkQueue(name))).messageCount;
  }

  /** ready and dead from RabbitMQ; delayed sums the queue's delay levels; inFlight is this connection's. */
  stats(queue: string): Promise<QueueStats> {
    return this.onQueues(queue, async () => {
      const [ready, dead, ...levels] = await allOrServerError(this.names.queuesOf(queue).map((n) => this.count(n)));
      return {
        ready: ready!,
        delayed: levels.reduce((a, b) => a + b, 0),
        inFlight: this.inFlight.get(queue) ?? 0,
        dead: dead!,
      };
    });
  }

  /** Removes ready and delayed messages (not those held unacked by consumers, nor dead letters). */
  purge(queue: string): Promise<number> {
    return this.onQueues(queue, async () => {
      const names = this.names.queuesOf(queue).filter((n) => n !== this.names.dead(queue));
      const counts = await allOrServerError(names.map((n) => this.link.withAdmin((ch) => ch.purgeQueue(n))));
      return counts.reduce((a, r) => a + r.messageCount, 0);
    });
  }

  /**
   * Run `fn` on a queue's declared queues; if one of them turns out to be gone (deleted behind our
   * back), declare them again and run it once more.
   */
  private async onQueues<T>(queue: string, fn: () => Promise<T>): Promise<T> {
    await this.ensureLevels(queue);
    try {
      return await fn();
    } catch (err) {
      if ((err as { code?: unknown }).code !== 404) throw err;
      this.invalidateQueue(queue);
      await this.ensureLevels(queue);
      return fn();
    }
  }

  private toDeadLetter(queue: string, m: Message): DeadLetter {
    const raw = m.properties.headers as Record<string, unknown> | undefined;
    const { reason, deadAt } = deathOf(raw);
    const { headers, body } = readMessage(m.content, m.properties);
    return {
      id: (m.properties.messageId as string | undefined) ?? '',
      queue,
      body,
      headers,
      reason,
      deadAt,
    };
  }

  /**
   * Reads dead letters with `basic.get` (no ack) on a private channel, then closes the channel so
   * RabbitMQ puts every one back where it was: nothing is lost or reordered. Not isolated from a
   * concurrent list or redrive, which may briefly not see the messages this one holds.
   */
  private async listDead(queue: string, opts?: DeadLetterOptions): Promise<DeadLetter[]> {
    const limit = opts?.limit ?? 100;
    if (!Number.isInteger(limit) || limit < 0) throw new RangeError(`limit must be an integer >= 0, got ${String(limit)}`);
    await this.ensureQueue(queue);
    const conn = await this.link.ready();
    const ch = await conn.createChannel();
    ch.on('error', () => undefined);
    const deadName = this.names.dead(queue);
    const out: DeadLetter[] = [];
    try {
      const { messageCount } = await ch.checkQueue(deadName);
      for (let i = 0; i < Math.min(limit, messageCount); i++) {
        const m = await ch.get(deadName, { noAck: false });
        if (m === false) break;
        out.push(this.toDeadLetter(queue, m));
      }
    } finally {
      await this.giveBack(ch, deadName, out.length);
    }
    return out;
  }

  /**
   * Close a channel that holds `held` unacked messages of `queue` and wait (briefly) until RabbitMQ has
   * put them back: quorum queues requeue asynchronously, after the channel's close-ok, and a list
   * followed at once by a redrive must see them.
   */
  private async giveBack(ch: Channel, queue: string, held: number): Promise<void> {
    let before = 0;
    if (held > 0) before = (await ch.checkQueue(queue).catch(() => ({ messageCount: 0 }))).messageCount;
    await ch.close().catch(() => undefined);
    if (held === 0) return;
    for (let waited = 0; waited < 2000; waited += 10) {
      const now = await this.count(queue).catch(() => Infinity);
      if (now >= before + held) return;
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  /**
   * Moves dead letters back: each one (or each with one of `ids`) is published to the work queue with
   * its delivery count reset, confirmed, then acked in the dead-letter queue; the others go back
   * untouched when the private channel closes. A crash in between leaves a duplicate, never a loss.
   */
  private async redrive(queue: string, ids?: readonly string[]): Promise<number> {
    await this.ensureQueue(queue);
    const wanted = ids === undefined ? undefined : new Set(ids);
    const conn = await this.link.ready();
    const ch = await conn.createConfirmChannel();
    ch.on('error', () => undefined);
    let moved: number;
    let kept = 0;
    const take: Message[] = [];
    try {
      const deadName = this.names.dead(queue);
      const { messageCount } = await ch.checkQueue(deadName);
      for (let i = 0; i < messageCount; i++) {
        const m = await ch.get(deadName, { noAck: false });
        if (m === false) break;
        const id = (m.properties.messageId as string | undefined) ?? '';
        if (wanted !== undefined && !wanted.has(id)) {
          kept++;
          continue;
        }
        take.push(m);
        ch.publish('', this.names.work(queue), m.content, this.copyProps(m, {}));
      }
      if (take.length > 0) await ch.waitForConfirms();
      for (const m of take) ch.ack(m);
      moved = take.length;
    } catch (err) {
      throw new CeleriacError(ErrorCode.CONNECTION, `redrive of "${queue}" failed: ${errText(err)}`, { cause: err, retryable: true });
    } finally {
      await this.giveBack(ch, this.names.dead(queue), kept);
    }
    return moved;
  }

  private async purgeDead(queue: string): Promise<number> {
    await this.ensureQueue(queue);
    const r = await this.link.withAdmin((ch) => ch.purgeQueue(this.names.dead(queue)));
    return r.messageCount;
  }

  /** Delete every queue of these logical queues (tests and tooling; not part of the Broker contract). */
  async deleteQueues(queues: readonly string[]): Promise<void> {
    const names = queues.flatMap((q) => this.names.queuesOf(q));
    await Promise.all(names.map((n) => this.link.withAdmin((ch) => ch.deleteQueue(n))));
    for (const q of queues) this.invalidateQueue(q);
  }

  /**
   * Delete the prefix's shared exchanges (after its queues). One at a time: RabbitMQ 3.10 can crash
   * the connection when exchanges bound to each other are deleted concurrently.
   */
  async deleteExchanges(): Promise<void> {
    const names = this.names.exchanges().reverse();
    await this.link.withAdmin(async (ch) => {
      for (const n of names) await ch.deleteExchange(n);
    });
    this.prefixReady = undefined;
    this.delayExchangesReady = undefined;
  }
}

/**
 * Like Promise.all, but when several fail (operations sharing a channel all fail once a server error
 * closes it) it throws the server's error, which says what went wrong, rather than "channel ended".
 */
async function allOrServerError<T>(promises: readonly Promise<T>[]): Promise<T[]> {
  const results = await Promise.allSettled(promises);
  const failures = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected').map((r) => r.reason as unknown);
  if (failures.length > 0) throw failures.find((e) => typeof (e as { code?: unknown }).code === 'number') ?? failures[0];
  return results.map((r) => (r as PromiseFulfilledResult<T>).value);
}

function declareError(err: unknown): Error {
  if (err instanceof CeleriacError) return err;
  const code = (err as { code?: unknown }).code;
  if (code === 406) {
    return new CeleriacError(
      ERR_TOPOLOGY,
      `RabbitMQ refused a declaration (${errText(err)}); a queue of that name exists with other arguments, ` +
        'e.g. another queueType: use another prefix or delete the old queues',
      { cause: err, retryable: false },
    );
  }
  if (code === 403) return new CeleriacError(ERR_TOPOLOGY, `RabbitMQ refused access: ${errText(err)}`, { cause: err, retryable: false });
  return new CeleriacError(ErrorCode.CONNECTION, `declaring the topology failed: ${errText(err)}`, { cause: err, retryable: true });
}

/**
 * The factory core's URL table calls for `amqp:` and `amqps:` URLs:
 * `amqp://guest:guest@127.0.0.1:5672?queueType=classic&prefix=myapp`.
 */
export function createAmqpBroker(url: URL, options: UrlOptions, context: FactoryContext): AmqpBroker {
  return new AmqpBroker(url, optionsFromUrl(options), context);
}

/** The capabilities a broker with this queue type declares, without connecting (docs and tests read it). */
export function capabilitiesFor(queueType: QueueType): BrokerCapabilities {
  return new AmqpBroker('amqp://localhost', { queueType }).capabilities;
}
