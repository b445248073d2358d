import { afterAll, describe, expect, it } from 'vitest';
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { createApp, newId, TaskState, type Clock, type ResultMeta } from '@celeriac/core';
import { createFakeClock } from '@celeriac/core/testing';
import type { KitDelivery } from '@celeriac/core/transport';
import { RedisBroker } from '@celeriac/transport-redis';
import { RedisResultBackend } from '@celeriac/result-redis';
import { requireServer, serverUrl } from '@celeriac/test-servers';
import { code, first } from '../../packages/transport-redis/test/helpers.js';

/**
 * A Redis broker and a Redis result backend on the same server and database store a task's result
 * and ack its delivery in one script call (`Delivery.ackWithResult`), with the same guarantees as a
 * separate `set` then `ack`.
 */
const ok = await requireServer('redis');
const url = serverUrl('redis');
const prefix = `celeriac-test-ackres-${randomUUID().slice(0, 8)}`;
const enc = new TextEncoder();

const success = (result: unknown): ResultMeta => ({ state: TaskState.SUCCESS, result, name: 't', retries: 0, dateDone: Date.now() });

describe('result write targets', () => {
  it('are equal for one server, user and database, and absent on a cluster', () => {
    const broker = (u: string, cluster = false) => new RedisBroker({ url: u, cluster }).resultWriteTarget;
    const backend = (u: string, cluster = false) => new RedisResultBackend({ url: u, cluster }).writeTarget;
    expect(broker('redis://127.0.0.1:6379')).toBe(backend('redis://127.0.0.1:6379/0'));
    expect(broker('redis://localhost')).toBe(backend('redis://LOCALHOST:6379/0'));
    expect(broker('redis://127.0.0.1:6379/1')).not.toBe(backend('redis://127.0.0.1:6379/2'));
    expect(broker('redis://a@127.0.0.1:6379')).not.toBe(backend('redis://b@127.0.0.1:6379'));
    expect(broker('redis://127.0.0.1:6379', true)).toBeUndefined();
    expect(backend('redis://127.0.0.1:6379', true)).toBeUndefined();
  });
});

describe.skipIf(!ok)('Redis broker + Redis results: result stored with the ack', () => {
  const admin = new Redis(url, { lazyConnect: true });
  const closers: (() => Promise<void>)[] = [];

  afterAll(async () => {
    await Promise.allSettled(closers.map((c) => c()));
    let cursor = '0';
    do {
      // Queue keys start with their hash tag (`{prefix:queue}`), result keys with the prefix.
      const [n, keys] = await admin.scan(cursor, 'MATCH', `*${prefix}*`, 'COUNT', 1000);
      cursor = n;
      if (keys.length > 0) await admin.del(...keys);
    } while (cursor !== '0');
    admin.disconnect();
  });

  const pair = async (p: string, visibilityTimeoutMs = 30_000, clock?: Clock) => {
    const broker = new RedisBroker({ url, prefix: p, visibilityTimeoutMs, blockTimeoutMs: 1000, ...(clock === undefined ? {} : { clock }) });
    const backend = new RedisResultBackend({ url, prefix: p });
    closers.push(() => broker.close(), () => backend.close());
    await broker.connect();
    return { broker, backend };
  };

  it('a worker stores every result with its ack: no separate set, every id SUCCESS, the queue empty', async () => {
    const p = `${prefix}-w`;
    const backend = new RedisResultBackend({ url, prefix: p });
    let separateSets = 0;
    const set = backend.set.bind(backend);
    backend.set = (id, meta, opts) => {
      separateSets++;
      return set(id, meta, opts);
    };
    const app = createApp({ broker: `${url}?prefix=${p}`, resultBackend: backend });
    closers.push(() => app.close());
    const double = app.task('double', (n: number) => n * 2);
    const results = await Promise.all(Array.from({ length: 300 }, (_, i) => double.applyAsync([i])));
    const worker = app.worker({ concurrency: 20 });
    await worker.start();
    const values = await Promise.all(results.map((r) => r.get({ timeoutMs: 20_000 })));
    expect(values).toEqual(Array.from({ length: 300 }, (_, i) => i * 2));
    expect(separateSets).toBe(0);
    await worker.close();
    const broker = await app.getBroker();
    expect(await broker.stats('default')).toEqual({ ready: 0, delayed: 0, inFlight: 0, dead: 0 });
  });

  it('keeps a stored SUCCESS, wakes a waiter, and refuses a write kind it does not know', async () => {
    const { broker, backend } = await pair(`${prefix}-k`);
    const q = `q-${newId()}`;
    const ids = [newId(), newId()];
    for (const id of ids) await broker.publish(q, { id, body: enc.encode(id), headers: {} });
    const ac = new AbortController();
    const it = broker.consume(q, { prefetch: 2, signal: ac.signal })[Symbol.asyncIterator]();
    const [a, b] = [(await first(it)) as KitDelivery, (await first(it)) as KitDelivery];

    await backend.set(a.id, success('first'), { ttlMs: 60_000 });
    await a.ackWithResult(backend.prepareSet(a.id, success('second'), { ttlMs: 60_000 }));
    expect((await backend.get(a.id))?.result).toBe('first');

    expect(await code(b.ackWithResult({ kind: 'other', keys: ['k'], args: ['v', 0, ''] }))).toBe('ERR_UNSUPPORTED');
    const waited = backend.wait(b.id, { timeoutMs: 5000 });
    // Write only once the wait has subscribed to the result's channel.
    const channel = `${prefix}-k:result:${b.id}`;
    while ((await admin.pubsub('NUMSUB', channel))[1] !== 1) await new Promise((r) => setImmediate(r));
    await b.ackWithResult(backend.prepareSet(b.id, success(42), { ttlMs: 60_000 }));
    expect((await waited).result).toBe(42);
    expect(await admin.pttl(`${prefix}-k:result:${b.id}`)).toBeGreaterThan(50_000);
    expect(await broker.stats(q)).toEqual({ ready: 0, delayed: 0, inFlight: 0, dead: 0 });
    ac.abort();
  });

  it('a holder whose lease expired still stores its result but cannot ack (ERR_STALE_DELIVERY)', async () => {
    // a's process is stalled: its clock is frozen, so nothing renews its lease
    const { broker: a, backend } = await pair(`${prefix}-s`, 300, createFakeClock());
    const { broker: b } = await pair(`${prefix}-s`, 300);
    const q = `q-${newId()}`;
    await a.publish(q, { id: newId(), body: enc.encode('job'), headers: {} });
    const ac = new AbortController();
    const stale = (await first(a.consume(q, { prefetch: 1, signal: ac.signal })[Symbol.asyncIterator]())) as KitDelivery;
    // Nothing renews a's lease: after 300 ms the message is recovered for b.
    const bc = new AbortController();
    const fresh = await first(b.consume(q, { prefetch: 1, signal: bc.signal })[Symbol.asyncIterator]());
    expect(fresh.deliveries).toBe(2);
    expect(await code(stale.ackWithResult(backend.prepareSet(stale.id, success('late'), { ttlMs: 60_000 })))).toBe('ERR_STALE_DELIVERY');
    expect((await backend.get(stale.id))?.result).toBe('late');
    expect(await a.stats(q)).toEqual({ ready: 0, delayed: 0, inFlight: 1, dead: 0 });
    await fresh.ack();
    ac.abort();
    bc.abort();
  });
});
