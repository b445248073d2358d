import { CeleriacError, guardBroker, newId } from '@celeriac/core';
import { createFakeClock } from '@celeriac/core/testing';
import { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { requireServer, serverUrl, startPrivateRedis } from '@celeriac/test-servers';
import { prefixPattern, RedisBroker, type RedisBrokerConfig } from '../src/index.js';
import { code, deleteMatching, first, uniquePrefix } from './helpers.js';

const ok = await requireServer('redis');
const url = serverUrl('redis');
const prefix = uniquePrefix('broker');
const enc = new TextEncoder();
const dec = new TextDecoder();

function msg(text: string) {
  return { id: newId(), body: enc.encode(text), headers: {} };
}

describe.skipIf(!ok)('redis broker specifics', () => {
  const admin = new Redis(url, { lazyConnect: true });
  const open: RedisBroker[] = [];
  const make = async (extra: RedisBrokerConfig = {}) => {
    const b = new RedisBroker({ url, prefix, visibilityTimeoutMs: 500, blockTimeoutMs: 1000, ...extra });
    open.push(b);
    await b.connect();
    return b;
  };

  afterAll(async () => {
    await Promise.allSettled(open.map((b) => b.close()));
    await deleteMatching(admin, prefixPattern(prefix));
    admin.disconnect();
  });

  it('a holder whose lease expired cannot settle or extend the redelivered message (ERR_STALE_DELIVERY)', async () => {
    const a = await make({ clock: createFakeClock() }); // a stalled process: nothing renews its leases
    const b = await make();
    const q = `q-${newId()}`;
    await a.publish(q, msg('job'));
    const ac = new AbortController();
    const first1 = await first(a.consume(q, { prefetch: 1, signal: ac.signal })[Symbol.asyncIterator]());
    expect(first1.deliveries).toBe(1);
    // a never renews its lease: after 500 ms the message is recovered for b.
    const bc = new AbortController();
    const second = await first(b.consume(q, { prefetch: 1, signal: bc.signal })[Symbol.asyncIterator](), 5000);
    expect(dec.decode(second.body)).toBe('job');
    expect(second.deliveries).toBe(2);
    expect(await code(first1.extend!())).toBe('ERR_STALE_DELIVERY');
    expect(await code(first1.ack())).toBe('ERR_STALE_DELIVERY');
    expect(await code(first1.ack())).toBe('ERR_ALREADY_SETTLED');
    await second.ack();
    expect(await a.stats(q)).toEqual({ ready: 0, delayed: 0, inFlight: 0, dead: 0 });
    ac.abort();
    bc.abort();
  });

  it('a stale nack changes nothing: the message is not dead-lettered twice or lost', async () => {
    const a = await make({ clock: createFakeClock() }); // a stalled process: nothing renews its leases
    const b = await make();
    const q = `q-${newId()}`;
    await a.publish(q, msg('job'));
    const ac = new AbortController();
    const stale = await first(a.consume(q, { prefetch: 1, signal: ac.signal })[Symbol.asyncIterator]());
    const bc = new AbortController();
    const fresh = await first(b.consume(q, { prefetch: 1, signal: bc.signal })[Symbol.asyncIterator](), 5000);
    expect(await code(stale.nack({ requeue: false, reason: 'late' }))).toBe('ERR_STALE_DELIVERY');
    expect(await a.stats(q)).toEqual({ ready: 0, delayed: 0, inFlight: 1, dead: 0 });
    await fresh.ack();
    ac.abort();
    bc.abort();
  });

  it('extend keeps the lease alive past the visibility timeout', async () => {
    const a = await make({ clock: createFakeClock() }); // a stalled process: nothing renews its leases
    const b = await make();
    const q = `q-${newId()}`;
    await a.publish(q, msg('long'));
    const ac = new AbortController();
    const d = await first(a.consume(q, { prefetch: 1, signal: ac.signal })[Symbol.asyncIterator]());
    const bc = new AbortController();
    const bi = b.consume(q, { prefetch: 1, signal: bc.signal })[Symbol.asyncIterator]();
    const stolen = bi.next();
    for (let i = 0; i < 8; i++) {
      await new Promise((r) => setTimeout(r, 150));
      await d.extend!();
    }
    await d.ack();
    bc.abort();
    expect((await stolen).done).toBe(true);
    ac.abort();
  });

  it('publishBatch with a delay and a priority keeps order and priority', async () => {
    const a = guardBroker(await make()); // publishBatch is the guard's: publishes in one turn share a script call
    const q = `q-${newId()}`;
    await a.publishBatch(q, [msg('d1'), msg('d2'), msg('d3')], { delayMs: 200 });
    await a.publish(q, msg('low'));
    await a.publish(q, msg('high'), { priority: 9 });
    const ac = new AbortController();
    const it = a.consume(q, { prefetch: 10, signal: ac.signal })[Symbol.asyncIterator]();
    const got: string[] = [];
    for (let i = 0; i < 5; i++) {
      const d = await first(it);
      got.push(dec.decode(d.body));
      await d.ack();
    }
    expect(got).toEqual(['high', 'low', 'd1', 'd2', 'd3']);
    ac.abort();
  });

  it('a publish of an id that is still stored is deduplicated', async () => {
    const a = await make();
    const q = `q-${newId()}`;
    const m = msg('once');
    await a.publish(q, m);
    await a.publish(q, m);
    expect((await a.stats(q)).ready).toBe(1);
    await a.purge(q);
  });

  it('purges a queue of 25,000 messages (more than one script can unpack at once)', async () => {
    const a = guardBroker(await make()); // publishBatch is the guard's: publishes in one turn share a script call
    const q = `q-${newId()}`;
    for (let i = 0; i < 25_000; i += 500) await a.publishBatch(q, Array.from({ length: 500 }, (_, j) => msg(`m${i + j}`)));
    await a.publish(q, msg('later'), { delayMs: 60_000 });
    expect(await a.stats(q)).toEqual({ ready: 25_000, delayed: 1, inFlight: 0, dead: 0 });
    expect(await a.purge(q)).toBe(25_001);
    expect(await a.stats(q)).toEqual({ ready: 0, delayed: 0, inFlight: 0, dead: 0 });
    expect(await admin.hlen(`{${prefix}:${q}}:msg`)).toBe(0);
  });

  it('a consumer whose connections are killed resumes by itself and reports reconnected', async () => {
    const p = uniquePrefix('kill');
    const a = await make({ prefix: p });
    const events: string[] = [];
    a.onEvent((e) => events.push(e.type));
    const q = `q-${newId()}`;
    const ac = new AbortController();
    const it = a.consume(q, { prefetch: 5, signal: ac.signal })[Symbol.asyncIterator]();
    await a.publish(q, msg('before'));
    await (await first(it)).ack();
    // Kill every connection of this broker (and only those: they are named after the prefix).
    const list = await admin.client('LIST');
    const ids = String(list)
      .split('\n')
      .filter((l) => l.includes(`name=celeriac:${p}:`))
      .map((l) => /\bid=(\d+)/.exec(l)?.[1])
      .filter((id): id is string => id !== undefined);
    expect(ids.length).toBeGreaterThanOrEqual(2);
    for (const id of ids) await admin.client('KILL', 'ID', id);
    const other = await make({ prefix: p });
    await other.publish(q, msg('after'));
    const d = await first(it, 10_000);
    expect(dec.decode(d.body)).toBe('after');
    await d.ack();
    expect(events).toContain('reconnected');
    ac.abort();
    await deleteMatching(admin, prefixPattern(p));
  });

  it('survives a Redis restart (AOF): publishes during the outage reject with a retryable ERR_CONNECTION, the consumer resumes', async () => {
    const server = await startPrivateRedis({ appendonly: true });
    try {
      const raw = new RedisBroker({
        url: server.url,
        prefix,
        visibilityTimeoutMs: 1000,
        blockTimeoutMs: 500,
        maxRetriesPerRequest: 1,
        redis: { retryStrategy: () => 100 },
      });
      const b = guardBroker(raw);
      const events: string[] = [];
      b.onEvent((e) => events.push(e.type));
      await b.connect();
      const q = 'restart';
      await b.publish(q, msg('kept'), { delayMs: 300 });
      const ac = new AbortController();
      const it = b.consume(q, { prefetch: 2, signal: ac.signal })[Symbol.asyncIterator]();
      await server.stop({ mode: 'immediate' });
      const during = await b.publish(q, msg('during')).then(
        () => 'resolved',
        (err: unknown) => (err instanceof CeleriacError ? `${err.code}:${err.retryable}` : String(err)),
      );
      expect(during).toBe('ERR_CONNECTION:true');
      await server.start();
      await b.publish(q, msg('after'));
      const got = new Set<string>();
      for (let i = 0; i < 2; i++) {
        const d = await first(it, 10_000);
        got.add(dec.decode(d.body));
        await d.ack();
      }
      expect(got).toEqual(new Set(['kept', 'after']));
      expect(events).toContain('reconnected');
      ac.abort();
      await b.close();
    } finally {
      await server.close();
    }
  });
});
