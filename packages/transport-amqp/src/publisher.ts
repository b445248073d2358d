import type { ConfirmChannel, Message, Options } from 'amqplib';
import { CeleriacError, ErrorCode, type Clock, type TimerHandle } from '@celeriac/core';
import { LinkedList } from '@celeriac/core/transport';

/** Code of the error a publish gets when RabbitMQ returned it as unroutable (`mandatory`). */
export const ERR_UNROUTABLE = 'ERR_UNROUTABLE';

/** A sent publish is given up after this many channel losses (a publish that itself breaks channels). */
const MAX_ATTEMPTS = 5;

interface Pending {
  readonly exchange: string;
  readonly routingKey: string;
  readonly content: Buffer;
  readonly options: Options.Publish;
  readonly resolve: () => void;
  readonly reject: (err: Error) => void;
  /** Bumped on every send, so a stale confirm callback of an earlier send is ignored. */
  attempt: number;
  returned: boolean;
  /** When it started waiting for a channel (ms), or undefined while sent. */
  waitingSince: number | undefined;
  /** True once it was sent at least once (the broker may hold it). */
  wasSent: boolean;
  /** Links of the list of sent publishes. */
  prev: Pending | undefined;
  next: Pending | undefined;
}

/**
 * Publishes over one confirm channel with up to `window` publishes awaiting their confirm, so a stream
 * of publishes never pays one round trip each. `mandatory` is set on every publish and a returned
 * message rejects its publish. When the channel or connection goes away, unconfirmed publishes wait for
 * the next channel and are sent again (at-least-once: the broker may already hold a copy); a publish
 * that waits longer than `waitMs` for a channel is rejected with a retryable ERR_CONNECTION.
 */
export class Publisher {
  private ch: ConfirmChannel | undefined;
  private blocked = false;
  private inflight = 0;
  /** Sent on the current channel, in send order. */
  private readonly sent = new LinkedList<Pending>();
  /** Lost with a channel: resent first, in their original order. */
  private lost: Pending[] = [];
  private readonly waiting: Pending[] = [];
  private waitingHead = 0;
  private sweepTimer: TimerHandle | undefined;
  private idleWaiters: (() => void)[] = [];
  private closedError: Error | undefined;

  /** Called on every returned (unroutable) message, e.g. to forget which queues were declared. */
  onReturned: (() => void) | undefined;

  constructor(
    private readonly window: number,
    private readonly waitMs: number,
    private readonly clock: Clock,
  ) {}

  /** Unconfirmed or waiting publishes. */
  get pendingCount(): number {
    return this.sent.size + this.lost.length + (this.waiting.length - this.waitingHead);
  }

  /** A new confirm channel is ready: send what waits. */
  attach(ch: ConfirmChannel): void {
    this.ch = ch;
    this.blocked = false;
    this.inflight = 0;
    ch.on('return', (msg: Message) => this.onReturn(msg));
    ch.on('drain', () => {
      if (this.ch !== ch) return;
      this.blocked = false;
      this.pump();
    });
    this.pump();
  }

  /** The channel is gone: everything unconfirmed waits for the next one. */
  detach(ch: ConfirmChannel): void {
    if (this.ch !== ch) return;
    this.ch = undefined;
    const now = this.clock.now();
    for (const p of this.sent) {
      p.attempt++;
      p.waitingSince = now;
      if (p.attempt > MAX_ATTEMPTS) {
        p.reject(
          new CeleriacError(ErrorCode.CONNECTION, `publish to "${p.exchange || p.routingKey}" lost its channel ${MAX_ATTEMPTS} times`, {
            retryable: true,
          }),
        );
      } else {
        this.lost.push(p);
      }
    }
    this.sent.clear();
    this.inflight = 0;
    for (let i = this.waitingHead; i < this.waiting.length; i++) this.waiting[i]!.waitingSince ??= now;
    this.armSweep();
  }

  publish(exchange: string, routingKey: string, content: Buffer, options: Options.Publish): Promise<void> {
    if (this.closedError !== undefined) return Promise.reject(this.closedError);
    return new Promise<void>((resolve, reject) => {
      const p: Pending = {
        exchange,
        routingKey,
        content,
        options,
        resolve,
        reject,
        attempt: 0,
        returned: false,
        waitingSince: undefined,
        wasSent: false,
        prev: undefined,
        next: undefined,
      };
      if (this.canSend() && this.lost.length === 0 && this.waitingHead === this.waiting.length) {
        this.send(p);
      } else {
        if (this.ch === undefined) {
          p.waitingSince = this.clock.now();
          this.armSweep();
        }
        this.waiting.push(p);
      }
    });
  }

