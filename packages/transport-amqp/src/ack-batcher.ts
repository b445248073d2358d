/** Where a delivery of one channel stands, as far as the server is concerned. */
const State = {
  /** Running, buffered, being forwarded or about to be nacked: no ack may cover it. */
  open: 0,
  /** Acked by the application; the ack has not been sent yet. */
  ackWanted: 1,
  /** Settled at the server (acked or nacked on its own, or covered by a multiple ack). */
  done: 2,
} as const;
type State = (typeof State)[keyof typeof State];

/** One delivery of a channel, in the batcher's list. */
export interface AckEntry<M> {
  readonly message: M;
  /** @internal */
  state: State;
}

/** How the batcher defers work: `soon` runs once this turn of the event loop is over, `later` after `ms`. */
export interface AckScheduler {
  soon(fn: () => void): void;
  later(fn: () => void, ms: number): () => void;
}

/**
 * Turns the acks of one AMQP channel into as few `basic.ack` frames as it safely can.
 *
 * Every delivery of the channel is added in delivery-tag order and stays in the list until it is settled
 * at the server. A flush (once per event-loop turn after an ack) sends one `basic.ack multiple` for the
 * longest run at the front of the list that holds only acked or already settled deliveries, carrying the
 * last acked one's tag, so it never covers a delivery that is still open. Acks behind an open delivery
 * wait one more flush (or `stragglerMs` when no other flush comes) and then go out one by one. Nacks are
 * sent by the caller on their own and reported with `settled()`, so a later multiple ack skips over them.
 */
export class AckBatcher<M> {
  private list: (AckEntry<M> | undefined)[] = [];
  private head = 0;
  /** Acked since the last flush and not yet sent. */
  private fresh: AckEntry<M>[] = [];
  /** Acked before the last flush and still behind an open delivery: sent one by one at the next flush. */
  private waiting: AckEntry<M>[] = [];
  private scheduled = false;
  /** Sweep the settled entries out of the list once it is longer than this. */
  private sweepAt = 1024;
  private cancelTimer: (() => void) | undefined;

  constructor(
    /** Sends `basic.ack` for `message`, covering every earlier delivery of the channel when `multiple`. */
    private readonly send: (message: M, multiple: boolean) => void,
    private readonly scheduler: AckScheduler,
    private readonly stragglerMs = 5,
  ) {}

  /** Deliveries the batcher still tracks (open, acked but unsent, or settled behind an open one). */
  get size(): number {
    return this.list.length - this.head;
  }

  /** A new delivery of the channel; call in delivery-tag order. */
  add(message: M): AckEntry<M> {
    const entry: AckEntry<M> = { message, state: State.open };
    this.list.push(entry);
    return entry;
  }

  /** The application acked `entry`: send it with the next flush. */
  ack(entry: AckEntry<M>): void {
    if (entry.state !== State.open) return;
    entry.state = State.ackWanted;
    this.fresh.push(entry);
    this.schedule();
  }

  /** `entry` was settled at the server on its own (a nack, or an ack sent directly). */
  settled(entry: AckEntry<M>): void {
    if (entry.state !== State.open) return;
    entry.state = State.done;
    // Nothing to send for a settled front; drop it now, so a channel that only nacks does not pile up.
    while (this.head < this.list.length && this.list[this.head]!.state === State.done) this.list[this.head++] = undefined;
    this.compact();
    // It may have held back acks that can now go out together.
    if (this.head < this.list.length && this.list[this.head]!.state === State.ackWanted) this.schedule();
  }

  /** Send what can go out now: the acked front in one frame, and the acks that waited a flush already. */
  flush(): void {
    this.scheduled = false;
    this.cancelTimer?.();
    this.cancelTimer = undefined;
    this.sendFront();
    for (const e of this.waiting) this.sendOne(e);
    this.compact();
    this.waiting = this.fresh.filter((e) => e.state === State.ackWanted);
    this.fresh = [];
    if (this.waiting.length > 0) {
      this.cancelTimer = this.scheduler.later(() => {
        this.cancelTimer = undefined;
        this.flush();
      }, this.stragglerMs);
    }
  }

  /** Send every ack not sent yet, before the channel closes. */
  flushAll(): void {
    this.flush();
    for (let i = this.head; i < this.list.length; i++) this.sendOne(this.list[i]!);
    this.clear();
  }

  /** The channel is gone (RabbitMQ requeues everything it held): forget it all. */
  clear(): void {
    this.scheduled = false;
    this.cancelTimer?.();
    this.cancelTimer = undefined;
    this.list = [];
    this.head = 0;
    this.fresh = [];
    this.waiting = [];
  }

  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    this.scheduler.soon(() => {
      if (this.scheduled) this.flush();
    });
  }

  private sendFront(): void {
    let last: AckEntry<M> | undefined;
    let acks = 0;
    while (this.head < this.list.length) {
      const e = this.list[this.head]!;
      if (e.state === State.open) break;
      if (e.state === State.ackWanted) {
        e.state = State.done;
        last = e;
        acks++;
      }
      this.list[this.head++] = undefined;
    }
    this.compact();
    if (last !== undefined) this.send(last.message, acks > 1);
  }

  private sendOne(e: AckEntry<M>): void {
    if (e.state !== State.ackWanted) return;
    e.state = State.done;
    this.send(e.message, false);
  }

  private compact(): void {
    if (this.head === this.list.length) {
      this.list = [];
      this.head = 0;
    } else if (this.list.length - this.head > this.sweepAt) {
      // A delivery held for long keeps everything behind it in the list; the settled ones need not stay.
      this.list = this.list.slice(this.head).filter((e) => e !== undefined && e.state !== State.done);
      this.head = 0;
      this.sweepAt = Math.max(1024, 2 * this.list.length);
    } else if (this.head > 1024 && this.head * 2 > this.list.length) {
      this.list.splice(0, this.head);
      this.head = 0;
    }
  }
}
