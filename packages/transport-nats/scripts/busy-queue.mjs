#!/usr/bin/env node
// "A busy queue keeps flowing": immediate-task process/s on a queue while 10,000 tasks wait in the
// broker on long countdowns and retry backoff, against the same run without them.
//
//   npx tsc -b packages/transport-nats && node packages/transport-nats/scripts/busy-queue.mjs [tasks] [rounds]
//
// NATS_URL (default nats://127.0.0.1:4222). Each run uses its own prefix and deletes its streams.
import { createApp, createMemoryResultBackend } from '@celeriac/core';
import { connect } from '@nats-io/transport-node';
import { jetstreamManager } from '@nats-io/jetstream';

const TASKS = Number(process.argv[2] ?? 20_000);
const ROUNDS = Number(process.argv[3] ?? 2);
const WAITING_COUNTDOWNS = 5_000;
const WAITING_RETRIES = 5_000;
const base = new URL(process.env.NATS_URL ?? 'nats://127.0.0.1:4222');
const HOUR = 3_600_000;

async function deleteStreams(prefix) {
  const nc = await connect({ servers: `${base.hostname}:${base.port || 4222}` });
  const jsm = await jetstreamManager(nc);
  for (const s of ['tasks', 'delayed', 'dead']) await jsm.streams.delete(`${prefix}_${s}`).catch(() => undefined);
  await nc.close();
}

async function run(withWaiting) {
  const prefix = `busy_${withWaiting ? 'loaded' : 'base'}_${Math.random().toString(36).slice(2, 8)}`;
  const url = new URL(base);
  url.searchParams.set('prefix', prefix);
  const app = createApp({ broker: url.toString(), resultBackend: createMemoryResultBackend() });
  const work = app.task('busy.work', async () => undefined, { ignoreResult: true });
  const flaky = app.task('busy.flaky', async () => {
    throw new Error('fails once, then waits an hour');
  }, { maxRetries: 1, retryBackoffMs: HOUR, retryJitter: false, ignoreResult: true });
  const later = app.task('busy.later', async () => undefined, { ignoreResult: true });
  let succeeded = 0;
  let retried = 0;
  let target = Infinity;
  let resolveDone;
  let resolveRetried;
  let allDone = new Promise((r) => (resolveDone = r));
  const allRetried = new Promise((r) => (resolveRetried = r));
  app.on('task:succeeded', () => {
    if (++succeeded === target) resolveDone();
  });
  app.on('task:retried', () => {
    if (++retried === WAITING_RETRIES) resolveRetried();
  });
  const broker = await app.getBroker();
  try {
    // Phase 1, the same work for both runs (so both measure a warmed-up process): 5,000 tasks run once.
    // With waiting tasks they fail and wait an hour for their retry, and 5,000 countdowns of an hour are
    // added; without, they succeed.
    const w0 = app.worker({ concurrency: 32, prefetchMultiplier: 4 });
    if (withWaiting) {
      for (let i = 0; i < WAITING_COUNTDOWNS; i += 1000) {
        await later.applyAsyncBulk(Array.from({ length: 1000 }, () => []), { countdownMs: HOUR });
      }
      for (let i = 0; i < WAITING_RETRIES; i += 1000) await flaky.applyAsyncBulk(Array.from({ length: 1000 }, () => []));
      await w0.start();
      await allRetried;
    } else {
      target = WAITING_RETRIES;
      for (let i = 0; i < WAITING_RETRIES; i += 1000) await work.applyAsyncBulk(Array.from({ length: 1000 }, () => []));
      await w0.start();
      await allDone;
      allDone = new Promise((r) => (resolveDone = r));
    }
    await w0.close();
    if (withWaiting) {
      // let the mover park the retries it just received
      for (let s = await broker.stats('default'); s.delayed < WAITING_COUNTDOWNS + WAITING_RETRIES; s = await broker.stats('default')) {
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    for (let i = 0; i < TASKS; i += 1000) await work.applyAsyncBulk(Array.from({ length: Math.min(1000, TASKS - i) }, () => []));
    const before = await broker.stats('default');
    target = TASKS;
    succeeded = 0;
    const t0 = performance.now();
    const w = app.worker({ concurrency: 32, prefetchMultiplier: 4 });
    await w.start();
    await allDone;
    const seconds = (performance.now() - t0) / 1000;
    await w.close();
    const after = await broker.stats('default');
    return { rate: TASKS / seconds, delayedBefore: before.delayed, delayedAfter: after.delayed };
  } finally {
    await app.close();
    await deleteStreams(prefix);
  }
}

const baseRates = [];
const loadedRates = [];
for (let round = 1; round <= ROUNDS; round++) {
  const b = await run(false);
  baseRates.push(b.rate);
  console.log(`round ${round}: without waiting tasks  ${Math.round(b.rate)} tasks/s`);
  const l = await run(true);
  loadedRates.push(l.rate);
  console.log(`round ${round}: with ${l.delayedBefore} waiting (delayed) ${Math.round(l.rate)} tasks/s; still waiting after the run: ${l.delayedAfter}`);
}
const median = (xs) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)];
const mb = median(baseRates);
const ml = median(loadedRates);
console.log(`median: ${Math.round(mb)} tasks/s without, ${Math.round(ml)} tasks/s with 10,000 waiting: ${((100 * ml) / mb).toFixed(0)} %`);
