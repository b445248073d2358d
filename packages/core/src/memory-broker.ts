import type {
  Broker,
  BrokerCapabilities,
  ConsumeOptions,
  DeadLetter,
  DeadLetterOptions,
  Delivery,
  Headers,
  NackOptions,
  OutgoingMessage,
  PublishOptions,
  QueueStats,
} from './broker.js';
import { systemClock, type Clock, type TimerHandle } from './clock.js';
import { CeleriacError, ErrorCode } from './errors.js';
import type { Incoming, PushAdapter, Sink } from './transport/adapter.js';
import { Fifo } from './transport/fifo.js';
import { ConsumerKit, SETTLED } from './transport/kit.js';

/**
 * The in-process broker: the whole contract, held in one `MemoryServer`. Several `MemoryBroker`s
 * (connections) can share a server, which is how tests play "another process": closing a broker
 * without acking gives its deliveries back, like a dropped AMQP channel. Consumption is a push adapter
 * on the transport kit (`MemoryAdapter`, below): the worked example of core's "Writing a transport".
 */

interface Stored {
  readonly id: string;
  readonly body: Uint8Array;
  readonly headers: Headers;
  readonly priority: number;
  deliveries: number;
}

interface Delayed {
  readonly dueAt: number;
  readonly seq: number;
  readonly msg: Stored;
}

/** A claimed message: what the kit hands out (`Incoming`) plus the lease that fences its settle. */
class InFlight implements Incoming {
  readonly id: string;
  readonly body: Uint8Array;
  readonly headers: Headers;
  readonly deliveries: number;

  constructor(
    readonly msg: Stored,
    readonly token: number,
    public leaseUntil: number,
  ) {
    this.id = msg.id;
    this.body = msg.body;
    this.headers = msg.headers;
    this.deliveries = msg.deliveries;
  }
}

interface Dead {
  readonly msg: Stored;
  readonly reason: string;
  readonly deadAt: number;
}

/** Binary min-heap ordered by (dueAt, seq). */
class DelayHeap {
  private readonly a: Delayed[] = [];
  get size(): number {
    return this.a.length;
  }
  peek(): Delayed | undefined {
    return this.a[0];
  }
  push(d: Delayed): void {
    const a = this.a;
    a.push(d);
    let i = a.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (less(a[p]!, a[i]!)) break;
      [a[p], a[i]] = [a[i]!, a[p]!];
      i = p;
    }
  }
  pop(): Delayed | undefined {
    const a = this.a;
    const top = a[0];
    const last = a.pop();
    if (a.length > 0 && last !== undefined) {
      a[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < a.length && less(a[l]!, a[m]!)) m = l;
        if (r < a.length && less(a[r]!, a[m]!)) m = r;
        if (m === i) break;
        [a[m], a[i]] = [a[i]!, a[m]!];
        i = m;
      }
    }
    return top;
  }
  clear(): number {
    const n = this.a.length;
    this.a.length = 0;
    return n;
  }
}
function less(x: Delayed, y: Delayed): boolean {
  return x.dueAt < y.dueAt || (x.dueAt === y.dueAt && x.seq < y.seq);
}

const LEVELS = 10;

class MemoryQueue {
  /** One FIFO per priority level, index 9 served first. */
  readonly ready: Fifo<Stored>[] = Array.from({ length: LEVELS }, () => new Fifo<Stored>());
  readyCount = 0;
  readonly delayed = new DelayHeap();
  readonly inFlight = new Map<number, InFlight>();
  dead: Dead[] = [];
  readonly waiters = new Fifo<MemoryAdapter>();
  delayTimer: TimerHandle | undefined;
  delayTimerAt = Infinity;

  constructor(readonly name: string) {}

  take(): Stored | undefined {
    if (this.readyCount === 0) return undefined;
    for (let p = LEVELS - 1; p >= 0; p--) {
      const m = this.ready[p]!.shift();
      if (m !== undefined) {
        this.readyCount--;
        return m;
      }
    }
    return undefined;
  }
}

export interface MemoryServerOptions {
  /** @default the system clock */
  clock?: Clock;
  /** @default 30_000 */
  visibilityTimeoutMs?: number;
}

/** The state behind one or more memory brokers. */
export class MemoryServer {
  readonly clock: Clock;
  readonly visibilityTimeoutMs: number;
  private readonly queues = new Map<string, MemoryQueue>();
  private readonly channels = new Map<string, Set<(body: Uint8Array) => void>>();
  private seq = 0;
  private token = 0;
  private leaseTimer: TimerHandle | undefined;
  private leaseTimerAt = Infinity;

  constructor(opts: MemoryServerOptions = {}) {
    this.clock = opts.clock ?? systemClock;
    this.visibilityTimeoutMs = opts.visibilityTimeoutMs ?? 30_000;
  }

