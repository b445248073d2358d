import type {
  Broadcast,
  Broker,
  BrokerCapabilities,
  ConsumeOptions,
  DeadLetters,
  Delivery,
  DeliveryIterator,
  Headers,
  NackOptions,
  OutgoingMessage,
  PreparedResultWrite,
  PublishOptions,
  QueueSpec,
  QueueStats,
} from './broker.js';
import { SETTLED } from './broker.js';
import { systemClock, type Clock, type TimerHandle } from './clock.js';
import { CeleriacError, ErrorCode, wrapError } from './errors.js';
import { LinkedList } from './linked-list.js';

/** Events a transport may report; core turns them into `broker:error` and `broker:reconnected`. */
export type BrokerEvent = { type: 'error'; error: unknown } | { type: 'reconnected' };

/** Optional hook a transport implements to report connection trouble. */
export interface BrokerEventSource {
  onEvent?(listener: (event: BrokerEvent) => void): () => void;
}

export interface GuardOptions {
  clock?: Clock;
  /** Called when renewing a lease fails (the delivery may be delivered again elsewhere). */
  onLeaseLost?: (delivery: Delivery, err: unknown) => void;
}

const MAX_PRIORITY = 9;

function headersBytes(headers: Readonly<Headers>): number {
  let n = 0;
  for (const k in headers) {
    const v = headers[k];
    n += k.length + (typeof v === 'string' ? v.length : 16);
  }
  return n;
}

function checkPublish(caps: BrokerCapabilities, msg: OutgoingMessage, opts: PublishOptions | undefined): void {
  if (opts?.priority !== undefined) {
    if (caps.priorities === 0) {
      throw new CeleriacError(ErrorCode.UNSUPPORTED, 'this broker has no message priorities; remove the priority');
    }
    if (!Number.isInteger(opts.priority) || opts.priority < 0 || opts.priority > MAX_PRIORITY) {
      throw new RangeError(`priority must be an integer from 0 to 9, got ${String(opts.priority)}`);
    }
  }
  if (opts?.delayMs !== undefined && (!Number.isFinite(opts.delayMs) || opts.delayMs < 0)) {
    throw new RangeError(`delayMs must be a finite number >= 0, got ${String(opts.delayMs)}`);
  }
  const size = msg.body.byteLength + headersBytes(msg.headers);
  if (size > caps.maxMessageBytes) {
    throw new CeleriacError(
      ErrorCode.PAYLOAD_TOO_LARGE,
      `message of ${size} bytes is over this broker's limit of ${caps.maxMessageBytes} bytes`,
    );
  }
}

function checkQueue(queue: string): void {
  if (typeof queue !== 'string' || queue.length === 0) throw new TypeError('queue must be a non-empty string');
}

/** Driver failures become ERR_CONNECTION (retryable); celeriac errors and argument errors pass through. */
function wrap(err: unknown): Error {
  if (err instanceof CeleriacError || err instanceof TypeError || err instanceof RangeError) return err;
  return wrapError(err, ErrorCode.CONNECTION, undefined, true);
}

/**
 * Every broker is used through this guard, so transports never repeat it: settle-once, argument and
 * capability checks, the payload limit, lease renewal of every unsettled delivery, and error wrapping.
 */
export class GuardedBroker implements Broker {
  readonly name: string;
  readonly capabilities: BrokerCapabilities;
  readonly visibilityTimeoutMs: number | undefined;
  readonly resultWriteTarget: string | undefined;
  readonly deadLetters: DeadLetters;
  readonly broadcast: Broadcast | undefined;
  private readonly clock: Clock;
  /** Deliveries handed out and not settled. */
  private readonly unsettled = new LinkedList<GuardedDelivery>();
  private renewTimer: TimerHandle | undefined;
  private connecting: Promise<void> | undefined;
  private closing: Promise<void> | undefined;

  constructor(
    readonly inner: Broker & BrokerEventSource,
    private readonly opts: GuardOptions = {},
  ) {
    this.name = inner.name;
    this.capabilities = inner.capabilities;
    this.visibilityTimeoutMs = inner.visibilityTimeoutMs;
    this.resultWriteTarget = inner.resultWriteTarget;
    this.clock = opts.clock ?? systemClock;
    const dl = inner.deadLetters;
    this.deadLetters = {
      list: (queue, o) => dl.list(queue, o).catch((e: unknown) => Promise.reject(wrap(e))),
      redrive: (queue, ids) => dl.redrive(queue, ids).catch((e: unknown) => Promise.reject(wrap(e))),
      purge: (queue) => dl.purge(queue).catch((e: unknown) => Promise.reject(wrap(e))),
    };
    const bc = inner.broadcast;
    this.broadcast =
      bc === undefined || !inner.capabilities.broadcast
        ? undefined
        : {
            publish: (channel, body) => bc.publish(channel, body).catch((e: unknown) => Promise.reject(wrap(e))),
            subscribe: (channel, fn) => bc.subscribe(channel, fn).catch((e: unknown) => Promise.reject(wrap(e))),
          };
  }

