import type { Channel, ConsumeMessage, Message } from 'amqplib';
import { CeleriacError, ErrorCode, type Clock, type Delivery, type Headers, type NackOptions, type TimerHandle } from '@celeriac/core';
import { LinkedList, SETTLED } from '@celeriac/core/transport';
import { AckBatcher, type AckEntry } from './ack-batcher.js';
import { H, intHeader, readMessage } from './headers.js';
import { errText, type Link } from './link.js';
import type { QueueType } from './topology.js';

/** What a consumer needs from its broker. */
export interface ConsumerHost {
  readonly link: Link;
  readonly queueType: QueueType;
  readonly reconnectMaxDelayMs: number;
  workQueue(queue: string): string;
  ensureQueue(queue: string): Promise<void>;
  /** Forget that the queue was declared (it was deleted under us): the next ensureQueue declares it again. */
  invalidateQueue(queue: string): void;
  /** Publish a copy of `m` to the queue (after `delayMs`), counting `handedOut` earlier deliveries. */
  republish(queue: string, m: Message, handedOut: number, delayMs: number): Promise<void>;
  /** Publish a copy of `m` to the queue's dead letters with `reason`. */
  deadLetter(queue: string, m: Message, handedOut: number, reason: string): Promise<void>;
  countInFlight(queue: string, delta: number): void;
  forget(consumer: AmqpConsumer): void;
  /** A stopped consumer's last channel has closed. */
  released(consumer: AmqpConsumer): void;
}

/** Server errors that retrying cannot fix (arguments of an existing queue differ, access refused). */
const FATAL_CODES: ReadonlySet<number> = new Set([403, 406]);

/** One channel of a consumer. When it closes, RabbitMQ requeues every delivery it held. */
class Lane {
  alive = true;
  /** close() was called: nothing more can be sent on the channel. */
  closing = false;
  tag: string | undefined;
  readonly unsettled = new LinkedList<AmqpDelivery>();
  /** Every delivery of the channel until it is settled at the server, so acks can go out in batches. */
  readonly acks: AckBatcher<Message>;
  readonly closed: Promise<void>;
  error: unknown;
  private markClosed!: () => void;

  constructor(
    readonly ch: Channel,
    readonly generation: number,
    clock: Clock,
  ) {
    this.closed = new Promise((resolve) => {
      this.markClosed = resolve;
    });
    this.acks = new AckBatcher<Message>(
      (m, multiple) => {
        try {
          ch.ack(m, multiple);
        } catch {
          // The channel is closing: the acks are lost and RabbitMQ requeues those deliveries (at least once).
        }
      },
      {
        soon: (fn) => void setImmediate(fn),
        later: (fn, ms) => {
          const t = clock.setTimeout(fn, ms);
          return () => clock.clearTimeout(t);
        },
      },
    );
  }

  /** Give a delivery back to the queue, on its own. */
  nack(entry: AckEntry<Message>): void {
    this.acks.settled(entry);
    this.ch.nack(entry.message, false, true);
  }

  onClose(): void {
    this.alive = false;
    this.acks.clear();
    this.markClosed();
  }

  /**
   * Send the pending acks, then close the channel; resolves once RabbitMQ confirmed the close (the acks
   * went out before it, so they are processed by then).
   */
  close(): Promise<void> {
    if (this.alive && !this.closing) {
      this.closing = true;
      this.acks.flushAll();
      this.ch.close().catch(() => undefined);
    }
    return this.closed;
  }
}

/** A message handed to the application. Settles on the channel it came from, or not at all. */
export class AmqpDelivery implements Delivery {
  readonly id: string;
  readonly body: Uint8Array;
  readonly headers: Headers;
  /** Links of its lane's list of unsettled deliveries. */
  prev: AmqpDelivery | undefined;
  next: AmqpDelivery | undefined;
  private settled = false;

  constructor(
    private readonly consumer: AmqpConsumer,
    readonly lane: Lane,
    readonly message: ConsumeMessage,
    readonly entry: AckEntry<Message>,
    readonly deliveries: number,
  ) {
    this.id = (message.properties.messageId as string | undefined) ?? '';
    const { headers, body } = readMessage(message.content, message.properties);
    this.body = body;
    this.headers = headers;
  }