  queue(name: string): MemoryQueue {
    let q = this.queues.get(name);
    if (q === undefined) {
      q = new MemoryQueue(name);
      this.queues.set(name, q);
    }
    return q;
  }

  publish(queue: string, msg: OutgoingMessage, opts: PublishOptions | undefined): void {
    // The body and headers are kept by reference: a published message must not be mutated.
    const stored: Stored = {
      id: msg.id,
      body: msg.body,
      headers: msg.headers as Headers,
      priority: opts?.priority ?? 0,
      deliveries: 0,
    };
    this.enqueue(this.queue(queue), stored, opts?.delayMs ?? 0, false);
  }

  enqueue(q: MemoryQueue, msg: Stored, delayMs: number, front: boolean): void {
    if (delayMs > 0) {
      const dueAt = this.clock.now() + delayMs;
      q.delayed.push({ dueAt, seq: this.seq++, msg });
      this.armDelayTimer(q);
      return;
    }
    const level = q.ready[Math.min(LEVELS - 1, Math.max(0, msg.priority))]!;
    if (front) level.unshift(msg);
    else level.push(msg);
    q.readyCount++;
    this.wake(q);
  }

  private armDelayTimer(q: MemoryQueue): void {
    const next = q.delayed.peek();
    if (next === undefined || next.dueAt >= q.delayTimerAt) return;
    if (q.delayTimer !== undefined) this.clock.clearTimeout(q.delayTimer);
    q.delayTimerAt = next.dueAt;
    q.delayTimer = this.clock.setTimeout(() => {
      q.delayTimer = undefined;
      q.delayTimerAt = Infinity;
      this.promote(q);
    }, next.dueAt - this.clock.now());
  }

  private promote(q: MemoryQueue): void {
    const now = this.clock.now();
    for (let d = q.delayed.peek(); d !== undefined && d.dueAt <= now; d = q.delayed.peek()) {
      q.delayed.pop();
      this.enqueue(q, d.msg, 0, false);
    }
    this.armDelayTimer(q);
  }

  /** Hand ready messages to waiting consumers. */
  wake(q: MemoryQueue): void {
    while (q.readyCount > 0 && q.waiters.size > 0) {
      const c = q.waiters.shift()!;
      c.offer();
    }
  }

  claim(q: MemoryQueue): InFlight | undefined {
    const msg = q.take();
    if (msg === undefined) return undefined;
    msg.deliveries++;
    const f = new InFlight(msg, ++this.token, this.clock.now() + this.visibilityTimeoutMs);
    q.inFlight.set(f.token, f);
    this.armLeaseTimer(f.leaseUntil);
    return f;
  }

  private armLeaseTimer(at: number): void {
    if (at >= this.leaseTimerAt) return;
    if (this.leaseTimer !== undefined) this.clock.clearTimeout(this.leaseTimer);
    this.leaseTimerAt = at;
    this.leaseTimer = this.clock.setTimeout(() => {
      this.leaseTimer = undefined;
      this.leaseTimerAt = Infinity;
      this.sweepLeases();
    }, at - this.clock.now());
  }

  /** Give back every delivery whose lease ran out, then re-arm for the next one. */
  private sweepLeases(): void {
    const now = this.clock.now();
    let next = Infinity;
    for (const q of this.queues.values()) {
      for (const f of q.inFlight.values()) {
        if (f.leaseUntil <= now) {
          q.inFlight.delete(f.token);
          this.enqueue(q, f.msg, 0, true);
        } else if (f.leaseUntil < next) next = f.leaseUntil;
      }
    }
    if (next !== Infinity) this.armLeaseTimer(next);
  }

  settle(q: MemoryQueue, token: number, nack: NackOptions | undefined): void {
    const f = q.inFlight.get(token);
    if (f === undefined) {
      throw new CeleriacError(ErrorCode.STALE_DELIVERY, 'delivery lease expired; the message was given to another consumer');
    }
    q.inFlight.delete(token);
    if (nack === undefined) return;
    if (!nack.requeue) {
      q.dead.push({ msg: f.msg, reason: nack.reason ?? 'rejected', deadAt: this.clock.now() });
      return;
    }
    this.enqueue(q, f.msg, nack.delayMs ?? 0, (nack.delayMs ?? 0) === 0);
  }

  extend(q: MemoryQueue, token: number): void {
    const f = q.inFlight.get(token);
    if (f === undefined) {
      throw new CeleriacError(ErrorCode.STALE_DELIVERY, 'delivery lease expired; the message was given to another consumer');
    }
    f.leaseUntil = this.clock.now() + this.visibilityTimeoutMs;
  }