  onEvent(listener: (event: BrokerEvent) => void): () => void {
    return this.inner.onEvent?.(listener) ?? (() => undefined);
  }

  /** Connects once; later calls share the first attempt (a failed attempt may be retried). */
  connect(opts?: { signal?: AbortSignal }): Promise<void> {
    if (this.closing !== undefined) return Promise.reject(new CeleriacError(ErrorCode.CLOSED, 'broker is closed'));
    if (this.connecting === undefined) {
      this.connecting = this.inner.connect(opts).catch((err: unknown) => {
        this.connecting = undefined;
        throw wrapError(err, ErrorCode.CONNECTION, `cannot connect to ${this.name} broker: ${errText(err)}`, true);
      });
    }
    return this.connecting;
  }

  /** Idempotent: the second call returns the first call's promise. */
  close(opts?: { drain?: boolean }): Promise<void> {
    if (this.closing === undefined) {
      this.stopRenewing();
      this.closing = this.inner.close(opts).catch((e: unknown) => Promise.reject(wrap(e)));
    }
    return this.closing;
  }

  get closed(): boolean {
    return this.closing !== undefined;
  }

  declareQueue(queue: string, spec?: QueueSpec): Promise<void> {
    try {
      checkQueue(queue);
    } catch (err) {
      return Promise.reject(err as Error);
    }
    return this.inner.declareQueue(queue, spec).catch((e: unknown) => Promise.reject(wrap(e)));
  }

  publish(queue: string, msg: OutgoingMessage, opts?: PublishOptions): Promise<void> {
    try {
      checkQueue(queue);
      checkPublish(this.capabilities, msg, opts);
    } catch (err) {
      return Promise.reject(err as Error);
    }
    return this.inner.publish(queue, msg, opts).catch((e: unknown) => Promise.reject(wrap(e)));
  }

  publishBatch(queue: string, msgs: readonly OutgoingMessage[], opts?: PublishOptions): Promise<void> {
    try {
      checkQueue(queue);
      for (const m of msgs) checkPublish(this.capabilities, m, opts);
    } catch (err) {
      return Promise.reject(err as Error);
    }
    if (msgs.length === 0) return Promise.resolve();
    const p =
      this.inner.publishBatch !== undefined
        ? this.inner.publishBatch(queue, msgs, opts)
        : Promise.all(msgs.map((m) => this.inner.publish(queue, m, opts))).then(() => undefined);
    return p.catch((e: unknown) => Promise.reject(wrap(e)));
  }

  consume(queue: string, opts: ConsumeOptions): { [Symbol.asyncIterator](): DeliveryIterator } {
    checkQueue(queue);
    if (!Number.isInteger(opts.prefetch) || opts.prefetch < 1) {
      throw new RangeError(`prefetch must be an integer >= 1, got ${String(opts.prefetch)}`);
    }
    const source = this.inner.consume(queue, opts);
    return {
      [Symbol.asyncIterator]: (): DeliveryIterator => {
        const it: DeliveryIterator = source[Symbol.asyncIterator]();
        return {
          // Undefined when the transport has nothing buffered, or no `takeSync` at all: then `next()`.
          takeSync: () => {
            let d: Delivery | undefined;
            try {
              d = it.takeSync?.();
            } catch (e) {
              throw wrap(e);
            }
            return d === undefined ? undefined : this.track(new GuardedDelivery(d, this));
          },
          // One `then` per delivery, not an async function and its await.
          next: () => {
            let p: Promise<IteratorResult<Delivery>>;
            try {
              p = it.next();
            } catch (e) {
              return Promise.reject(wrap(e));
            }
            return p.then(
              (r): IteratorResult<Delivery> => (r.done === true ? r : { done: false, value: this.track(new GuardedDelivery(r.value, this)) }),
              (e: unknown) => Promise.reject(wrap(e)),
            );
          },
          return: async () => {
            await it.return?.();
            return { done: true, value: undefined };
          },
        };
      },
    };
  }

