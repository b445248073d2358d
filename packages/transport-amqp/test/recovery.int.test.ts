import { afterAll, describe, expect, it } from 'vitest';
import amqp from 'amqplib';
import { CeleriacError, guardBroker, newId, type BrokerEvent, type Delivery, type GuardedBroker } from '@celeriac/core';
import { requireServer, serverUrl, startTcpProxy } from '@celeriac/test-servers';
import { AmqpBroker, ERR_UNROUTABLE, type QueueType } from '../src/index.js';
import { H } from '../src/headers.js';

const ok = await requireServer('amqp');
const url = serverUrl('amqp');
const target = new URL(url);
const enc = new TextEncoder();
const dec = new TextDecoder();
const used = new Map<string, { queueType: QueueType; queues: Set<string> }>();

function prefixFor(queueType: QueueType): string {
  const prefix = `rec-${queueType}-${newId().slice(0, 8)}`;
  used.set(prefix, { queueType, queues: new Set() });
  return prefix;
}

function queueOf(prefix: string): string {
  const q = `q-${newId().slice(0, 6)}`;
  used.get(prefix)!.queues.add(q);
  return q;
}

function msg(text: string, id = newId()) {
  return { id, body: enc.encode(text), headers: { task: 't' } };
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

async function until(cond: () => boolean, budgetMs: number, what: string): Promise<void> {
  for (let waited = 0; !cond(); waited += 20) {
    if (waited > budgetMs) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

/** Consume in the background, acking everything, recording bodies and delivery counts. */
function drain(b: GuardedBroker, q: string, prefetch = 50) {
  const ac = new AbortController();
  const got: { text: string; deliveries: number; at: number }[] = [];
  const done = (async () => {
    for await (const d of b.consume(q, { prefetch, signal: ac.signal })) {
      got.push({ text: dec.decode(d.body), deliveries: d.deliveries, at: Date.now() });
      await d.ack().catch(() => undefined);
    }
  })();
  return {
    got,
    stop: async () => {
      ac.abort();
      await done;
    },
  };
}

afterAll(async () => {
  for (const [prefix, { queueType, queues }] of used) {
    const admin = new AmqpBroker(url, { prefix, queueType });
    try {
      await admin.deleteQueues([...queues]);
      await admin.deleteExchanges();
    } finally {
      await admin.close();
    }
  }
});

describe.skipIf(!ok)('amqp recovery and delivery details', () => {
  it('recovers from a cut connection: publishes are confirmed, consumers resume, stale deliveries refuse to settle', async () => {
    const proxy = await startTcpProxy(target.hostname, Number(target.port || 5672));
    const prefix = prefixFor('quorum');
    const b = guardBroker(new AmqpBroker(proxy.urlFor(url), { prefix, connectTimeoutMs: 5000 }));
    const events: BrokerEvent[] = [];
    b.onEvent((e) => events.push(e));
    try {
      await b.connect();
      const q = queueOf(prefix);
      await b.declareQueue(q);
      await b.publish(q, msg('held'));
      const ac = new AbortController();
      const it = b.consume(q, { prefetch: 10, signal: ac.signal })[Symbol.asyncIterator]();
      const held = (await it.next()).value as Delivery;
      expect(dec.decode(held.body)).toBe('held');

      const texts = Array.from({ length: 2000 }, (_, i) => `m${i}`);
      let confirmedSoFar = 0;
      const publishes = texts.map((t) => b.publish(q, msg(t)).then(() => void confirmedSoFar++));
      await until(() => confirmedSoFar >= 100, 10_000, 'the first confirms');
      proxy.cut();
      const confirmedAtCut = confirmedSoFar;
      expect(confirmedAtCut).toBeLessThan(texts.length); // the cut really hit publishes in flight
      const results = await Promise.allSettled(publishes);
      const confirmed = texts.filter((_, i) => results[i]!.status === 'fulfilled');
      for (const r of results) {
        if (r.status === 'rejected') {
          expect(r.reason).toBeInstanceOf(CeleriacError);
          expect((r.reason as CeleriacError).retryable).toBe(true);
        }
      }
      await until(() => events.some((e) => e.type === 'reconnected'), 10_000, 'reconnected');
      expect(events.some((e) => e.type === 'error')).toBe(true);
      await expect(held.ack()).rejects.toMatchObject({ code: 'ERR_STALE_DELIVERY' });

      // The consumer resumes on its own; the held message comes back, every confirmed one arrives.
      const seen = new Map<string, number>();
      const reading = (async () => {
        for (;;) {
          const r = await it.next();
          if (r.done === true) return;
          const text = dec.decode(r.value.body);
          seen.set(text, (seen.get(text) ?? 0) + 1);
          await r.value.ack();
        }
      })();
      await until(() => seen.has('held') && confirmed.every((t) => seen.has(t)), 15_000, 'every confirmed message');
      ac.abort();
      await reading;
      const duplicates = [...seen.values()].reduce((a, n) => a + n - 1, 0);
      console.log(`cut connection after ${confirmedAtCut} confirms: ${confirmed.length}/${texts.length} publishes confirmed in the end, ${duplicates} duplicates delivered`);
    } finally {
      await b.close();
      await proxy.close();
    }
  });

  it('rejects publishes with a retryable ERR_CONNECTION while RabbitMQ stays unreachable, then carries on', async () => {
    const proxy = await startTcpProxy(target.hostname, Number(target.port || 5672));
    const prefix = prefixFor('quorum');
    const b = guardBroker(new AmqpBroker(proxy.urlFor(url), { prefix, connectTimeoutMs: 800 }));
    try {
      await b.connect();
      const q = queueOf(prefix);
      await b.declareQueue(q);
      proxy.refuse();
      proxy.cut();
      await expect(b.publish(q, msg('lost?'))).rejects.toMatchObject({ code: 'ERR_CONNECTION', retryable: true });
      proxy.resume();
      await until(() => b.inner instanceof AmqpBroker && b.inner.link.isOpen, 10_000, 'reconnect');
      await b.publish(q, msg('after'));
      const c = drain(b, q);
      await until(() => c.got.length >= 1, 5000, 'delivery after reconnect');
      await c.stop();
      expect(c.got.map((g) => g.text)).toEqual(['after']);
    } finally {
      await b.close();
      await proxy.close();
    }
  });

  it('re-declares a queue deleted under its consumer and resumes consuming', async () => {
    const prefix = prefixFor('quorum');
    const b = guardBroker(new AmqpBroker(url, { prefix }));
    const other = new AmqpBroker(url, { prefix });
    try {
      await b.connect();
      const q = queueOf(prefix);
      await b.declareQueue(q);
      const c = drain(b, q);
      await b.publish(q, msg('before'));
      await until(() => c.got.length === 1, 5000, 'first delivery');
      await other.deleteQueues([q]);
      await sleep(300);
      await other.publish(q, msg('after'));
      await until(() => c.got.length === 2, 10_000, 'delivery after the queue was deleted and re-declared');
      await c.stop();
      expect(c.got.map((g) => g.text)).toEqual(['before', 'after']);
    } finally {
      await b.close();
      await other.close();
    }
  });

  it('rejects a publish RabbitMQ cannot route (mandatory) with ERR_UNROUTABLE, and declares again next time', async () => {
    const prefix = prefixFor('quorum');
    const b = guardBroker(new AmqpBroker(url, { prefix }));
    const other = new AmqpBroker(url, { prefix });
    try {
      const q = queueOf(prefix);
      await b.declareQueue(q);
      await other.deleteQueues([q]);
      await expect(b.publish(q, msg('nowhere'))).rejects.toMatchObject({ code: ERR_UNROUTABLE });
      await b.publish(q, msg('somewhere'));
      expect((await b.stats(q)).ready).toBe(1);
    } finally {
      await b.close();
      await other.close();
    }
  });

  for (const queueType of ['quorum', 'classic'] as const) {
    it(`counts every crash redelivery (${queueType})`, async () => {
      const prefix = prefixFor(queueType);
      const q = queueOf(prefix);
      const first = guardBroker(new AmqpBroker(url, { prefix, queueType }));
      await first.declareQueue(q);
      await first.publish(q, msg('crashy'));
      await first.close();
      const counts: number[] = [];
      for (let i = 0; i < 3; i++) {
        const b = guardBroker(new AmqpBroker(url, { prefix, queueType }));
        const it = b.consume(q, { prefetch: 1 })[Symbol.asyncIterator]();
        counts.push(((await it.next()).value as Delivery).deliveries);
        await b.close(); // dies holding it
      }
      const b = guardBroker(new AmqpBroker(url, { prefix, queueType }));
      const it = b.consume(q, { prefetch: 1 })[Symbol.asyncIterator]();
      const d = (await it.next()).value as Delivery;
      counts.push(d.deliveries);
      await d.nack({ requeue: true, delayMs: 20 });
      counts.push(((await it.next()).value as Delivery).deliveries);
      await b.close();
      expect(counts).toEqual([1, 2, 3, 4, 5]);
    });
  }

  it('holds a 10-hop delay in RabbitMQ and delivers it after the delay, never early', async () => {
    const prefix = prefixFor('quorum');
    const b = guardBroker(new AmqpBroker(url, { prefix }));
    try {
      const q = queueOf(prefix);
      await b.declareQueue(q);
      const c = drain(b, q);
      const sentAt = Date.now();
      await b.publish(q, msg('1023 ms'), { delayMs: 1023 }); // 2^10 - 1: one hop through each of levels 9 … 0
      await until(() => c.got.length === 1, 5000, 'the delayed message');
      await c.stop();
      expect(c.got[0]!.at - sentAt).toBeGreaterThanOrEqual(1023);
    } finally {
      await b.close();
    }
  });

  it('delays again on arrival what was left of a delay longer than one pass through the levels', async () => {
    const prefix = prefixFor('quorum');
    const b = guardBroker(new AmqpBroker(url, { prefix }));
    const conn = await amqp.connect(url);
    try {
      const q = queueOf(prefix);
      await b.declareQueue(q);
      // What a message looks like when it comes out of the levels with 400 ms still to go.
      const ch = await conn.createConfirmChannel();
      const sentAt = Date.now();
      ch.sendToQueue(`${prefix}.${q}`, Buffer.from('rest'), { persistent: true, messageId: newId(), headers: { [H.delayRest]: 400 } });
      await ch.waitForConfirms();
      const c = drain(b, q);
      await until(() => c.got.length === 1, 5000, 'the message after the rest of its delay');
      await c.stop();
      expect(c.got[0]!.at - sentAt).toBeGreaterThanOrEqual(400);
      expect(c.got[0]!.deliveries).toBe(1);
    } finally {
      await conn.close();
      await b.close();
    }
  });
});
