import type { ConsumeOptions, Delivery, Headers, NackOptions } from '../broker.js';
import { CLOSE_GRACE_MS, settleWithin, systemClock, type Clock, type TimerHandle } from '../clock.js';
import { CeleriacError, ErrorCode, wrapError } from '../errors.js';
import type { ConsumerAdapter, Incoming, PreparedResultWrite, PullAdapter, PushAdapter, Sink } from './adapter.js';
import { Fifo } from './fifo.js';
import { LinkedList } from './linked-list.js';

/**
 * What an ack that is already done returns (queued for the transport's next write, nothing left to wait
 * for): one shared resolved promise, so core spends no `then` on it. Every promise costs a hook call once
 * `currentTask()`'s AsyncLocalStorage is on, and an ack is on every task's path.
 */
export const SETTLED: Promise<void> = Promise.resolve();

export interface KitOptions {
  /** @default the system clock */
  clock?: Clock;
  /**
   * The transport's lease: every third of it the kit renews the lease of each message it holds
   * (`extend`). Undefined: no renewal (a lease that lasts while the connection does, as on AMQP).
   */
  visibilityTimeoutMs?: number | undefined;
  /**
   * The transport's one classification of its driver's errors. @default a retryable ERR_CONNECTION for
   * anything that is not already a CeleriacError, TypeError or RangeError
   */
  classify?: (err: unknown) => Error;
  /** Failures with no caller to reject: a claim (retried), a lease renewal, a give-back. */
  onError?: (err: Error, what: 'claim' | 'extend' | 'release' | 'subscription') => void;
}

/** The default classification: driver failures become a retryable ERR_CONNECTION. */
export function connectionError(err: unknown): Error {
  if (err instanceof CeleriacError || err instanceof TypeError || err instanceof RangeError) return err;
  return wrapError(err, ErrorCode.CONNECTION, undefined, true);
}

const HELD = 0;
const DONE = 1;
const RELEASED = 2;

/**
 * A message the kit holds for the application: settle-once, in the kit's held list until settled or
 * given back, leases renewed meanwhile. The `Delivery` core and the suites see.
 */
export class KitDelivery<M extends Incoming = Incoming> implements Delivery {
  /** Links of the kit's list of held messages. */
  prev: KitDelivery | undefined;
  next: KitDelivery | undefined;
  /** HELD, DONE (acked or nacked) or RELEASED (given back by the kit). */
  state = HELD;

  constructor(
    readonly consumer: KitConsumer<M>,
    readonly msg: M,
  ) {}

  get id(): string {
    return this.msg.id;
  }
  get body(): Uint8Array {
    return this.msg.body;
  }
  get headers(): Readonly<Headers> {
    return this.msg.headers;
  }
  get deliveries(): number {
    return this.msg.deliveries;
  }
  get parsedBody(): unknown {
    return this.msg.parsedBody;
  }
  /** The queue it came from. */
  get queue(): string {
    return this.consumer.queue;
  }

  private refused(): Promise<never> {
    return Promise.reject(
      this.state === DONE
        ? new CeleriacError(ErrorCode.ALREADY_SETTLED, `delivery ${this.id} was already acked or nacked`)
        : new CeleriacError(ErrorCode.STALE_DELIVERY, `delivery ${this.id} was given back to the broker; it will be delivered again`),
    );
  }

  ack(): Promise<void> {
    if (this.state !== HELD) return this.refused();
    const c = this.consumer;
    c.kit.forget(this);
    let p: Promise<void>;
    try {
      p = c.adapter.ack(this.msg);
    } catch (err) {
      p = Promise.reject(err as Error);
    }
    c.freed();
    return p === SETTLED ? p : p.catch(c.kit.reject);
  }

