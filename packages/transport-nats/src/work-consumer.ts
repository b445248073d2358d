import { type Delivery, type Headers, type NackOptions } from '@celeriac/core';
import { SETTLED, type LinkedList } from '@celeriac/core/transport';
import type { Msg, NatsConnection } from '@nats-io/transport-node';
import { decodeFrame, type Envelope, type Frame } from './frame.js';
import { ACK, MSG_ID_HEADER, NAK, WPI, ackDelivered, parseAckSubject } from './jetstream-publish.js';
import type { Names } from './names.js';
import { replyBytes, type Outbox } from './outbox.js';
import { Puller } from './puller.js';

/** Where acks are written: the connection, through the outbox that coalesces writes. */
export interface Writer {
  readonly nc: NatsConnection;
  readonly outbox: Outbox;
}

/** What a consumer needs from its broker. */
export interface ConsumerHost extends Writer {
  readonly names: Names;
  /** Priority levels (1 = none). */
  readonly levels: number;
  readonly pullExpiresMs: number;
  readonly heartbeatMs: number;
  /** Bytes one pull may bring at most. */
  readonly pullMaxBytes: number;
  ensureQueue(queue: string): Promise<void>;
  /** Declare the queue's consumers again (after "consumer deleted" or a lost memory stream). */
  redeclare(queue: string): void;
  /** Move a delivery to the delay stream, then ack it. */
  requeueLater(d: NatsDelivery, delayMs: number): Promise<void>;
  /** Copy a delivery to the dead-letter stream with its reason (the caller acks it). */
  deadLetter(d: NatsDelivery, reason: string): Promise<void>;
  /** Dead-letter a message that is not a celeriac frame, then ack it. */
  quarantine(queue: string, msg: Msg, reason: string): void;
  /** Deliveries handed out and not settled, for giving back at close. */
  unsettled: LinkedList<NatsDelivery>;
  consumerDone(c: WorkConsumer): void;
  reportError(err: unknown): void;
}

/**
 * Publish an ack verb to a delivery's reply subject (its bytes), in this turn's coalesced write. A
 * closed connection means the lease runs out and the server delivers the message again after AckWait.
 * Nothing for a message without a reply subject: there is nothing to ack.
 */
export function reply(w: Writer, subject: Uint8Array | undefined, verb: string): void {
  if (subject !== undefined) w.outbox.reply(w.nc, subject, verb);
}

/** The id of a message no celeriac publish named: where it was delivered from. */
export function foreignId(msg: Msg): string {
  return `foreign:${msg.reply ?? msg.subject}`;
}

/** One JetStream delivery. Settling publishes the ack verb to its reply subject. */
export class NatsDelivery implements Delivery {
  private readonly frame: Frame;
  readonly headers: Readonly<Headers>;
  readonly deliveries: number;
  /** The reply subject the ack verbs go to, as the client read it. */
  private readonly replyTo: Uint8Array | undefined;
  /** Links of the broker's list of unsettled deliveries. */
  prev: NatsDelivery | undefined;
  next: NatsDelivery | undefined;
  private settled = false;

  constructor(
    private readonly host: ConsumerHost,
    private readonly owner: WorkConsumer | undefined,
    readonly queue: string,
    readonly msg: Msg,
  ) {
    const frame = decodeFrame(msg.data);
    this.frame = frame;
    this.headers = frame.env.h;
    this.replyTo = replyBytes(msg);
    this.deliveries = (frame.env.n ?? 0) + (ackDelivered(this.replyTo) ?? 1);
    host.unsettled.add(this);
  }

  /**
   * A view, not a copy, cut out when first asked (core does not ask when the body came parsed): every
   * socket read is a fresh buffer (the client never reuses one), so the bytes stay as they are while
   * the delivery lives.
   */
  get body(): Uint8Array {
    return this.frame.body;
  }

  get parsedBody(): unknown {
    return this.frame.parsed;
  }

  /** The frame's envelope (the id, the delivery count before this copy, every celeriac header). */
  get env(): Envelope {
    return this.frame.env;
  }

  /** The id it was published with: in the envelope, or (read once, when asked) its `Nats-Msg-Id`. */
  get id(): string {
    return (this.env.i ??= this.msg.headers?.get(MSG_ID_HEADER) || foreignId(this.msg));
  }

  /** Seq and store time of this copy, for ids of its moves that stay the same when a move is retried. */
  get copyId(): string {
    const info = parseAckSubject(this.msg.reply ?? '');
    return info === undefined ? `${this.msg.subject}:${this.id}` : `${info.stream}:${info.streamSeq}:${info.timestampNs}`;
  }

  private done(): void {
    if (this.settled) return;
    this.settled = true;
    this.host.unsettled.delete(this);
    this.owner?.settled();
  }

