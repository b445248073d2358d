import {
  CeleriacError,
  ErrorCode,
  silentLogger,
  type Broadcast,
  type Broker,
  type BrokerCapabilities,
  type BrokerEvent,
  type BrokerEventSource,
  type ConsumeOptions,
  type DeadLetters,
  type Delivery,
  type FactoryContext,
  type Logger,
  type OutgoingMessage,
  type PublishOptions,
  type QueueSpec,
  type QueueStats,
  type UrlOptions,
} from '@celeriac/core';
import { LinkedList } from '@celeriac/core/transport';
import {
  AckPolicy,
  DeliverPolicy,
  DiscardPolicy,
  JetStreamApiCodes,
  JetStreamApiError,
  RetentionPolicy,
  StorageType,
  jetstreamManager,
  type ConsumerConfig,
  type JetStreamManager,
  type StreamConfig,
} from '@nats-io/jetstream';
import type { Msg, NatsConnection, Subscription } from '@nats-io/transport-node';
import { errorText, openConnection } from './connection.js';
import { NatsDeadLetters } from './dead-letters.js';
import { DelayMover, DUE_HEADER } from './delay-mover.js';
import { encodeFrame, type Envelope } from './frame.js';
import { ACK, jsPublish, MSG_ID_HEADER } from './jetstream-publish.js';
import { Names } from './names.js';
import { Outbox, replyBytes } from './outbox.js';
import { Requester } from './requester.js';
import { brokerOptionsFromUrl, positiveInt, type NatsBrokerOptions } from './options.js';
import { foreignId, reply, WorkConsumer, type ConsumerHost, type NatsDelivery } from './work-consumer.js';

const MS = 1_000_000;
/** Publishes of one `publishBatch` in flight at once. */
const BATCH_WINDOW = 512;

/**
 * celeriac's broker on NATS JetStream (server 2.9 or later), with the v3 `@nats-io/*` client.
 *
 * - One work-queue stream per app (`<prefix>_tasks`), a subject and a durable pull consumer per queue
 *   (and per priority level), explicit acks, `AckWait` = `visibilityTimeoutMs`, renewed by `working()`.
 * - Delays (countdowns, ETAs, retries, delayed nacks) wait in `<prefix>_delayed` and are moved back by
 *   any connected instance when due (see {@link DelayMover}): never in the work consumer's budget.
 * - Dead letters go to `<prefix>_dead` (limits retention) with their reason; list, redrive, purge.
 * - Broadcast over core NATS subjects `<prefix>.bc.<channel>`.
 * - Reconnects forever; after a reconnect it re-declares its streams and consumers, re-issues its
 *   pull requests and reports `{ type: 'reconnected' }`.
 */
export class NatsBroker implements Broker, BrokerEventSource, ConsumerHost {
  readonly name = 'nats';
  readonly capabilities: BrokerCapabilities;
  readonly visibilityTimeoutMs: number;
  readonly names: Names;
  readonly levels: number;
  readonly pullExpiresMs: number;
  readonly pullMaxBytes: number;
  readonly heartbeatMs: number;
  readonly unsettled = new LinkedList<NatsDelivery>();
  readonly outbox = new Outbox();
  readonly deadLetters: DeadLetters;
  readonly broadcast: Broadcast;
  private readonly opts: NatsBrokerOptions;
  private readonly logger: Logger;
  private readonly timeoutMs: number;
  private conn: NatsConnection | undefined;
  private req: Requester | undefined;
  private manager: JetStreamManager | undefined;
  private connecting: Promise<void> | undefined;
  private closing: Promise<void> | undefined;
  private streamsReady: Promise<void> | undefined;
  private readonly queues = new Map<string, Promise<void>>();
  private readonly consumers = new Set<WorkConsumer>();
  private readonly subscriptions = new Set<Subscription>();
  private readonly listeners = new Set<(event: BrokerEvent) => void>();
  private mover: DelayMover | undefined;
  private recovering: Promise<void> = Promise.resolve();
  /** Aborted by close(): ends the pauses between recovery attempts. */
  private readonly closeAbort = new AbortController();

