import { describe, expect, it } from 'vitest';
import { latencyTasks, newPrefix, PAYLOAD_SIZES, payloadTasks, planRows, roundOrder, warmupSpec, type BenchConfig } from '../src/plan.js';
import { celeriacBrokerUrl } from '../src/driver-celeriac.js';

const config = (over: Partial<BenchConfig> = {}): BenchConfig => ({
  transports: ['memory', 'redis', 'amqp', 'nats'],
  scenarios: ['throughput'],
  tasks: 5000,
  concurrency: 50,
  payloadBytes: undefined,
  serializers: ['json'],
  peers: { bullmq: true, raw: true },
  celeriac: true,
  ratePerSec: 1000,
  amqpQueueType: 'quorum',
  inFlight: 128,
  bulkSize: 500,
  retryBackoffMs: 10,
  stallTimeoutMs: 30_000,
  ...over,
});

const servers = { redis: 'redis://127.0.0.1:6379', amqp: 'amqp://guest:guest@127.0.0.1:5672', nats: 'nats://127.0.0.1:4222' };

describe('planRows', () => {
  it('runs celeriac on every transport, BullMQ on Redis and a raw floor per server, single and bulk', () => {
    const rows = planRows(config(), servers);
    const names = rows.map((r) => `${r.system}/${r.transport}/${r.enqueue}`);
    expect(names).toEqual([
      'celeriac/memory/single',
      'celeriac/redis/single',
      'bullmq/redis/single',
      'raw/redis/single',
      'celeriac/amqp/single',
      'raw/amqp/single',
      'celeriac/nats/single',
      'raw/nats/single',
      'celeriac/memory/bulk',
      'celeriac/redis/bulk',
      'bullmq/redis/bulk',
      'raw/redis/bulk',
      'celeriac/amqp/bulk',
      'raw/amqp/bulk',
      'celeriac/nats/bulk',
      'raw/nats/bulk',
    ]);
    for (const r of rows) {
      expect(r.tasks).toBe(5000);
      expect(r.concurrency).toBe(50);
      expect(r.payloadBytes).toBe(100);
      expect(r.url).toBe(r.transport === 'memory' ? undefined : servers[r.transport as keyof typeof servers]);
    }
    // celeriac rows on a server may keep results in Redis; memory and peer rows never do
    expect(rows.filter((r) => r.redisUrl !== undefined).every((r) => r.system === 'celeriac' && r.transport !== 'memory')).toBe(true);
  });

  it('gives every row its own namespace', () => {
    const rows = planRows(config({ scenarios: ['throughput', 'latency', 'payload', 'retry'] }), servers);
    const prefixes = new Set(rows.map((r) => r.prefix));
    expect(prefixes.size).toBe(rows.length);
    for (const p of prefixes) expect(p).toMatch(/^cbench[a-z0-9]{10}$/);
  });

  it('leaves out servers that did not answer, and peers when asked', () => {
    const rows = planRows(config({ peers: { bullmq: false, raw: false } }), { nats: servers.nats });
    expect(rows.map((r) => `${r.system}/${r.transport}`)).toEqual(['celeriac/memory', 'celeriac/nats', 'celeriac/memory', 'celeriac/nats']);
  });

  it('runs only the peers with celeriac off', () => {
    const rows = planRows(config({ celeriac: false, transports: ['memory', 'redis'] }), servers);
    expect(rows.map((r) => r.system)).toEqual(['bullmq', 'raw', 'bullmq', 'raw']);
  });

  it('runs celeriac once per serializer and the peers once', () => {
    const rows = planRows(config({ transports: ['redis'], serializers: ['json', 'msgpack'] }), servers).filter((r) => r.enqueue === 'single');
    expect(rows.map((r) => `${r.system}/${r.system === 'celeriac' ? r.serializer : '-'}`)).toEqual([
      'celeriac/json',
      'celeriac/msgpack',
      'bullmq/-',
      'raw/-',
    ]);
  });

  it('runs celeriac once with results stored and once without when asked, the peers once', () => {
    const rows = planRows(config({ transports: ['amqp'], results: ['stored', 'none'] }), servers).filter((r) => r.enqueue === 'single');
    expect(rows.map((r) => `${r.system}/${r.results ?? 'stored'}`)).toEqual(['celeriac/stored', 'celeriac/none', 'raw/stored']);
  });

  it('has no raw retry rows (a raw client has no retry path) and scales payload and latency rows', () => {
    const rows = planRows(config({ scenarios: ['latency', 'payload', 'retry'] }), servers);
    expect(rows.filter((r) => r.scenario === 'retry').map((r) => r.system)).not.toContain('raw');
    expect(rows.filter((r) => r.scenario === 'retry' && r.system === 'bullmq')).toHaveLength(1);
    const payloadSizes = [...new Set(rows.filter((r) => r.scenario === 'payload').map((r) => r.payloadBytes))];
    expect(payloadSizes).toEqual([...PAYLOAD_SIZES]);
    const big = rows.find((r) => r.scenario === 'payload' && r.payloadBytes === 512 * 1024);
    expect(big?.tasks).toBe(256);
    expect(rows.find((r) => r.scenario === 'latency')?.tasks).toBe(5000);
  });

  it('uses an explicit payload size for every scenario', () => {
    const rows = planRows(config({ transports: ['memory'], scenarios: ['payload', 'throughput'], payloadBytes: 2048 }), servers);
    expect(rows.map((r) => r.payloadBytes)).toEqual([2048, 2048, 2048]);
  });
});

