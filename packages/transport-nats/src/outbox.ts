import type { Msg, NatsConnection } from '@nats-io/transport-node';

/** A short text published to a reply subject: an ack verb of a JetStream delivery. */
interface Reply {
  readonly subject: Uint8Array;
  readonly text: string;
}

/** The part of nats.js's message that holds the reply subject as read, before it is made a string. */
interface RawMsg {
  readonly _msg?: { readonly reply?: unknown };
}

/**
 * A message's reply subject as bytes: the bytes the client read (nats.js decodes the string only when
 * asked), or the encoded string where the client keeps no such bytes. Undefined without a reply.
 */
export function replyBytes(msg: Msg): Uint8Array | undefined {
  const raw = (msg as unknown as RawMsg)._msg?.reply;
  if (raw instanceof Uint8Array) return raw;
  return msg.reply === undefined || msg.reply === '' ? undefined : Buffer.from(msg.reply);
}

const decoder = new TextDecoder();
/** `PUB ` */
const PUB = Buffer.from('PUB ');
/** What follows the subject of a `PUB` line of `text`, for the ack verbs (a tail each), built once. */
const tails = new Map<string, Buffer>();
function tailOf(text: string): Buffer {
  let t = tails.get(text);
  if (t === undefined) {
    t = Buffer.from(` ${Buffer.byteLength(text)}\r\n${text}\r\n`);
    if (tails.size < 16) tails.set(text, t); // the three verbs; a delayed nak's text varies
  }
  return t;
}

/** The part of nats.js's connection that takes protocol text as it is (not in its typings). */
interface RawProtocol {
  readonly noMorePublishing?: boolean;
  sendCommand(cmd: string | Uint8Array): void;
}

function rawProtocol(nc: NatsConnection): RawProtocol | undefined {
  const p = (nc as unknown as { protocol?: Partial<RawProtocol> }).protocol;
  return typeof p?.sendCommand === 'function' ? (p as RawProtocol) : undefined;
}

/**
 * Coalesces writes to the connection.
 *
 * nats.js flushes its outbound buffer on the microtask after the first write, so writes made by
 * different tasks (each finishing in its own turn of the event loop) each become a socket write — at
 * tens of thousands of acks and publishes per second that is most of the CPU. The outbox defers every
 * write to one `setImmediate` per turn and performs them back to back, in order, so one turn's acks,
 * nacks and publishes leave in a single write. The added latency is one event-loop turn.
 *
 * Ack verbs (`reply`) go further: consecutive ones become one buffer of `PUB` lines, copied from the
 * reply subjects' bytes as the client read them and handed to the client's protocol writer, instead of
 * a publish each (a subject decoded, checked, a line built and encoded per ack). Where the client does
 * not expose that writer they are published one by one.
 */
export class Outbox {
  private queue: (Reply | (() => void))[] = [];
  private scheduled: NodeJS.Immediate | undefined;
  /** The connection replies go out on (a broker's connection object lives across reconnects). */
  private replyTo: NatsConnection | undefined;

  /** Perform `write` in this turn's flush. */
  push(write: () => void): void {
    this.queue.push(write);
    this.scheduled ??= setImmediate(() => this.flush());
  }

  /** Publish `text` (ASCII, no reply subject) to `subject` (its bytes) in this turn's flush. */
  reply(nc: NatsConnection, subject: Uint8Array, text: string): void {
    this.replyTo = nc;
    this.queue.push({ subject, text });
    this.scheduled ??= setImmediate(() => this.flush());
  }

  /** Perform every pending write now (also used before closing the connection). */
  flush(): void {
    if (this.scheduled !== undefined) clearImmediate(this.scheduled);
    this.scheduled = undefined;
    const q = this.queue;
    this.queue = [];
    let from = 0; // start of the current run of replies
    for (let i = 0; i < q.length; i++) {
      const w = q[i]!;
      if (typeof w !== 'function') continue;
      if (from < i) sendReplies(this.replyTo!, q as Reply[], from, i);
      from = i + 1;
      try {
        w();
      } catch {
        // a write on a closed connection: the server redelivers after AckWait
      }
    }
    if (from < q.length) sendReplies(this.replyTo!, q as Reply[], from, q.length);
  }
}

/**
 * Write `replies[from, to)` as one buffer of `PUB` lines, or publish each where the client does not
 * take raw bytes. Nothing on a closed or drained connection, as a publish: the server redelivers after
 * AckWait.
 */
function sendReplies(nc: NatsConnection, replies: readonly Reply[], from: number, to: number): void {
  if (nc.isClosed()) return;
  const p = rawProtocol(nc);
  if (p === undefined) {
    try {
      for (let i = from; i < to; i++) nc.publish(decoder.decode(replies[i]!.subject), replies[i]!.text);
    } catch {
      // closed meanwhile
    }
    return;
  }
  if (p.noMorePublishing === true) return;
  let size = 0;
  for (let i = from; i < to; i++) size += PUB.length + replies[i]!.subject.length + tailOf(replies[i]!.text).length;
  const out = Buffer.allocUnsafe(size);
  let at = 0;
  for (let i = from; i < to; i++) {
    const r = replies[i]!;
    out.set(PUB, at);
    out.set(r.subject, at + PUB.length);
    at += PUB.length + r.subject.length;
    const tail = tailOf(r.text);
    out.set(tail, at);
    at += tail.length;
  }
  p.sendCommand(out);
}