  constructor(
    private readonly url: URL,
    options: NatsBrokerOptions = {},
  ) {
    this.opts = options;
    this.logger = options.logger ?? silentLogger;
    this.names = new Names(options.prefix ?? 'celeriac');
    this.visibilityTimeoutMs = positiveInt('visibilityTimeoutMs', options.visibilityTimeoutMs ?? 30_000, 100);
    const priorities = options.priorities ?? 0;
    if (!Number.isInteger(priorities) || priorities < 0 || priorities === 1 || priorities > 10) {
      throw new RangeError(`priorities must be 0 (none) or 2–10 levels, got ${priorities}`);
    }
    this.levels = Math.max(1, priorities);
    this.pullExpiresMs = positiveInt('pullExpiresMs', options.pullExpiresMs ?? 10_000, 1_000);
    this.heartbeatMs = Math.max(500, Math.min(5_000, Math.floor(this.pullExpiresMs / 2)));
    // A pull never brings more than this, so big messages cannot overrun the client's pending limit.
    this.pullMaxBytes = Math.max(8 * 1024 * 1024, 2 * (options.maxMessageBytes ?? 1_032_192));
    this.timeoutMs = positiveInt('timeoutMs', options.timeoutMs ?? 10_000);
    positiveInt('replicas', options.replicas ?? 1);
    positiveInt('maxAckPending', options.maxAckPending ?? 20_000);
    this.capabilities = {
      delayedDelivery: 'emulated',
      priorities,
      deadLetter: 'emulated',
      redeliveryCount: true,
      broadcast: true,
      maxMessageBytes: positiveInt('maxMessageBytes', options.maxMessageBytes ?? 1_032_192),
      transactionalPublish: false,
    };
    this.deadLetters = new NatsDeadLetters(this);
    this.broadcast = {
      publish: (channel, body) => this.bcPublish(channel, body),
      subscribe: (channel, onMessage) => this.bcSubscribe(channel, onMessage),
    };
  }

  /** The connection (throws when not connected). */
  get nc(): NatsConnection {
    if (this.conn === undefined) throw new CeleriacError(ErrorCode.CONNECTION, 'NATS broker is not connected; call connect() first');
    return this.conn;
  }

  /** Request/reply of the hot paths (throws when not connected). */
  get requester(): Requester {
    if (this.req === undefined) throw new CeleriacError(ErrorCode.CONNECTION, 'NATS broker is not connected; call connect() first');
    return this.req;
  }

  get jsm(): JetStreamManager {
    if (this.manager === undefined) throw new CeleriacError(ErrorCode.CONNECTION, 'NATS broker is not connected; call connect() first');
    return this.manager;
  }

  get requestTimeoutMs(): number {
    return this.timeoutMs;
  }