  ack(): Promise<void> {
    reply(this.host, this.replyTo, ACK);
    this.done();
    return SETTLED;
  }

  async nack(opts: NackOptions): Promise<void> {
    try {
      if (!opts.requeue) {
        await this.host.deadLetter(this, opts.reason ?? 'rejected');
        reply(this.host, this.replyTo, ACK);
      } else if (opts.delayMs !== undefined && opts.delayMs > 0) {
        await this.host.requeueLater(this, opts.delayMs);
        reply(this.host, this.replyTo, ACK);
      } else {
        reply(this.host, this.replyTo, NAK);
      }
    } finally {
      // On a failed move the message stays unacked and comes back after AckWait: never lost.
      this.done();
    }
  }

  extend(): Promise<void> {
    if (!this.settled) reply(this.host, this.replyTo, WPI);
    return Promise.resolve();
  }

  /** Give back at once, without settling through core (shutdown of the broker). */
  giveBack(): void {
    if (this.settled) return;
    reply(this.host, this.replyTo, NAK);
    this.done();
  }
}

/**
 * One `consume()` of one queue. Holds at most `prefetch` deliveries claimed and unsettled (buffered
 * plus handed out), and never asks the server for more than `prefetch − held` at a time.
 *
 * Without priorities, a long-poll pull request asks for the free slots; a new request goes out when a
 * quarter of the slots are free again (or none is open), so a busy consumer costs a request per batch,
 * not per message. With priority levels, free slots are filled by no-wait requests from the most
 * urgent level down; when every level is empty, a one-message long poll waits on each level, and the
 * first arrival restarts the scan from the top. A message that would exceed `prefetch` (two long polls
 * answered at once) is given back at once.
 */
export class WorkConsumer implements AsyncIterator<Delivery> {
  private readonly buffer: Msg[] = [];
  private head = 0;
  private unsettledCount = 0;
  private finished = false;
  private ready = false;
  private waiter: { resolve(r: IteratorResult<Delivery>): void; reject(err: unknown): void } | undefined;
  private failure: unknown;
  private readonly pullers: Puller[] = [];
  private readonly threshold: number;
  private backoffTimer: NodeJS.Timeout | undefined;
  private backoffMs = 0;
  /** Priority scan: the level to poll next (-1: every level is long-polled), and the no-wait request in flight. */
  private scanLevel: number;
  private scan: { level: number; id: number; asked: number; got: number } | undefined;
  private readonly onAbort = () => this.finish();
  /** Resolves once a finished consumer's pull requests are cancelled. */
  closed: Promise<void> = Promise.resolve();

  constructor(
    private readonly host: ConsumerHost,
    readonly queue: string,
    private readonly prefetch: number,
    private readonly signal: AbortSignal | undefined,
  ) {
    this.threshold = Math.max(1, Math.floor(prefetch / 4));
    this.scanLevel = host.levels - 1;
    if (signal?.aborted === true) {
      this.finished = true;
      return;
    }
    signal?.addEventListener('abort', this.onAbort, { once: true });
    host.ensureQueue(queue).then(
      () => {
        if (this.finished) return;
        for (let level = 0; level < host.levels; level++) this.pullers.push(this.makePuller(level));
        this.ready = true;
        this.pump();
      },
      (err: unknown) => {
        this.failure = err;
        this.wake();
      },
    );
  }

  private makePuller(level: number): Puller {
    return new Puller({
      nc: this.host.nc,
      stream: this.host.names.tasksStream,
      consumer: this.host.names.consumer(this.queue, level),
      expiresMs: this.host.pullExpiresMs,
      heartbeatMs: this.host.heartbeatMs,
      maxBytes: this.host.pullMaxBytes,
      defer: (write) => this.host.outbox.push(write),
      onMessage: (msg, id) => this.onMessage(msg, level, id),
      onEnded: (id, failure) => this.onEnded(level, id, failure),
    });
  }

  private get held(): number {
    return this.unsettledCount + (this.buffer.length - this.head);
  }

  private onMessage(msg: Msg, level: number, requestId: number): void {
    if (this.scan !== undefined && requestId === this.scan.id) this.scan.got++;
    else if (this.host.levels > 1) this.scanLevel = this.host.levels - 1; // a long poll answered: scan again
    if (this.finished || this.held >= this.prefetch) {
      reply(this.host, replyBytes(msg), NAK);
      return;
    }
    this.buffer.push(msg);
    this.wake();
  }

