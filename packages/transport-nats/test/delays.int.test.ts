import { afterAll, describe, expect, it } from 'vitest';
import { guardBroker, newId, type Delivery, type GuardedBroker } from '@celeriac/core';
import { requireServer } from '@celeriac/test-servers';
import { NatsBroker, type NatsBrokerOptions } from '../src/index.js';
import { deleteStreams, natsUrl, sleep, uniquePrefix } from './helpers.js';

const ok = await requireServer('nats');
const prefix = uniquePrefix('delay');
const enc = new TextEncoder();

async function broker(opts: NatsBrokerOptions = {}): Promise<GuardedBroker> {
  const b = guardBroker(new NatsBroker(natsUrl, { prefix, visibilityTimeoutMs: 5_000, ...opts }));
  await b.connect();
  return b;
}

/** Collect deliveries of one consume until stopped. */
function collect(b: GuardedBroker, queue: string, prefetch: number): { got: Delivery[]; stop: () => Promise<void> } {
  const got: Delivery[] = [];
  const ac = new AbortController();
  const done = (async () => {
    for await (const d of b.consume(queue, { prefetch, signal: ac.signal })) got.push(d);
  })();
  return {
    got,
    stop: async () => {
      ac.abort();
      await done;
    },
  };
}

async function until(cond: () => boolean, ms: number, what: string): Promise<void> {
  for (const end = Date.now() + ms; !cond(); await sleep(10)) if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
}

describe.skipIf(!ok)('NATS delays never stall a queue', () => {
  afterAll(async () => {
    await deleteStreams(prefix);
  });

  it('ten retries waiting 20 s do not hold a max-ack-pending of 10: the next message is delivered at once', async () => {
    const b = await broker({ maxAckPending: 10 });
    const q = `q-${newId().slice(0, 8)}`;
    try {
      await b.declareQueue(q);
      await b.publishBatch(q, Array.from({ length: 10 }, (_, i) => ({ id: newId(), body: enc.encode(`retry-${i}`), headers: {} })));
      const c = collect(b, q, 20);
      await until(() => c.got.length === 10, 5_000, 'ten deliveries');
      for (const d of c.got) await d.nack({ requeue: true, delayMs: 20_000 });
      await b.publish(q, { id: newId(), body: enc.encode('next'), headers: {} });
      await until(() => c.got.length === 11, 5_000, 'the next message while ten retries wait');
      expect(new TextDecoder().decode(c.got[10]!.body)).toBe('next');
      const s = await b.stats(q);
      expect([s.delayed, s.inFlight]).toEqual([10, 1]);
      await c.stop();
    } finally {
      await b.purge(q);
      await b.close();
    }
  });

  it('several movers at once move every due message exactly once', async () => {
    const brokers = await Promise.all([broker(), broker(), broker()]);
    const q = `q-${newId().slice(0, 8)}`;
    try {
      await brokers[0]!.declareQueue(q);
      const n = 300;
      await brokers[0]!.publishBatch(
        q,
        Array.from({ length: n }, (_, i) => ({ id: newId(), body: enc.encode(String(i)), headers: {} })),
        { delayMs: 500 },
      );
      const c = collect(brokers[1]!, q, 50);
      const seen = new Map<string, number>();
      await until(
        () => {
          for (const d of c.got.splice(0)) {
            const k = new TextDecoder().decode(d.body);
            seen.set(k, (seen.get(k) ?? 0) + 1);
            void d.ack();
          }
          return seen.size === n;
        },
        15_000,
        `${n} delayed messages`,
      );
      await sleep(500);
      for (const d of c.got.splice(0)) seen.set(new TextDecoder().decode(d.body), (seen.get(new TextDecoder().decode(d.body)) ?? 0) + 1);
      expect([...seen.values()].filter((v) => v > 1)).toEqual([]);
      expect((await brokers[0]!.stats(q)).delayed).toBe(0);
      await c.stop();
    } finally {
      await Promise.all(brokers.map((b) => b.close()));
    }
  });
});
