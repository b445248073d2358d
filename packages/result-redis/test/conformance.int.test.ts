import { resultBackendSuite } from '@celeriac/core/testing';
import { Redis } from 'ioredis';
import { randomUUID } from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';
import { requireServer, serverUrl } from '@celeriac/test-servers';
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

  it('stores a turn of results in one script call, whatever their text holds, and announces only the ready ones', async () => {
    const u = new URL(url);
    u.searchParams.set('prefix', prefix);
    const backend = createRedisResultBackend(u, { prefix }, {});
    const id = (n: string) => `${randomUUID()}-${n}`;
    const odd = id('odd');
    const started = id('started');
    const forever = id('forever');
    const kept = id('kept');
    const text = 'line one\nline\ttwo "quoted" \\ back, é, 日本, 🙂, \u2028';
    await backend.set(kept, { state: 'SUCCESS', result: 'first' }, { ttlMs: 60_000 });
    const waiting = backend.wait(odd, { timeoutMs: 5_000 });
    // Not awaited one by one: the writes of this turn go out together.
    await Promise.all([
      backend.set(odd, { state: 'SUCCESS', result: { text, n: 1 } }, { ttlMs: 60_000 }),
      backend.set(started, { state: 'STARTED' }, { ttlMs: 60_000 }),
      backend.set(forever, { state: 'SUCCESS', result: text }, { ttlMs: Infinity }),
      backend.set(kept, { state: 'FAILURE', error: { name: 'Error', message: 'late' } }, { ttlMs: 60_000 }),
    ]);
    expect(await waiting).toMatchObject({ state: 'SUCCESS', result: { text, n: 1 } });
    expect(await backend.get(odd)).toMatchObject({ state: 'SUCCESS', result: { text, n: 1 } });
    expect(await backend.get(started)).toMatchObject({ state: 'STARTED' });
    expect(await backend.get(forever)).toMatchObject({ state: 'SUCCESS', result: text });
    expect(await backend.get(kept)).toMatchObject({ state: 'SUCCESS', result: 'first' });
    // Stored exactly as encoded: no byte of a neighbour's line.
    for (const k of [odd, started, forever]) expect(await admin.get(`${prefix}:result:${k}`)).toMatch(/^\{"state":"[A-Z]+".*\}$/s);
    expect(await admin.pttl(`${prefix}:result:${forever}`)).toBe(-1);
    const ttl = await admin.pttl(`${prefix}:result:${odd}`);
    expect(ttl).toBeGreaterThan(50_000);
    await backend.close();
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