  private stale(): CeleriacError {
    return new CeleriacError(
      ErrorCode.STALE_DELIVERY,
      `delivery ${this.id} came from a channel that has closed; RabbitMQ has requeued it`,
    );
  }

  /**
   * Resolves once the ack is queued: it goes out with the channel's next batch (AMQP acks are not
   * confirmed anyway). If the channel dies first, RabbitMQ requeues the delivery (at least once).
   */
  ack(): Promise<void> {
    if (this.settled || !this.lane.alive) return Promise.reject(this.stale());
    this.settled = true;
    if (this.lane.closing) {
      this.consumer.settledOne(this);
      return Promise.reject(new CeleriacError(ErrorCode.STALE_DELIVERY, `could not ack delivery ${this.id}: its channel is closing`));
    }
    this.lane.acks.ack(this.entry);
    this.consumer.settledOne(this);
    return SETTLED;
  }

  async nack(opts: NackOptions): Promise<void> {
    if (this.settled || !this.lane.alive) throw this.stale();
    this.settled = true;
    const host = this.consumer.host;
    const queue = this.consumer.queue;
    try {
      if (!opts.requeue) {
        await host.deadLetter(queue, this.message, this.deliveries, opts.reason ?? 'rejected');
      } else if ((opts.delayMs ?? 0) > 0) {
        await host.republish(queue, this.message, this.deliveries, opts.delayMs!);
      } else if (host.queueType === 'quorum') {
        // RabbitMQ counts the return in x-delivery-count.
        if (!this.lane.alive) throw this.stale();
        this.lane.nack(this.entry);
        return;
      } else {
        // Classic queues only flag a redelivery: publish a copy that carries the count, then ack.
        await host.republish(queue, this.message, this.deliveries, 0);
      }
      // The copy is out; if the channel is gone, the original comes back too (a duplicate).
      if (!this.lane.alive || this.lane.closing) throw this.stale();
      this.lane.acks.ack(this.entry);
    } catch (err) {
      // The copy was not published (or the channel is gone): give the original back rather than hold
      // it unacked for the rest of the channel's life.
      if (this.lane.alive && !(err instanceof CeleriacError && err.code === ErrorCode.STALE_DELIVERY)) {
        try {
          this.lane.nack(this.entry);
        } catch {
          // closing; RabbitMQ requeues it anyway
        }
      }
      if (err instanceof CeleriacError) throw err;
      throw new CeleriacError(ErrorCode.STALE_DELIVERY, `could not settle delivery ${this.id}: ${errText(err)}`, { cause: err });
    } finally {
      this.consumer.settledOne(this);
    }
  }

  /** AMQP has no lease: the delivery is safe as long as its channel lives. Fails once it has closed. */
  extend(): Promise<void> {
    return this.lane.alive && !this.settled ? Promise.resolve() : Promise.reject(this.stale());
  }
}

/**
 * Consumes one queue on its own channel with `basic.qos` = prefetch (per consumer), so RabbitMQ itself
 * bounds the unacked deliveries. A closed channel is replaced (re-declaring the queue) with backoff;
 * deliveries of the old channel fail to settle with ERR_STALE_DELIVERY, because RabbitMQ has requeued
 * them already.
 */
export class AmqpConsumer implements AsyncIterator<Delivery> {
  private readonly buffer: AmqpDelivery[] = [];
  private bufferHead = 0;
  private waiting: { resolve: (r: IteratorResult<Delivery>) => void; reject: (e: Error) => void } | undefined;
  private done = false;
  private failure: Error | undefined;
  private lane: Lane | undefined;
  private readonly lanes = new Set<Lane>();
  private pauseTimer: TimerHandle | undefined;
  private wake: (() => void) | undefined;
  private readonly loop: Promise<void>;

  constructor(
    readonly host: ConsumerHost,
    readonly queue: string,
    private readonly prefetch: number,
    signal: AbortSignal | undefined,
  ) {
    if (signal !== undefined) {
      if (signal.aborted) this.done = true;
      else signal.addEventListener('abort', () => this.stop(), { once: true });
    }
    this.loop = this.run();
  }

