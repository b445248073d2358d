import { randomBytes, randomUUID } from 'node:crypto';

/** A fresh random id (UUID v4), for task ids and anything a user or another language sees. */
export function newId(): string {
  return randomUUID();
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