  nack(opts: NackOptions): Promise<void> {
    if (this.state !== HELD) return this.refused();
    if (opts.delayMs !== undefined && (!Number.isFinite(opts.delayMs) || opts.delayMs < 0)) {
      return Promise.reject(new RangeError(`delayMs must be a finite number >= 0, got ${String(opts.delayMs)}`));
    }
    const c = this.consumer;
    c.kit.forget(this);
    let p: Promise<void>;
    try {
      p = c.adapter.nack(this.msg, opts);
    } catch (err) {
      p = Promise.reject(err as Error);
    }
    c.freed();
    return p === SETTLED ? p : p.catch(c.kit.reject);
  }

  /**
   * Store a result and ack in one step (see `SettleAdapter.ackWithResult`). A write the adapter cannot
   * run is refused synchronously by it, and the delivery stays held (to be acked another way).
   */
  ackWithResult(write: PreparedResultWrite): Promise<void> {
    const c = this.consumer;
    if (c.adapter.ackWithResult === undefined) {
      return Promise.reject(new CeleriacError(ErrorCode.UNSUPPORTED, 'this transport cannot store a result with its ack'));
    }
    if (this.state !== HELD) return this.refused();
    let p: Promise<void>;
    try {
      p = c.adapter.ackWithResult(this.msg, write);
    } catch (err) {
      return Promise.reject(c.kit.classify(err));
    }
    c.kit.forget(this);
    c.freed();
    return p.catch(c.kit.reject);
  }

  /** Renew the lease now (the kit does it on its own every third of the visibility timeout). */
  extend(): Promise<void> {
    const ext = this.consumer.adapter.extend;
    if (this.state !== HELD || ext === undefined) return Promise.resolve();
    try {
      return ext.call(this.consumer.adapter, this.msg).catch(this.consumer.kit.reject);
    } catch (err) {
      return Promise.reject(this.consumer.kit.classify(err));
    }
  }
}

/**
 * One `consume()`: the prefetch bound, the buffer of messages not yet handed out, and the iteration
 * (`takeSync` for core, `next()` for everyone). Pull adapters are driven by a claim loop; push adapters
 * deliver through the sink. Either way the kit holds at most `prefetch` messages (buffered plus handed
 * out and not settled), and gives back whatever an adapter offers beyond it.
 */
export class KitConsumer<M extends Incoming = Incoming> implements AsyncIterableIterator<Delivery>, Sink<M> {
  private readonly buffer = new Fifo<KitDelivery<M>>();
  /** Held by this consumer: buffered, or handed out and not settled. */
  private outstanding = 0;
  private stopped = false;
  private waiter: ((r: IteratorResult<Delivery>) => void) | undefined;
  /** Set by `whenReady`: called once when a message arrives in an empty buffer (or the consumer ends). */
  private ready: (() => void) | undefined;
  /** Wakes the claim loop when it waits for credit (or, on demand, for a taker). */
  private roomWake: (() => void) | undefined;
  private readonly ac = new AbortController();
  private readonly onAbort = () => void this.close();
  private closing: Promise<number> | undefined;
  /** Resolves once the claim loop (pull adapters) has ended. */
  private readonly loop: Promise<void>;

  constructor(
    readonly kit: ConsumerKit,
    readonly adapter: ConsumerAdapter<M>,
    readonly queue: string,
    readonly prefetch: number,
    private readonly signal: AbortSignal | undefined,
  ) {
    if (!Number.isInteger(prefetch) || prefetch < 1) throw new RangeError(`prefetch must be an integer >= 1, got ${String(prefetch)}`);
    signal?.addEventListener('abort', this.onAbort, { once: true });
    if ('claim' in adapter) this.loop = this.pull(adapter);
    else {
      this.loop = Promise.resolve();
      this.startPush(adapter);
    }
    if (signal?.aborted === true) void this.close();
  }

  /** Where results can be written with the ack, from the adapter. */
  get resultWriteTarget(): string | undefined {
    return this.adapter.resultWriteTarget;
  }

  get credit(): number {
    return this.stopped ? 0 : this.prefetch - this.outstanding;
  }

  /** Messages held: buffered plus handed out and not settled (never more than `prefetch`). */
  get held(): number {
    return this.outstanding;
  }

