import { mkdir, writeFile } from 'node:fs/promises';
import { loadavg } from 'node:os';
import { dirname, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { resolveBroker } from '@celeriac/core';
import { renderChart } from './chart.js';
import { celeriacBrokerUrl } from './driver-celeriac.js';
import { planRows, roundOrder, type BenchConfig } from './plan.js';
import { SCENARIOS, TRANSPORTS, type BenchRecord, type BenchReport, type RowSpec, type Scenario, type ServerKind, type Transport } from './record.js';
import { rowScriptPath, runRowProcess } from './row-process.js';
import { isAnswering, machineInfo, redact, serverEnv, serverUrl, serverVersion } from './servers.js';
import { sweep } from './sweep.js';
import { LIVE_WIDTHS, formatLine, renderRatios, renderTable, rowCells, summarizeRounds, COLUMNS, scenarioLabel, systemLabel } from './table.js';

/** Where `runBenchCli` writes. Defaults to the process's streams and environment. */
export interface BenchIo {
  stdout: NodeJS.WritableStream & { isTTY?: boolean };
  stderr: NodeJS.WritableStream & { isTTY?: boolean; columns?: number };
  env: NodeJS.ProcessEnv;
}

/**
 * Untimed tasks per row before the timed pass. A row's process starts cold, and a few thousand tasks
 * are compile time more than steady state; every system gets the same warm-up.
 */
export const DEFAULT_WARMUP_TASKS = 2000;

/** A row is killed after this long whatever it does (a stalled row fails much sooner). */
const ROW_TIMEOUT_MS = 5 * 60_000;

function listOf<T extends string>(name: string, allowed: readonly T[]): (value: string) => T[] {
  return (value) => {
    const items = value.split(',').map((s) => s.trim()).filter((s) => s.length > 0);
    if (items.length === 0) throw new InvalidArgumentError(`expected a comma-separated list of ${allowed.join(', ')}`);
    for (const i of items) {
      if (!(allowed as readonly string[]).includes(i)) throw new InvalidArgumentError(`unknown ${name} "${i}" (known: ${allowed.join(', ')})`);
    }
    return [...new Set(items)] as T[];
  };
}

function intArg(min: number): (value: string) => number {
  return (value) => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < min) throw new InvalidArgumentError(`expected an integer >= ${min}`);
    return n;
  };
}

interface ParsedOptions {
  transports?: Transport[];
  scenarios: Scenario[];
  tasks: number;
  concurrency: number;
  payloadBytes?: number;
  serializer: ('json' | 'msgpack')[];
  tracing: ('off' | 'sdk')[];
  results: ('stored' | 'none')[];
  peers: ('bullmq' | 'raw' | 'pg-boss' | 'graphile-worker' | 'none')[];
  celeriac: boolean;
  rate: number;
  warmup: number;
  repeat: number;
  amqpQueueType: 'quorum' | 'classic';
  full?: boolean;
  json?: string;
  chart?: string;
}

