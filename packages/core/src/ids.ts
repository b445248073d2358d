import { randomUUID } from 'node:crypto';

/** A fresh random id (UUID v4), for task ids and message ids. */
export function newId(): string {
  return randomUUID();
}
