#!/usr/bin/env node
/**
 * Throughput of a Node (celeriac) worker next to a Python Celery 5 worker draining the same
 * Celery-protocol tasks (protocol v2, JSON, kombu's Redis transport) in one run.
 *
 *   node packages/celery/bench/throughput.mjs [--tasks 5000] [--python-pool solo|prefork] [--python-concurrency 2]
 *
 * Each side gets the same N `bench.noop(i)` messages, published by Node in one pipelined batch
 * after its worker is ready; the clock runs until the queue and kombu's `unacked` hash are empty
 * (both sides ack late, so an empty `unacked` means every task ran). Needs `npm run build`, Redis
 * and Celery 5 importable by /usr/bin/python3.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { cpus } from 'node:os';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { createApp, newId } from '@celeriac/core';
import { celeryProtocol } from '@celeriac/celery';
import { Redis } from 'ioredis';

const { values } = parseArgs({
  options: {
    tasks: { type: 'string', default: '5000' },
    'node-concurrency': { type: 'string', default: '8' },
    'python-pool': { type: 'string', default: 'prefork' },
    'python-concurrency': { type: 'string', default: String(cpus().length) },
  },
});
const N = Number(values.tasks);
const redisUrl = (process.env.REDIS_URL ?? 'redis://127.0.0.1:6379').replace(/\/+$/, '') + '/0';
const python = process.env.CELERY_PYTHON ?? '/usr/bin/python3';
const fixtures = fileURLToPath(new URL('../test/fixtures/', import.meta.url));
const prefix = `celeriac-bench-${randomBytes(4).toString('hex')}:`;
const redis = new Redis(redisUrl);

const app = createApp({ protocol: celeryProtocol, broker: `${redisUrl}?prefix=${encodeURIComponent(prefix)}` });
app.task('bench.noop', (_i) => null, { ignoreResult: true });

async function publish(queue) {
  const broker = await app.getBroker();
  await app.declare(broker, queue);
  const msgs = [];
  for (let i = 0; i < N; i++) {
    const { msg } = app.buildMessage('bench.noop', [i], { taskId: newId() }, {});
    msgs.push(app.encode(msg, {}));
  }
  for (let i = 0; i < msgs.length; i += 1000) await broker.publishBatch(queue, msgs.slice(i, i + 1000));
}

/** Until the queue's lists and kombu's unacked hash are empty. */
async function drained(queue) {
  for (;;) {
    const [len, unacked] = await Promise.all([redis.llen(prefix + queue), redis.hlen(prefix + 'unacked')]);
    if (len === 0 && unacked === 0) return;
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function runNode() {
  const queue = 'node-bench';
  const worker = app.worker({ queues: [queue], concurrency: Number(values['node-concurrency']), prefetchMultiplier: 4 });
  await worker.start();
  const t0 = performance.now();
  await publish(queue);
  const t1 = performance.now();
  await drained(queue);
  const ms = performance.now() - t0;
  await worker.close();
  return { ms, publishMs: t1 - t0 };
}

async function runPython() {
  const queue = 'python-bench';
  const pool = values['python-pool'];
  const args = ['-m', 'celery', '-A', 'bench_app', 'worker', '-Q', queue, '--pool', pool, '-l', 'warning',
    '--without-heartbeat', '--without-mingle', '--without-gossip', '-n', `bench-${randomBytes(2).toString('hex')}@%h`];
  if (pool === 'prefork') args.push('-c', values['python-concurrency']);
  const proc = spawn(python, args, {
    cwd: fixtures,
    env: { ...process.env, PYTHONPATH: fixtures, BENCH_BROKER: redisUrl, BENCH_PREFIX: prefix },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let log = '';
  proc.stdout.on('data', (c) => (log += c));
  proc.stderr.on('data', (c) => (log += c));
  const exited = new Promise((r) => proc.once('exit', r));
  // Ready once it consumes: a probe task goes through.
  const broker = await app.getBroker();
  await app.declare(broker, queue);
  const { msg } = app.buildMessage('bench.noop', [-1], {}, {});
  await broker.publish(queue, app.encode(msg, {}));
  const started = Date.now();
  while ((await redis.llen(prefix + queue)) > 0 || (await redis.hlen(prefix + 'unacked')) > 0) {
    if (proc.exitCode !== null || Date.now() - started > 60_000) throw new Error(`celery worker did not start:\n${log}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  const t0 = performance.now();
  await publish(queue);
  const t1 = performance.now();
  await drained(queue);
  const ms = performance.now() - t0;
  proc.kill('SIGQUIT');
  await exited;
  return { ms, publishMs: t1 - t0 };
}

async function cleanup() {
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
    cursor = next;
    if (keys.length > 0) await redis.del(...keys);
  } while (cursor !== '0');
}

try {
  const node = await runNode();
  const py = await runPython();
  const row = (name, r) =>
    `${name.padEnd(44)} ${String(Math.round((N / r.ms) * 1000)).padStart(8)} tasks/s   (${(r.ms / 1000).toFixed(2)} s, publish ${Math.round(r.publishMs)} ms)`;
  console.log(`${N} Celery-protocol tasks (bench.noop, JSON, ack-late, no results) from Redis via kombu's transport, ${cpus().length} CPUs`);
  console.log(row(`Node worker (celeriac, concurrency ${values['node-concurrency']})`, node));
  const pyName = values['python-pool'] === 'prefork' ? `prefork -c ${values['python-concurrency']}` : values['python-pool'];
  console.log(row(`Python Celery 5.2 worker (--pool ${pyName})`, py));
} finally {
  await app.close();
  await cleanup();
  redis.disconnect();
}
