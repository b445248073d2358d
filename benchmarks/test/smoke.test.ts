import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BenchReport } from '../src/record.js';
import { buildBenchOnce } from './build-once.js';
import { runBenchCli } from '../src/run-bench-cli.js';

beforeAll(buildBenchOnce, 150_000);

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'celeriac-bench-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

function capture(): { io: { stdout: PassThrough; stderr: PassThrough }; out: () => string; err: () => string } {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let o = '';
  let e = '';
  stdout.on('data', (c: Buffer) => (o += c.toString()));
  stderr.on('data', (c: Buffer) => (e += c.toString()));
  return { io: { stdout, stderr }, out: () => o, err: () => e };
}

const RECORD_KEYS = [
  'system',
  'transport',
  'scenario',
  'tasks',
  'concurrency',
  'payloadBytes',
  'options',
  'enqueuePerSec',
  'processPerSec',
  'p50Ms',
  'p90Ms',
  'p99Ms',
  'maxMs',
  'peakRssMb',
];

describe('celeriac bench on the memory broker (smoke)', () => {
  it('runs every scenario with both serializers and writes the JSON report and the chart', async () => {
    const json = join(dir, 'report.json');
    const chart = join(dir, 'chart.svg');
    const c = capture();
    const code = await runBenchCli(
      ['--transports', 'memory', '--full', '--tasks', '40', '--concurrency', '4', '--rate', '400', '--serializer', 'json,msgpack', '--json', json, '--chart', chart],
      { ...c.io, env: {} },
    );
    expect(c.err()).not.toContain('failed');
    expect(code).toBe(0);

    const report = JSON.parse(await readFile(json, 'utf8')) as BenchReport;
    expect(report.machine.cores).toBeGreaterThan(0);
    expect(typeof report.machine.cpuModel).toBe('string');
    expect(report.machine.memoryMb).toBeGreaterThan(0);
    expect(report.node).toBe(process.versions.node);
    // throughput single + bulk, latency, payload × 3, retry; each with json and msgpack
    expect(report.rows).toHaveLength(7 * 2);
    for (const r of report.rows) {
      for (const k of RECORD_KEYS) expect(r, `record field ${k}`).toHaveProperty(k);
      expect(r).toMatchObject({ system: 'celeriac', transport: 'memory', concurrency: 4, status: 'ok' });
      expect(r.options).toMatchObject({ acks: 'late', results: 'memory' });
      expect(['json', 'msgpack']).toContain(r.options['serializer']);
      expect(r.processPerSec).toBeGreaterThan(0);
      expect(r.enqueuePerSec).toBeGreaterThan(0);
      expect(r.peakRssMb).toBeGreaterThan(0);
      expect(r.namespace).toMatch(/^cbench[a-z0-9]{10}$/);
      if (r.scenario === 'latency') {
        expect(r.p50Ms).toBeGreaterThanOrEqual(0);
        expect(r.p99Ms!).toBeGreaterThanOrEqual(r.p50Ms!);
        expect(r.maxMs!).toBeGreaterThanOrEqual(r.p99Ms!);
      } else {
        expect(r.p50Ms).toBeNull();
      }
    }
    expect(report.rows.filter((r) => r.scenario === 'payload').map((r) => r.payloadBytes).sort((a, b) => a - b)).toEqual([
      100, 100, 10240, 10240, 524288, 524288,
    ]);
    expect(report.rows.filter((r) => r.scenario === 'retry').every((r) => r.options['maxRetries'] === 1)).toBe(true);

    expect(c.out()).toMatch(/system\s+scenario\s+tasks/);
    expect(c.out()).toContain('celeriac memory (msgpack)');
    const svg = await readFile(chart, 'utf8');
    expect(svg).toMatch(/^<svg xmlns="http:\/\/www\.w3\.org\/2000\/svg"/);
    expect(svg).toContain('celeriac memory (json)');
  }, 120_000);

  it('prints a refusal row, not a crash, for a payload over the broker limit', async () => {
    const json = join(dir, 'refused.json');
    const c = capture();
    const code = await runBenchCli(['--transports', 'memory', '--scenarios', 'payload', '--payload-bytes', String(17 * 1024 * 1024), '--tasks', '2', '--json', json], {
      ...c.io,
      env: {},
    });
    expect(code).toBe(0);
    const report = JSON.parse(await readFile(json, 'utf8')) as BenchReport;
    expect(report.rows).toHaveLength(1);
    expect(report.rows[0]).toMatchObject({ status: 'refused', processPerSec: null });
    expect(report.rows[0]!.message).toMatch(/over this broker's limit/);
    expect(c.out()).toContain('REFUSED');
  }, 60_000);

  it('repeats every row with --repeat and reports each round and the medians', async () => {
    const json = join(dir, 'repeat.json');
    const c = capture();
    const code = await runBenchCli(['--transports', 'memory', '--tasks', '300', '--warmup', '0', '--repeat', '2', '--json', json], { ...c.io, env: {} });
    expect(code).toBe(0);
    const report = JSON.parse(await readFile(json, 'utf8')) as BenchReport;
    expect(report.repeat).toBe(2);
    // Round 2 runs the rows in reverse order.
    expect(report.rows.map((r) => `${r.mode}/${r.round}`)).toEqual(['single/1', 'bulk/1', 'bulk/2', 'single/2']);
    expect(report.summary!.map((r) => `${r.mode}/${r.rounds}`)).toEqual(['single/2', 'bulk/2']);
    for (const r of report.summary!) {
      const samples = report.rows.filter((s) => s.mode === r.mode).map((s) => s.processPerSec!);
      expect(r.processPerSec).toBeCloseTo((samples[0]! + samples[1]!) / 2, 6);
    }
    expect(c.out()).toContain('each row ran 2 times');
  }, 60_000);

  it('answers --help with 0 and a bad option with a usage error', async () => {
    const help = capture();
    expect(await runBenchCli(['--help'], { ...help.io, env: {} })).toBe(0);
    expect(help.out()).toContain('--transports <list>');
    const bad = capture();
    expect(await runBenchCli(['--transports', 'kafka'], { ...bad.io, env: {} })).not.toBe(0);
    expect(bad.err()).toContain('unknown transport "kafka"');
  });
});
