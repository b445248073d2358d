import type { Delivery } from '@celeriac/core';
import { unpackClaimed } from './codec.js';
import { RedisDelivery, type SettleListener } from './delivery.js';
import type { QueueHandle } from './queue.js';
import type { RedisClient } from './scripts.js';

/** What a consumer needs from its broker. */
export interface ConsumerHost {
  readonly claimBatch: number;
  readonly blockTimeoutMs: number;
  /** A new connection for blocking waits (a blocked connection cannot run other commands). */
  createBlockingClient(): RedisClient;
  /** Report a connection problem (the consumer keeps retrying by itself). */
  report(err: unknown): void;
  /** A delivery was handed out / settled: the broker gives back what is still held at close. */
  hold(d: RedisDelivery): void;
  forget(d: RedisDelivery): void;
}

/** Longest a timer for a delayed message or lease waits before re-checking (setTimeout caps at ~24.8 days). */
const MAX_TIMER_MS = 3_600_000;
/** A blocking wait that has not answered this long after its server-side timeout is abandoned. */
const BLOCK_WATCHDOG_MS = 5_000;

/**
 * One consume() iteration. A background loop claims up to `claimBatch` deliveries per script call
 * while the prefetch budget has room. When the queue is drained it blocks (BZPOPMIN on the queue's
 * marker, on its own connection, bounded by `blockTimeoutMs`) and arms a timer for the earliest
 * delayed message or lease the claim script reported — no busy poll. Errors are reported and
 * retried with backoff; the loop only ends when the signal aborts or the broker closes.
 */
export class RedisConsumer implements AsyncIterator<Delivery>, SettleListener {
  private readonly buffer: RedisDelivery[] = [];
  private bufferHead = 0;
  /** Handed out and not settled. */
  private unsettled = 0;
  private done = false;
  private pendingNext: ((r: IteratorResult<Delivery>) => void) | undefined;
  private sleeping: 'room' | 'ready' | undefined;
  private wakeUp: (() => void) | undefined;
  private woken = false;
  private sweepDue = false;
  private timer: NodeJS.Timeout | undefined;
  private blocker: RedisClient | undefined;
  private blocking = false;
  private failures = 0;
  private cancelPause: (() => void) | undefined;
  private readonly onAbort = () => this.finish();
  readonly ended: Promise<void>;

  constructor(
    private readonly host: ConsumerHost,
    private readonly queue: QueueHandle,
    private readonly prefetch: number,
    private readonly signal: AbortSignal | undefined,
  ) {
    if (signal?.aborted === true) this.done = true;
    else signal?.addEventListener('abort', this.onAbort, { once: true });
    this.ended = this.run();
  }

  private get buffered(): number {
    return this.buffer.length - this.bufferHead;
  }

  next(): Promise<IteratorResult<Delivery>> {
    if (this.done) return this.ended.then(() => ({ done: true, value: undefined }));
    if (this.bufferHead < this.buffer.length) return Promise.resolve({ done: false, value: this.handOut() });
    return new Promise((resolve) => {
      this.pendingNext = resolve;
    });
  }

  /** A buffered delivery without a promise (core's fast path), or undefined when `next()` must wait. */
  takeSync(): Delivery | undefined {
    if (this.done || this.pendingNext !== undefined || this.bufferHead >= this.buffer.length) return undefined;
    return this.handOut();
  }

  async return(): Promise<IteratorResult<Delivery>> {
    this.finish();
    await this.ended;
    return { done: true, value: undefined };
  }

  /** Stop claiming; the loop gives back whatever it claimed and had not handed out. */
  finish(): void {
    if (this.done) return;
    this.done = true;
    this.signal?.removeEventListener('abort', this.onAbort);
    this.cancelPause?.();
    this.wake();
    this.dropBlocker();
  }

  settled(d: RedisDelivery): void {
    this.unsettled--;
    this.host.forget(d);
    if (this.sleeping === 'room') this.wake();
  }

  private handOut(): RedisDelivery {
    const d = this.buffer[this.bufferHead]!;
    this.buffer[this.bufferHead++] = undefined as unknown as RedisDelivery;
    if (this.bufferHead === this.buffer.length) {
      this.buffer.length = 0;
      this.bufferHead = 0;
    }
    this.unsettled++;
    this.host.hold(d);
    return d;
  }

  private wake(): void {
    const w = this.wakeUp;
    if (w === undefined) {
      this.woken = true;
      return;
    }
    this.wakeUp = undefined;
    this.sleeping = undefined;
    w();
  }

  private sleep(reason: 'room' | 'ready'): Promise<void> {
    if (this.woken || this.done) {
      this.woken = false;
      return Promise.resolve();
    }
    this.sleeping = reason;
    return new Promise((resolve) => {
      this.wakeUp = resolve;
    });
  }

