import { CeleriacError, ErrorCode, type Headers } from '@celeriac/core';

/**
 * The bytes stored in a stream: `0xCE`, a 4-byte big-endian length, a JSON envelope, then the body.
 * NATS headers carry only strings, so celeriac's typed headers (numbers, booleans, null, arrays)
 * travel in the envelope, together with the message id, which a move from the delay stream must
 * keep while its `Nats-Msg-Id` changes.
 */
export interface Envelope {
  /** The id the message was published with (`Delivery.id`). */
  i: string;
  /** celeriac headers. */
  h: Headers;
  /** Deliveries before this copy was stored (a delayed nack keeps the count going). */
  n?: number;
  /** Dead letters: the reason and the epoch ms at which it was dead-lettered. */
  r?: string;
  t?: number;
  /** Dead letters: the priority level the message came from (absent: 0). */
  l?: number;
}

const MAGIC = 0xce;
const encoder = new TextEncoder();
const decoder = new TextDecoder();

export function encodeFrame(env: Envelope, body: Uint8Array): Uint8Array {
  const json = encoder.encode(JSON.stringify(env));
  const out = new Uint8Array(5 + json.byteLength + body.byteLength);
  const n = json.byteLength;
  out[0] = MAGIC;
  out[1] = n >>> 24;
  out[2] = (n >>> 16) & 0xff;
  out[3] = (n >>> 8) & 0xff;
  out[4] = n & 0xff;
  out.set(json, 5);
  out.set(body, 5 + json.byteLength);
  return out;
}

export interface Frame {
  env: Envelope;
  body: Uint8Array;
}

export function decodeFrame(bytes: Uint8Array): Frame {
  if (bytes.byteLength < 5 || bytes[0] !== MAGIC) {
    throw new CeleriacError(ErrorCode.SERIALIZATION, 'not a celeriac message (bad frame header)');
  }
  // Read once per delivery: no DataView, and the envelope's text straight from the bytes when they are a Buffer.
  const len = ((bytes[1]! << 24) | (bytes[2]! << 16) | (bytes[3]! << 8) | bytes[4]!) >>> 0;
  if (5 + len > bytes.byteLength) throw new CeleriacError(ErrorCode.SERIALIZATION, 'truncated celeriac message');
  let env: Envelope;
  try {
    const text = Buffer.isBuffer(bytes) ? bytes.toString('utf8', 5, 5 + len) : decoder.decode(bytes.subarray(5, 5 + len));
    env = JSON.parse(text) as Envelope;
  } catch (err) {
    throw new CeleriacError(ErrorCode.SERIALIZATION, 'unreadable celeriac message envelope', { cause: err });
  }
  if (typeof env !== 'object' || env === null || typeof env.i !== 'string' || typeof env.h !== 'object' || env.h === null) {
    throw new CeleriacError(ErrorCode.SERIALIZATION, 'malformed celeriac message envelope');
  }
  return { env, body: bytes.subarray(5 + len) };
}
