import { randomBytes } from 'node:crypto';
import type { EnqueueMode, RowSpec, Scenario, ServerKind, System, Transport } from './record.js';

/** Options of one run, after parsing and defaults. */
export interface BenchConfig {
  transports: readonly Transport[];
  scenarios: readonly Scenario[];
  tasks: number;
  concurrency: number;
  /** Explicit payload size; otherwise 100 B (and 100 B / 10 KB / 512 KB in the payload scenario). */
  payloadBytes: number | undefined;
  serializers: readonly ('json' | 'msgpack')[];
  /** celeriac rows without an OpenTelemetry SDK ('off'), with a registered SDK that exports nothing ('sdk'), or both. @default ['off'] */
  tracing?: readonly ('off' | 'sdk')[];
  /** celeriac rows with results stored, without ('none'), or both. @default ['stored'] */
  results?: readonly ('stored' | 'none')[];
  /** Baselines: BullMQ (Redis rows), pg-boss and graphile-worker (PostgreSQL rows), raw client floors (Redis, RabbitMQ, NATS). */
  peers: { bullmq: boolean; raw: boolean; pgBoss?: boolean; graphileWorker?: boolean };
  /** Run celeriac's own rows. @default true */
  celeriac: boolean;
  ratePerSec: number;
  amqpQueueType: 'quorum' | 'classic';
  inFlight: number;
  bulkSize: number;
  retryBackoffMs: number;
  stallTimeoutMs: number;
  /** Untimed warm-up tasks each row runs first (never more than its own tasks). @default 0 */
  warmupTasks?: number;
}

/** Payload sizes of the payload scenario. */
export const PAYLOAD_SIZES: readonly number[] = [100, 10 * 1024, 512 * 1024];
/** Default payload of the other scenarios. */
export const DEFAULT_PAYLOAD_BYTES = 100;
/** Bytes one payload row may move at most: big payloads run fewer tasks. */
export const PAYLOAD_BUDGET_BYTES = 128 * 1024 * 1024;
/** A latency row lasts about this long at its rate. */
export const LATENCY_SECONDS = 5;

/**
 * The untimed pass a row runs before its timed one: the same system, transport and payload, on a
 * namespace of its own (the row's prefix plus `w`, so the row's sweep removes it too), as a
 * throughput row (a latency row's pacing would only make it slower). Undefined when there is none.
 */
export function warmupSpec(spec: RowSpec): RowSpec | undefined {
  const tasks = Math.min(spec.warmupTasks ?? 0, spec.tasks);
  if (tasks <= 0) return undefined;
  const { warmupTasks: _none, ...rest } = spec;
  return { ...rest, tasks, prefix: `${spec.prefix}w`, scenario: spec.scenario === 'latency' ? 'throughput' : spec.scenario };
}

/** A random namespace for one row: `cbench` and 10 lowercase letters or digits. */
export function newPrefix(): string {
  const alphabet = 'abcdefghijklmnopqrstuvwxyz0123456789';
  return `cbench${Array.from(randomBytes(10), (b) => alphabet[b % alphabet.length]).join('')}`;
}

/** Tasks of a payload row: fewer for big payloads, never more than `tasks`, at least 50 (or `tasks`). */
export function payloadTasks(tasks: number, payloadBytes: number): number {
  return Math.min(tasks, Math.max(50, Math.floor(PAYLOAD_BUDGET_BYTES / Math.max(1, payloadBytes))));
}

/** Tasks of a latency row: about LATENCY_SECONDS at the rate, never more than `tasks`. */
export function latencyTasks(tasks: number, ratePerSec: number): number {
  return Math.min(tasks, Math.max(1, Math.round(ratePerSec * LATENCY_SECONDS)));
}

interface Variant {
  scenario: Scenario;
  enqueue: EnqueueMode;
  payloadBytes: number;
  tasks: number;
}

