import { createApp, createMemoryResultBackend, newId } from '@celeriac/core';
import { afterAll, describe, expect, it } from 'vitest';
import { requireServer, serverUrl } from '@celeriac/test-servers';
import { KombuKeys } from '../src/kombu-keys.js';
import { KombuRedisBroker } from '../src/kombu-redis-broker.js';
import { celeryProtocol } from '../src/protocol.js';
import { deleteKeys, redisClient, uniquePrefix } from './redis-helpers.js';

const ok = await requireServer('redis');
const prefix = uniquePrefix('raw-input');

/**
 * List entries another client pushed into a kombu queue that are not kombu messages: each is
 * dead-lettered with its reason, and the worker keeps consuming.
 */
describe.skipIf(!ok)('kombu Redis: entries another client pushed into a queue', () => {
  afterAll(async () => {
    await deleteKeys(prefix);
  });

  it('a non-JSON entry, JSON that is no envelope and an envelope whose body is not a task: dead-lettered; tasks around them run', async () => {
    const queue = `raw-${newId().slice(0, 8)}`;
    const app = createApp({
      broker: new KombuRedisBroker({ url: serverUrl('redis'), prefix, visibilityTimeoutMs: 2000, sweepIntervalMs: 100 }),
      resultBackend: createMemoryResultBackend(),
      defaultQueue: queue,
      protocol: celeryProtocol,
    });
    const redis = redisClient();
    try {
      const echo = app.task('raw.echo', (n: number) => n);
      const before = await echo.delay(1);
      const list = new KombuKeys(prefix).list(queue, 0);
      // kombu's consumers BRPOP, so the oldest entry is the list's right end: push on the left.
      await redis.lpush(list, 'not json at all');
      await redis.lpush(list, '{"json":"but no properties"}');
      const envelope = {
        body: Buffer.from('[[1').toString('base64'),
        'content-encoding': 'utf-8',
        'content-type': 'application/json',
        headers: { id: 'bad-body', task: 'raw.echo' },
        properties: { delivery_tag: 'tag-bad-body', body_encoding: 'base64', delivery_info: { exchange: '', routing_key: queue }, priority: 0 },
      };
      await redis.lpush(list, JSON.stringify(envelope));
      const after = await echo.delay(2);
      await app.worker({ concurrency: 2, heartbeatMs: 0 }).start();

      expect(await before.get({ timeoutMs: 10_000 })).toBe(1);
      expect(await after.get({ timeoutMs: 10_000 })).toBe(2);
      const broker = await app.getBroker();
      let dead = await broker.deadLetters.list(queue);
      for (let i = 0; dead.length < 3 && i < 100; i++) {
        await new Promise((r) => setTimeout(r, 50));
        dead = await broker.deadLetters.list(queue);
      }
      expect(dead.map((d) => d.reason).sort()).toEqual([
        expect.stringMatching(/^ERR_SERIALIZATION: /),
        expect.stringMatching(/^ERR_SERIALIZATION: /),
        expect.stringMatching(/^ERR_SERIALIZATION: undecodable body/),
      ]);
      const last = await echo.delay(3);
      expect(await last.get({ timeoutMs: 10_000 })).toBe(3);
    } finally {
      redis.disconnect();
      await app.close();
    }
  });
});
