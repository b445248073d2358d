import type { Headers } from '../broker.js';

/**
 * One buffer holding a message's headers and body: a 4-byte big-endian length, the headers as UTF-8
 * JSON, then the body bytes. For transports whose native headers are costly or cannot carry every
 * `HeaderValue` type (the Redis transport stores it as one hash field, the AMQP transport sends it as
 * the message content). Decoding returns the body as a view, without a copy.
 */
export function encodeHeaderFrame(headers: Readonly<Headers>, body: Uint8Array): Buffer {
  const json = JSON.stringify(headers);
  const jsonBytes = Buffer.byteLength(json, 'utf8');
  const out = Buffer.allocUnsafe(4 + jsonBytes + body.byteLength);
  out.writeUInt32BE(jsonBytes, 0);
  out.write(json, 4, jsonBytes, 'utf8');
  out.set(body, 4 + jsonBytes);
  return out;
}

/** The headers and body of a frame; a RangeError (or the JSON SyntaxError) when it is not one. */
export function decodeHeaderFrame(frame: Buffer): { headers: Headers; body: Buffer } {
  if (frame.length < 4) throw new RangeError(`a header frame of ${frame.length} bytes is too short`);
  const jsonBytes = frame.readUInt32BE(0);
  if (4 + jsonBytes > frame.length) throw new RangeError('the headers overrun the frame');
  const headers = JSON.parse(frame.toString('utf8', 4, 4 + jsonBytes)) as unknown;
  if (typeof headers !== 'object' || headers === null || Array.isArray(headers)) throw new RangeError('the frame headers are not an object');
  return { headers: headers as Headers, body: frame.subarray(4 + jsonBytes) };
}