function buildProgram(io: BenchIo): Command {
  return new Command('celeriac bench')
    .description(
      'Benchmark celeriac on the memory broker, Redis, RabbitMQ and NATS JetStream against BullMQ and the raw clients, each row in its own process.',
    )
    .option('--transports <list>', 'comma-separated: memory,redis,amqp,nats,postgres (default: memory plus every server that answers)', listOf('transport', TRANSPORTS))
    .addOption(
      new Option('--scenarios <list>', 'comma-separated: throughput,latency,payload,retry')
        .argParser(listOf('scenario', SCENARIOS))
        .default(['throughput'], 'throughput'),
    )
    .option('--tasks <n>', 'tasks per row (payload and latency rows may run fewer)', intArg(1), 5000)
    .option('--concurrency <c>', 'handlers running at once in the one worker', intArg(1), 50)
    .option('--payload-bytes <b>', 'payload size (default 100; the payload scenario runs 100 B, 10 KB and 512 KB)', intArg(0))
    .addOption(
      new Option('--tracing <list>', "celeriac rows without an OpenTelemetry SDK ('off'), with a registered SDK that exports nothing ('sdk'), or off,sdk for the overhead ratio")
        .argParser(listOf('tracing', ['off', 'sdk'] as const))
        .default(['off']),
    )
    .addOption(
      new Option('--results <list>', "celeriac rows storing results ('stored': Redis when it answers), without ('none': ignoreResult, as the raw floors), or stored,none")
        .argParser(listOf('results', ['stored', 'none'] as const))
        .default(['stored'], 'stored'),
    )
    .addOption(
      new Option('--serializer <list>', 'celeriac serializer: json, msgpack, or json,msgpack for both')
        .argParser(listOf('serializer', ['json', 'msgpack'] as const))
        .default(['json'], 'json'),
    )
    .addOption(
      new Option('--peers <list>', 'baselines: bullmq,raw,pg-boss,graphile-worker or none')
        .argParser(listOf('peer', ['bullmq', 'raw', 'pg-boss', 'graphile-worker', 'none'] as const))
        .default(['bullmq', 'raw', 'pg-boss', 'graphile-worker'], 'bullmq,raw,pg-boss,graphile-worker'),
    )
    .option('--no-celeriac', 'run only the peers (BullMQ, pg-boss, graphile-worker and raw floors)')
    .option('--rate <n>', 'latency scenario: tasks per second', intArg(1), 1000)
    .option(
      '--warmup <n>',
      'untimed tasks each row runs first in its own process, on its own namespace (0: measure from a cold start)',
      intArg(0),
      DEFAULT_WARMUP_TASKS,
    )
    .option(
      '--repeat <n>',
      'run every row n times, the order of the rows reversed every other round; the table shows medians, each ratio the median of its rounds with their range',
      intArg(1),
      1,
    )
    .option('--amqp-queue-type <type>', 'RabbitMQ queue type of celeriac and the raw floor: quorum or classic', (v: string) => {
      if (v !== 'quorum' && v !== 'classic') throw new InvalidArgumentError('expected quorum or classic');
      return v;
    }, 'quorum')
    .option('--full', 'run every scenario')
    .option('--json <file>', 'write the report as JSON')
    .option('--chart <file>', 'write an SVG chart comparing the systems')
    .exitOverride()
    .configureOutput({ writeOut: (s) => void io.stdout.write(s), writeErr: (s) => void io.stderr.write(s) });
}

/**
 * The whole `celeriac bench` command: parses `argv` (the options only, as in `process.argv.slice(2)`),
 * runs every row in its own child process, prints a live table to stderr and the final table and
 * ratios to stdout, and writes the JSON report and SVG chart when asked. Never throws; resolves with
 * the exit code: 0 when every row ran, was refused or skipped; 1 when a row failed; the usage error's
 * code on bad options.
 */