  /** Resolves when nothing is unconfirmed or waiting (for a draining close). */
  idle(): Promise<void> {
    if (this.pendingCount === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** Reject everything still pending and refuse new publishes. */
  close(err: Error): void {
    this.closedError = err;
    if (this.sweepTimer !== undefined) this.clock.clearTimeout(this.sweepTimer);
    this.sweepTimer = undefined;
    const all = [...this.sent, ...this.lost, ...this.waiting.slice(this.waitingHead)];
    this.sent.clear();
    this.lost = [];
    this.waiting.length = 0;
    this.waitingHead = 0;
    for (const p of all) {
      p.attempt++;
      p.reject(err);
    }
    this.ch = undefined;
    this.notifyIdle();
  }

  private canSend(): boolean {
    return this.ch !== undefined && !this.blocked && this.inflight < this.window;
  }

  private pump(): void {
    while (this.canSend()) {
      let p = this.lost.shift();
      if (p === undefined) {
        if (this.waitingHead === this.waiting.length) break;
        p = this.waiting[this.waitingHead]!;
        this.waiting[this.waitingHead++] = undefined as unknown as Pending;
        if (this.waitingHead > 1024 && this.waitingHead * 2 > this.waiting.length) {
          this.waiting.splice(0, this.waitingHead);
          this.waitingHead = 0;
        }
      }
      this.send(p);
    }
    this.notifyIdle();
  }

  private send(p: Pending): void {
    const ch = this.ch!;
    const attempt = ++p.attempt;
    p.waitingSince = undefined;
    p.wasSent = true;
    this.sent.add(p);
    this.inflight++;
    let ok: boolean;
    try {
      ok = ch.publish(p.exchange, p.routingKey, p.content, p.options, (err: unknown) => this.onConfirm(p, attempt, err));
    } catch (err) {
      // The channel closed under us (its close event follows) or the message is malformed.
      this.sent.delete(p);
      this.inflight--;
      if (isChannelClosed(err)) {
        p.waitingSince = this.clock.now();
        this.lost.push(p);
        this.armSweep();
      } else {
        p.reject(err instanceof Error ? err : new Error(String(err)));
      }
      return;
    }
    if (!ok) this.blocked = true;
  }

  private onConfirm(p: Pending, attempt: number, err: unknown): void {
    if (p.attempt !== attempt) return; // an earlier send's callback; the publish has moved on
    if (err !== null && err !== undefined && isChannelClosed(err)) {
      // The channel is closing; detach() moves this publish to the resend list.
      return;
    }
    this.sent.delete(p);
    this.inflight--;
    if (err !== null && err !== undefined) {
      p.reject(
        new CeleriacError(ErrorCode.CONNECTION, 'RabbitMQ refused the message (basic.nack); it was not stored', {
          cause: err,
          retryable: true,
        }),
      );
    } else if (p.returned) {
      p.reject(
        new CeleriacError(
          ERR_UNROUTABLE,
          `RabbitMQ could not route the message to "${p.routingKey}" (${p.exchange === '' ? 'default exchange' : p.exchange}): the queue does not exist`,
          { retryable: true },
        ),
      );
    } else {
      p.resolve();
    }
    this.pump();
  }

  /**
   * RabbitMQ returns an unroutable `mandatory` message before it confirms it; the publish it belongs
   * to is the oldest unconfirmed one with the same routing key and message id. Returns are rare, so
   * they scan the unconfirmed set instead of every publish paying for an index.
   */
  private onReturn(msg: Message): void {
    const id = msg.properties.messageId as string | undefined;
    for (const p of this.sent) {
      if (!p.returned && p.routingKey === msg.fields.routingKey && p.options.messageId === id) {
        p.returned = true;
        break;
      }
    }
    this.onReturned?.();
  }

  /** While anything waits for a channel, reject what waited longer than `waitMs`. */
  private armSweep(): void {
    if (this.sweepTimer !== undefined || this.closedError !== undefined) return;
    this.sweepTimer = this.clock.setTimeout(() => {
      this.sweepTimer = undefined;
      this.sweep();
    }, Math.min(1000, this.waitMs));
  }

  private sweep(): void {
    const now = this.clock.now();
    const expired = (p: Pending) => p.waitingSince !== undefined && now - p.waitingSince >= this.waitMs;
    const keepLost: Pending[] = [];
    for (const p of this.lost) {
      if (expired(p)) this.rejectWaiting(p);
      else keepLost.push(p);
    }
    this.lost = keepLost;
    const rest = this.waiting.slice(this.waitingHead);
    this.waiting.length = 0;
    this.waitingHead = 0;
    for (const p of rest) {
      if (expired(p)) this.rejectWaiting(p);
      else this.waiting.push(p);
    }
    if (this.lost.length > 0 || this.waiting.some((p) => p.waitingSince !== undefined)) this.armSweep();
    this.notifyIdle();
  }

  private rejectWaiting(p: Pending): void {
    p.attempt++;
    p.reject(
      new CeleriacError(
        ErrorCode.CONNECTION,
        p.wasSent
          ? `no connection to RabbitMQ for ${this.waitMs} ms; the publish was not confirmed (RabbitMQ may or may not hold it)`
          : `no connection to RabbitMQ for ${this.waitMs} ms; the message was not published`,
        { retryable: true },
      ),
    );
  }

  private notifyIdle(): void {
    if (this.idleWaiters.length === 0 || this.pendingCount > 0) return;
    const ws = this.idleWaiters;
    this.idleWaiters = [];
    for (const w of ws) w();
  }
}

/** amqplib reports a closed channel with this text; it has no error code for it. */
export function isChannelClosed(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  return err.message === 'channel closed' || err.name === 'IllegalOperationError' || /Channel closed/i.test(err.message);
}