  /** Messages waiting in the buffer, not handed out yet. */
  get buffered(): number {
    return this.buffer.size;
  }

  get done(): boolean {
    return this.stopped;
  }

  // ---- the sink --------------------------------------------------------------------------------

  push(m: M): void {
    if (this.stopped || this.outstanding >= this.prefetch) {
      // Over the bound (or stopped): straight back, uncounted.
      this.adapter.release([m], false).catch((err: unknown) => this.kit.report(err, 'release'));
      return;
    }
    const d = new KitDelivery(this, m);
    this.outstanding++;
    this.kit.hold(d);
    const w = this.waiter;
    if (w !== undefined) {
      this.waiter = undefined;
      w({ done: false, value: d });
      return;
    }
    this.buffer.push(d);
    const r = this.ready;
    if (r !== undefined && this.buffer.size === 1) {
      this.ready = undefined;
      r();
    }
  }

  fail(err: unknown): void {
    this.kit.report(err, 'subscription');
  }

  drop(stale: (m: M) => boolean): number {
    this.buffer.removeWhere((d) => stale(d.msg));
    let dropped = 0;
    for (const d of this.kit.heldOf(this)) {
      if (!stale(d.msg)) continue;
      this.kit.forget(d, RELEASED);
      this.outstanding--;
      dropped++;
    }
    if (dropped > 0 && !this.stopped) {
      const w = this.roomWake;
      this.roomWake = undefined;
      w?.();
      if ('credit' in this.adapter) this.adapter.credit?.();
    }
    return dropped;
  }

  // ---- taking ----------------------------------------------------------------------------------

  /** A buffered message without a promise, or undefined when there is none now. */
  takeSync(): KitDelivery<M> | undefined {
    return this.buffer.shift();
  }

  /**
   * Call `fn` once, when a message arrives in the empty buffer (at once if one is buffered already).
   * How core waits without a promise per message. A stopped consumer never calls it.
   */
  whenReady(fn: () => void): void {
    if (this.buffer.size > 0) fn();
    else if (!this.stopped) {
      this.ready = fn;
      this.wantMore();
    }
  }

  next(): Promise<IteratorResult<Delivery>> {
    const d = this.takeSync();
    if (d !== undefined) return Promise.resolve({ done: false, value: d });
    if (this.stopped) return Promise.resolve({ done: true, value: undefined });
    return new Promise((resolve) => {
      this.waiter = resolve;
      this.wantMore();
    });
  }

  /** Someone waits for a message: an on-demand claim loop may claim now. */
  private wantMore(): void {
    const w = this.roomWake;
    if (w !== undefined && this.onDemand) {
      this.roomWake = undefined;
      w();
    }
  }

  private get onDemand(): boolean {
    return !this.readingAhead && 'claim' in this.adapter && this.adapter.onDemand === true;
  }

  /**
   * Read ahead up to the prefetch bound even from an on-demand adapter: what core's worker asks of
   * every consumer (its prefetch is the point), where a plain iteration takes one at a time.
   */
  readAhead(): void {
    this.readingAhead = true;
    const w = this.roomWake;
    this.roomWake = undefined;
    w?.();
  }

  private readingAhead = false;

  /** Whether the claim loop may claim now: credit left, and (on demand) a taker waiting on an empty buffer. */
  private canClaim(): boolean {
    if (this.prefetch - this.outstanding <= 0) return false;
    return !this.onDemand || (this.buffer.size === 0 && (this.waiter !== undefined || this.ready !== undefined));
  }