  next(): Promise<IteratorResult<Delivery>> {
    if (this.failure !== undefined) {
      const f = this.failure;
      this.failure = undefined;
      this.done = true;
      return Promise.reject(f);
    }
    if (this.bufferHead < this.buffer.length) return Promise.resolve({ done: false, value: this.shift() });
    if (this.done) return Promise.resolve({ done: true, value: undefined });
    return new Promise((resolve, reject) => {
      this.waiting = { resolve, reject };
    });
  }

  /** A buffered delivery without a promise (core's fast path), or undefined when `next()` must wait. */
  takeSync(): Delivery | undefined {
    if (this.failure !== undefined || this.waiting !== undefined || this.bufferHead >= this.buffer.length) return undefined;
    return this.shift();
  }

  return(): Promise<IteratorResult<Delivery>> {
    this.stop();
    return Promise.resolve({ done: true, value: undefined });
  }

  private shift(): AmqpDelivery {
    const d = this.buffer[this.bufferHead]!;
    this.buffer[this.bufferHead++] = undefined as unknown as AmqpDelivery;
    if (this.bufferHead > 256 && this.bufferHead * 2 > this.buffer.length) {
      this.buffer.splice(0, this.bufferHead);
      this.bufferHead = 0;
    }
    return d;
  }

  private async run(): Promise<void> {
    let attempt = 0;
    while (!this.done) {
      let lane: Lane | undefined;
      const startedAt = Date.now();
      try {
        const { ch, generation } = await this.host.link.openChannel();
        lane = new Lane(ch, generation, this.host.link.clock);
        const l = lane;
        ch.on('error', (err: Error) => {
          l.error = err;
        });
        ch.on('close', () => this.onLaneClosed(l));
        this.lanes.add(lane);
        await this.host.ensureQueue(this.queue);
        await ch.prefetch(this.prefetch, false);
        if (this.done) {
          void lane.close();
          break;
        }
        this.lane = lane;
        const ok = await ch.consume(this.host.workQueue(this.queue), (m) => this.onMessage(l, m), { noAck: false });
        lane.tag = ok.consumerTag;
        if (this.done) this.release(lane);
        await lane.closed;
      } catch (err) {
        if (this.done) break;
        const code = (err as { code?: unknown }).code;
        if (code === 404) this.host.invalidateQueue(this.queue);
        if (typeof code === 'number' && FATAL_CODES.has(code)) {
          this.fail(
            new CeleriacError('ERR_TOPOLOGY', `cannot consume queue "${this.queue}": ${errText(err)}`, { cause: err, retryable: false }),
          );
          void lane?.close();
          break;
        }
        if (err instanceof CeleriacError && err.code !== ErrorCode.CONNECTION) {
          this.fail(err);
          void lane?.close();
          break;
        }
        void lane?.close();
      }
      if (this.done) break;
      if (lane !== undefined && lane.generation === this.host.link.generation && this.host.link.isOpen) {
        // The channel died on a live connection (consumer_timeout, queue deleted, a server error).
        this.host.link.emit({
          type: 'error',
          error: new CeleriacError(ErrorCode.CONNECTION, `consumer channel of "${this.queue}" closed: ${errText(lane.error ?? 'cancelled by the server')}`, {
            cause: lane.error,
            retryable: true,
          }),
        });
      }
      attempt = Date.now() - startedAt > 10_000 ? 0 : attempt + 1;
      await this.pause(Math.min(this.host.reconnectMaxDelayMs, 50 * 2 ** Math.min(attempt, 16)));
    }
  }

  private pause(ms: number): Promise<void> {
    if (this.done) return Promise.resolve();
    return new Promise((resolve) => {
      this.wake = resolve;
      this.pauseTimer = this.host.link.clock.setTimeout(() => {
        this.pauseTimer = undefined;
        this.wake = undefined;
        resolve();
      }, ms);
    });
  }

