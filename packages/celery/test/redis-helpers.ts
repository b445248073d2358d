import { Redis } from 'ioredis';
import { randomBytes } from 'node:crypto';
import { serverUrl } from '@celeriac/test-servers';

/** A key prefix (kombu's global_keyprefix) unique to one test file. */
export function uniquePrefix(what: string): string {
  return `celeriac-test-${what}-${randomBytes(4).toString('hex')}:`;
}

/** Delete every key under `prefix`, and the given exact keys (results Celery cannot prefix). */
export async function deleteKeys(prefix: string, exact: readonly string[] = []): Promise<void> {
  const r = new Redis(serverUrl('redis'), { lazyConnect: true });
  try {
    await r.connect();
    let cursor = '0';
    do {
      const [next, keys] = await r.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
      cursor = next;
      if (keys.length > 0) await r.del(...keys);
    } while (cursor !== '0');
    for (let i = 0; i < exact.length; i += 500) await r.del(...exact.slice(i, i + 500));
  } finally {
    r.disconnect();
  }
}

export function redisClient(): Redis {
  return new Redis(serverUrl('redis'));
}
