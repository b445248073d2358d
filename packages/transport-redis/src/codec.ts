import { decodeHeaderFrame, encodeHeaderFrame, type Headers } from '@celeriac/core';

/**
 * A stored message is one binary string, core's header frame (a 4-byte length, the headers as JSON,
 * then the body): one HGET returns everything a delivery needs, and the body is never copied on the
 * way out (it is a view on the reply buffer).
 */
export const encodePayload: (headers: Readonly<Headers>, body: Uint8Array) => Buffer = encodeHeaderFrame;

export interface DecodedPayload {
  headers: Headers;
  body: Uint8Array;
}

export const decodePayload: (payload: Buffer) => DecodedPayload = decodeHeaderFrame;

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
