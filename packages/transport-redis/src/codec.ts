import type { Headers } from '@celeriac/core';

/**
 * A stored message is one binary string: a 4-byte big-endian length, the headers as UTF-8 JSON,
 * then the body bytes. One HGET returns everything a delivery needs, and the body is never copied
 * on the way out (it is a view on the reply buffer).
 */
export function encodePayload(headers: Readonly<Headers>, body: Uint8Array): Buffer {
  const json = JSON.stringify(headers);
  const jsonBytes = Buffer.byteLength(json, 'utf8');
  const out = Buffer.allocUnsafe(4 + jsonBytes + body.byteLength);
  out.writeUInt32BE(jsonBytes, 0);
  out.write(json, 4, jsonBytes, 'utf8');
  out.set(body, 4 + jsonBytes);
  return out;
}

export interface DecodedPayload {
  headers: Headers;
  body: Uint8Array;
}

export function decodePayload(payload: Buffer): DecodedPayload {
  if (payload.length < 4) throw new RangeError(`stored message of ${payload.length} bytes is too short`);
  const jsonBytes = payload.readUInt32BE(0);
  if (4 + jsonBytes > payload.length) throw new RangeError('stored message headers overrun the payload');
  const headers = JSON.parse(payload.toString('utf8', 4, 4 + jsonBytes)) as Headers;
  return { headers, body: payload.subarray(4 + jsonBytes) };
}

/**
 * The member naming one claimed delivery in the active zset: `<token>|<priority>|<deliveries>|<id>`.
 * The token is unique per claim, so the member also fences ack, nack and extend: once the lease is
 * recovered and the message claimed again, the old member no longer exists.
 */
export function activeMember(token: number, priority: number, deliveries: number, id: string): string {
  return `${token}|${priority}|${deliveries}|${id}`;
}

export interface ActiveMember {
  token: number;
  priority: number;
  deliveries: number;
  id: string;
}

export function parseActiveMember(member: string): ActiveMember {
  const m = /^(\d+)\|(\d)\|(\d+)\|(.*)$/s.exec(member);
  if (m === null) throw new RangeError(`not an active member: ${member}`);
  return { token: Number(m[1]), priority: Number(m[2]), deliveries: Number(m[3]), id: m[4]! };
}

/** Delays are whole milliseconds on the server: round up, so a message is never early. */
export function delayArg(delayMs: number | undefined): number {
  if (delayMs === undefined || delayMs <= 0) return 0;
  return Math.ceil(delayMs);
}
