import { createInbox, type Msg, type NatsConnection, type Subscription } from '@nats-io/transport-node';
import { isAckSubject } from './jetstream-publish.js';
import { replyBytes } from './outbox.js';

/**
 * A reply subject and its subscription, answering one pull request after another: a request that the
 * server finished (every message delivered, or a final status) leaves nothing behind on it, so the next
 * request can use it without a subscribe and an unsubscribe of its own.
 */
interface Line {
  readonly subject: string;
  /** Set once a deferred write subscribed the subject. */
  sub: Subscription | undefined;
  /** The request it answers now; undefined while it waits for the next one. */
  req: PullRequest | undefined;
  /** The last request it answered: a message that arrives after that one ended is still its. */
  lastId: number;
}

/** A pull request the server still holds open. */
interface PullRequest {
  readonly id: number;
  readonly line: Line;
  /** Ended before its deferred write ran: the write does nothing. */
  ended: boolean;
  /** Messages it may still deliver. */
  remaining: number;
  /** When the server lets it expire (epoch ms). */
  readonly expiresAt: number;
  /** Last sign of life: a message or an idle heartbeat (epoch ms). */
  lastSeen: number;
}

export interface PullerOptions {
  nc: NatsConnection;
  stream: string;
  consumer: string;
  /** How long the server holds a pull request open. */
  expiresMs: number;
  /** Idle heartbeat the server sends on an open request; two missed ones drop it. */
  heartbeatMs: number;
  /**
   * Bytes one pull may bring at most, so big messages never overrun the client's pending limit
   * (a 200-message pull of 512 KB each would). At least twice the largest message.
   */
  maxBytes?: number;
  /**
   * Runs a write to the connection with the owner's other writes of this turn (its acks), so a pull
   * request and the acks that freed its slots leave in one socket write. Each write is a system call,
   * and one took about a quarter of a millisecond on this project's loaded machine.
   */
  defer(write: () => void): void;
  /** A JetStream message (it has a `$JS.ACK` reply subject), and the id of the request it answers. */
  onMessage(msg: Msg, requestId: number): void;
  /**
   * A request ended (`requestId`, or undefined when several were dropped at once); the owner may pull
   * again. `failure` is set when it ended in an error status.
   */
  onEnded(requestId: number | undefined, failure?: { code: number; description: string }): void;
}

/**
 * Pull requests on one durable consumer, with exact accounting of what is still owed.
 *
 * Each open request has a reply subscription of its own, so every message and every status (408
 * expired, 409 limits, 404 nothing for a no-wait request, 100 heartbeat) is attributed to the request it
 * answers, and `outstanding` is the exact number of messages the server may still push at us — which is
 * what lets the owner keep `held + outstanding <= prefetch`. A request the server finished hands its
 * subscription to the next request (a subscribe and an unsubscribe per pull cost more CPU than the pull
 * itself). Unsubscribing a reply subject cancels its request: the server drops pull requests whose reply
 * subject lost its interest. A request that goes silent (server restart, lost connection) is dropped
 * after two missed heartbeats or its expiry, and its subscription with it.
 */
export class Puller {
  private readonly inbox = createInbox();
  private readonly api: string;
  private readonly requests = new Map<number, PullRequest>();
  /** Reply subscriptions whose last request the server finished, for the next requests. */
  private readonly spare: Line[] = [];
  private readonly timer: NodeJS.Timeout;
  private seq = 0;
  /** When the sweep last ran (epoch ms): a message's sign of life. */
  private lastSweep = Date.now();
  private closed = false;
  /** Messages the server may still deliver on open requests. */
  outstanding = 0;

  constructor(private readonly o: PullerOptions) {
    this.api = `$JS.API.CONSUMER.MSG.NEXT.${o.stream}.${o.consumer}`;
    this.timer = setInterval(() => this.sweep(), o.heartbeatMs);
  }

  /** Whether the request with this id is still open. */
  isOpen(id: number): boolean {
    return this.requests.has(id);
  }

