import { resultBackendSuite } from '@celeriac/core/testing';
import { Redis } from 'ioredis';
import { randomUUID } from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';
import { requireServer, serverUrl } from '../../../test/src/servers.js';
import { createRedisResultBackend } from '../src/index.js';

const ok = await requireServer('redis');
const prefix = `celeriac-test-results-${randomUUID().slice(0, 8)}`;
const url = serverUrl('redis');

async function deleteMatching(redis: Redis, pattern: string): Promise<void> {
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
    cursor = next;
    if (keys.length > 0) await redis.del(...keys);
  } while (cursor !== '0');
}

describe.skipIf(!ok)('redis result backend', () => {
  const admin = new Redis(url, { lazyConnect: true });

  afterAll(async () => {
    await deleteMatching(admin, `${prefix}:*`);
    const [, left] = await admin.scan('0', 'MATCH', `${prefix}:*`, 'COUNT', 10_000);
    admin.disconnect();
    expect(left).toEqual([]);
  });

  resultBackendSuite({ describe, it }, 'redis', {
    create: () => {
      const u = new URL(url);
      u.searchParams.set('prefix', prefix);
      return createRedisResultBackend(u, { prefix }, {});
    },
    sleep: (ms) => new Promise((r) => setTimeout(r, ms)),
    slackMs: 100,
  });
});
