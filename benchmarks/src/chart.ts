import type { BenchRecord, BenchReport } from './record.js';
import { formatMs, formatRate } from './stats.js';
import { scenarioLabel, systemLabel } from './table.js';

const WIDTH = 960;
const LABEL_W = 230;
const VALUE_W = 90;
const BAR_H = 11;
const ROW_GAP = 8;
const PANEL_GAP = 26;
const TITLE_H = 22;

const COLORS: Readonly<Record<BenchRecord['system'], readonly [string, string]>> = {
  celeriac: ['#2e7d32', '#a5d6a7'],
  bullmq: ['#c62828', '#ef9a9a'],
  'pg-boss': ['#6a1b9a', '#ce93d8'],
  'graphile-worker': ['#ef6c00', '#ffcc80'],
  raw: ['#546e7a', '#b0bec5'],
};

/** Escape text for SVG content and attribute values. */
export function escapeXml(s: string): string {
  return s.replace(/[<>&"']/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;', "'": '&apos;' })[c] ?? c);
}

interface Bar {
  label: string;
  system: BenchRecord['system'];
  values: readonly [number | null, number | null];
}

interface Panel {
  title: string;
  metrics: readonly [string, string];
  format: (v: number | null) => string;
  bars: Bar[];
}

/** Panels: one per scenario variant; throughput-like ones pair process/s with enqueue/s, latency pairs p50 with p99. */
export function chartPanels(records: readonly BenchRecord[]): Panel[] {
  const panels = new Map<string, Panel>();
  for (const r of records) {
    if (r.status !== 'ok') continue;
    const key = scenarioLabel(r);
    let p = panels.get(key);
    if (p === undefined) {
      p =
        r.scenario === 'latency'
          ? { title: `${key}: end-to-end ms at a fixed rate (lower is better)`, metrics: ['p50', 'p99'], format: formatMs, bars: [] }
          : { title: `${key}: tasks per second (higher is better)`, metrics: ['process/s', 'enqueue/s'], format: formatRate, bars: [] };
      panels.set(key, p);
    }
    p.bars.push({
      label: systemLabel(r),
      system: r.system,
      values: r.scenario === 'latency' ? [r.p50Ms, r.p99Ms] : [r.processPerSec, r.enqueuePerSec],
    });
  }
  return [...panels.values()];
}

/** A self-contained SVG bar chart comparing the systems of a run (no dependency, no script). */
export function renderChart(report: BenchReport): string {
  const panels = chartPanels(report.summary ?? report.rows);
  const out: string[] = [];
  let y = 0;
  const text = (x: number, yy: number, s: string, attrs = '') =>
    out.push(`<text x="${x}" y="${yy}"${attrs === '' ? '' : ` ${attrs}`}>${escapeXml(s)}</text>`);

  y += 28;
  text(16, y, 'celeriac bench: celeriac vs BullMQ vs raw clients', 'font-size="18" font-weight="bold"');
  y += 20;
  const servers = Object.values(report.servers).join(', ');
  const load = report.machine.loadAverage === undefined ? '' : ` · load ${report.machine.loadAverage.start}→${report.machine.loadAverage.end}`;
  text(16, y, `${report.machine.cpuModel}, ${report.machine.cores} cores, ${Math.round(report.machine.memoryMb / 1024)} GB${load} · Node ${report.node}${servers === '' ? '' : ` · ${servers}`}`, 'fill="#555"');
  y += 22;
  let lx = 16;
  for (const [system, [dark, light]] of Object.entries(COLORS)) {
    out.push(`<rect x="${lx}" y="${y - 10}" width="12" height="12" fill="${dark}"/>`);
    out.push(`<rect x="${lx + 14}" y="${y - 10}" width="12" height="12" fill="${light}"/>`);
    text(lx + 32, y, system === 'raw' ? 'raw client floor' : system === 'bullmq' ? 'BullMQ' : system === 'celeriac' ? 'celeriac' : system);
    lx += 150;
  }
  text(lx + 10, y, 'dark bar: first metric · light bar: second metric', 'fill="#555"');
  y += 10;

  const barW = WIDTH - LABEL_W - VALUE_W - 32;
  for (const p of panels) {
    y += PANEL_GAP;
    text(16, y, p.title, 'font-size="14" font-weight="bold"');
    text(WIDTH - 16, y, `dark: ${p.metrics[0]} · light: ${p.metrics[1]}`, 'text-anchor="end" fill="#555"');
    y += TITLE_H - 8;
    const max = Math.max(1e-9, ...p.bars.flatMap((b) => b.values.map((v) => v ?? 0)));
    for (const b of p.bars) {
      const [dark, light] = COLORS[b.system];
      text(LABEL_W + 8, y + BAR_H + 3, b.label, 'text-anchor="end"');
      b.values.forEach((v, i) => {
        const by = y + i * BAR_H;
        const w = v === null ? 0 : Math.max(1, (v / max) * barW);
        out.push(`<rect x="${LABEL_W + 16}" y="${by}" width="${w.toFixed(1)}" height="${BAR_H - 1}" fill="${i === 0 ? dark : light}"/>`);
        text(Math.round(LABEL_W + 20 + w), by + BAR_H - 2, p.format(v), 'font-size="10" fill="#333"');
      });
      y += 2 * BAR_H + ROW_GAP;
    }
  }
  y += 20;
  text(16, y, `tasks, concurrency and options of every bar: see the table and the JSON report (${report.startedAt})`, 'font-size="10" fill="#777"');
  y += 12;

  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${y}" viewBox="0 0 ${WIDTH} ${y}" font-family="Helvetica, Arial, sans-serif" font-size="12">`,
    `<rect x="0" y="0" width="${WIDTH}" height="${y}" fill="#ffffff"/>`,
    ...out,
    '</svg>',
    '',
  ].join('\n');
}
