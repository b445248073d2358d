import { randomBytes, randomFillSync } from 'node:crypto';

const HEX = Buffer.from('0123456789abcdef', 'latin1');
/** Where each of the 16 bytes' two hex digits go in `xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx`. */
const AT = Uint8Array.from([0, 2, 4, 6, 9, 11, 14, 16, 19, 21, 24, 26, 28, 30, 32, 34]);
const POOL_BYTES = 16 * 256;
const pool = Buffer.allocUnsafe(POOL_BYTES);
let used = POOL_BYTES;
const text = Buffer.alloc(36);
text[8] = text[13] = text[18] = text[23] = 0x2d; // '-'

/**
 * A fresh random id (UUID v4), for task ids and anything a user or another language sees. The same
 * randomness as `crypto.randomUUID()` (the CSPRNG, drawn 256 ids at a time), written as one flat
 * string: Node's own joins 20 pieces, which leaves a chain of ~20 string objects (~0.6 KB) behind
 * every task id until something flattens it.
 */
export function newId(): string {
  if (used === POOL_BYTES) {
    randomFillSync(pool);
    used = 0;
  }
  const o = used;
  pool[o + 6] = (pool[o + 6]! & 0x0f) | 0x40; // version 4
  pool[o + 8] = (pool[o + 8]! & 0x3f) | 0x80; // variant 10
  for (let i = 0; i < 16; i++) {
    const b = pool[o + i]!;
    const at = AT[i]!;
    text[at] = HEX[b >> 4]!;
    text[at + 1] = HEX[b & 15]!;
  }
  used += 16;
  return text.toString('latin1', 0, 36);
}

/** 96 random bits per process: message ids of two processes never meet. */
const MESSAGE_ID_PREFIX = `${randomBytes(12).toString('base64url')}.`;
let messageCounter = 0;

/**
 * A fresh message id: unique across processes and restarts (a random per-process prefix and a
 * counter), for the broker's dedup and bookkeeping only. Cheaper than a UUID on every publish; task
 * ids stay UUIDs.
 */
export function newMessageId(): string {
  return MESSAGE_ID_PREFIX + (++messageCounter).toString(36);
}
