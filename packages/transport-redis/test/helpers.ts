import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';

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