  /**
   * Give a claimed message back, at the front of its level. Uncounted (never handed out): its delivery
   * count is taken back. A message whose lease ran out meanwhile is already back: nothing to do.
   */
  release(q: MemoryQueue, f: InFlight, counted: boolean): void {
    if (!q.inFlight.delete(f.token)) return;
    if (!counted) f.msg.deliveries--;
    this.enqueue(q, f.msg, 0, true);
  }

  purge(queue: string): number {
    const q = this.queue(queue);
    const n = q.readyCount + q.delayed.size;
    for (const level of q.ready) level.drain();
    q.readyCount = 0;
    q.delayed.clear();
    if (q.delayTimer !== undefined) this.clock.clearTimeout(q.delayTimer);
    q.delayTimer = undefined;
    q.delayTimerAt = Infinity;
    return n;
  }

  stats(queue: string): QueueStats {
    const q = this.queue(queue);
    return { ready: q.readyCount, delayed: q.delayed.size, inFlight: q.inFlight.size, dead: q.dead.length };
  }

  listDead(queue: string, limit: number): DeadLetter[] {
    return this.queue(queue).dead.slice(0, limit).map((d) => ({
      id: d.msg.id,
      queue,
      body: d.msg.body,
      headers: d.msg.headers,
      reason: d.reason,
      deadAt: d.deadAt,
    }));
  }

  redrive(queue: string, ids: readonly string[] | undefined): number {
    const q = this.queue(queue);
    const wanted = ids === undefined ? undefined : new Set(ids);
    const keep: Dead[] = [];
    let moved = 0;
    for (const d of q.dead) {
      if (wanted === undefined || wanted.has(d.msg.id)) {
        d.msg.deliveries = 0;
        this.enqueue(q, d.msg, 0, false);
        moved++;
      } else keep.push(d);
    }
    q.dead = keep;
    return moved;
  }

  purgeDead(queue: string): number {
    const q = this.queue(queue);
    const n = q.dead.length;
    q.dead = [];
    return n;
  }

  broadcast(channel: string, body: Uint8Array): void {
    for (const fn of this.channels.get(channel) ?? []) {
      try {
        fn(body.slice());
      } catch {
        // a subscriber's failure is its own
      }
    }
  }

  subscribe(channel: string, fn: (body: Uint8Array) => void): () => void {
    let set = this.channels.get(channel);
    if (set === undefined) {
      set = new Set();
      this.channels.set(channel, set);
    }
    const handler = (body: Uint8Array) => fn(body);
    set.add(handler);
    return () => {
      set.delete(handler);
    };
  }

  /** Stop every timer (tests and app shutdown). Messages stay. */
  stopTimers(): void {
    if (this.leaseTimer !== undefined) this.clock.clearTimeout(this.leaseTimer);
    this.leaseTimer = undefined;
    this.leaseTimerAt = Infinity;
    for (const q of this.queues.values()) {
      if (q.delayTimer !== undefined) this.clock.clearTimeout(q.delayTimer);
      q.delayTimer = undefined;
      q.delayTimerAt = Infinity;
    }
  }

  /** True while anything waits on a timer (a delay or a lease). */
  hasPendingTimers(): boolean {
    for (const q of this.queues.values()) if (q.delayed.size > 0 || q.inFlight.size > 0) return true;
    return false;
  }
}

/**
 * One consumer of a memory queue, as a push adapter on the kit: it claims ready messages while the kit
 * has credit and parks on the queue when there are none; the server wakes it when one is published.
 * Everything else (the bound, buffering, settle-once, leases renewed, give-back at close) is the kit's.
 */
class MemoryAdapter implements PushAdapter<InFlight> {
  private sink: Sink<InFlight> | undefined;
  /** In the queue's waiters: the queue had nothing ready when it last looked. */
  private parked = false;

  constructor(
    private readonly server: MemoryServer,
    private readonly q: MemoryQueue,
  ) {}

  start(sink: Sink<InFlight>): void {
    this.sink = sink;
    this.offer();
  }

  /** Claim ready messages while the kit has room; park when the queue is empty. */
  offer(): void {
    this.parked = false;
    const sink = this.sink;
    if (sink === undefined) return;
    while (sink.credit > 0) {
      const f = this.server.claim(this.q);
      if (f === undefined) {
        this.parked = true;
        this.q.waiters.push(this);
        return;
      }
      sink.push(f);
    }
  }

  /** A settle freed a slot: claim again, unless parked (then a publish wakes us). */
  credit(): void {
    if (!this.parked) this.offer();
  }

  ack(f: InFlight): Promise<void> {
    this.server.settle(this.q, f.token, undefined);
    return SETTLED;
  }

  nack(f: InFlight, opts: NackOptions): Promise<void> {
    this.server.settle(this.q, f.token, opts);
    return SETTLED;
  }

  extend(f: InFlight): Promise<void> {
    this.server.extend(this.q, f.token);
    return SETTLED;
  }

