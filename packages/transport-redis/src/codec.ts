/**
 * One message of a publish batch. Its payload is core's header frame (`encodeHeaderFrame`): the msg hash
 * stores it as one binary string, so one HGET returns everything a delivery needs, and the body is
 * never copied on the way out (`decodeHeaderFrame` returns a view on the reply buffer).
 */
export interface PackedPublish {
  id: string;
  payload: Buffer;
  priority: number;
  delayMs: number;
}

/**
 * A publish batch as one binary string, the single argument of lua/publish.lua: a 4-byte count, then per
 * message a 2-byte id length, the id, a 4-byte payload length, the payload, a 1-byte priority and the delay
 * as an 8-byte double (big-endian). One argument instead of four per message: the client sizes, converts
 * and frames every argument, and with binary payloads it copies each into a buffer of its own.
 */
export function packPublishes(items: readonly PackedPublish[]): Buffer {
  let size = 4;
  const idBytes: number[] = [];
  for (const it of items) {
    const n = Buffer.byteLength(it.id, 'utf8');
    if (n > 0xffff) throw new RangeError(`message id of ${n} bytes is too long`);
    idBytes.push(n);
    size += 2 + n + 4 + it.payload.length + 1 + 8;
  }
  const out = Buffer.allocUnsafe(size);
  let pos = out.writeUInt32BE(items.length, 0);
  items.forEach((it, i) => {
    pos = out.writeUInt16BE(idBytes[i]!, pos);
    pos += out.write(it.id, pos, 'utf8');
    pos = out.writeUInt32BE(it.payload.length, pos);
    out.set(it.payload, pos);
    pos += it.payload.length;
    pos = out.writeUInt8(it.priority, pos);
    pos = out.writeDoubleBE(it.delayMs, pos);
  });
  return out;
}

/** One delivery of a claim reply. */
export interface ClaimedDelivery {
  priority: number;
  deliveries: number;
  id: string;
  /** A view on the reply buffer. */
  payload: Buffer;
}

/** The deliveries lua/claim.lua packs into one reply string (see its header). */
export function unpackClaimed(packed: Buffer): ClaimedDelivery[] {
  const out: ClaimedDelivery[] = [];
  let pos = 0;
  while (pos < packed.length) {
    if (pos + 7 > packed.length) throw new RangeError('truncated claim reply');
    const priority = packed.readUInt8(pos);
    const deliveries = packed.readUInt32BE(pos + 1);
    const idEnd = pos + 7 + packed.readUInt16BE(pos + 5);
    if (idEnd + 4 > packed.length) throw new RangeError('truncated claim reply');
    const id = packed.toString('utf8', pos + 7, idEnd);
    const end = idEnd + 4 + packed.readUInt32BE(idEnd);
    if (end > packed.length) throw new RangeError('truncated claim reply');
    out.push({ priority, deliveries, id, payload: packed.subarray(idEnd + 4, end) });
    pos = end;
  }
  return out;
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
