import { guardBroker, type Delivery, type GuardedBroker } from '@celeriac/core';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { requireServer, serverUrl } from '@celeriac/test-servers';
import { KombuRedisBroker } from '../src/kombu-redis-broker.js';
import { requirePythonCelery, runPython } from './python.js';
import { deleteKeys, redisClient, uniquePrefix } from './redis-helpers.js';

const ok = (await requireServer('redis')) && requirePythonCelery();
const prefix = uniquePrefix('kombu');
const url = `${serverUrl('redis').replace(/\/+$/, '')}/0`;
const enc = new TextEncoder();

/** One kombu operation in a fresh Python process (fixtures/kombu_ops.py). */
function kombu(op: string, args: Record<string, unknown> = {}, vtSeconds = 1): Record<string, unknown> {
  const out = runPython('kombu_ops.py', [], JSON.stringify({ op, url, prefix, vt: vtSeconds, ...args }));
  return JSON.parse(out.trim().split('\n').pop()!) as Record<string, unknown>;
}

const brokers: GuardedBroker[] = [];
async function open(vt = 1000): Promise<GuardedBroker> {
  const b = guardBroker(new KombuRedisBroker({ url, prefix, visibilityTimeoutMs: vt, sweepIntervalMs: 100 }));
  brokers.push(b);
  await b.connect();
  return b;
}

async function first(b: GuardedBroker, queue: string, ac: AbortController): Promise<Delivery> {
  const it = b.consume(queue, { prefetch: 1, signal: ac.signal })[Symbol.asyncIterator]();
  const r = await it.next();
  if (r.done === true) throw new Error('consumer ended');
  return r.value;
}

afterEach(async () => {
  await Promise.allSettled(brokers.splice(0).map((b) => b.close()));
});
afterAll(async () => {
  if (ok) await deleteKeys(prefix);
});

describe.skipIf(!ok)('kombu bookkeeping shared with Python', () => {
  it('declares queues with kombu’s binding and publishes envelopes kombu reads, priority mapped', async () => {
    const b = await open();
    await b.declareQueue('plain');
    const r = redisClient();
    try {
      expect(await r.smembers(`${prefix}_kombu.binding.plain`)).toEqual(['plain\x06\x16\x06\x16plain']);
    } finally {
      r.disconnect();
    }
    await b.publish('plain', { id: 'm-urgent', body: enc.encode('"urgent"'), headers: { 'content-type': 'application/json', x: [1, null] } }, { priority: 9 });
    await b.publish('plain', { id: 'm-low', body: enc.encode('"low"'), headers: { 'content-type': 'application/json' } }, { priority: 0 });
    // kombu serves its most urgent list (priority 0) first: celeriac's 9.
    expect(kombu('get', { queue: 'plain' })).toMatchObject({ payload: 'urgent', priority: 0, tag: 'm-urgent', headers: { x: [1, null] } });
    expect(kombu('get', { queue: 'plain' })).toMatchObject({ payload: 'low', priority: 9, tag: 'm-low' });
  });

  it('reads what kombu publishes, with its priority', async () => {
    kombu('publish', { queue: 'fromkombu', body: { n: 1 }, priority: 3, headers: { task: 't' } });
    const b = await open();
    const ac = new AbortController();
    const d = await first(b, 'fromkombu', ac);
    expect(JSON.parse(new TextDecoder().decode(d.body))).toEqual({ n: 1 });
    expect(d.headers).toMatchObject({ task: 't', priority: 6, 'content-type': 'application/json' });
    await d.ack();
    ac.abort();
  });

  it('a Python sweep restores neither a live Node delivery nor a delayed message before it is due', async () => {
    const b = await open(1000);
    await b.declareQueue('live');
    await b.publish('live', { id: 'held', body: enc.encode('1'), headers: {} });
    await b.publish('live', { id: 'later', body: enc.encode('2'), headers: {} }, { delayMs: 20_000 });
    const ac = new AbortController();
    const d = await first(b, 'live', ac);
    expect(d.id).toBe('held');
    await new Promise((r) => setTimeout(r, 1600)); // past the 1 s visibility timeout; the guard renews the lease
    kombu('sweep');
    expect(kombu('get', { queue: 'live' })).toEqual({ none: true });
    await d.ack();
    ac.abort();
    expect((await b.stats('live')).delayed).toBe(1);
  });

  it('a Python sweep moves a due delayed message to its queue when no Node process runs', async () => {
    const b = await open(1000);
    await b.declareQueue('orphan');
    // 3 s: the first Python sweep must start (a fresh interpreter, slow on a loaded machine) before it is due.
    const dueAt = Date.now() + 3_000;
    await b.publish('orphan', { id: 'due-soon', body: enc.encode('"hi"'), headers: { 'content-type': 'application/json' } }, { delayMs: 3_000 });
    await b.close(); // no Node sweeper any more
    kombu('sweep'); // not due yet
    expect(Date.now()).toBeLessThan(dueAt); // else the next line would not test "not due yet"
    expect(kombu('get', { queue: 'orphan' })).toEqual({ none: true });
    await new Promise((r) => setTimeout(r, dueAt + 100 - Date.now()));
    kombu('sweep');
    expect(kombu('get', { queue: 'orphan' })).toMatchObject({ payload: 'hi', tag: 'due-soon' });
  });

  it('a Node consumer restores what a crashed kombu consumer held, once', async () => {
    kombu('publish', { queue: 'crash', body: 'work', headers: { task: 'x' } });
    expect(kombu('grab', { queue: 'crash' })).toMatchObject({ payload: 'work' }); // the process dies unacked
    const b = await open(1000);
    const ac = new AbortController();
    const d = await first(b, 'crash', ac); // after the visibility timeout
    expect(d.deliveries).toBe(2);
    expect(d.headers['redelivered']).toBe(true);
    await d.ack();
    ac.abort();
    const r = redisClient();
    try {
      expect(await r.hexists(`${prefix}unacked`, d.id)).toBe(0);
      expect(await r.llen(`${prefix}crash`)).toBe(0);
    } finally {
      r.disconnect();
    }
  });
});