  purge(queue: string): Promise<number> {
    return this.inner.purge(queue).catch((e: unknown) => Promise.reject(wrap(e)));
  }

  stats(queue: string): Promise<QueueStats> {
    return this.inner.stats(queue).catch((e: unknown) => Promise.reject(wrap(e)));
  }

  /** Deliveries handed out through this guard and not settled yet. */
  get unsettledCount(): number {
    return this.unsettled.size;
  }

  private track(d: GuardedDelivery): GuardedDelivery {
    this.unsettled.add(d);
    if (this.renewTimer === undefined && d.inner.extend !== undefined) this.armRenew();
    return d;
  }

  untrack(d: GuardedDelivery): void {
    this.unsettled.delete(d);
  }

  private armRenew(): void {
    const vt = this.visibilityTimeoutMs;
    if (vt === undefined || vt <= 0 || this.closing !== undefined) return;
    this.renewTimer = this.clock.setTimeout(() => {
      this.renewTimer = undefined;
      for (const d of this.unsettled) {
        const ext = d.inner.extend;
        if (ext === undefined) continue;
        ext.call(d.inner).catch((err: unknown) => this.opts.onLeaseLost?.(d, err));
      }
      // Stays armed while deliveries come and go (no timer per task); stops once a round finds none.
      if (this.unsettled.size > 0) this.armRenew();
    }, Math.max(1, Math.floor(vt / 3)));
  }

  private stopRenewing(): void {
    if (this.renewTimer !== undefined) this.clock.clearTimeout(this.renewTimer);
    this.renewTimer = undefined;
  }
}

function errText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

class GuardedDelivery implements Delivery {
  readonly headers: Readonly<Headers>;
  readonly deliveries: number;
  /** Links of the guard's list of unsettled deliveries. */
  prev: GuardedDelivery | undefined;
  next: GuardedDelivery | undefined;
  private settled = false;

  constructor(
    readonly inner: Delivery,
    private readonly guard: GuardedBroker,
  ) {
    this.headers = inner.headers;
    this.deliveries = inner.deliveries;
  }

  /** Read when asked, like `id`: a transport may cut it out of its frame only then. */
  get body(): Uint8Array {
    return this.inner.body;
  }

  get parsedBody(): unknown {
    return this.inner.parsedBody;
  }

  /** Read when asked: a transport may derive it (NATS reads it from a header). */
  get id(): string {
    return this.inner.id;
  }

  private settle(): void {
    if (this.settled) {
      throw new CeleriacError(ErrorCode.ALREADY_SETTLED, `delivery ${this.id} was already acked or nacked`);
    }
    this.settled = true;
    this.guard.untrack(this);
  }

  ack(): Promise<void> {
    try {
      this.settle();
    } catch (err) {
      return Promise.reject(err as Error);
    }
    const p = this.inner.ack();
    return p === SETTLED ? p : p.catch((e: unknown) => Promise.reject(wrap(e)));
  }

  ackWithResult(write: PreparedResultWrite): Promise<void> {
    try {
      if (this.inner.ackWithResult === undefined) {
        throw new CeleriacError(ErrorCode.UNSUPPORTED, `the ${this.guard.name} broker cannot store a result with its ack`);
      }
      this.settle();
    } catch (err) {
      return Promise.reject(err as Error);
    }
    return this.inner.ackWithResult(write).catch((e: unknown) => Promise.reject(wrap(e)));
  }

  nack(opts: NackOptions): Promise<void> {
    try {
      if (opts.delayMs !== undefined && (!Number.isFinite(opts.delayMs) || opts.delayMs < 0)) {
        throw new RangeError(`delayMs must be a finite number >= 0, got ${String(opts.delayMs)}`);
      }
      this.settle();
    } catch (err) {
      return Promise.reject(err as Error);
    }
    return this.inner.nack(opts).catch((e: unknown) => Promise.reject(wrap(e)));
  }

  extend(): Promise<void> {
    if (this.inner.extend === undefined) return Promise.resolve();
    return this.inner.extend().catch((e: unknown) => Promise.reject(wrap(e)));
  }
}

/** Wrap a broker in the guard (a guarded broker is returned as is). */
export function guardBroker(broker: Broker, opts?: GuardOptions): GuardedBroker {
  return broker instanceof GuardedBroker ? broker : new GuardedBroker(broker, opts);
}