  private async run(): Promise<void> {
    await Promise.resolve();
    while (!this.done) {
      const want = Math.max(0, Math.min(this.host.claimBatch, this.prefetch - this.unsettled - this.buffered));
      if (want === 0 && !this.sweepDue) {
        await this.sleep('room');
        continue;
      }
      this.sweepDue = false;
      this.woken = false;
      let reply: (number | Buffer)[];
      try {
        reply = await this.queue.claim(want);
        this.failures = 0;
      } catch (err) {
        if (this.done) break;
        this.host.report(err);
        await this.pause(Math.min(5_000, 100 * 2 ** Math.min(this.failures++, 6)));
        this.sweepDue = true;
        continue;
      }
      const got = this.accept(reply);
      if (this.done) break;
      if (want > 0 && got >= want) continue;
      if (want > 0) this.block();
      await this.sleep(want > 0 ? 'ready' : 'room');
    }
    await this.cleanUp();
  }

  /** Turn a claim reply into deliveries; returns how many were claimed. */
  private accept(reply: (number | Buffer)[]): number {
    const token = reply[0] as number;
    const nextDueMs = reply[1] as number;
    let n = 0;
    for (const { priority, deliveries, id, payload } of unpackClaimed(reply[2] as Buffer)) {
      const member = `${token}|${priority}|${deliveries}|${id}`;
      let d: RedisDelivery;
      try {
        d = new RedisDelivery(this.queue, this, member, id, deliveries, payload);
      } catch (err) {
        // An undecodable stored message: dead-letter it rather than hand it out or lose it.
        this.host.report(err);
        this.queue.nack(member, 'x', `ERR_SERIALIZATION: undecodable stored message: ${err instanceof Error ? err.message : String(err)}`).catch((e: unknown) => this.host.report(e));
        continue;
      }
      n++;
      this.buffer.push(d);
    }
    if (this.done) return n;
    const resolve = this.pendingNext;
    if (resolve !== undefined && this.bufferHead < this.buffer.length) {
      this.pendingNext = undefined;
      resolve({ done: false, value: this.handOut() });
    }
    this.armTimer(nextDueMs);
    return n;
  }

  private armTimer(nextDueMs: number): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    if (nextDueMs < 0) return;
    this.timer = setTimeout(
      () => {
        this.timer = undefined;
        this.sweepDue = true;
        this.wake();
      },
      Math.min(MAX_TIMER_MS, nextDueMs + 2),
    );
  }

  /** Block for the queue's marker on the dedicated connection, unless a wait is already out. */
  private block(): void {
    if (this.blocking || this.done) return;
    this.blocking = true;
    const client = (this.blocker ??= this.host.createBlockingClient());
    let watchdog: NodeJS.Timeout | undefined;
    const wait = client.bzpopmin(this.queue.keys.marker, this.host.blockTimeoutMs / 1000);
    const guard = new Promise<'hung'>((resolve) => {
      watchdog = setTimeout(() => resolve('hung'), this.host.blockTimeoutMs + BLOCK_WATCHDOG_MS);
    });
    Promise.race([wait, guard])
      .then(
        (r) => {
          if (r === 'hung') {
            // The connection did not answer a bounded wait: replace it, so a wedged socket cannot
            // hold the consumer across a reconnect.
            if (this.blocker === client) this.dropBlocker();
          }
          return undefined;
        },
        (err: unknown) => {
          if (!this.done) this.host.report(err);
          if (this.blocker === client) this.dropBlocker();
          // Do not spin on a failing connection; the main loop's claims carry on meanwhile.
          return this.done ? undefined : new Promise<void>((r) => setTimeout(r, 500).unref());
        },
      )
      .finally(() => {
        clearTimeout(watchdog);
        this.blocking = false;
        // A marker, a timeout or an error: re-check (promote, recover, claim) either way.
        this.sweepDue = true;
        this.wake();
      })
      .catch(() => undefined);
    wait.catch(() => undefined);
  }

  private dropBlocker(): void {
    const b = this.blocker;
    this.blocker = undefined;
    b?.disconnect();
  }

  /** Wait `ms`, or less if the consumer finishes meanwhile. */
  private pause(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const t = setTimeout(done, ms);
      function done(): void {
        clearTimeout(t);
        resolve();
      }
      this.cancelPause = done;
    }).finally(() => {
      this.cancelPause = undefined;
    });
  }

  private async cleanUp(): Promise<void> {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    this.dropBlocker();
    const left = this.buffer.slice(this.bufferHead);
    this.buffer.length = 0;
    this.bufferHead = 0;
    await Promise.all(left.map((d) => d.giveBack(false).catch((err: unknown) => this.host.report(err))));
    const resolve = this.pendingNext;
    this.pendingNext = undefined;
    resolve?.({ done: true, value: undefined });
  }
}