  private onMessage(lane: Lane, m: ConsumeMessage | null): void {
    if (m === null) {
      // RabbitMQ cancelled the consumer (the queue was deleted): start over on a new channel.
      this.host.invalidateQueue(this.queue);
      void lane.close();
      return;
    }
    if (!lane.alive) return;
    const entry = lane.acks.add(m);
    if (this.done) {
      lane.nack(entry);
      return;
    }
    const raw = m.properties.headers as Record<string, unknown> | undefined;
    const earlier = intHeader(raw, H.deliveries);
    const rest = intHeader(raw, H.delayRest);
    if (rest > 0) {
      // Delays beyond one pass through the delay levels come back here and go round again.
      this.forward(lane, entry, earlier, rest);
      return;
    }
    let deliveries: number;
    if (this.host.queueType === 'quorum') {
      deliveries = earlier + intHeader(raw, 'x-delivery-count') + 1;
    } else if (m.fields.redelivered) {
      // Classic queues only say "redelivered": count the hand-out in a copy, deliver the copy.
      this.forward(lane, entry, earlier + 1, 0);
      return;
    } else {
      deliveries = earlier + 1;
    }
    const d = new AmqpDelivery(this, lane, m, entry, deliveries);
    lane.unsettled.add(d);
    this.host.countInFlight(this.queue, 1);
    const w = this.waiting;
    if (w !== undefined) {
      this.waiting = undefined;
      w.resolve({ done: false, value: d });
    } else {
      this.buffer.push(d);
    }
  }

  /** Replace a message by a copy (publish, then ack the original); a crash in between duplicates it. */
  private forward(lane: Lane, entry: AckEntry<Message>, handedOut: number, delayMs: number): void {
    this.host
      .republish(this.queue, entry.message, handedOut, delayMs)
      .then(
        () => {
          if (lane.alive) lane.acks.ack(entry);
        },
        () => {
          if (lane.alive) lane.nack(entry);
        },
      )
      .catch(() => undefined);
  }

  /** Called by a delivery once it is settled (or failed to be). */
  settledOne(d: AmqpDelivery): void {
    const lane = d.lane;
    if (!lane.unsettled.delete(d)) return;
    this.host.countInFlight(this.queue, -1);
    if ((this.done || lane !== this.lane) && lane.unsettled.size === 0) void lane.close();
  }

  private onLaneClosed(lane: Lane): void {
    lane.onClose();
    this.lanes.delete(lane);
    if (this.done && this.lanes.size === 0) this.host.released(this);
    if (this.lane === lane) this.lane = undefined;
    // RabbitMQ requeued everything the channel held.
    if (lane.unsettled.size > 0) this.host.countInFlight(this.queue, -lane.unsettled.size);
    lane.unsettled.clear();
    if (this.bufferHead < this.buffer.length) {
      const keep = this.buffer.slice(this.bufferHead).filter((d) => d.lane !== lane);
      this.buffer.length = 0;
      this.bufferHead = 0;
      this.buffer.push(...keep);
    }
  }

  /** Stop taking deliveries on `lane`: cancel, give back what was not handed out, close once settled. */
  private release(lane: Lane): void {
    if (!lane.alive) return;
    const rest = this.buffer.slice(this.bufferHead).filter((d) => d.lane === lane);
    this.buffer.length = 0;
    this.bufferHead = 0;
    for (const d of rest) {
      lane.unsettled.delete(d);
      this.host.countInFlight(this.queue, -1);
      try {
        lane.nack(d.entry);
      } catch {
        // the channel is closing; RabbitMQ requeues it anyway
      }
    }
    if (lane.unsettled.size === 0) {
      void lane.close();
      return;
    }
    if (lane.tag !== undefined) lane.ch.cancel(lane.tag).catch(() => undefined);
  }

  /** End the iteration; deliveries already handed out stay settleable until settled or the broker closes. */
  stop(): void {
    if (this.done) return;
    this.done = true;
    if (this.pauseTimer !== undefined) this.host.link.clock.clearTimeout(this.pauseTimer);
    this.pauseTimer = undefined;
    this.wake?.();
    this.wake = undefined;
    const w = this.waiting;
    this.waiting = undefined;
    w?.resolve({ done: true, value: undefined });
    if (this.lane !== undefined) this.release(this.lane);
    this.host.forget(this);
  }

  /** Broker close: stop and close every channel (RabbitMQ requeues what was unsettled). */
  async shutdown(): Promise<void> {
    this.stop();
    await Promise.all([...this.lanes].map((lane) => lane.close()));
    await this.loop.catch(() => undefined);
  }

  private fail(err: Error): void {
    const w = this.waiting;
    if (w !== undefined) {
      this.waiting = undefined;
      this.done = true;
      w.reject(err);
    } else {
      this.failure = err;
    }
    this.host.forget(this);
  }
}
