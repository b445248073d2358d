import { readFileSync } from 'node:fs';
import { createApp, createMemoryResultBackend, guardBroker, newId } from '@celeriac/core';
import { requireServer, serverUrl } from '@celeriac/test-servers';
import { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { prefixPattern, queueKeys, RedisBroker } from '../src/index.js';
import { deleteMatching, uniquePrefix } from './helpers.js';

const ok = await requireServer('redis');
const url = serverUrl('redis');
const prefix = uniquePrefix('upgrade');

interface Fixture {
  madeAt: number;
  keys: Record<string, { type: 'list' | 'zset' | 'hash' | 'string'; items?: unknown; value?: string }>;
}

/**
 * What the 0.1 build left in Redis for one queue — written by `fixtures/make-v0.1-fixture.mjs` with the
 * 0.1 Redis transport (commit fe1793f): ready messages at two priorities (one already given back once),
 * a delayed one, one held by a worker that died (its lease in the active set), a dead letter, and a
 * message with every header value type. This build must consume all of it: no key, frame or script
 * change may strand an upgrade's data.
 */
const fixture = JSON.parse(readFileSync(new URL('./fixtures/v0.1-queue.json', import.meta.url), 'utf8')) as Fixture;

/** Write the fixture's keys for `queue`, with times moved so the delay and the dead worker's lease are due now. */
async function restore(redis: Redis, queue: string): Promise<void> {
  const tag = queueKeys(prefix, queue).tag;
  const shift = Date.now() - fixture.madeAt;
  for (const [name, k] of Object.entries(fixture.keys)) {
    const key = `${tag}:${name}`;
    const b64 = (v: string) => Buffer.from(v, 'base64');
    if (k.type === 'list') await redis.rpush(key, ...(k.items as string[]).map(b64));
    else if (k.type === 'hash') await redis.hset(key, Object.fromEntries(Object.entries(k.items as Record<string, string>).map(([f, v]) => [f, b64(v)])));
    else if (k.type === 'string') await redis.set(key, b64(k.value!));
    else {
      for (const [member, score] of k.items as [string, number][]) {
        // The delayed message and the dead worker's lease come due as soon as the new build looks.
        const due = name === 'delayed' || name === 'active' ? Date.now() - 1 : score + shift;
        await redis.zadd(key, due, b64(member));
      }
    }
  }
}

describe.skipIf(!ok)('redis: upgrading from 0.1', () => {
  const admin = new Redis(url, { lazyConnect: true });

  afterAll(async () => {
    await deleteMatching(admin, prefixPattern(prefix));
    admin.disconnect();
  });

  it("consumes every message the 0.1 build left in Redis: ready, prioritised, given back, delayed, a dead worker's", async () => {
    const queue = `q-${newId().slice(0, 8)}`;
    await restore(admin, queue);
    const broker = guardBroker(new RedisBroker({ url, prefix, visibilityTimeoutMs: 5000, blockTimeoutMs: 500 }));
    await broker.connect();
    try {
      expect(await broker.stats(queue)).toEqual({ ready: 5, delayed: 1, inFlight: 1, dead: 1 });
      const c = broker.consume(queue, { prefetch: 1 });
      const got: { id: string; deliveries: number; body: Uint8Array; headers: Record<string, unknown> }[] = [];
      while (got.length < 7) {
        const d = c.takeSync() ?? (await c.next()).value!;
        got.push({ id: d.id, deliveries: d.deliveries, body: d.body, headers: d.headers });
        await d.ack();
      }
      await c.close();
      // Priority 9 first; the dead worker's lease and the due delay are recovered into the queue.
      expect(got[0]!.id).toBe('msg-urgent');
      expect(got.map((g) => g.id).sort()).toEqual(
        ['msg-delayed', 'msg-held', 'msg-ready-1', 'msg-ready-2', 'msg-requeued', 'msg-urgent', 'raw-bytes'].sort(),
      );
      const by = Object.fromEntries(got.map((g) => [g.id, g]));
      expect(by['msg-requeued']!.deliveries).toBe(2); // given back once by 0.1, handed out again now
      expect(by['msg-held']!.deliveries).toBe(2); // the dead worker's delivery counts
      expect(by['msg-ready-1']!.deliveries).toBe(1);
      expect([...by['raw-bytes']!.body]).toEqual([0, 1, 2, 255]);
      expect(by['raw-bytes']!.headers).toEqual({ s: 'ü', n: 42, arr: [1, 'two', null] });
      const dead = await broker.deadLetters.list(queue);
      expect(dead.map((d) => [d.id, d.reason])).toEqual([['msg-dead', 'ERR_TASK_FAILED: failed in 0.1']]);
      expect(await broker.deadLetters.redrive(queue)).toBe(1);
      expect(await broker.stats(queue)).toEqual({ ready: 1, delayed: 0, inFlight: 0, dead: 0 });
    } finally {
      await broker.close();
    }
  });

  it('runs the tasks a 0.1 producer sent, through a worker of this build', async () => {
    const queue = `q-${newId().slice(0, 8)}`;
    await restore(admin, queue);
    const app = createApp({ broker: new RedisBroker({ url, prefix, visibilityTimeoutMs: 5000, blockTimeoutMs: 500 }), resultBackend: createMemoryResultBackend(), defaultQueue: queue });
    try {
      const ran: number[] = [];
      app.task('old.echo', (n: number) => void ran.push(n));
      await app.worker({ concurrency: 2, heartbeatMs: 0 }).start();
      const broker = await app.getBroker();
      for (let i = 0; i < 200 && ran.length < 6; i++) await new Promise((r) => setTimeout(r, 25));
      // Every task message of 0.1 ran once; the frame without a task went to the dead letters.
      expect(ran.sort()).toEqual([1, 2, 3, 4, 6, 9]);
      for (let i = 0; i < 100 && (await broker.stats(queue)).dead < 2; i++) await new Promise((r) => setTimeout(r, 25));
      expect((await broker.deadLetters.list(queue)).map((d) => d.id).sort()).toEqual(['msg-dead', 'raw-bytes']);
    } finally {
      await app.close();
    }
  });
});
