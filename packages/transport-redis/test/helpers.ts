import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { CeleriacError, type Delivery } from '@celeriac/core';

/** A prefix no other test file (or engineer) uses. */
export function uniquePrefix(name: string): string {
  return `celeriac-test-${name}-${randomUUID().slice(0, 8)}`;
}

/** Delete every key matching `pattern` (SCAN, never KEYS or FLUSH). */
export async function deleteMatching(redis: Redis, pattern: string): Promise<number> {
  let cursor = '0';
  let deleted = 0;
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
    cursor = next;
    if (keys.length > 0) deleted += await redis.del(...keys);
  } while (cursor !== '0');
  return deleted;
}

/** Glob-escape a literal for SCAN MATCH. */
export function globEscape(s: string): string {
  return s.replace(/[*?[\]\\]/g, (c) => `\\${c}`);
}

/** The next delivery of `it`, or an error after `budgetMs`. */
export async function first(it: AsyncIterator<Delivery>, budgetMs = 5000): Promise<Delivery> {
  const r = await Promise.race([
    it.next(),
    new Promise<never>((_, rej) => setTimeout(() => rej(new Error(`no delivery within ${budgetMs} ms`)), budgetMs)),
  ]);
  if (r.done === true) throw new Error('consumer ended');
  return r.value;
}

/** 'resolved', or the code of the CeleriacError `p` rejected with (else the error as text). */
export async function code(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'resolved';
  } catch (err) {
    return err instanceof CeleriacError ? err.code : String(err);
  }
}