  async return(): Promise<IteratorResult<Delivery>> {
    await this.close();
    return { done: true, value: undefined };
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  // ---- credit ----------------------------------------------------------------------------------

  /** A held message was settled: its slot is free. */
  freed(): void {
    this.outstanding--;
    if (this.stopped) return;
    const w = this.roomWake;
    if (w !== undefined) {
      this.roomWake = undefined;
      w();
    } else if ('credit' in this.adapter) this.adapter.credit?.();
  }

  /** A held message was given back by the kit (close): its slot is free, nothing more to claim. */
  dropped(): void {
    this.outstanding--;
  }

  private startPush(adapter: PushAdapter<M>): void {
    try {
      const started = adapter.start(this, this.prefetch);
      if (started instanceof Promise) started.catch((err: unknown) => this.kit.report(err, 'subscription'));
    } catch (err) {
      this.kit.report(err, 'subscription');
    }
  }

  /** The claim loop of a pull adapter: claim up to the credit, wait for room, back off on failures. */
  private async pull(adapter: PullAdapter<M>): Promise<void> {
    await Promise.resolve();
    let failures = 0;
    while (!this.stopped) {
      if (!this.canClaim()) {
        await new Promise<void>((resolve) => {
          this.roomWake = resolve;
        });
        continue;
      }
      const want = this.prefetch - this.outstanding;
      let got: readonly M[] | null;
      try {
        got = await adapter.claim(want, this.ac.signal);
        failures = 0;
      } catch (err) {
        if (this.stopped) break;
        this.kit.report(err, 'claim');
        await this.pause(Math.min(5_000, 100 * 2 ** Math.min(failures++, 6)));
        continue;
      }
      if (got === null) break;
      for (const m of got) this.push(m);
    }
    if (!this.stopped) void this.close();
  }

  /** Wait `ms`, or less if the consumer stops meanwhile. */
  private pause(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const t = this.kit.clock.setTimeout(done, ms);
      const signal = this.ac.signal;
      const kit = this.kit;
      function done(): void {
        kit.clock.clearTimeout(t);
        signal.removeEventListener('abort', done);
        resolve();
      }
      signal.addEventListener('abort', done, { once: true });
    });
  }

  // ---- stopping --------------------------------------------------------------------------------

  /**
   * Stop consuming: no more claims or pushes, the buffered messages go back uncounted (they were never
   * handed out). Handed-out messages stay held until settled, or until the kit closes. Resolves with how
   * many were given back. Idempotent.
   */
  close(): Promise<number> {
    this.closing ??= this.doClose();
    return this.closing;
  }

  private async doClose(): Promise<number> {
    this.stopped = true;
    this.signal?.removeEventListener('abort', this.onAbort);
    this.ac.abort();
    this.roomWake?.();
    this.roomWake = undefined;
    const w = this.waiter;
    this.waiter = undefined;
    w?.({ done: true, value: undefined });
    this.ready = undefined;
    this.kit.stopped(this);
    try {
      await this.adapter.stop?.();
      await this.loop;
      const left = this.drainBuffer();
      if (left.length > 0) await this.adapter.release(left, false);
      return left.length;
    } catch (err) {
      this.kit.report(err, 'release');
      return 0;
    }
  }

  /** Take every buffered message out of the kit's hands (for a give-back). */
  private drainBuffer(): M[] {
    const out: M[] = [];
    for (let d = this.takeSync(); d !== undefined; d = this.takeSync()) {
      this.kit.forget(d, RELEASED);
      this.outstanding--;
      out.push(d.msg);
    }
    return out;
  }
}

/**
 * The consumer machinery of one broker connection, shared by its consumers: the held set, lease renewal
 * and give-back at close. A transport makes one and builds `consume()` on it
 * (`return this.kit.consume(queue, adapter, opts)`).
 */
export class ConsumerKit {
  readonly clock: Clock;
  readonly visibilityTimeoutMs: number | undefined;
  readonly classify: (err: unknown) => Error;
  private readonly onError: KitOptions['onError'];
  /** Every message claimed and not settled or given back, across the consumers. */
  private readonly held = new LinkedList<KitDelivery>();
  private readonly consumers = new Set<KitConsumer>();
  private renewTimer: TimerHandle | undefined;
  private closing: Promise<void> | undefined;

  constructor(opts: KitOptions = {}) {
    this.clock = opts.clock ?? systemClock;
    this.visibilityTimeoutMs = opts.visibilityTimeoutMs;
    this.classify = opts.classify ?? connectionError;
    this.onError = opts.onError;
  }