  release(fs: readonly InFlight[], counted: boolean): Promise<void> {
    for (const f of fs) this.server.release(this.q, f, counted);
    return SETTLED;
  }

  stop(): void {
    this.sink = undefined;
  }
}

export interface MemoryBrokerOptions extends MemoryServerOptions {
  /** Share state with other memory brokers (another "process"). @default a new private server */
  server?: MemoryServer;
  /**
   * This connection's clock, which renews the leases of what it holds; with a shared `server`, the
   * server's clock still expires them (a test can freeze one "process" this way). @default the server's
   */
  clock?: Clock;
  /** @default 16 MiB */
  maxMessageBytes?: number;
}

/** One connection to a `MemoryServer`. */
export class MemoryBroker implements Broker {
  readonly name = 'memory';
  readonly capabilities: BrokerCapabilities;
  readonly server: MemoryServer;
  readonly visibilityTimeoutMs: number;
  closed = false;
  private readonly ownsServer: boolean;
  private readonly kit: ConsumerKit;
  private readonly unsubscribers = new Set<() => void>();

  constructor(opts: MemoryBrokerOptions = {}) {
    this.ownsServer = opts.server === undefined;
    this.server = opts.server ?? new MemoryServer(opts);
    this.visibilityTimeoutMs = this.server.visibilityTimeoutMs;
    // The connection's own clock renews its leases (a process frozen past the lease loses them), the server's expires them.
    this.kit = new ConsumerKit({ clock: opts.clock ?? this.server.clock, visibilityTimeoutMs: this.visibilityTimeoutMs });
    this.capabilities = {
      delayedDelivery: 'native',
      priorities: LEVELS,
      deadLetter: 'native',
      redeliveryCount: true,
      broadcast: true,
      maxMessageBytes: opts.maxMessageBytes ?? 16 * 1024 * 1024,
      transactionalPublish: false,
    };
  }

  connect(): Promise<void> {
    if (this.closed) return Promise.reject(new CeleriacError(ErrorCode.CLOSED, 'broker is closed'));
    return Promise.resolve();
  }

  /** Idempotent. What this connection still holds goes back to the front of its queue (counted). */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const u of this.unsubscribers) u();
    this.unsubscribers.clear();
    await this.kit.close();
    if (this.ownsServer) this.server.stopTimers();
  }

  private check(): void {
    if (this.closed) throw new CeleriacError(ErrorCode.CLOSED, 'broker is closed');
  }

  declareQueue(queue: string): Promise<void> {
    this.server.queue(queue);
    return Promise.resolve();
  }

  publish(queue: string, msg: OutgoingMessage, opts?: PublishOptions): Promise<void> {
    try {
      this.check();
      this.server.publish(queue, msg, opts);
      return Promise.resolve();
    } catch (err) {
      return Promise.reject(err as Error);
    }
  }

  publishBatch(queue: string, msgs: readonly OutgoingMessage[], opts?: PublishOptions): Promise<void> {
    try {
      this.check();
      for (const m of msgs) this.server.publish(queue, m, opts);
      return Promise.resolve();
    } catch (err) {
      return Promise.reject(err as Error);
    }
  }

  consume(queue: string, opts: ConsumeOptions): AsyncIterable<Delivery> {
    this.check();
    return this.kit.consume(queue, new MemoryAdapter(this.server, this.server.queue(queue)), opts);
  }

  purge(queue: string): Promise<number> {
    return Promise.resolve(this.server.purge(queue));
  }

  stats(queue: string): Promise<QueueStats> {
    return Promise.resolve(this.server.stats(queue));
  }

  readonly deadLetters = {
    list: (queue: string, opts?: DeadLetterOptions): Promise<DeadLetter[]> =>
      Promise.resolve(this.server.listDead(queue, opts?.limit ?? 100)),
    redrive: (queue: string, ids?: readonly string[]): Promise<number> => Promise.resolve(this.server.redrive(queue, ids)),
    purge: (queue: string): Promise<number> => Promise.resolve(this.server.purgeDead(queue)),
  };

  readonly broadcast = {
    publish: (channel: string, body: Uint8Array): Promise<void> => {
      this.server.broadcast(channel, body);
      return Promise.resolve();
    },
    subscribe: (channel: string, onMessage: (body: Uint8Array) => void): Promise<() => Promise<void>> => {
      const off = this.server.subscribe(channel, onMessage);
      this.unsubscribers.add(off);
      return Promise.resolve(() => {
        off();
        this.unsubscribers.delete(off);
        return Promise.resolve();
      });
    },
  };
}

/** Create an in-process broker. Pass `server` to share one with another broker. */
export function createMemoryBroker(opts: MemoryBrokerOptions = {}): MemoryBroker {
  return new MemoryBroker(opts);
}
