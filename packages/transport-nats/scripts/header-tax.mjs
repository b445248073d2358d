#!/usr/bin/env node
// What the `Nats-Msg-Id` header costs the raw JetStream floor itself: the benchmark floor's work (a
// file-backed work-queue stream, async publishes, a pull consumer with `consume()`, explicit acks,
// max ack pending 200) drained with and without a message id on every publish, in alternating pairs.
// celeriac sets one on every publish (dedup); the floor in the benchmark harness does not.
//
//   node packages/transport-nats/scripts/header-tax.mjs [tasks] [pairs]
//
// NATS_URL (default nats://127.0.0.1:4222). Each run uses its own stream and deletes it.
import { performance } from 'node:perf_hooks';
import { connect } from '@nats-io/transport-node';
import { AckPolicy, jetstream, jetstreamManager, RetentionPolicy, StorageType } from '@nats-io/jetstream';

const TASKS = Number(process.argv[2] ?? 60_000);
const PAIRS = Number(process.argv[3] ?? 4);
const base = new URL(process.env.NATS_URL ?? 'nats://127.0.0.1:4222');
const pad = 'x'.repeat(100);

async function drain(withMsgId) {
  const nc = await connect({ servers: `${base.hostname}:${base.port || 4222}` });
  const jsm = await jetstreamManager(nc);
  const js = jetstream(nc);
  const stream = `tax_${Math.random().toString(36).slice(2, 10)}`;
  const subject = `${stream}.q`;
  try {
    await jsm.streams.add({ name: stream, subjects: [subject], retention: RetentionPolicy.Workqueue, storage: StorageType.File });
    await jsm.consumers.add(stream, { durable_name: 'w', ack_policy: AckPolicy.Explicit, max_ack_pending: 200 });
    const prefix = Math.random().toString(36).slice(2, 18);
    let next = 0;
    await Promise.all(
      Array.from({ length: 128 }, async () => {
        while (next < TASKS) {
          const i = next++;
          const body = JSON.stringify({ i, t: performance.now(), failOnce: false, pad });
          await js.publish(subject, body, withMsgId ? { msgID: `${prefix}.${i}` } : undefined);
        }
      }),
    );
    const consumer = await js.consumers.get(stream, 'w');
    let done = 0;
    let finish;
    const all = new Promise((resolve) => (finish = resolve));
    const t0 = performance.now();
    const messages = await consumer.consume({
      max_messages: 200,
      callback: (m) => {
        m.json();
        m.ack();
        if (++done === TASKS) finish();
      },
    });
    await all;
    const rate = TASKS / ((performance.now() - t0) / 1000);
    messages.stop();
    return rate;
  } finally {
    await jsm.streams.delete(stream).catch(() => undefined);
    await nc.close();
  }
}

const ratios = [];
for (let p = 1; p <= PAIRS; p++) {
  // Alternate which goes first, so neither always runs on a warmer machine.
  const first = p % 2 === 1;
  const a = await drain(!first);
  const b = await drain(first);
  const [without, withId] = first ? [a, b] : [b, a];
  ratios.push(withId / without);
  console.log(`pair ${p}: without a message id ${Math.round(without)} msgs/s, with one ${Math.round(withId)} msgs/s: ${(withId / without).toFixed(2)}×`);
}
const sorted = [...ratios].sort((x, y) => x - y);
const mid = sorted.length / 2;
const median = sorted.length % 2 === 1 ? sorted[Math.floor(mid)] : (sorted[mid - 1] + sorted[mid]) / 2;
console.log(`with / without Nats-Msg-Id: median ${median.toFixed(2)}× [${sorted[0].toFixed(2)}–${sorted.at(-1).toFixed(2)}×] over ${PAIRS} pairs of ${TASKS} messages`);
