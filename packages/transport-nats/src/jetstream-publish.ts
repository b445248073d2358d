import { CeleriacError, ErrorCode } from '@celeriac/core';
import { headers as natsHeaders, NoRespondersError, RequestError, TimeoutError, type MsgHdrs } from '@nats-io/transport-node';
import { TransientRequestError, type Requester } from './requester.js';

const decoder = new TextDecoder();

/** JetStream's answer to a publish. */
export interface PubAck {
  stream: string;
  seq: number;
  duplicate: boolean;
}

/** A request that may succeed when sent again: no answer in time, a disconnect, JetStream not (yet) answering. */
export function isTransient(err: unknown): boolean {
  return (
    err instanceof TransientRequestError ||
    err instanceof TimeoutError ||
    err instanceof NoRespondersError ||
    (err instanceof RequestError && (err.isNoResponders() || err.cause instanceof TimeoutError))
  );
}

/** Run `fn` again on a transient failure, with a growing pause (about 9 s in all by default: a cluster leader election), up to `attempts` times in all. */
export async function withRetry<T>(fn: () => Promise<T>, attempts = 8, stop?: () => boolean): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn();
    } catch (err) {
      if (attempt >= attempts || stop?.() === true || !isTransient(err)) throw err;
      await new Promise((r) => setTimeout(r, Math.min(2_000, 100 * 2 ** attempt)));
    }
  }
}

/** The error part of a JetStream API answer. */
export interface ApiError {
  code: number;
  err_code?: number;
  description?: string;
}

/** JetStream's "wrong last sequence": a compare-and-set lost the race. */
export const WRONG_LAST_SEQUENCE = 10071;

/**
 * Publish to a stream once and return its answer: the PubAck, or the API error (a failed expectation
 * such as `Nats-Expected-Last-Subject-Sequence` is an answer, not an exception).
 */
export async function jsPublishOnce(
  requester: Requester,
  subject: string,
  data: Uint8Array,
  hdrs: Readonly<Record<string, string>>,
): Promise<{ ack: PubAck } | { error: ApiError }> {
  const h: MsgHdrs = natsHeaders();
  for (const k in hdrs) h.set(k, hdrs[k]!);
  const reply = await requester.request(subject, data, h);
  let answer: { stream?: string; seq?: number; duplicate?: boolean; error?: ApiError };
  try {
    answer = JSON.parse(decoder.decode(reply.data)) as typeof answer;
  } catch (err) {
    throw new CeleriacError(ErrorCode.CONNECTION, `unreadable JetStream publish acknowledgement on ${subject}`, { cause: err });
  }
  if (answer.error !== undefined) return { error: answer.error };
  return { ack: { stream: answer.stream ?? '', seq: answer.seq ?? 0, duplicate: answer.duplicate === true } };
}

/**
 * Publish to a stream and resolve once the server stored it (its PubAck). Requests go through the
 * requester and the outbox: concurrent calls leave back to back and their acks arrive asynchronously,
 * so many publishes in flight cost one round trip, not one each. A transient failure is retried with
 * the same `Nats-Msg-Id`, so a publish that was stored but not acknowledged is not stored twice.
 */
export async function jsPublish(
  requester: Requester,
  subject: string,
  data: Uint8Array,
  msgId: string,
  extra?: Readonly<Record<string, string>>,
): Promise<PubAck> {
  const hdrs = extra === undefined ? { [MSG_ID_HEADER]: msgId } : { ...extra, [MSG_ID_HEADER]: msgId };
  const r = await withRetry(() => jsPublishOnce(requester, subject, data, hdrs));
  if ('error' in r) {
    const e = r.error;
    throw new CeleriacError(ErrorCode.CONNECTION, `JetStream refused a publish on ${subject}: ${e.description ?? 'unknown error'} (${e.err_code ?? e.code})`, {
      retryable: e.code >= 500,
    });
  }
  return r.ack;
}

/** The header JetStream dedups publishes by. */
export const MSG_ID_HEADER = 'Nats-Msg-Id';

/** Acknowledgement verbs of a JetStream delivery, published to its reply subject. */
export const ACK = '+ACK';
export const NAK = '-NAK';
export const WPI = '+WPI';
export function nakDelay(ms: number): string {
  return `-NAK ${JSON.stringify({ delay: Math.max(1, Math.round(ms)) * 1_000_000 })}`;
}

/** What a JetStream delivery's reply subject says about it. */
export interface AckInfo {
  stream: string;
  /** Times this message was delivered, 1 on the first. */
  delivered: number;
  streamSeq: number;
  /** Epoch nanoseconds at which the message was stored, as a string (too big for a double). */
  timestampNs: string;
}

/**
 * Index of the stream token in an ack subject of `tokens` tokens, or -1: `$JS.ACK.<stream>.<consumer>.
 * <delivered>.<sseq>.<dseq>.<ts>.<pending>`, or the newer form with a domain and an account hash before
 * the stream (12 or more tokens).
 */
function streamToken(tokens: number): number {
  return tokens === 9 ? 2 : tokens >= 12 ? 4 : -1;
}

const dots: number[] = [];
/** `$JS.ACK.` */
const ACK_PREFIX = [0x24, 0x4a, 0x53, 0x2e, 0x41, 0x43, 0x4b, 0x2e];

/** Whether a reply subject, as the bytes the client read, is a JetStream ack subject (`$JS.ACK.…`). */
export function isAckSubject(reply: Uint8Array | undefined): reply is Uint8Array {
  if (reply === undefined || reply.length < ACK_PREFIX.length) return false;
  for (let i = 0; i < ACK_PREFIX.length; i++) if (reply[i] !== ACK_PREFIX[i]) return false;
  return true;
}

/**
 * The delivery count of a JetStream reply subject (`delivered` of `parseAckSubject`), read from its
 * bytes without making a string: read once per delivery. Undefined when it is not an ack subject.
 */
export function ackDelivered(reply: Uint8Array | undefined): number | undefined {
  if (!isAckSubject(reply)) return undefined;
  let count = 0;
  // `length`, not `byteLength`: the getter is a call each time round (~10 ns here), the loop ten times slower.
  const size = reply.length;
  for (let i = 0; i < size; i++) if (reply[i] === 0x2e) dots[count++] = i;
  const base = streamToken(count + 1);
  if (base < 0) return undefined;
  const at = base + 2; // the delivered token
  const from = dots[at - 1]! + 1;
  const to = dots[at]!;
  if (to === from || to - from > 15) return undefined;
  let n = 0;
  for (let i = from; i < to; i++) {
    const d = reply[i]! - 0x30;
    if (d < 0 || d > 9) return undefined;
    n = n * 10 + d;
  }
  return n > 0 ? n : undefined;
}

/** Parse an ack subject (see `streamToken` for its two forms). */
export function parseAckSubject(reply: string): AckInfo | undefined {
  const t = reply.split('.');
  if (t[0] !== '$JS' || t[1] !== 'ACK') return undefined;
  const base = streamToken(t.length);
  if (base < 0) return undefined;
  return {
    stream: t[base]!,
    delivered: Number(t[base + 2]),
    streamSeq: Number(t[base + 3]),
    timestampNs: t[base + 5]!,
  };
}
