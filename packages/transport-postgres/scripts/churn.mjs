#!/usr/bin/env node
// Churn: does the hot table stay small and the claim fast while tasks flow through it?
//
// Publishes --tasks messages (default 200,000) through one queue while --consumers claimers (default 4,
// --batch 50 each) claim and ack them, the producer keeping about --backlog (default 5,000) waiting:
// every message is one insert, one claim (update) and one ack (delete), as in a worker. Each claim
// statement is timed; the script compares the claims made while the first 10% of the tasks were
// processed with those of the last 10%, and fails (exit 1) when the median of the last is over 1.5×
// the median of the first. It also prints the table's size and dead rows at the end, and how often
// autovacuum ran. Run after `npm run build`:
//
//   node packages/transport-postgres/scripts/churn.mjs [--tasks 200000] [--url postgres://…/test]
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { PostgresBroker } from '@celeriac/transport-postgres';

const { values } = parseArgs({
  options: {
    tasks: { type: 'string', default: '200000' },
    url: { type: 'string', default: process.env.POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/test' },
    backlog: { type: 'string', default: '5000' },
    consumers: { type: 'string', default: '4' },
    batch: { type: 'string', default: '50' },
    'max-ratio': { type: 'string', default: '1.5' },
  },
});
const TASKS = Number(values.tasks);
const BACKLOG = Number(values.backlog);
const CONSUMERS = Number(values.consumers);
const BATCH = Number(values.batch);
const MAX_RATIO = Number(values['max-ratio']);
const schema = `celeriac_churn_${Date.now().toString(36)}`;
const body = new TextEncoder().encode(JSON.stringify({ args: [{ i: 0, pad: 'x'.repeat(100) }] }));

const broker = new PostgresBroker({ url: values.url, prefix: schema, poolSize: CONSUMERS + 2 });
const admin = new pg.Client(values.url);
await broker.connect();
await admin.connect();
const q = broker.queue('churn');
let published = 0;
let processed = 0;
const claims = []; // [processed before the claim, ms]
const t0 = performance.now();

async function publishUpTo(n) {
  while (published < n) {
    const k = Math.min(500, n - published);
    const batch = Array.from({ length: k }, (_, j) => ({ id: `m${published + j}`, body, headers: { task: 'churn.noop' } }));
    published += k;
    await q.publishBatch(batch);
  }
}

async function producer() {
  await publishUpTo(Math.min(TASKS, BACKLOG));
  while (published < TASKS) {
    if (published - processed < BACKLOG) await publishUpTo(Math.min(TASKS, processed + BACKLOG));
    else await new Promise((r) => setTimeout(r, 2));
  }
}

async function consumer() {
  while (processed < TASKS) {
    const before = processed;
    const start = performance.now();
    const got = await q.tryClaim(BATCH);
    const ms = performance.now() - start;
    if (got.length === 0) {
      await new Promise((r) => setTimeout(r, 2));
      continue;
    }
    claims.push([before, ms]);
    await Promise.all(got.map((m) => q.ack(m)));
    processed += got.length;
  }
}

const vacuumsBefore = await autovacuums();
await Promise.all([producer(), ...Array.from({ length: CONSUMERS }, consumer)]);
const elapsedS = (performance.now() - t0) / 1000;

async function autovacuums() {
  const { rows } = await admin.query(
    `SELECT coalesce(autovacuum_count, 0)::int AS n, coalesce(vacuum_count, 0)::int AS manual, n_dead_tup::int AS dead, n_live_tup::int AS live,
            pg_total_relation_size(relid)::bigint AS bytes
     FROM pg_stat_user_tables WHERE schemaname = $1 AND relname = 'message'`,
    [schema],
  );
  return rows[0] ?? { n: 0, manual: 0, dead: 0, live: 0, bytes: 0 };
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? NaN : s[Math.floor((s.length - 1) / 2)];
};
const p90 = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? NaN : s[Math.min(s.length - 1, Math.ceil(s.length * 0.9) - 1)];
};
const first = claims.filter(([p]) => p < TASKS * 0.1).map(([, ms]) => ms);
const last = claims.filter(([p]) => p >= TASKS * 0.9).map(([, ms]) => ms);
const ratio = median(last) / median(first);
await new Promise((r) => setTimeout(r, 1000)); // let the statistics collector catch up
const after = await autovacuums();
const f = (x) => x.toFixed(2);
console.log(`churn: ${TASKS.toLocaleString('en-US')} tasks through one queue in ${elapsedS.toFixed(1)} s (${Math.round(TASKS / elapsedS).toLocaleString('en-US')}/s), ${CONSUMERS} claimers × ${BATCH}, backlog ~${BACKLOG.toLocaleString('en-US')}`);
console.log(`claim latency, first 10% of the tasks: median ${f(median(first))} ms, p90 ${f(p90(first))} ms (${first.length} claims)`);
console.log(`claim latency, last 10% of the tasks:  median ${f(median(last))} ms, p90 ${f(p90(last))} ms (${last.length} claims)`);
console.log(`ratio (medians, last / first): ${f(ratio)}× (at most ${MAX_RATIO}×)`);
console.log(`message table at the end: ${(Number(after.bytes) / 1024 / 1024).toFixed(1)} MB with indexes, ${after.live} live and ${after.dead} dead rows; the broker's VACUUM ran ${after.manual - vacuumsBefore.manual} times, autovacuum ${after.n - vacuumsBefore.n} times`);
await broker.close();
await admin.query(`DROP SCHEMA "${schema}" CASCADE`);
await admin.end();
process.exitCode = ratio <= MAX_RATIO ? 0 : 1;
