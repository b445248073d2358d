import { describe, expect, it } from 'vitest';
import { chartPanels, escapeXml, renderChart } from '../src/chart.js';
import type { BenchRecord, BenchReport } from '../src/record.js';
import { renderRatios, renderTable, rowCells, summarizeRounds } from '../src/table.js';

const rec = (over: Partial<BenchRecord>): BenchRecord => ({
  system: 'celeriac',
  transport: 'redis',
  scenario: 'throughput',
  mode: 'single',
  tasks: 5000,
  concurrency: 50,
  payloadBytes: 100,
  options: { serializer: 'json' },
  enqueuePerSec: 20_000,
  processPerSec: 26_000,
  p50Ms: null,
  p90Ms: null,
  p99Ms: null,
  maxMs: null,
  peakRssMb: 120,
  status: 'ok',
  namespace: 'cbenchaaaaaaaaaa',
  ...over,
});

const records: BenchRecord[] = [
  rec({}),
  rec({ system: 'bullmq', options: {}, enqueuePerSec: 25_000, processPerSec: 13_000 }),
  rec({ system: 'raw', options: {}, enqueuePerSec: 40_000, processPerSec: 30_000 }),
  rec({ transport: 'memory', enqueuePerSec: 100_000, processPerSec: 40_000 }),
  rec({ scenario: 'latency', p50Ms: 2, p99Ms: 9, enqueuePerSec: 1000, processPerSec: 1000 }),
  rec({ system: 'bullmq', scenario: 'latency', options: {}, p50Ms: 4, p99Ms: 30 }),
  rec({ transport: 'amqp', status: 'failed', message: 'connection refused', enqueuePerSec: null, processPerSec: null }),
];

describe('renderRatios', () => {
  it('compares each celeriac row with BullMQ and the raw floor of the same shape', () => {
    const lines = renderRatios(records);
    expect(lines).toContain('celeriac redis (json) · throughput: process/s 2.00×, enqueue/s 0.80× BullMQ; process/s 0.87×, enqueue/s 0.50× raw redis');
    expect(lines).toContain('celeriac memory (json) · throughput: process/s 3.08×, enqueue/s 4.00× BullMQ');
    expect(lines).toContain("celeriac redis (json) · latency: p50 0.50× / p99 0.30× of BullMQ's");
    expect(lines.some((l) => l.includes('amqp'))).toBe(false); // a failed row has no ratio
  });
});

describe('repeated rounds', () => {
  const round = (k: number, celeriac: number, raw: number, enqueue = 20_000): BenchRecord[] => [
    rec({ round: k, processPerSec: celeriac, enqueuePerSec: enqueue, peakRssMb: 100 + k }),
    rec({ round: k, system: 'raw', options: {}, processPerSec: raw, enqueuePerSec: 40_000 }),
  ];
  // Round 2 is the odd one out: the ratio is taken within each round, then the median of the rounds.
  const records = [...round(1, 30_000, 40_000), ...round(2, 10_000, 40_000), ...round(3, 36_000, 40_000, 30_000)];

  it('prints each ratio as the median of the per-round ratios, with their range', () => {
    expect(renderRatios(records)).toEqual([
      'celeriac redis (json) · throughput: process/s 0.75× [0.25–0.90×], enqueue/s 0.50× [0.50–0.75×] raw redis',
    ]);
  });

  it('summarizes each row as the medians of its rounds, highest RSS, in the order rows first ran', () => {
    const summary = summarizeRounds(records);
    expect(summary.map((r) => r.system)).toEqual(['celeriac', 'raw']);
    expect(summary[0]).toMatchObject({ processPerSec: 30_000, enqueuePerSec: 20_000, peakRssMb: 103, rounds: 3, status: 'ok' });
    expect(summary[0]!.round).toBeUndefined();
    expect(summarizeRounds([...round(1, 1, 2), ...round(2, 3, 4)])[0]!.processPerSec).toBe(2); // even count: mean of the middle two
  });

  it('shows a row that failed in any round as failed', () => {
    const failed = [...round(1, 30_000, 40_000), rec({ round: 2, status: 'failed', message: 'stalled', processPerSec: null, enqueuePerSec: null })];
    expect(summarizeRounds(failed)[0]).toMatchObject({ status: 'failed', message: 'stalled', rounds: 2 });
  });
});

describe('renderTable', () => {
  it('prints every row with its options, and a failed row with its reason', () => {
    const table = renderTable(records);
    const lines = table.split('\n');
    expect(lines).toHaveLength(records.length + 2);
    expect(lines[0]).toMatch(/^system\s+scenario\s+tasks\s+conc\s+enqueue\/s\s+process\/s/);
    expect(table).toContain('26,000');
    expect(table).toContain('connection refused');
    expect(rowCells(records[6]!)[4]).toBe('FAILED');
  });
});

describe('renderChart', () => {
  const report: BenchReport = {
    startedAt: '2025-01-01T00:00:00.000Z',
    durationMs: 1000,
    machine: { cpuModel: 'Test <CPU> & co', cores: 2, memoryMb: 4096, os: 'linux' },
    node: '20.20.2',
    servers: { redis: 'Redis 7.0.15' },
    argv: [],
    warmupTasks: 0,
    rows: records,
  };

  it('groups bars by scenario: throughput pairs process/enqueue, latency pairs p50/p99', () => {
    const panels = chartPanels(records);
    expect(panels.map((p) => p.bars.length)).toEqual([4, 2]);
    expect(panels[0]!.metrics).toEqual(['process/s', 'enqueue/s']);
    expect(panels[1]!.metrics).toEqual(['p50', 'p99']);
  });

  it('is well-formed SVG with one rect per bar value, labels and escaped text', () => {
    const svg = renderChart(report);
    expect(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg"')).toBe(true);
    expect(svg.trimEnd().endsWith('</svg>')).toBe(true);
    expect(wellFormed(svg)).toBe(true);
    const barRects = svg.match(/<rect x="246"/g) ?? [];
    expect(barRects).toHaveLength(2 * 6);
    expect(svg).toContain('>BullMQ redis</text>');
    expect(svg).toContain('>raw redis</text>');
    expect(svg).toContain('Test &lt;CPU&gt; &amp; co');
    expect(svg).toContain('>26,000</text>');
    expect(svg).not.toContain('<CPU>');
  });

  it('escapes XML', () => {
    expect(escapeXml(`a<b>&"c'`)).toBe('a&lt;b&gt;&amp;&quot;c&apos;');
  });
});

/** Tags nest and close properly, attributes are quoted, no stray `<` or `&`. */
function wellFormed(xml: string): boolean {
  const stack: string[] = [];
  const re = /<(\/?)([a-zA-Z][\w:-]*)((?:\s+[\w:-]+="[^"<]*")*)\s*(\/?)>|([^<]+)/gy;
  let m: RegExpExecArray | null;
  let pos = 0;
  while ((m = re.exec(xml)) !== null) {
    pos = re.lastIndex;
    const [, close, name, , selfClose, text] = m;
    if (text !== undefined) {
      if (/&(?!(lt|gt|amp|quot|apos);)/.test(text)) return false;
      continue;
    }
    if (close === '/') {
      if (stack.pop() !== name) return false;
    } else if (selfClose !== '/') stack.push(name!);
  }
  return pos === xml.length && stack.length === 0;
}