function variants(cfg: BenchConfig): Variant[] {
  const out: Variant[] = [];
  const payload = cfg.payloadBytes ?? DEFAULT_PAYLOAD_BYTES;
  for (const scenario of cfg.scenarios) {
    switch (scenario) {
      case 'throughput':
        out.push({ scenario, enqueue: 'single', payloadBytes: payload, tasks: cfg.tasks });
        out.push({ scenario, enqueue: 'bulk', payloadBytes: payload, tasks: cfg.tasks });
        break;
      case 'latency':
        out.push({ scenario, enqueue: 'single', payloadBytes: payload, tasks: latencyTasks(cfg.tasks, cfg.ratePerSec) });
        break;
      case 'payload':
        for (const size of cfg.payloadBytes === undefined ? PAYLOAD_SIZES : [cfg.payloadBytes]) {
          out.push({ scenario, enqueue: 'single', payloadBytes: size, tasks: payloadTasks(cfg.tasks, size) });
        }
        break;
      case 'retry':
        out.push({ scenario, enqueue: 'single', payloadBytes: payload, tasks: cfg.tasks });
        break;
    }
  }
  return out;
}

/**
 * The rows of a run, in order: per scenario variant, celeriac on each transport (once per serializer),
 * then BullMQ (on Redis), pg-boss and graphile-worker (on PostgreSQL) and the raw floor of each other
 * server. Raw floors have no retry row: a raw client
 * has no retry path to price. `servers` holds the URL of each server that answered.
 */
export function planRows(cfg: BenchConfig, servers: Partial<Record<ServerKind, string>>): RowSpec[] {
  const rows: RowSpec[] = [];
  const redisUrl = servers.redis;
  for (const v of variants(cfg)) {
    for (const transport of cfg.transports) {
      const url = transport === 'memory' ? undefined : servers[transport];
      if (transport !== 'memory' && url === undefined) continue;
      const base = (system: System, serializer: 'json' | 'msgpack'): RowSpec => ({
        system,
        transport,
        scenario: v.scenario,
        enqueue: v.enqueue,
        tasks: v.tasks,
        concurrency: cfg.concurrency,
        payloadBytes: v.payloadBytes,
        serializer,
        prefix: newPrefix(),
        ...(url === undefined ? {} : { url }),
        ...(system === 'celeriac' && transport !== 'memory' && transport !== 'postgres' && redisUrl !== undefined ? { redisUrl } : {}),
        ratePerSec: cfg.ratePerSec,
        inFlight: cfg.inFlight,
        bulkSize: cfg.bulkSize,
        amqpQueueType: cfg.amqpQueueType,
        retryBackoffMs: cfg.retryBackoffMs,
        stallTimeoutMs: cfg.stallTimeoutMs,
        ...(cfg.warmupTasks === undefined || cfg.warmupTasks <= 0 ? {} : { warmupTasks: Math.min(cfg.warmupTasks, v.tasks) }),
      });
      if (cfg.celeriac) {
        for (const s of cfg.serializers) {
          for (const r of cfg.results ?? ['stored']) {
            for (const t of cfg.tracing ?? ['off']) {
              const row = base('celeriac', s);
              if (t !== 'off') row.tracing = t;
              if (r !== 'stored') row.results = r;
              rows.push(row);
            }
          }
        }
      }
      const first = cfg.serializers[0] ?? 'json';
      if (transport === 'redis' && cfg.peers.bullmq) rows.push(base('bullmq', first));
      if (transport === 'postgres' && cfg.peers.pgBoss === true) rows.push(base('pg-boss', first));
      if (transport === 'postgres' && cfg.peers.graphileWorker === true) rows.push(base('graphile-worker', first));
      if (transport !== 'memory' && transport !== 'postgres' && cfg.peers.raw && v.scenario !== 'retry') rows.push(base('raw', first));
    }
  }
  return rows;
}

/**
 * The order of round `round` (0-based) of a `--repeat` run: the plan as it is in even rounds, reversed
 * in odd ones, so neither celeriac nor its peer always runs first (a machine that is slowing down or
 * warming up would favour one of them). Each round gets fresh namespaces from `plan()`.
 */
export function roundOrder(plan: () => RowSpec[], round: number): RowSpec[] {
  const rows = plan();
  return round % 2 === 0 ? rows : rows.reverse();
}
