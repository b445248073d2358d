import type {
  Broadcast,
  Broker,
  BrokerCapabilities,
  ConsumeOptions,
  DeadLetters,
  Delivery,
  Headers,
  OutgoingMessage,
  PublishOptions,
  QueueSpec,
  QueueStats,
} from './broker.js';
import type { Clock } from './clock.js';
import { CeleriacError, ErrorCode, wrapError } from './errors.js';
import { ForeignAdapter } from './transport/foreign.js';
import { ConsumerKit, KitConsumer, connectionError } from './transport/kit.js';

/** Events a transport may report; core turns them into `broker:error` and `broker:reconnected`. */
export type BrokerEvent = { type: 'error'; error: unknown } | { type: 'reconnected' };

/** Optional hook a transport implements to report connection trouble. */
export interface BrokerEventSource {
  onEvent?(listener: (event: BrokerEvent) => void): () => void;
}

export interface GuardOptions {
  clock?: Clock;
  /**
   * Failures of an outside transport's consumption with no caller to reject (a lease renewal, a
   * give-back, a failing iterator). Kit-based transports report their own.
   */
  onConsumeError?: (err: Error, what: string) => void;
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
  if (opts?.transaction !== undefined && caps.transactionalPublish !== true) {
    throw new CeleriacError(
      ErrorCode.UNSUPPORTED,
      'this broker cannot publish inside a database transaction (capabilities.transactionalPublish); remove the transaction',
    );
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
const wrap = connectionError;

/**
 * Every broker is used through this guard, so transports never repeat it: connect-once, argument and
 * capability checks, the payload limit, the `publishBatch` fallback and error wrapping. Consumption is
 * the kit's (`@celeriac/core/transport`): a transport built on it returns its kit consumer, used as is;
 * an outside transport's iterator is put on the guard's own kit, so the prefetch bound, settle-once,
 * lease renewal and give-back hold for it too.
 */
export class GuardedBroker implements Broker {
  readonly name: string;
  readonly capabilities: BrokerCapabilities;
  readonly visibilityTimeoutMs: number | undefined;
  readonly deadLetters: DeadLetters;
  readonly broadcast: Broadcast | undefined;
  /** The kit for an outside transport's consumers. */
  private readonly kit: ConsumerKit;
  private connecting: Promise<void> | undefined;
  private closing: Promise<void> | undefined;

  constructor(
    readonly inner: Broker & BrokerEventSource,
    opts: GuardOptions = {},
  ) {
    this.name = inner.name;
    this.capabilities = inner.capabilities;
    this.visibilityTimeoutMs = inner.visibilityTimeoutMs;
    const onError = opts.onConsumeError;
    this.kit = new ConsumerKit({
      ...(opts.clock === undefined ? {} : { clock: opts.clock }),
      visibilityTimeoutMs: inner.visibilityTimeoutMs,
      ...(onError === undefined ? {} : { onError }),
    });
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
    this.closing ??= this.kit
      .close()
      .then(() => this.inner.close(opts))
      .catch((e: unknown) => Promise.reject(wrap(e)));
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

  /**
   * The transport's kit consumer, or an outside transport's iterator on the guard's kit. Either way at
   * most `prefetch` deliveries are held, each settles once, leases are renewed and what is left is
   * given back at close.
   */
  consume(queue: string, opts: ConsumeOptions): KitConsumer {
    checkQueue(queue);
    if (!Number.isInteger(opts.prefetch) || opts.prefetch < 1) {
      throw new RangeError(`prefetch must be an integer >= 1, got ${String(opts.prefetch)}`);
    }
    const source = this.inner.consume(queue, opts);
    if (source instanceof KitConsumer) return source as KitConsumer;
    return this.kit.consume<Delivery>(queue, new ForeignAdapter(this.inner, queue, source), opts) as unknown as KitConsumer;
  }

  purge(queue: string): Promise<number> {
    return this.inner.purge(queue).catch((e: unknown) => Promise.reject(wrap(e)));
  }

  stats(queue: string): Promise<QueueStats> {
    return this.inner.stats(queue).catch((e: unknown) => Promise.reject(wrap(e)));
  }

}

function errText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** Wrap a broker in the guard (a guarded broker is returned as is). */
export function guardBroker(broker: Broker, opts?: GuardOptions): GuardedBroker {
  return broker instanceof GuardedBroker ? broker : new GuardedBroker(broker, opts);
}
