import type { BenchRecord } from './record.js';
import { formatBytes, formatMs, formatRate, formatRatio } from './stats.js';

/** `celeriac redis (msgpack)`, `BullMQ`, `raw amqp`. */
export function systemLabel(r: Pick<BenchRecord, 'system' | 'transport' | 'options'>): string {
  if (r.system === 'bullmq') return 'BullMQ redis';
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

/**
 * The ratios the issues ask for, per celeriac row: process/s and enqueue/s against BullMQ and
 * against the raw client of the same server (higher is better), and for latency rows p50/p99
 * against them (lower is better).
 */
export function renderRatios(records: readonly BenchRecord[]): string[] {
  const lines: string[] = [];
  for (const c of records) {
    if (c.system !== 'celeriac' || c.status !== 'ok') continue;
    const bull = records.find((r) => r.system === 'bullmq' && sameShape(r, c));
    const raw = records.find((r) => r.system === 'raw' && r.transport === c.transport && sameShape(r, c));
    if (bull === undefined && raw === undefined) continue;
    const parts: string[] = [];
    const versus = (name: string, peer: BenchRecord | undefined) => {
      if (peer === undefined) return;
      if (c.scenario === 'latency') {
        parts.push(`p50 ${formatRatio(c.p50Ms, peer.p50Ms)} / p99 ${formatRatio(c.p99Ms, peer.p99Ms)} of ${name}'s`);
      } else {
        parts.push(
          `process/s ${formatRatio(c.processPerSec, peer.processPerSec)}, enqueue/s ${formatRatio(c.enqueuePerSec, peer.enqueuePerSec)} ${name}`,
        );
      }
    };
    versus('BullMQ', bull);
    versus(`raw ${c.transport}`, raw);
    lines.push(`${systemLabel(c)} · ${scenarioLabel(c)}: ${parts.join('; ')}`);
  }
  return lines;
}