export async function runBenchCli(argv: string[], ioIn: Partial<BenchIo> = {}): Promise<number> {
  const io: BenchIo = { stdout: ioIn.stdout ?? process.stdout, stderr: ioIn.stderr ?? process.stderr, env: ioIn.env ?? process.env };
  const program = buildProgram(io);
  let opts: ParsedOptions;
  try {
    program.parse(argv, { from: 'user' });
    opts = program.opts<ParsedOptions>();
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode;
    io.stderr.write(`celeriac bench: ${err instanceof Error ? err.message : String(err)}\n`);
    return 2;
  }
  try {
    return await run(opts, argv, io);
  } catch (err) {
    io.stderr.write(`celeriac bench failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    return 1;
  }
}

async function run(opts: ParsedOptions, argv: string[], io: BenchIo): Promise<number> {
  const startedAt = new Date();
  const t0 = performance.now();
  const loadAtStart = loadavg()[0] ?? 0;
  const err = (line: string) => void io.stderr.write(`${line}\n`);
  const cfg: BenchConfig = {
    transports: [],
    scenarios: opts.full === true ? SCENARIOS : opts.scenarios,
    tasks: opts.tasks,
    concurrency: opts.concurrency,
    payloadBytes: opts.payloadBytes,
    serializers: opts.serializer,
    tracing: opts.tracing,
    results: opts.results,
    peers: {
      bullmq: opts.peers.includes('bullmq'),
      raw: opts.peers.includes('raw'),
      pgBoss: opts.peers.includes('pg-boss'),
      graphileWorker: opts.peers.includes('graphile-worker'),
    },
    celeriac: opts.celeriac,
    ratePerSec: opts.rate,
    amqpQueueType: opts.amqpQueueType,
    inFlight: 128,
    bulkSize: 500,
    retryBackoffMs: 10,
    stallTimeoutMs: 30_000,
    warmupTasks: opts.warmup,
  };

  // Which servers answer. Redis is also asked for when a celeriac row may store results there.
  const wanted: Transport[] = opts.transports ?? [...TRANSPORTS];
  const kinds = new Set<ServerKind>(wanted.filter((t): t is ServerKind => t !== 'memory'));
  // (PostgreSQL rows store results in PostgreSQL.)
  if ([...kinds].some((k) => k !== 'postgres')) kinds.add('redis');
  const servers: Partial<Record<ServerKind, string>> = {};
  const versions: Partial<Record<ServerKind, string>> = {};
  await Promise.all(
    [...kinds].map(async (k) => {
      const url = serverUrl(k, io.env);
      if (await isAnswering(k, 1000, url)) {
        servers[k] = url;
        const v = await serverVersion(k, url);
        if (v !== undefined) versions[k] = v;
      } else if (wanted.includes(k)) {
        err(`${k}: not answering at ${redact(url)}; its rows are skipped (set ${serverEnv(k)} or start the server)`);
      }
    }),
  );
  cfg.transports = wanted.filter((t) => t === 'memory' || servers[t] !== undefined);

  // A celeriac transport whose package does not load is skipped with one line, not one per row.
  const skipped: { system: 'celeriac'; transport: Transport; reason: string }[] = [];
  for (const t of cfg.transports) {
    if (t === 'memory' || !cfg.celeriac) continue;
    try {
      const b = await resolveBroker(celeriacBrokerUrl({ transport: t, url: servers[t]!, prefix: 'cbenchpreflight', amqpQueueType: cfg.amqpQueueType }));
      await b.close().catch(() => undefined);
    } catch (e) {
      const reason = e instanceof Error ? e.message : String(e);
      skipped.push({ system: 'celeriac', transport: t, reason });
      err(`celeriac ${t}: skipped (${reason})`);
    }
  }
  const plan = () => planRows(cfg, servers).filter((r) => !(r.system === 'celeriac' && skipped.some((s) => s.transport === r.transport)));
  const rows: { spec: RowSpec; round: number }[] = [];
  for (let k = 0; k < opts.repeat; k++) for (const spec of roundOrder(plan, k)) rows.push({ spec, round: k + 1 });
  if (rows.length === 0) {
    err('nothing to run');
    return 1;
  }

  const script = rowScriptPath();
  const tty = io.stderr.isTTY === true;
  err(
    `celeriac bench: ${rows.length} rows${opts.repeat > 1 ? ` (${opts.repeat} rounds)` : ''} · scenarios ${cfg.scenarios.join(', ')} · ${cfg.tasks} tasks · concurrency ${cfg.concurrency} · transports ${cfg.transports.join(', ')} · ${warmupText(opts.warmup)}`,
  );
  err(formatLine(COLUMNS, LIVE_WIDTHS));
  const records: BenchRecord[] = [];
  for (const [i, { spec, round }] of rows.entries()) {
    const title = `[${i + 1}/${rows.length}] ${systemLabel({ system: spec.system, transport: spec.transport, options: spec.system === 'celeriac' ? { serializer: spec.serializer } : {} })} · ${scenarioLabel({ scenario: spec.scenario, mode: spec.enqueue, payloadBytes: spec.payloadBytes })}`;
    let lastDraw = 0;
    const rowStart = performance.now();
    const record = await runRowProcess(spec, {
      script,
      timeoutMs: ROW_TIMEOUT_MS,
      onProgress: (phase, done, total) => {
        if (!tty) return;
        const now = performance.now();
        if (now - lastDraw < 80 && done < total) return;
        lastDraw = now;
        const columns = io.stderr.columns !== undefined && io.stderr.columns >= 40 ? io.stderr.columns : 100;
        io.stderr.write(`\r\x1b[2K${progressLine(title, phase, done, total, columns)}`);
      },
    });
    if (tty) io.stderr.write('\r\x1b[2K');
    record.wallMs = Math.round(performance.now() - rowStart);
    const version = spec.transport === 'memory' ? undefined : versions[spec.transport];
    if (version !== undefined) record.serverVersion = version;
    if (opts.repeat > 1) record.round = round;
    records.push(record);
    const sweepStart = performance.now();
    const notes = await sweepRow(spec, record);
    const sweepMs = performance.now() - sweepStart;
    err(`${formatLine(rowCells(record), LIVE_WIDTHS)}  (${(record.wallMs / 1000).toFixed(1)} s${sweepMs > 500 ? `, cleanup ${(sweepMs / 1000).toFixed(1)} s` : ''}${opts.repeat > 1 ? `, round ${round}` : ''})`);
    for (const note of notes) err(`  ${note}`);
  }

  const report: BenchReport = {
    startedAt: startedAt.toISOString(),
    durationMs: Math.round(performance.now() - t0),
    machine: { ...machineInfo(), loadAverage: { start: round2(loadAtStart), end: round2(loadavg()[0] ?? 0) } },
    node: process.versions.node,
    servers: versions,
    argv,
    warmupTasks: opts.warmup,
    rows: records,
    ...(opts.repeat > 1 ? { repeat: opts.repeat, summary: summarizeRounds(records) } : {}),
    ...(skipped.length === 0 ? {} : { skipped }),
  };
  const out = (line = '') => void io.stdout.write(`${line}\n`);
  out();
  out(`celeriac bench · ${report.machine.cpuModel} × ${report.machine.cores}, ${Math.round(report.machine.memoryMb / 1024)} GB · Node ${report.node}${Object.values(versions).length === 0 ? '' : ` · ${Object.values(versions).join(', ')}`}`);
  const load = report.machine.loadAverage!;
  out(`load average ${load.start} at the start, ${load.end} at the end (${report.machine.cores} cores)${Math.max(load.start, load.end) > report.machine.cores * 0.75 ? ': the machine was busy with other work, so every figure is low and noisy' : ''}`);
  out(`${warmupText(opts.warmup)}, the same for every system`);
  if (opts.repeat > 1) {
    out(`each row ran ${opts.repeat} times, every other round in reverse order: the table shows each row's medians (peak RSS: the highest)`);
  }
  out();
  out(renderTable(report.summary ?? records));
  const ratios = renderRatios(records);
  if (ratios.length > 0) {
    out();
    out(
      opts.repeat > 1
        ? `Ratios (each taken within a round: same server, payload and concurrency; the median of ${opts.repeat} rounds [lowest–highest]):`
        : 'Ratios (same run, same server, payload and concurrency):',
    );
    for (const l of ratios) out(`  ${l}`);
  }
  for (const s of skipped) out(`celeriac ${s.transport}: skipped (${s.reason})`);
  if (opts.json !== undefined) {
    const file = resolve(opts.json);
    await mkdir(dirname(file), { recursive: true });
    await writeFile(file, `${JSON.stringify(report, null, 2)}\n`);
    out(`JSON report: ${file}`);
  }
  if (opts.chart !== undefined) {
    const file = resolve(opts.chart);
    await mkdir(dirname(file), { recursive: true });
    await writeFile(file, renderChart(report));
    out(`chart: ${file}`);
  }
  out(`${records.length} rows in ${(report.durationMs / 1000).toFixed(1)} s`);
  return records.some((r) => r.status === 'failed') ? 1 : 0;
}

function warmupText(tasks: number): string {
  return tasks > 0 ? `each row warmed up with ${tasks.toLocaleString('en-US')} untimed tasks first (at most its own count)` : 'cold starts (no warm-up)';
}

function round2(n: number): number {
  return Math.round(n * 100) / 100;
}

/** `[3/16] celeriac memory (json) · throughput  drain  [#######.......]  2,500/5,000`, cut to `columns`. */
export function progressLine(title: string, phase: string, done: number, total: number, columns: number): string {
  const width = 24;
  const frac = total <= 0 ? 0 : Math.min(1, done / total);
  const filled = Math.round(frac * width);
  const bar = `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}]`;
  const line = `${title}  ${phase.padEnd(7)} ${bar} ${done.toLocaleString('en-US')}/${total.toLocaleString('en-US')}`;
  return line.length > columns - 1 ? line.slice(0, Math.max(0, columns - 1)) : line;
}

/** Sweep what the row may have left: its own server, and Redis for celeriac's result backend. */
async function sweepRow(spec: RowSpec, record: BenchRecord): Promise<string[]> {
  const notes: string[] = [];
  const targets: [ServerKind, string][] = [];
  if (spec.transport !== 'memory' && spec.url !== undefined) {
    // Listing RabbitMQ queues costs a rabbitmqctl run; a raw row that finished deleted its own queue.
    if (!(spec.transport === 'amqp' && spec.system === 'raw' && record.status === 'ok')) targets.push([spec.transport, spec.url]);
  }
  if (spec.system === 'celeriac' && spec.redisUrl !== undefined && spec.transport !== 'redis' && spec.transport !== 'postgres') {
    targets.push(['redis', spec.redisUrl]);
  }
  for (const [kind, url] of targets) {
    const r = await sweep(kind, url, spec.prefix);
    if (r.note !== undefined) notes.push(r.note);
    else if (r.removed > 0 && spec.system !== 'celeriac') notes.push(`removed ${r.removed} leftover ${kind} object(s) of ${spec.prefix}`);
  }
  return notes;
}
