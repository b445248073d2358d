import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect as natsConnect } from '@nats-io/transport-node';
import { connect as amqpConnect } from 'amqplib';
import { Redis } from 'ioredis';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { serverUrl } from '../src/servers.js';
import { requireServer } from './require-server.js';
import type { BenchRecord, BenchReport } from '../src/record.js';
import { runBenchCli } from '../src/run-bench-cli.js';
import { buildBenchOnce } from './build-once.js';
import { natsConnectOptions } from '../src/driver-raw-nats.js';

const redisOk = await requireServer('redis');
const amqpOk = await requireServer('amqp');
const natsOk = await requireServer('nats');
const postgresOk = await requireServer('postgres');

beforeAll(buildBenchOnce, 150_000);

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'celeriac-bench-int-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function bench(args: string[]): Promise<{ code: number; report: BenchReport; out: string; err: string }> {
  const json = join(dir, `${Math.random().toString(36).slice(2)}.json`);
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let out = '';
  let err = '';
  stdout.on('data', (c: Buffer) => (out += c.toString()));
  stderr.on('data', (c: Buffer) => (err += c.toString()));
  const code = await runBenchCli([...args, '--json', json], { stdout, stderr, env: process.env });
  const report = JSON.parse(await readFile(json, 'utf8')) as BenchReport;
  return { code, report, out, err };
}

async function redisKeys(namespaces: readonly string[]): Promise<string[]> {
  const r = new Redis(serverUrl('redis'), { maxRetriesPerRequest: 1 });
  try {
    const found: string[] = [];
    for (const ns of namespaces) found.push(...(await r.keys(`*${ns}*`)));
    return found;
  } finally {
    r.disconnect();
  }
}

async function natsStreams(namespaces: readonly string[]): Promise<string[]> {
  const nc = await natsConnect(natsConnectOptions(serverUrl('nats')));
  try {
    const jsm = await jetstreamManager(nc);
    const found: string[] = [];
    for await (const s of jsm.streams.list()) {
      if (namespaces.some((ns) => s.config.name.toLowerCase().includes(ns))) found.push(s.config.name);
    }
    return found;
  } finally {
    await nc.close();
  }
}

function expectMeasured(r: BenchRecord): void {
  expect(r.status, `${r.system} ${r.transport} ${r.scenario}: ${r.message ?? ''}`).toBe('ok');
  expect(r.enqueuePerSec).toBeGreaterThan(0);
  expect(r.processPerSec).toBeGreaterThan(0);
  expect(r.peakRssMb).toBeGreaterThan(0);
}

describe.skipIf(!redisOk)('bench baselines on Redis', () => {
  it('runs BullMQ (throughput, bulk, latency, retry) and the raw LMOVE floor, and leaves no key behind', async () => {
    const { code, report } = await bench([
      '--transports', 'redis', '--no-celeriac', '--scenarios', 'throughput,latency,retry', '--tasks', '300', '--concurrency', '20', '--rate', '300',
    ]);
    expect(code).toBe(0);
    expect(report.rows.map((r) => `${r.system}/${r.scenario}/${r.mode}`)).toEqual([
      'bullmq/throughput/single',
      'raw/throughput/single',
      'bullmq/throughput/bulk',
      'raw/throughput/bulk',
      'bullmq/latency/single',
      'raw/latency/single',
      'bullmq/retry/single',
    ]);
    report.rows.forEach(expectMeasured);
    expect(report.servers.redis).toMatch(/^Redis \d/);
    expect(await redisKeys(report.rows.map((r) => r.namespace))).toEqual([]);
  }, 90_000);
});

describe.skipIf(!amqpOk)('bench baselines on RabbitMQ', () => {
  it('runs the raw amqplib floor on a quorum queue and deletes it', async () => {
    const { code, report } = await bench(['--transports', 'amqp', '--no-celeriac', '--tasks', '300', '--concurrency', '20']);
    expect(code).toBe(0);
    expect(report.rows.map((r) => `${r.system}/${r.mode}`)).toEqual(['raw/single', 'raw/bulk']);
    report.rows.forEach(expectMeasured);
    expect(report.rows[0]!.options).toMatchObject({ queueType: 'quorum', confirms: true });
    expect(report.servers.amqp).toMatch(/^RabbitMQ \d/);
    // the floor's queue is `<namespace>.q`: checking it must fail with 404 NOT_FOUND
    const m = await amqpConnect(serverUrl('amqp'));
    try {
      for (const r of report.rows) {
        const ch = await m.createChannel();
        ch.on('error', () => undefined);
        await expect(ch.checkQueue(`${r.namespace}.q`)).rejects.toThrow(/404/);
      }
    } finally {
      await m.close();
    }
  }, 90_000);
});

