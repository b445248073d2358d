import type { BenchRecord } from './record.js';
import { formatBytes, formatMs, formatRate, formatRatioValue, median, ratio } from './stats.js';

/** `celeriac redis (msgpack)`, `BullMQ`, `raw amqp`. */
export function systemLabel(r: Pick<BenchRecord, 'system' | 'transport' | 'options'>): string {
  if (r.system === 'bullmq') return 'BullMQ redis';
  if (r.system === 'pg-boss' || r.system === 'graphile-worker') return `${r.system} postgres`;
  if (r.system === 'raw') return `raw ${r.transport}`;
  const s = r.options['serializer'];
  const traced = (typeof r.options['tracing'] === 'string' ? ', traced' : '') + (r.options['results'] === 'none' ? ', no results' : '');
  return typeof s === 'string' ? `celeriac ${r.transport} (${s}${traced})` : `celeriac ${r.transport}${traced}`;
}

/** `throughput`, `throughput bulk`, `payload 10 KB`. */
export function scenarioLabel(r: Pick<BenchRecord, 'scenario' | 'mode' | 'payloadBytes'>): string {
  if (r.scenario === 'payload') return `payload ${formatBytes(r.payloadBytes)}`;
  return r.mode === 'bulk' ? `${r.scenario} bulk` : r.scenario;
}

/** `a=1 b=x`, options in insertion order, serializer left out (it is in the system label). */
export function formatOptions(options: Record<string, string | number | boolean>): string {
  return Object.entries(options)
    .filter(([k]) => k !== 'serializer')
    .map(([k, v]) => `${k}=${String(v)}`)
    .join(' ');
}

export const COLUMNS = ['system', 'scenario', 'tasks', 'conc', 'enqueue/s', 'process/s', 'p50 ms', 'p90 ms', 'p99 ms', 'max ms', 'RSS MB', 'options'] as const;
const RIGHT_ALIGNED = new Set<string>(['tasks', 'conc', 'enqueue/s', 'process/s', 'p50 ms', 'p90 ms', 'p99 ms', 'max ms', 'RSS MB']);

/** One table row's cells. A row without figures shows its status and reason instead. */
export function rowCells(r: BenchRecord): string[] {
  const head = [systemLabel(r), scenarioLabel(r), String(r.tasks), String(r.concurrency)];
  if (r.status !== 'ok') {
    return [...head, r.status.toUpperCase(), '', '', '', '', '', r.peakRssMb === null ? '' : r.peakRssMb.toFixed(0), r.message ?? ''];
  }
  return [
    ...head,
    formatRate(r.enqueuePerSec),
    formatRate(r.processPerSec),
    formatMs(r.p50Ms),
    formatMs(r.p90Ms),
    formatMs(r.p99Ms),
    formatMs(r.maxMs),
    r.peakRssMb === null ? '-' : r.peakRssMb.toFixed(0),
    formatOptions(r.options),
  ];
}

/** Column widths that fit the header and every row (the last column is never padded). */
export function columnWidths(rows: readonly (readonly string[])[]): number[] {
  return COLUMNS.map((c, i) => Math.max(c.length, ...rows.map((r) => (r[i] ?? '').length)));
}

/** One line of the table. */
export function formatLine(cells: readonly string[], widths: readonly number[]): string {
  return cells
    .map((c, i) => {
      if (i === cells.length - 1) return c;
      const w = widths[i] ?? c.length;
      return RIGHT_ALIGNED.has(COLUMNS[i] ?? '') ? c.padStart(w) : c.padEnd(w);
    })
    .join('  ')
    .trimEnd();
}

/** The whole table: header, rule, rows. */
export function renderTable(records: readonly BenchRecord[]): string {
  const rows = records.map(rowCells);
  const widths = columnWidths(rows);
  const header = formatLine(COLUMNS, widths);
  const rule = widths.map((w, i) => '-'.repeat(i === widths.length - 1 ? COLUMNS[i]!.length : w)).join('  ');
  return [header, rule, ...rows.map((r) => formatLine(r, widths))].join('\n');
}

/** Widths for the live table, before any row is known. */
export const LIVE_WIDTHS: readonly number[] = [26, 18, 6, 4, 10, 10, 7, 7, 7, 7, 6, 0];

const sameShape = (a: BenchRecord, b: BenchRecord) =>
  a.scenario === b.scenario && a.mode === b.mode && a.payloadBytes === b.payloadBytes && a.status === 'ok' && b.status === 'ok';

/** One celeriac row against one peer, in one round: process/s and enqueue/s, or p50 and p99 for latency. */
interface RatioEntry {
  label: string;
  peer: string;
  latency: boolean;
  first: number | null;
  second: number | null;
}