  onEvent(listener: (event: BrokerEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private emit(event: BrokerEvent): void {
    for (const l of this.listeners) {
      try {
        l(event);
      } catch {
        // a listener's failure is its own
      }
    }
  }

  reportError(err: unknown): void {
    this.logger.warn('NATS broker error', { error: errorText(err) });
    this.emit({ type: 'error', error: err });
  }

  connect(): Promise<void> {
    if (this.closing !== undefined) return Promise.reject(new CeleriacError(ErrorCode.CLOSED, 'broker is closed'));
    this.connecting ??= this.doConnect().catch((err: unknown) => {
      this.connecting = undefined;
      throw err;
    });
    return this.connecting;
  }

  private async doConnect(): Promise<void> {
    const nc = await openConnection(this.url, this.opts);
    try {
      this.manager = await jetstreamManager(nc, { timeout: this.timeoutMs });
      this.conn = nc;
      this.req = new Requester(nc, this.outbox, this.timeoutMs);
      await this.ensureStreams();
    } catch (err) {
      this.conn = undefined;
      this.req?.close();
      this.req = undefined;
      await nc.close().catch(() => undefined);
      throw new CeleriacError(ErrorCode.CONNECTION, `NATS JetStream is not usable: ${errorText(err)}`, { cause: err });
    }
    if (this.closing !== undefined) return;
    this.mover = new DelayMover({
      nc,
      outbox: this.outbox,
      requester: this.req!,
      names: this.names,
      window: 256,
      pullExpiresMs: this.pullExpiresMs,
      heartbeatMs: this.heartbeatMs,
      onError: (err) => this.reportError(err),
    });
    void this.watchStatus(nc);
  }

  private async watchStatus(nc: NatsConnection): Promise<void> {
    for await (const s of nc.status()) {
      if (s.type === 'reconnect') {
        this.logger.info('NATS broker reconnected');
        // One recovery at a time: a second reconnect during one runs another after it.
        this.recovering = this.recovering.then(() => this.recover());
      } else if (s.type === 'error') {
        this.reportError(s.error);
      } else if (s.type === 'disconnect') {
        this.logger.warn('NATS broker disconnected; reconnecting');
        // Answers to requests in flight may never come: resend them after the reconnect.
        this.req?.failAll('disconnected from the NATS server');
      }
    }
  }

  /** After a reconnect: streams and consumers again (a memory stream may be gone), then fresh pull requests. */
  private async recover(): Promise<void> {
    this.streamsReady = undefined;
    const queues = [...this.queues.keys()];
    this.queues.clear();
    for (let attempt = 0; this.closing === undefined; attempt++) {
      try {
        await this.ensureStreams();
        for (const q of queues) await this.ensureQueue(q);
        break;
      } catch (err) {
        this.streamsReady = undefined;
        for (const q of queues) this.queues.delete(q);
        this.logger.warn('NATS broker: JetStream not ready after reconnect; retrying', { error: errorText(err) });
        await pause(Math.min(5_000, 250 * 2 ** attempt), this.closeAbort.signal);
      }
    }
    if (this.closing !== undefined) return;
    for (const c of this.consumers) c.reset();
    this.mover?.reset();
    this.emit({ type: 'reconnected' });
  }

  private streamConfig(name: string, subjects: string, retention: RetentionPolicy, maxAgeMs = 0): Partial<StreamConfig> & { name: string } {
    return {
      name,
      subjects: [subjects],
      retention,
      storage: this.opts.storage === 'memory' ? StorageType.Memory : StorageType.File,
      num_replicas: this.opts.replicas ?? 1,
      discard: DiscardPolicy.Old,
      duplicate_window: (this.opts.duplicateWindowMs ?? 120_000) * MS,
      max_age: maxAgeMs * MS,
    };
  }

  /** Create the app's three streams and the mover's consumer, once per connection. */
  private ensureStreams(): Promise<void> {
    this.streamsReady ??= (async () => {
      const n = this.names;
      await this.ensureStream(this.streamConfig(n.tasksStream, n.tasksSubjects, RetentionPolicy.Workqueue));
      await this.ensureStream(this.streamConfig(n.delayedStream, n.delayedSubjects, RetentionPolicy.Workqueue));
      await this.ensureStream(
        this.streamConfig(n.deadStream, n.deadSubjects, RetentionPolicy.Limits, this.opts.deadLetterMaxAgeMs ?? 0),
      );
      await this.ensureConsumer(n.delayedStream, {
        durable_name: n.moverConsumer,
        ack_policy: AckPolicy.Explicit,
        deliver_policy: DeliverPolicy.All,
        ack_wait: 30_000 * MS,
        // Waiting messages sit in the mover's ack-pending set (nak with delay): never cap it.
        max_ack_pending: -1,
        max_deliver: -1,
        max_waiting: 4096,
      });
    })().catch((err: unknown) => {
      this.streamsReady = undefined;
      throw err;
    });
    return this.streamsReady;
  }

  private async ensureStream(cfg: Partial<StreamConfig> & { name: string }): Promise<void> {
    try {
      await this.jsm.streams.info(cfg.name);
      return;
    } catch (err) {
      if (!(err instanceof JetStreamApiError && err.code === JetStreamApiCodes.StreamNotFound)) throw err;
    }
    try {
      await this.jsm.streams.add(cfg);
    } catch (err) {
      // another instance created it between our info and add
      await this.jsm.streams.info(cfg.name).catch(() => Promise.reject(err as Error));
    }
  }

  private async ensureConsumer(stream: string, cfg: Partial<ConsumerConfig> & { durable_name: string }): Promise<void> {
    let current: ConsumerConfig | undefined;
    try {
      current = (await this.jsm.consumers.info(stream, cfg.durable_name)).config;
    } catch (err) {
      if (!(err instanceof JetStreamApiError && err.code === JetStreamApiCodes.ConsumerNotFound)) throw err;
    }
    if (current === undefined) {
      try {
        await this.jsm.consumers.add(stream, cfg);
        return;
      } catch (err) {
        current = (await this.jsm.consumers.info(stream, cfg.durable_name).catch(() => Promise.reject(err as Error))).config;
      }
    }
    if (current.ack_wait !== cfg.ack_wait || current.max_ack_pending !== cfg.max_ack_pending) {
      const update: Partial<ConsumerConfig> = {};
      if (cfg.ack_wait !== undefined) update.ack_wait = cfg.ack_wait;
      if (cfg.max_ack_pending !== undefined) update.max_ack_pending = cfg.max_ack_pending;
      await this.jsm.consumers.update(stream, cfg.durable_name, update);
    }
  }

  /** The queue's durable consumer (one per priority level), created or updated once per connection. */
  ensureQueue(queue: string): Promise<void> {
    let p = this.queues.get(queue);
    if (p === undefined) {
      p = (async () => {
        await this.ensureStreams();
        for (let level = 0; level < this.levels; level++) {
          await this.ensureConsumer(this.names.tasksStream, {
            durable_name: this.names.consumer(queue, level),
            filter_subject: this.names.task(queue, level),
            ack_policy: AckPolicy.Explicit,
            deliver_policy: DeliverPolicy.All,
            ack_wait: this.visibilityTimeoutMs * MS,
            max_ack_pending: this.opts.maxAckPending ?? 20_000,
            max_deliver: -1,
            max_waiting: 4096,
          });
        }
      })();
      this.queues.set(queue, p);
      p.catch(() => {
        if (this.queues.get(queue) === p) this.queues.delete(queue);
      });
    }
    return p;
  }

  redeclare(queue: string): void {
    if (this.closing !== undefined) return;
    const p = this.queues.get(queue);
    // Only after the first declaration settled: a pending one is already doing it.
    void p?.then(
      () => {
        if (this.queues.get(queue) === p) this.queues.delete(queue);
        this.ensureQueue(queue).catch((err: unknown) => this.reportError(err));
      },
      () => undefined,
    );
  }

  declareQueue(queue: string, _spec?: QueueSpec): Promise<void> {
    return this.ensureQueue(queue);
  }

  private level(priority: number | undefined): number {
    if (priority === undefined || this.levels === 1) return 0;
    return Math.round((priority * (this.levels - 1)) / 9);
  }

  publish(queue: string, msg: OutgoingMessage, opts?: PublishOptions): Promise<void> {
    const delayMs = opts?.delayMs ?? 0;
    const delayed = delayMs > 0;
    let frame: Uint8Array;
    let requester: Requester;
    try {
      requester = this.requester;
      // Straight to the task stream, the id is the `Nats-Msg-Id`; a delayed copy is moved under another.
      frame = encodeFrame({ i: msg.id, h: msg.headers }, msg.body, !delayed);
    } catch (err) {
      return Promise.reject(err as Error);
    }
    const level = this.level(opts?.priority);
    const subject = delayed ? this.names.delayed(queue, level) : this.names.task(queue, level);
    const extra = delayed ? { [DUE_HEADER]: String(Date.now() + delayMs) } : undefined;
    return jsPublish(requester, subject, frame, msg.id, extra).then(() => undefined);
  }

  /** Every message is sent at once (up to 512 acks awaited at a time), in order. */
  async publishBatch(queue: string, msgs: readonly OutgoingMessage[], opts?: PublishOptions): Promise<void> {
    const inflight = new Set<Promise<void>>();
    let failure: unknown;
    for (const m of msgs) {
      if (failure !== undefined) break;
      const p: Promise<void> = this.publish(queue, m, opts).then(
        () => {
          inflight.delete(p);
        },
        (err: unknown) => {
          inflight.delete(p);
          failure ??= err;
        },
      );
      inflight.add(p);
      if (inflight.size >= BATCH_WINDOW) await Promise.race(inflight);
    }
    await Promise.all(inflight);
    if (failure !== undefined) throw failure;
  }

  consume(queue: string, opts: ConsumeOptions): AsyncIterable<Delivery> {
    return {
      [Symbol.asyncIterator]: () => {
        if (this.closing !== undefined) throw new CeleriacError(ErrorCode.CLOSED, 'broker is closed');
        if (this.conn === undefined) throw new CeleriacError(ErrorCode.CONNECTION, 'NATS broker is not connected; call connect() first');
        const c = new WorkConsumer(this, queue, opts.prefetch, opts.signal);
        this.consumers.add(c);
        return c;
      },
    };
  }

  consumerDone(c: WorkConsumer): void {
    this.consumers.delete(c);
  }

  async requeueLater(d: NatsDelivery, delayMs: number): Promise<void> {
    const frame = encodeFrame({ ...d.env, i: d.id, n: d.deliveries }, d.body);
    const due = String(Date.now() + delayMs);
    await jsPublish(this.requester, this.delayedSubjectOf(d), frame, `dl:${d.copyId}`, { [DUE_HEADER]: due });
  }

  async deadLetter(d: NatsDelivery, reason: string): Promise<void> {
    const env: Envelope = { i: d.id, h: d.env.h, r: reason, t: Date.now() };
    const level = /\.p(\d+)$/.exec(d.msg.subject);
    if (level !== null) env.l = Number(level[1]);
    // The envelope is what list() reads; the headers are for people looking with the nats CLI.
    const headers = { 'Celeriac-Reason': headerText(reason), 'Celeriac-Id': headerText(d.id), 'Celeriac-Queue': headerText(d.queue) };
    await jsPublish(this.requester, this.names.dead(d.queue), encodeFrame(env, d.body), `dead:${d.copyId}`, headers);
  }

  quarantine(queue: string, msg: Msg, reason: string): void {
    // Its own Nats-Msg-Id when the foreign client set one, so an operator finds it under that id.
    const id = msg.headers?.get(MSG_ID_HEADER) || foreignId(msg);
    const frame = encodeFrame({ i: id, h: {}, r: `ERR_SERIALIZATION: ${reason}`, t: Date.now() }, msg.data);
    jsPublish(this.requester, this.names.dead(queue), frame, id).then(
      () => reply(this, replyBytes(msg), ACK),
      (err: unknown) => this.reportError(err),
    );
  }

  /** The delay subject for a delivery: same queue and priority level as the subject it came from. */
  private delayedSubjectOf(d: NatsDelivery): string {
    const head = `${this.names.prefix}.tasks.`;
    const s = d.msg.subject;
    return s.startsWith(head) ? `${this.names.prefix}.delayed.${s.slice(head.length)}` : this.names.delayed(d.queue);
  }

  /** Subjects counts of one stream under `<prefix>.<kind>.<queue>` (every priority level). */
  async subjectCounts(stream: string, kind: 'tasks' | 'delayed' | 'dead', queue: string): Promise<number> {
    const base = kind === 'tasks' ? this.names.task(queue) : kind === 'delayed' ? this.names.delayed(queue) : this.names.dead(queue);
    const info = await this.jsm.streams.info(stream, { subjects_filter: `${this.names.prefix}.${kind}.>` });
    let n = 0;
    for (const [subject, count] of Object.entries(info.state.subjects ?? {})) {
      if (subject === base || subject.startsWith(`${base}.`)) n += count;
    }
    return n;
  }

  async purge(queue: string): Promise<number> {
    const n = this.names;
    let purged = 0;
    for (let level = 0; level < this.levels; level++) {
      purged += (await this.jsm.streams.purge(n.tasksStream, { filter: n.task(queue, level) })).purged;
      purged += (await this.jsm.streams.purge(n.delayedStream, { filter: n.delayed(queue, level) })).purged;
    }
    return purged;
  }

  async stats(queue: string): Promise<QueueStats> {
    await this.ensureQueue(queue);
    let ready = 0;
    let inFlight = 0;
    for (let level = 0; level < this.levels; level++) {
      const ci = await this.jsm.consumers.info(this.names.tasksStream, this.names.consumer(queue, level));
      ready += ci.num_pending;
      inFlight += ci.num_ack_pending;
    }
    const delayed = await this.subjectCounts(this.names.delayedStream, 'delayed', queue);
    const dead = await this.subjectCounts(this.names.deadStream, 'dead', queue);
    return { ready, delayed, inFlight, dead };
  }

  private bcPublish(channel: string, body: Uint8Array): Promise<void> {
    try {
      this.nc.publish(this.names.broadcast(channel), body);
      return Promise.resolve();
    } catch (err) {
      return Promise.reject(err as Error);
    }
  }

  private async bcSubscribe(channel: string, onMessage: (body: Uint8Array) => void): Promise<() => Promise<void>> {
    const nc = this.nc;
    const sub = nc.subscribe(this.names.broadcast(channel), {
      callback: (_err, msg) => {
        try {
          onMessage(msg.data);
        } catch (err) {
          this.logger.warn('broadcast subscriber threw', { error: errorText(err) });
        }
      },
    });
    this.subscriptions.add(sub);
    await nc.flush(); // the server knows the subscription before we say we are subscribed
    return async () => {
      if (!this.subscriptions.delete(sub)) return;
      sub.unsubscribe();
      await nc.flush().catch(() => undefined);
    };
  }

  /**
   * Idempotent. Stops consuming, gives back (nak) every delivery claimed or handed out and not settled,
   * lets the delay mover finish the moves under way, and closes the connection.
   */
  close(): Promise<void> {
    this.closing ??= this.doClose();
    return this.closing;
  }

  private async doClose(): Promise<void> {
    this.closeAbort.abort();
    await this.connecting?.catch(() => undefined);
    const consumers = [...this.consumers];
    for (const c of consumers) c.finish();
    await Promise.all([this.mover?.close(), ...consumers.map((c) => c.closed)]);
    for (const d of this.unsettled) d.giveBack();
    for (const sub of this.subscriptions) sub.unsubscribe();
    this.subscriptions.clear();
    this.outbox.flush();
    const nc = this.conn;
    if (nc === undefined || nc.isClosed()) return;
    await nc.flush().catch(() => undefined);
    this.req?.close();
    await nc.close();
    await this.recovering;
  }
}

/** A NATS header value: one line, at most 1 KiB. */
function headerText(s: string): string {
  return s.replace(/[\r\n]+/g, ' ').slice(0, 1024);
}

/** Resolve after `ms`, or at once when `signal` aborts. */
function pause(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
  });
}

/**
 * The factory core's URL table calls for `nats://` brokers:
 * `nats://[user:pass@]host:4222?prefix=myapp&visibilityTimeoutMs=30000&storage=file&replicas=1&maxAckPending=20000`.
 */
export function createNatsBroker(url: URL, options: UrlOptions = {}, context: FactoryContext = {}): NatsBroker {
  const opts = brokerOptionsFromUrl(options);
  if (context.logger !== undefined) opts.logger = context.logger;
  return new NatsBroker(url, opts);
}