  /**
   * Ask the server for up to `batch` messages (no-wait: answer at once, with what there is).
   * Returns the request's id, or undefined if nothing was asked.
   */
  request(batch: number, noWait = false): number | undefined {
    if (this.closed || batch < 1) return undefined;
    const id = ++this.seq;
    const now = Date.now();
    const expiresMs = noWait ? Math.min(this.o.expiresMs, 5_000) : this.o.expiresMs;
    if (this.o.nc.isClosed() || this.o.nc.isDraining()) return undefined;
    const line = this.spare.pop() ?? { subject: `${this.inbox}.${id}`, sub: undefined, req: undefined, lastId: id };
    const req: PullRequest = { id, line, ended: false, remaining: batch, expiresAt: now + expiresMs, lastSeen: now };
    line.req = req;
    line.lastId = id;
    this.requests.set(id, req);
    this.outstanding += batch;
    // A no-wait request must not carry `expires`: with one, the server waits for it when the consumer is empty.
    const body: Record<string, unknown> = noWait
      ? { batch, no_wait: true }
      : { batch, expires: expiresMs * 1_000_000, idle_heartbeat: this.o.heartbeatMs * 1_000_000 };
    if (this.o.maxBytes !== undefined) body['max_bytes'] = this.o.maxBytes;
    const json = JSON.stringify(body);
    this.o.defer(() => {
      if (req.ended) return;
      try {
        line.sub ??= this.o.nc.subscribe(line.subject, { callback: (_err, msg) => this.onMsg(line, msg) });
        this.o.nc.publish(this.api, json, { reply: line.subject });
      } catch {
        // closed or draining connection: the request is over, the owner may ask again
        if (this.end(req, 'cancel')) this.o.onEnded(req.id);
      }
    });
    return id;
  }

  /** Forget every open request (after a reconnect the server may have lost them). */
  reset(): void {
    for (const r of [...this.requests.values()]) this.end(r, 'cancel');
  }

  /**
   * Cancel every request and stop. Resolves once the server confirmed the cancellations: a message it
   * sent before it saw them still reaches `onMessage` (the owner gives it back), instead of being
   * dropped on the floor and redelivered only after AckWait.
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.timer);
    const lines = [...this.spare];
    this.spare.length = 0;
    for (const r of [...this.requests.values()]) {
      this.end(r, 'close');
      lines.push(r.line);
    }
    await Promise.all(lines.map((l) => l.sub?.drain().catch(() => undefined) ?? Promise.resolve()));
  }

  /**
   * End a request: `done` when the server finished it (its line is free for the next request),
   * `cancel` when the server may still hold it (its subscription goes, which cancels it), `close` when
   * the caller drains the subscription itself.
   */
  private end(r: PullRequest, how: 'done' | 'cancel' | 'close'): boolean {
    if (!this.requests.delete(r.id)) return false;
    this.outstanding -= r.remaining;
    r.remaining = 0;
    r.ended = true;
    const line = r.line;
    if (line.req === r) line.req = undefined;
    if (how === 'done' && !this.closed) {
      this.spare.push(line);
    } else if (how === 'cancel') {
      const sub = line.sub;
      // A line no request subscribed yet is simply dropped; a request the write never sent is nothing to cancel.
      if (sub !== undefined) {
        this.o.defer(() => {
          try {
            sub.unsubscribe();
          } catch {
            // connection already closed
          }
        });
      }
    }
    return true;
  }

  private onMsg(line: Line, msg: Msg): void {
    const r = line.req;
    // A message has a `$JS.ACK` reply; only the rest can be statuses (its headers are decoded only then).
    const code = isAckSubject(replyBytes(msg)) ? 0 : (msg.headers?.code ?? 0);
    if (code > 0) {
      if (r === undefined) return; // a status of a request that already ended
      if (code === 100) {
        r.lastSeen = Date.now();
        return;
      }
      if (this.end(r, 'done')) {
        // 409 "…MaxBytes": the pull's byte budget is spent — a normal end, not a failure.
        const bytesSpent = code === 409 && /maxbytes/i.test(msg.headers?.description ?? '');
        if (code === 404 || code === 408 || bytesSpent) this.o.onEnded(r.id);
        else this.o.onEnded(r.id, { code, description: msg.headers?.description ?? '' });
      }
      return;
    }
    if (r === undefined) {
      // Sent before the server saw its request's cancellation: the owner gives it back.
      this.o.onMessage(msg, line.lastId);
      return;
    }
    // The sweep's clock, not Date.now() per message: at most one sweep old, well inside the silence limit.
    r.lastSeen = this.lastSweep;
    r.remaining--;
    this.outstanding--;
    this.o.onMessage(msg, r.id);
    if (r.remaining <= 0 && this.end(r, 'done')) this.o.onEnded(r.id);
  }

  private sweep(): void {
    const now = Date.now();
    this.lastSweep = now;
    let ended = false;
    for (const r of [...this.requests.values()]) {
      const silent = now - r.lastSeen > this.o.heartbeatMs * 2 + 1_000;
      if (silent || now > r.expiresAt + this.o.heartbeatMs) ended = this.end(r, 'cancel') || ended;
    }
    if (ended) this.o.onEnded(undefined);
  }
}
