import { CeleriacError, ErrorCode } from '@celeriac/core';
import { createInbox, type Msg, type MsgHdrs, type NatsConnection, type Subscription } from '@nats-io/transport-node';
import type { Outbox } from './outbox.js';

/** A request that got no answer in time, or was cut by a disconnect: sending it again may succeed. */
export class TransientRequestError extends CeleriacError {
  constructor(message: string) {
    super(ErrorCode.CONNECTION, message, { retryable: true });
  }
}

interface Pending {
  resolve(msg: Msg): void;
  reject(err: Error): void;
  readonly deadline: number;
}

/**
 * Request/reply for the hot paths (publishes to streams, KV writes), multiplexed on one inbox
 * subscription and written through the outbox, so a turn's requests leave in one socket write.
 *
 * nats.js's `request()` arms a timer and builds an `Error` (with a stack) for every request, even a
 * successful one; at tens of thousands of publishes per second that is a measurable share of a worker's
 * CPU. Here pending requests sit in insertion order (which is deadline order, as they share a timeout)
 * and one interval expires them from the front. A disconnect fails every pending request at once with
 * a transient error, so callers resend after the reconnect instead of waiting for their timeout
 * (a stream publish is resent with the same `Nats-Msg-Id`, so it is not stored twice).
 */
export class Requester {
  private readonly prefix = createInbox();
  private readonly pending = new Map<number, Pending>();
  private readonly sub: Subscription;
  private readonly timer: NodeJS.Timeout;
  private seq = 0;
  private closed = false;

  constructor(
    private readonly nc: NatsConnection,
    private readonly outbox: Outbox,
    private readonly timeoutMs: number,
  ) {
    this.sub = nc.subscribe(`${this.prefix}.*`, {
      callback: (_err, msg) => {
        const id = Number(msg.subject.slice(this.prefix.length + 1));
        const p = this.pending.get(id);
        if (p === undefined) return;
        this.pending.delete(id);
        if (msg.headers?.code === 503 && msg.data.byteLength === 0) {
          p.reject(new TransientRequestError('no responders: JetStream is not answering (yet)'));
        } else p.resolve(msg);
      },
    });
    this.timer = setInterval(() => this.expire(), Math.min(1_000, Math.max(50, Math.floor(timeoutMs / 4))));
  }

  request(subject: string, data: Uint8Array | string, headers?: MsgHdrs): Promise<Msg> {
    if (this.closed) return Promise.reject(new CeleriacError(ErrorCode.CLOSED, 'connection is closed'));
    return new Promise<Msg>((resolve, reject) => {
      const id = ++this.seq;
      this.pending.set(id, { resolve, reject, deadline: Date.now() + this.timeoutMs });
      const nc = this.nc;
      const reply = `${this.prefix}.${id}`;
      this.outbox.push(() => {
        try {
          nc.publish(subject, data, headers === undefined ? { reply } : { reply, headers });
        } catch (err) {
          this.pending.delete(id);
          reject(err as Error);
        }
      });
    });
  }

  /** Fail every pending request with a transient error (their answers may never come). */
  failAll(reason: string): void {
    const all = [...this.pending.values()];
    this.pending.clear();
    for (const p of all) p.reject(new TransientRequestError(reason));
  }

  private expire(): void {
    const now = Date.now();
    for (const [id, p] of this.pending) {
      if (p.deadline > now) break;
      this.pending.delete(id);
      p.reject(new TransientRequestError(`no answer within ${this.timeoutMs} ms`));
    }
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.timer);
    const all = [...this.pending.values()];
    this.pending.clear();
    for (const p of all) p.reject(new CeleriacError(ErrorCode.CLOSED, 'connection closed before the answer came'));
    try {
      this.sub.unsubscribe();
    } catch {
      // connection already closed
    }
  }
}