function ratioEntries(records: readonly BenchRecord[]): RatioEntry[] {
  const out: RatioEntry[] = [];
  for (const c of records) {
    if (c.system !== 'celeriac' || c.status !== 'ok') continue;
    const label = `${systemLabel(c)} · ${scenarioLabel(c)}`;
    const bull = records.find((r) => r.system === 'bullmq' && sameShape(r, c));
    const raw = records.find((r) => r.system === 'raw' && r.transport === c.transport && sameShape(r, c));
    // PostgreSQL rows against the PostgreSQL queues; the others against BullMQ (Redis) and their raw floor.
    const peers: [string, BenchRecord | undefined][] =
      c.transport === 'postgres'
        ? (['pg-boss', 'graphile-worker'] as const).map((sys) => [sys, records.find((r) => r.system === sys && sameShape(r, c))])
        : [
            ['BullMQ', bull],
            [`raw ${c.transport}`, raw],
          ];
    for (const [peer, p] of peers) {
      if (p === undefined) continue;
      const latency = c.scenario === 'latency';
      out.push(
        latency
          ? { label, peer, latency, first: ratio(c.p50Ms, p.p50Ms), second: ratio(c.p99Ms, p.p99Ms) }
          : { label, peer, latency, first: ratio(c.processPerSec, p.processPerSec), second: ratio(c.enqueuePerSec, p.enqueuePerSec) },
      );
    }
  }
  return out;
}

/** `0.85×`, or over several rounds the median and the range: `0.85× [0.80–0.91]`. */
function formatRounds(values: readonly (number | null)[]): string {
  const v = values.filter((x): x is number => x !== null);
  if (values.length <= 1 || v.length === 0) return formatRatioValue(v[0] ?? null);
  return `${formatRatioValue(median(v))} [${formatRatioValue(Math.min(...v)).slice(0, -1)}–${formatRatioValue(Math.max(...v))}]`;
}

/**
 * The ratios the issues ask for, per celeriac row: process/s and enqueue/s against BullMQ and
 * against the raw client of the same server (higher is better), and for latency rows p50/p99
 * against them (lower is better). With `--repeat`, each ratio is taken within a round (the pair ran
 * back to back) and printed as the median of the rounds with their range.
 */
export function renderRatios(records: readonly BenchRecord[]): string[] {
  const rounds = new Map<number, BenchRecord[]>();
  for (const r of records) {
    const k = r.round ?? 1;
    const list = rounds.get(k);
    if (list === undefined) rounds.set(k, [r]);
    else list.push(r);
  }
  // label → peer → the entries of every round, in the order they first appear
  const byLabel = new Map<string, Map<string, RatioEntry[]>>();
  for (const list of rounds.values()) {
    for (const e of ratioEntries(list)) {
      let peers = byLabel.get(e.label);
      if (peers === undefined) byLabel.set(e.label, (peers = new Map()));
      const entries = peers.get(e.peer);
      if (entries === undefined) peers.set(e.peer, [e]);
      else entries.push(e);
    }
  }
  const lines: string[] = [];
  for (const [label, peers] of byLabel) {
    const parts: string[] = [];
    for (const [peer, es] of peers) {
      const first = formatRounds(es.map((e) => e.first));
      const second = formatRounds(es.map((e) => e.second));
      parts.push(es[0]!.latency ? `p50 ${first} / p99 ${second} of ${peer}'s` : `process/s ${first}, enqueue/s ${second} ${peer}`);
    }
    lines.push(`${label}: ${parts.join('; ')}`);
  }
  return lines;
}

/** The rows of one system and scenario across the rounds of a `--repeat` run. */
export function rowKey(r: BenchRecord): string {
  return `${systemLabel(r)}|${scenarioLabel(r)}|${r.transport}|${r.payloadBytes}`;
}

/**
 * One row per system and scenario, in the order they first ran: the medians of its rounds (peak RSS:
 * the highest), or its first failure when a round did not succeed.
 */
export function summarizeRounds(records: readonly BenchRecord[]): BenchRecord[] {
  const groups = new Map<string, BenchRecord[]>();
  for (const r of records) {
    const g = groups.get(rowKey(r));
    if (g === undefined) groups.set(rowKey(r), [r]);
    else g.push(r);
  }
  const out: BenchRecord[] = [];
  for (const g of groups.values()) {
    const { round: _first, ...head } = g.find((r) => r.status !== 'ok') ?? g[0]!;
    if (head.status !== 'ok') {
      out.push({ ...head, rounds: g.length });
      continue;
    }
    const med = (f: (r: BenchRecord) => number | null) => median(g.map(f).filter((v): v is number => v !== null));
    const rss = g.map((r) => r.peakRssMb).filter((v): v is number => v !== null);
    out.push({
      ...head,
      enqueuePerSec: med((r) => r.enqueuePerSec),
      processPerSec: med((r) => r.processPerSec),
      p50Ms: med((r) => r.p50Ms),
      p90Ms: med((r) => r.p90Ms),
      p99Ms: med((r) => r.p99Ms),
      maxMs: med((r) => r.maxMs),
      peakRssMb: rss.length === 0 ? null : Math.max(...rss),
      rounds: g.length,
    });
  }
  return out;
}