  /** A rejection handler that classifies (one function, no closure per call). */
  readonly reject = (err: unknown): Promise<never> => Promise.reject(this.classify(err));

  /** Start consuming `queue` through `adapter` within `opts.prefetch`. */
  consume<M extends Incoming>(queue: string, adapter: ConsumerAdapter<M>, opts: ConsumeOptions): KitConsumer<M> {
    if (this.closing !== undefined) throw new CeleriacError(ErrorCode.CLOSED, 'broker is closed');
    const c = new KitConsumer<M>(this, adapter, queue, opts.prefetch, opts.signal);
    if (!c.done) this.consumers.add(c as unknown as KitConsumer);
    return c;
  }

  /** Messages held now, across consumers. */
  get heldCount(): number {
    return this.held.size;
  }

  /** @internal */
  hold(d: KitDelivery<Incoming>): void {
    this.held.add(d as KitDelivery);
    if (this.renewTimer === undefined && d.consumer.adapter.extend !== undefined) this.armRenew();
  }

  /** @internal */
  forget(d: KitDelivery<Incoming>, state = DONE): void {
    d.state = state;
    this.held.delete(d as KitDelivery);
  }

  /** @internal The messages `c` holds (a walk of the held list: for the rare `drop`). */
  *heldOf<M extends Incoming>(c: KitConsumer<M>): Generator<KitDelivery<M>> {
    for (const d of this.held) if (d.consumer === (c as unknown as KitConsumer)) yield d as unknown as KitDelivery<M>;
  }

  /** @internal */
  stopped(c: KitConsumer<Incoming>): void {
    this.consumers.delete(c as KitConsumer);
  }

  /** @internal */
  report(err: unknown, what: 'claim' | 'extend' | 'release' | 'subscription'): void {
    if (this.closing !== undefined && what !== 'release') return;
    this.onError?.(this.classify(err), what);
  }

  private armRenew(): void {
    const vt = this.visibilityTimeoutMs;
    if (vt === undefined || vt <= 0 || this.closing !== undefined) return;
    this.renewTimer = this.clock.setTimeout(() => {
      this.renewTimer = undefined;
      for (const d of this.held) {
        const a = d.consumer.adapter;
        if (a.extend === undefined) continue;
        try {
          a.extend(d.msg).catch((err: unknown) => this.report(err, 'extend'));
        } catch (err) {
          this.report(err, 'extend');
        }
      }
      // Stays armed while messages come and go (no timer per message); stops once a round finds none.
      if (this.held.size > 0) this.armRenew();
    }, Math.max(1, Math.floor(vt / 3)));
  }

  /**
   * Stop every consumer (buffered messages go back uncounted), then give back what the application
   * still holds, counted (as after a crash, but at once). Bounded by `CLOSE_GRACE_MS`: a server that does
   * not answer leaves the rest to its lease. Idempotent.
   */
  close(): Promise<void> {
    this.closing ??= this.doClose();
    return this.closing;
  }

  private async doClose(): Promise<void> {
    if (this.renewTimer !== undefined) this.clock.clearTimeout(this.renewTimer);
    this.renewTimer = undefined;
    const by = this.clock.now() + CLOSE_GRACE_MS * 0.5;
    const consumers = [...this.consumers];
    await settleWithin(Promise.all(consumers.map((c) => c.close())), by - this.clock.now(), this.clock);
    const byConsumer = new Map<KitConsumer, Incoming[]>();
    for (const d of this.held) {
      this.forget(d, RELEASED);
      d.consumer.dropped();
      let list = byConsumer.get(d.consumer);
      if (list === undefined) byConsumer.set(d.consumer, (list = []));
      list.push(d.msg);
    }
    const releases = [...byConsumer].map(([c, ms]) => c.adapter.release(ms, true).catch((err: unknown) => this.report(err, 'release')));
    await settleWithin(Promise.all(releases), by - this.clock.now(), this.clock);
  }
}