  private onEnded(level: number, requestId: number | undefined, failure?: { code: number; description: string }): void {
    const scan = this.scan;
    if (scan !== undefined && scan.level === level && (requestId === scan.id || !this.pullers[level]!.isOpen(scan.id))) {
      this.scan = undefined;
      // Fewer than asked: this level is empty for now, go one level down (below 0: long-poll every level).
      if (scan.got < scan.asked) this.scanLevel = level - 1;
    }
    if (failure !== undefined) {
      // 409 (limits, consumer deleted) or 503 (no JetStream yet): back off, and make sure the consumer exists.
      this.host.redeclare(this.queue);
      this.backoffMs = Math.min(5_000, Math.max(250, this.backoffMs * 2));
      if (this.backoffTimer === undefined && !this.finished) {
        this.backoffTimer = setTimeout(() => {
          this.backoffTimer = undefined;
          this.pump();
        }, this.backoffMs);
      }
      return;
    }
    this.backoffMs = 0;
    this.pump();
  }

  /** Ask for more if there is room. */
  pump(): void {
    if (this.finished || !this.ready || this.backoffTimer !== undefined) return;
    if (this.host.levels === 1) {
      const p = this.pullers[0]!;
      const free = this.prefetch - this.held - p.outstanding;
      if (free > 0 && (p.outstanding === 0 || free >= this.threshold)) p.request(free);
      return;
    }
    if (this.scan !== undefined) return;
    const free = this.prefetch - this.held;
    if (free <= 0) return;
    if (this.scanLevel >= 0) {
      const level = this.scanLevel;
      const id = this.pullers[level]!.request(free, true);
      if (id !== undefined) this.scan = { level, id, asked: free, got: 0 };
      return;
    }
    for (const p of this.pullers) if (p.outstanding === 0) p.request(1);
  }

  /** Called by a delivery once it is settled: its slot is free. */
  settled(): void {
    this.unsettledCount--;
    if (this.host.levels > 1 && this.scanLevel >= 0) this.scanLevel = this.host.levels - 1;
    this.pump();
  }

  /** After a reconnect: the server may have lost our requests. */
  reset(): void {
    for (const p of this.pullers) p.reset();
    this.scan = undefined;
    this.scanLevel = this.host.levels - 1;
    this.pump();
  }

  private take(): NatsDelivery | undefined {
    while (this.head < this.buffer.length) {
      const msg = this.buffer[this.head]!;
      this.buffer[this.head++] = undefined as unknown as Msg;
      if (this.head > 256 && this.head * 2 > this.buffer.length) {
        this.buffer.splice(0, this.head);
        this.head = 0;
      }
      try {
        const d = new NatsDelivery(this.host, this, this.queue, msg);
        this.unsettledCount++;
        return d;
      } catch (err) {
        // Not a celeriac frame: nothing can run it; keep it out of the way in the dead-letter stream.
        this.host.quarantine(this.queue, msg, err instanceof Error ? err.message : String(err));
      }
    }
    return undefined;
  }

  private wake(): void {
    const w = this.waiter;
    if (w === undefined) return;
    if (this.failure !== undefined) {
      this.waiter = undefined;
      const err = this.failure;
      this.finish();
      w.reject(err);
      return;
    }
    const d = this.take();
    if (d !== undefined) {
      this.waiter = undefined;
      w.resolve({ done: false, value: d });
      this.pump();
    } else if (this.finished) {
      this.waiter = undefined;
      w.resolve({ done: true, value: undefined });
    }
  }

  next(): Promise<IteratorResult<Delivery>> {
    if (this.failure !== undefined) {
      const err = this.failure;
      this.finish();
      return Promise.reject(err as Error);
    }
    if (this.finished) return Promise.resolve({ done: true, value: undefined });
    const d = this.take();
    if (d !== undefined) {
      this.pump();
      return Promise.resolve({ done: false, value: d });
    }
    return new Promise((resolve, reject) => {
      this.waiter = { resolve, reject };
      this.pump();
    });
  }

  /** A buffered delivery without a promise (core's fast path), or undefined when `next()` must wait. */
  takeSync(): Delivery | undefined {
    if (this.failure !== undefined || this.finished || this.waiter !== undefined) return undefined;
    const d = this.take();
    if (d !== undefined) this.pump();
    return d;
  }

  return(): Promise<IteratorResult<Delivery>> {
    this.finish();
    return Promise.resolve({ done: true, value: undefined });
  }

  /**
   * Stop pulling and give back whatever was claimed but not handed out (also what arrives while the
   * pull requests are being cancelled). Handed-out deliveries stay valid. `closed` resolves once the
   * cancellations are confirmed.
   */
  finish(): void {
    if (this.finished) return;
    this.finished = true;
    this.signal?.removeEventListener('abort', this.onAbort);
    if (this.backoffTimer !== undefined) clearTimeout(this.backoffTimer);
    this.backoffTimer = undefined;
    this.closed = Promise.all(this.pullers.map((p) => p.close())).then(() => undefined);
    for (let i = this.head; i < this.buffer.length; i++) reply(this.host, replyBytes(this.buffer[i]!), NAK);
    this.buffer.length = 0;
    this.head = 0;
    this.host.consumerDone(this);
    this.wake();
  }
}