describe.skipIf(!natsOk)('bench baselines on NATS JetStream', () => {
  it('runs the raw JetStream floor, latency included, and deletes its streams', async () => {
    const { code, report } = await bench(['--transports', 'nats', '--no-celeriac', '--scenarios', 'throughput,latency', '--tasks', '300', '--rate', '300']);
    expect(code).toBe(0);
    expect(report.rows.map((r) => `${r.system}/${r.scenario}/${r.mode}`)).toEqual(['raw/throughput/single', 'raw/throughput/bulk', 'raw/latency/single']);
    report.rows.forEach(expectMeasured);
    const latency = report.rows[2]!;
    expect(latency.p50Ms).toBeGreaterThanOrEqual(0);
    expect(latency.maxMs!).toBeGreaterThanOrEqual(latency.p99Ms!);
    expect(await natsStreams(report.rows.map((r) => r.namespace))).toEqual([]);
  }, 90_000);
});

describe.skipIf(!postgresOk)('bench rows on PostgreSQL', () => {
  it('runs celeriac (results in PostgreSQL), pg-boss and graphile-worker with their settings printed, ratios against both, and drops their schemas', async () => {
    const { code, report, out } = await bench(['--transports', 'postgres', '--tasks', '200', '--concurrency', '20', '--warmup', '0']);
    expect(code).toBe(0);
    expect(report.rows.map((r) => `${r.system}/${r.mode}`)).toEqual([
      'celeriac/single',
      'pg-boss/single',
      'graphile-worker/single',
      'celeriac/bulk',
      'pg-boss/bulk',
      'graphile-worker/bulk',
    ]);
    report.rows.forEach(expectMeasured);
    expect(report.rows[0]!.options).toMatchObject({ results: 'postgres' });
    expect(report.rows[1]!.options).toMatchObject({ pollingIntervalSeconds: 0.5, batchSize: 20 });
    expect(report.rows[2]!.options).toMatchObject({ concurrentJobs: 20, maxPoolSize: 22, 'localQueue.size': 500, completeJobBatchDelay: 0 });
    expect(report.servers.postgres).toMatch(/^PostgreSQL \d/);
    expect(out).toMatch(/celeriac postgres \(json\) · throughput: process\/s [\d.]+×, enqueue\/s [\d.]+× pg-boss; process\/s [\d.]+×, enqueue\/s [\d.]+× graphile-worker/);
    const c = new pg.Client(serverUrl('postgres'));
    await c.connect();
    try {
      const { rows } = await c.query<{ n: number }>(
        'SELECT count(*)::int AS n FROM pg_namespace WHERE nspname = ANY($1::text[]) OR nspname = ANY($2::text[])',
        [report.rows.map((r) => r.namespace), report.rows.map((r) => `${r.namespace}w`)],
      );
      expect(rows[0]!.n).toBe(0);
    } finally {
      await c.end();
    }
  }, 120_000);
});

describe.skipIf(!redisOk && !amqpOk && !natsOk)('celeriac rows on the servers', () => {
  it('measures each transport whose package loads after a warm-up it cleans up, and skips the others with one line each', async () => {
    const transports = [redisOk ? 'redis' : '', amqpOk ? 'amqp' : '', natsOk ? 'nats' : ''].filter((t) => t !== '');
    const { report, out } = await bench(['--transports', transports.join(','), '--peers', 'none', '--tasks', '200', '--concurrency', '20', '--warmup', '100']);
    expect(report.warmupTasks).toBe(100);
    expect(out).toContain('each row warmed up with 100 untimed tasks first');
    const skipped = new Set((report.skipped ?? []).map((s) => s.transport));
    for (const s of report.skipped ?? []) expect(out).toContain(`celeriac ${s.transport}: skipped`);
    for (const t of transports) {
      const rows = report.rows.filter((r) => r.transport === t);
      if (skipped.has(t as BenchRecord['transport'])) expect(rows).toEqual([]);
      else {
        expect(rows.map((r) => r.mode)).toEqual(['single', 'bulk']);
        rows.forEach(expectMeasured);
      }
    }
    if (redisOk) expect(await redisKeys(report.rows.map((r) => r.namespace))).toEqual([]);
    if (natsOk) expect(await natsStreams(report.rows.map((r) => r.namespace))).toEqual([]);
  }, 90_000);
});