describe('roundOrder', () => {
  it('reverses every other round, so celeriac and its peer take turns going first, on fresh namespaces', () => {
    const plan = () => planRows(config({ transports: ['amqp'] }), servers);
    const r0 = roundOrder(plan, 0);
    const r1 = roundOrder(plan, 1);
    const r2 = roundOrder(plan, 2);
    const names = (rows: typeof r0) => rows.map((r) => `${r.system}/${r.enqueue}`);
    expect(names(r0)).toEqual(['celeriac/single', 'raw/single', 'celeriac/bulk', 'raw/bulk']);
    expect(names(r1)).toEqual(['raw/bulk', 'celeriac/bulk', 'raw/single', 'celeriac/single']);
    expect(names(r2)).toEqual(names(r0));
    const prefixes = new Set([...r0, ...r1, ...r2].map((r) => r.prefix));
    expect(prefixes.size).toBe(12);
  });
});

describe('warm-up', () => {
  it('gives every row the same warm-up, never more than its own tasks, on a namespace inside its own', () => {
    const rows = planRows(config({ scenarios: ['throughput', 'latency', 'payload'], warmupTasks: 2000 }), servers);
    for (const r of rows) {
      expect(r.warmupTasks).toBe(Math.min(2000, r.tasks));
      const w = warmupSpec(r)!;
      expect(w.tasks).toBe(Math.min(2000, r.tasks));
      expect(w.prefix.startsWith(r.prefix)).toBe(true); // the row's sweep finds it
      expect(w.prefix).not.toBe(r.prefix);
      expect(w.scenario).toBe(r.scenario === 'latency' ? 'throughput' : r.scenario);
      expect([w.system, w.transport, w.enqueue, w.payloadBytes]).toEqual([r.system, r.transport, r.enqueue, r.payloadBytes]);
      expect(w.warmupTasks).toBeUndefined();
    }
  });
  it('has none when the warm-up is 0 or absent', () => {
    for (const over of [{}, { warmupTasks: 0 }]) {
      for (const r of planRows(config(over), servers)) {
        expect(r.warmupTasks).toBeUndefined();
        expect(warmupSpec(r)).toBeUndefined();
      }
    }
  });
});

describe('row sizing', () => {
  it('payloadTasks keeps a row near the byte budget, between 50 and the task count', () => {
    expect(payloadTasks(5000, 100)).toBe(5000);
    expect(payloadTasks(5000, 10 * 1024)).toBe(5000);
    expect(payloadTasks(5000, 512 * 1024)).toBe(256);
    expect(payloadTasks(5000, 64 * 1024 * 1024)).toBe(50);
    expect(payloadTasks(20, 512 * 1024)).toBe(20);
  });

  it('latencyTasks lasts about five seconds at the rate', () => {
    expect(latencyTasks(5000, 1000)).toBe(5000);
    expect(latencyTasks(5000, 200)).toBe(1000);
    expect(latencyTasks(30, 1000)).toBe(30);
  });

  it('newPrefix is lowercase letters and digits (valid as a NATS stream, AMQP queue and Redis key part)', () => {
    for (let i = 0; i < 100; i++) expect(newPrefix()).toMatch(/^cbench[a-z0-9]{10}$/);
  });
});

describe('celeriacBrokerUrl', () => {
  it('is memory:// or the server URL with the row prefix (and the AMQP queue type)', () => {
    const base = { prefix: 'cbenchabc123def4', amqpQueueType: 'quorum' as const };
    expect(celeriacBrokerUrl({ ...base, transport: 'memory' })).toBe('memory://');
    expect(celeriacBrokerUrl({ ...base, transport: 'redis', url: 'redis://127.0.0.1:6379' })).toBe('redis://127.0.0.1:6379?prefix=cbenchabc123def4');
    expect(celeriacBrokerUrl({ ...base, transport: 'amqp', url: 'amqp://guest:guest@127.0.0.1:5672' })).toBe(
      'amqp://guest:guest@127.0.0.1:5672?prefix=cbenchabc123def4&queueType=quorum',
    );
    expect(celeriacBrokerUrl({ ...base, transport: 'nats', url: 'nats://127.0.0.1:4222/?maxAckPending=500' })).toBe(
      'nats://127.0.0.1:4222/?maxAckPending=500&prefix=cbenchabc123def4',
    );
  });
});
