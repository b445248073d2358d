/** What is being measured: celeriac itself, a peer library (BullMQ on Redis; pg-boss and graphile-worker on PostgreSQL), or a raw client floor. */
export type System = 'celeriac' | 'bullmq' | 'pg-boss' | 'graphile-worker' | 'raw';

/** Where tasks travel. `memory` is celeriac's in-process broker. */
export type Transport = 'memory' | 'redis' | 'amqp' | 'nats' | 'postgres';

/** The servers a transport talks to (memory has none). */
export type ServerKind = Exclude<Transport, 'memory'>;

export const SCENARIOS = ['throughput', 'latency', 'payload', 'retry'] as const;
export type Scenario = (typeof SCENARIOS)[number];

export const TRANSPORTS = ['memory', 'redis', 'amqp', 'nats', 'postgres'] as const;

/** How tasks are enqueued in a throughput-style row. */
export type EnqueueMode = 'single' | 'bulk';

/** Everything a child process needs to run one row. Plain data: it crosses the IPC channel. */
export interface RowSpec {
  system: System;
  transport: Transport;
  scenario: Scenario;
  enqueue: EnqueueMode;
  tasks: number;
  concurrency: number;
  payloadBytes: number;
  /** celeriac only. */
  serializer: 'json' | 'msgpack';
  /** 'sdk': an OpenTelemetry tracer provider is registered in the row's process (spans made, none exported). */
  tracing?: 'off' | 'sdk';
  /** 'none': the task has `ignoreResult` (no result backend write), like a raw floor. @default 'stored' */
  results?: 'stored' | 'none';
  /** Namespace of every queue, key and stream the row creates: lowercase letters and digits. */
  prefix: string;
  /** Server URL (absent for memory). */
  url?: string;
  /** Redis URL for celeriac's result backend on non-memory brokers (when @celeriac/result-redis loads). */
  redisUrl?: string;
  /** Latency scenario: tasks per second. */
  ratePerSec: number;
  /** Single enqueue: publishes in flight at once. */
  inFlight: number;
  /** Bulk enqueue: tasks per call. */
  bulkSize: number;
  /** RabbitMQ queue type of AMQP rows (celeriac's `queueType` and the raw floor's queue). */
  amqpQueueType: 'quorum' | 'classic';
  /** Retry scenario: the backoff before the one retry. */
  retryBackoffMs: number;
  /** The row fails when no task completes for this long. */
  stallTimeoutMs: number;
  /**
   * Tasks of an untimed warm-up pass the row's process runs first, on its own namespace and with the
   * same system, so the timed pass measures compiled code rather than the JIT compiling it. 0: none.
   */
  warmupTasks?: number;
}

/** How a row ended. `refused` is a documented refusal (payload over the broker's limit). */
export type RowStatus = 'ok' | 'refused' | 'skipped' | 'failed';

/** One row of the JSON report. Rates are per second; latencies are in milliseconds. */
export interface BenchRecord {
  system: System;
  transport: Transport;
  scenario: Scenario;
  /** How tasks were enqueued (latency rows: single). */
  mode: EnqueueMode;
  tasks: number;
  concurrency: number;
  payloadBytes: number;
  options: Record<string, string | number | boolean>;
  enqueuePerSec: number | null;
  processPerSec: number | null;
  p50Ms: number | null;
  p90Ms: number | null;
  p99Ms: number | null;
  maxMs: number | null;
  peakRssMb: number | null;
  status: RowStatus;
  /** Why a row was refused, skipped or failed. */
  message?: string;
  /** The unique prefix of every queue, key and stream the row created (all removed afterwards). */
  namespace: string;
  /** Wall time of the row's process, start to exit, setup and cleanup included. */
  wallMs?: number;
  /** Version of the server the row ran against (absent for memory). */
  serverVersion?: string;
  /** With `--repeat`: the round this sample belongs to (1-based). */
  round?: number;
  /** In a summary row: how many rounds its medians are of. */
  rounds?: number;
}

export interface MachineInfo {
  cpuModel: string;
  cores: number;
  memoryMb: number;
  os: string;
  /** 1-minute load average when the run started and when it ended: other work on the machine skews every figure. */
  loadAverage?: { start: number; end: number };
}

/** The JSON file written by `--json`. */
export interface BenchReport {
  startedAt: string;
  durationMs: number;
  machine: MachineInfo;
  node: string;
  servers: Partial<Record<ServerKind, string>>;
  argv: string[];
  /** Untimed warm-up tasks each row ran before its timed pass (0: cold starts). */
  warmupTasks: number;
  /** Every row as it ran; with `--repeat`, one sample per round (each with its `round`). */
  rows: BenchRecord[];
  /** Rounds each row ran (`--repeat`). @default 1 */
  repeat?: number;
  /** With `--repeat` above 1: one row per system and scenario, with the medians of its rounds. */
  summary?: BenchRecord[];
  /** celeriac transports whose package did not load: one entry each instead of one row per scenario. */
  skipped?: { system: System; transport: Transport; reason: string }[];
}

/** Messages a row's child process sends to the parent. */
export type ChildMessage =
  | { type: 'progress'; phase: string; done: number; total: number }
  | { type: 'result'; record: BenchRecord };

/** The message the parent sends to start a row. */
export interface RunMessage {
  type: 'run';
  spec: RowSpec;
}
