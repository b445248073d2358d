import { createApp, createMemoryResultBackend, newId, TaskState } from '@celeriac/core';
import { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { requireServer, serverUrl } from '@celeriac/test-servers';
import { prefixPattern, queueKeys, RedisBroker } from '../src/index.js';
import { deleteMatching, uniquePrefix } from './helpers.js';

const ok = await requireServer('redis');
const url = serverUrl('redis');
const prefix = uniquePrefix('raw-input');

/**
 * Bytes this transport's own layout cannot parse, written into a queue with a plain Redis client (as a
 * foreign tool or a bug would): each is dead-lettered with its reason, and the queue keeps flowing.
 */
describe.skipIf(!ok)('redis: entries another client wrote into a queue', () => {
  const admin = new Redis(url, { lazyConnect: true });

  afterAll(async () => {
    await deleteMatching(admin, prefixPattern(prefix));
    admin.disconnect();
  });

  it('a malformed ready-list entry, a stored payload that is no header frame and an id with nothing stored: dead-lettered or dropped, never a stuck queue', async () => {
    const queue = `raw-${newId().slice(0, 8)}`;
    const k = queueKeys(prefix, queue);
    const app = createApp({
      broker: new RedisBroker({ url, prefix, visibilityTimeoutMs: 2000, blockTimeoutMs: 1000 }),
      resultBackend: createMemoryResultBackend(),
      defaultQueue: queue,
    });
    try {
      const echo = app.task('raw.echo', (n: number) => n);
      const before = await echo.delay(1);
      // No '|': the claim script cannot read the delivery count or the id.
      await admin.rpush(k.ready[0]!, 'garbage-without-a-bar');
      // A well-formed entry whose stored payload is not celeriac's header frame.
      await admin.hset(k.msg, 'foreign-1', Buffer.from('{"not":"a frame"}'));
      await admin.rpush(k.ready[0]!, '0|foreign-1');
      // An entry whose message was never stored: nothing to run, nothing to keep.
      await admin.rpush(k.ready[0]!, '0|never-stored');
      const after = await echo.delay(2);
      await app.worker({ concurrency: 2, heartbeatMs: 0 }).start();

      expect((await before.get({ timeoutMs: 10_000 })) as number).toBe(1);
      expect((await after.get({ timeoutMs: 10_000 })) as number).toBe(2);
      const broker = await app.getBroker();
      let dead = await broker.deadLetters.list(queue);
      for (let i = 0; dead.length < 2 && i < 100; i++) {
        await new Promise((r) => setTimeout(r, 50));
        dead = await broker.deadLetters.list(queue);
      }
      const reasons = Object.fromEntries(dead.map((d) => [d.id, d.reason]));
      expect(reasons['garbage-without-a-bar']).toMatch(/^ERR_SERIALIZATION: malformed ready-list entry/);
      expect(reasons['foreign-1']).toMatch(/^ERR_SERIALIZATION: undecodable stored message/);
      expect(Buffer.from(dead.find((d) => d.id === 'foreign-1')!.body).toString()).toBe('{"not":"a frame"}');
      expect(Object.keys(reasons).sort()).toEqual(['foreign-1', 'garbage-without-a-bar']);
      // The queue still flows.
      const last = await echo.delay(3);
      expect(await last.get({ timeoutMs: 10_000 })).toBe(3);
      expect(await last.state()).toBe(TaskState.SUCCESS);
      expect(await broker.stats(queue)).toMatchObject({ ready: 0, dead: 2 });
    } finally {
      await app.close();
    }
  });
});
