import type { Msg, NatsConnection } from '@nats-io/transport-node';
import { ACK, NAK, jsPublish, nakDelay, parseAckSubject } from './jetstream-publish.js';
import type { Names } from './names.js';
import { Puller } from './puller.js';
import { replyBytes } from './outbox.js';
import type { Requester } from './requester.js';
import { reply, type Writer } from './work-consumer.js';

/** The header of a delayed message that says when it is due (epoch ms). */
export const DUE_HEADER = 'Celeriac-Due';

export interface MoverOptions extends Writer {
  nc: NatsConnection;
  requester: Requester;
  names: Names;
  /** Messages this mover holds at once (being moved). */
  window: number;
  pullExpiresMs: number;
  heartbeatMs: number;
  onError(err: unknown): void;
}

/**
 * Moves due messages from the delay stream to the task stream.
 *
 * Delayed messages (countdowns, ETAs, retry backoff, delayed nacks) are stored in `<prefix>_delayed`,
 * a work-queue stream with one durable pull consumer, `mover`, shared by every connected broker
 * instance. A mover pulls a message and compares its `Celeriac-Due` header with the clock:
 * - not due yet: `nak(due − now)`. The server keeps the message in the MOVER's ack-pending set (its
 *   `max_ack_pending` is unlimited) and hands it out again when it is due — no client timer, no
 *   polling, and nothing in the work consumer's in-flight budget. The server persists that state, so it
 *   survives every worker restart; a redelivery that comes early (a server restart moves it up by up to
 *   AckWait) is simply nak'd again for the rest.
 * - due: publish it to the task subject with `Nats-Msg-Id = mv:<delay stream>:<seq>:<stored ns>` —
 *   never equal to the id of the original publish, and the same if two movers (or a retry after a
 *   crash) move the same copy, so the task stream's duplicate window drops the second — then ack it,
 *   which deletes it from the delay stream.
 * Any number of movers is safe: the server gives each pending message to one puller at a time.
 */
export class DelayMover {
  private readonly puller: Puller;
  private moving = 0;
  private closed = false;
  private idle: (() => void) | undefined;
  private backoffTimer: NodeJS.Timeout | undefined;

  constructor(private readonly o: MoverOptions) {
    this.puller = new Puller({
      nc: o.nc,
      stream: o.names.delayedStream,
      consumer: o.names.moverConsumer,
      expiresMs: o.pullExpiresMs,
      heartbeatMs: o.heartbeatMs,
      defer: (write) => o.outbox.push(write),
      onMessage: (msg) => this.onMessage(msg),
      onEnded: (_id, failure) => {
        if (failure === undefined) this.pump();
        else this.backoff();
      },
    });
    this.pump();
  }

  private backoff(): void {
    if (this.backoffTimer !== undefined || this.closed) return;
    this.backoffTimer = setTimeout(() => {
      this.backoffTimer = undefined;
      this.pump();
    }, 1_000);
  }

  pump(): void {
    if (this.closed || this.backoffTimer !== undefined) return;
    const free = this.o.window - this.moving - this.puller.outstanding;
    if (free > 0 && (this.puller.outstanding === 0 || free >= this.o.window / 4)) this.puller.request(free);
  }

  /** After a reconnect the server may have lost our pull requests. */
  reset(): void {
    this.puller.reset();
    this.pump();
  }

  private onMessage(msg: Msg): void {
    const replyTo = replyBytes(msg);
    if (this.closed) {
      reply(this.o, replyTo, NAK);
      return;
    }
    const due = Number(msg.headers?.get(DUE_HEADER));
    const target = this.o.names.taskSubjectFor(msg.subject);
    if (target === undefined) {
      reply(this.o, replyTo, ACK); // not ours; a foreign message must not cycle forever
      return;
    }
    const wait = Number.isFinite(due) ? due - Date.now() : 0;
    if (wait > 0) {
      reply(this.o, replyTo, nakDelay(wait));
      return;
    }
    const info = parseAckSubject(msg.reply ?? '');
    const moveId = info === undefined ? `mv:${msg.reply ?? msg.subject}` : `mv:${info.stream}:${info.streamSeq}:${info.timestampNs}`;
    this.moving++;
    jsPublish(this.o.requester, target, msg.data, moveId).then(
      () => reply(this.o, replyTo, ACK),
      (err: unknown) => {
        this.o.onError(err);
        reply(this.o, replyTo, nakDelay(1_000));
      },
    ).finally(() => {
      this.moving--;
      if (this.moving === 0) this.idle?.();
      this.pump();
    });
  }

  /** Stop pulling; resolves once the moves under way finished. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.backoffTimer !== undefined) clearTimeout(this.backoffTimer);
    await this.puller.close();
    if (this.moving > 0) await new Promise<void>((resolve) => (this.idle = resolve));
  }
}
