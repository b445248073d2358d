import type { DeadLetter, DeadLetterOptions, DeadLetters } from '@celeriac/core';
import { CeleriacError, ErrorCode } from '@celeriac/core';
import { decodeFrame, encodeFrame, type Envelope, type Frame } from './frame.js';
import { jsPublish } from './jetstream-publish.js';
import type { NatsBroker } from './nats-broker.js';

const decoder = new TextDecoder();

/** One stored message of the dead-letter stream. */
interface StoredDead {
  seq: number;
  data: Uint8Array;
  /** Epoch ms at which it was stored. */
  time: number;
}

/**
 * Dead letters live in `<prefix>_dead` (limits retention, kept until purged, redriven or past
 * `deadLetterMaxAgeMs`), one subject per queue, each a copy of the message with its reason and the
 * time it died in the envelope. Listing and redriving read the stream by subject, message by message.
 */
export class NatsDeadLetters implements DeadLetters {
  constructor(private readonly broker: NatsBroker) {}

  /**
   * The first message of `subject` at or after `seq` (`STREAM.MSG.GET` with `next_by_subj`, server 2.9+;
   * the client's typed `getMessage` does not offer it, so this is the plain API request).
   */
  private async next(subject: string, seq: number): Promise<StoredDead | undefined> {
    const b = this.broker;
    const req = JSON.stringify({ seq, next_by_subj: subject });
    const r = await b.nc.request(`$JS.API.STREAM.MSG.GET.${b.names.deadStream}`, req, { timeout: b.requestTimeoutMs });
    const answer = JSON.parse(decoder.decode(r.data)) as {
      message?: { seq: number; data?: string; time: string };
      error?: { code: number; err_code?: number; description?: string };
    };
    if (answer.error !== undefined) {
      if (answer.error.code === 404) return undefined; // no message (10037) or no stream
      throw new CeleriacError(ErrorCode.CONNECTION, `reading dead letters failed: ${answer.error.description ?? answer.error.code}`);
    }
    const m = answer.message;
    if (m === undefined) return undefined;
    return { seq: m.seq, data: m.data === undefined ? new Uint8Array(0) : Buffer.from(m.data, 'base64'), time: Date.parse(m.time) };
  }

  /** Messages of the queue's dead subject, oldest first. */
  private async *scan(queue: string): AsyncGenerator<StoredDead> {
    const subject = this.broker.names.dead(queue);
    for (let m = await this.next(subject, 1); m !== undefined; m = await this.next(subject, m.seq + 1)) yield m;
  }

  private toDeadLetter(queue: string, m: StoredDead): DeadLetter {
    try {
      const { env, body } = decodeFrame(m.data);
      return { id: deadId(env, m), queue, body: body.slice(), headers: env.h, reason: env.r ?? 'unknown', deadAt: env.t ?? m.time };
    } catch (err) {
      const reason = `unreadable dead letter: ${err instanceof Error ? err.message : String(err)}`;
      return { id: `seq:${m.seq}`, queue, body: m.data, headers: {}, reason, deadAt: m.time };
    }
  }

  async list(queue: string, opts: DeadLetterOptions = {}): Promise<DeadLetter[]> {
    const limit = opts.limit ?? 100;
    const out: DeadLetter[] = [];
    if (limit <= 0) return out;
    for await (const m of this.scan(queue)) {
      out.push(this.toDeadLetter(queue, m));
      if (out.length >= limit) break;
    }
    return out;
  }

  /**
   * Publish each chosen dead letter back to its queue (deliveries start again at 1), then delete it from
   * the dead stream. The redrive publish has its own `Nats-Msg-Id` (`redrive:<stream seq>:<stored ns>`),
   * so a redrive retried after a crash does not deliver the message twice within the duplicate window.
   */
  async redrive(queue: string, ids?: readonly string[]): Promise<number> {
    const b = this.broker;
    const wanted = ids === undefined ? undefined : new Set(ids);
    let moved = 0;
    for await (const m of this.scan(queue)) {
      let frame: Frame;
      try {
        frame = decodeFrame(m.data);
      } catch {
        continue; // unreadable: nothing could run it; it stays listed until purged
      }
      const { env, body } = frame;
      const id = deadId(env, m);
      if (wanted !== undefined && !wanted.has(id)) continue;
      await jsPublish(b.requester, b.names.task(queue, env.l ?? 0), encodeFrame({ i: id, h: env.h }, body), `redrive:${m.seq}:${m.time}`);
      await b.jsm.streams.deleteMessage(b.names.deadStream, m.seq, false);
      moved++;
    }
    return moved;
  }

  async purge(queue: string): Promise<number> {
    const b = this.broker;
    const r = await b.jsm.streams.purge(b.names.deadStream, { filter: b.names.dead(queue) });
    return r.purged;
  }
}

/** A dead letter's id: written with it; one without (not ours) is named by its stream sequence, as list() shows it. */
function deadId(env: Envelope, m: StoredDead): string {
  return env.i ?? `seq:${m.seq}`;
}
