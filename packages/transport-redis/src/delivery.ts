import { CeleriacError, decodeHeaderFrame, ErrorCode, type Delivery, type Headers, type NackOptions, type PreparedResultWrite } from '@celeriac/core';
import { NackMode, type QueueHandle } from './queue.js';

/** The result write this transport runs with an ack: result-redis's (see lua/ack-result.lua). */
export const RESULT_WRITE_KIND = 'redis-set-result';

/** Told when a delivery is settled, so the consumer frees its prefetch slot. */
export interface SettleListener {
  settled(d: RedisDelivery): void;
}

/** One claimed message. Its active member (with the claim's token) fences every settle. */
export class RedisDelivery implements Delivery {
  readonly id: string;
  readonly body: Uint8Array;
  readonly headers: Headers;
  /** Settled, or given back by close(): later settles are refused. */
  done = false;
  /** Links of the broker's list of held deliveries. */
  prev: RedisDelivery | undefined;
  next: RedisDelivery | undefined;

  constructor(
    private readonly queue: QueueHandle,
    private readonly listener: SettleListener,
    readonly member: string,
    id: string,
    readonly deliveries: number,
    payload: Buffer,
  ) {
    this.id = id;
    const { headers, body } = decodeHeaderFrame(payload);
    this.headers = headers;
    this.body = body;
  }

  private settle(): void {
    if (this.done) {
      throw new CeleriacError(ErrorCode.ALREADY_SETTLED, `delivery ${this.id} was already settled or given back`);
    }
    this.done = true;
    this.listener.settled(this);
  }

  ack(): Promise<void> {
    try {
      this.settle();
    } catch (err) {
      return Promise.reject(err as Error);
    }
    return this.queue.ack(this.member);
  }

  ackWithResult(write: PreparedResultWrite): Promise<void> {
    if (write.kind !== RESULT_WRITE_KIND || write.keys.length !== 1 || write.args.length !== 3) {
      return Promise.reject(new CeleriacError(ErrorCode.UNSUPPORTED, `the Redis broker cannot run a "${write.kind}" result write`));
    }
    try {
      this.settle();
    } catch (err) {
      return Promise.reject(err as Error);
    }
    return this.queue.ackWithResult(this.member, write);
  }

  nack(opts: NackOptions): Promise<void> {
    try {
      this.settle();
    } catch (err) {
      return Promise.reject(err as Error);
    }
    if (!opts.requeue) return this.queue.nack(this.member, NackMode.DEAD, opts.reason ?? 'rejected');
    const delay = opts.delayMs === undefined ? 0 : Math.ceil(opts.delayMs);
    if (delay > 0) return this.queue.nack(this.member, NackMode.DELAY, delay);
    return this.queue.nack(this.member, NackMode.REQUEUE);
  }

  extend(): Promise<void> {
    if (this.done) return Promise.resolve();
    return this.queue.extend(this.member);
  }

  /** Hand the delivery back without the holder settling it (close, or never handed out). */
  giveBack(counted: boolean): Promise<void> {
    this.done = true;
    return this.queue.nack(this.member, counted ? NackMode.REQUEUE : NackMode.UNCLAIM);
  }
}
