import { afterAll, describe, expect, it } from 'vitest';
import { guardBroker, newId } from '@celeriac/core';
import { requireServer, serverUrl } from '@celeriac/test-servers';
import { AmqpBroker } from '../src/index.js';

const ok = await requireServer('amqp');
const url = serverUrl('amqp');
const prefix = `acc-${newId().slice(0, 8)}`;
const queue = 'delays';

const DELAYS_MS = [10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10_000];
const PER_DELAY = 20;

function percentile(sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

afterAll(async () => {
  const admin = new AmqpBroker(url, { prefix });
  try {
    await admin.deleteQueues([queue]);
    await admin.deleteExchanges();
  } finally {
    await admin.close();
  }
});

describe.skipIf(!ok)('amqp delay accuracy', () => {
  it('delivers mixed delays from 10 ms to 10 s never early, and reports the lateness', async () => {
    const b = guardBroker(new AmqpBroker(url, { prefix }));
    try {
      await b.declareQueue(queue);
      await b.stats(queue); // declares the delay levels, so the first publish does not wait for that
      const due = new Map<string, { delayMs: number; sentAt: number }>();
      const lateness = new Map<number, number[]>(DELAYS_MS.map((d) => [d, []]));
      const early: string[] = [];
      const ac = new AbortController();
      let received = 0;
      const consuming = (async () => {
        for await (const d of b.consume(queue, { prefetch: 100, signal: ac.signal })) {
          const at = Date.now();
          const sent = due.get(d.id);
          if (sent !== undefined) {
            const late = at - (sent.sentAt + sent.delayMs);
            if (late < 0) early.push(`${d.id}: ${sent.delayMs} ms delay delivered ${-late} ms early`);
            lateness.get(sent.delayMs)!.push(late);
            received++;
          }
          await d.ack();
        }
      })();
      // Interleave the delays so short ones are published after long ones.
      const publishes: Promise<void>[] = [];
      for (let i = 0; i < PER_DELAY; i++) {
        for (const delayMs of [...DELAYS_MS].reverse()) {
          const id = newId();
          due.set(id, { delayMs, sentAt: Date.now() });
          publishes.push(b.publish(queue, { id, body: new Uint8Array(0), headers: {} }, { delayMs }));
        }
      }
      await Promise.all(publishes);
      const total = DELAYS_MS.length * PER_DELAY;
      const deadline = Date.now() + Math.max(...DELAYS_MS) + 10_000;
      while (received < total && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      ac.abort();
      await consuming;

      const all = [...lateness.values()].flat().sort((a, b) => a - b);
      const rows = DELAYS_MS.map((d) => {
        const s = [...lateness.get(d)!].sort((a, b) => a - b);
        return `${String(d).padStart(6)} ms  p50 ${String(percentile(s, 50)).padStart(4)} ms  p99 ${String(percentile(s, 99)).padStart(4)} ms  budget ${Math.max(100, d / 10)} ms`;
      });
      console.log(
        `delay lateness over ${all.length} messages: p50 ${percentile(all, 50)} ms, p99 ${percentile(all, 99)} ms, max ${all[all.length - 1]} ms\n${rows.join('\n')}`,
      );
      expect(early).toEqual([]);
      expect(received).toBe(total);
    } finally {
      await b.close();
    }
  }, 30_000);
});
