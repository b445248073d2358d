/** Latency summary in milliseconds; every field is null when there were no samples. */
export interface LatencySummary {
  p50Ms: number | null;
  p90Ms: number | null;
  p99Ms: number | null;
  maxMs: number | null;
}

/**
 * Nearest-rank percentile of `sorted` (ascending): the smallest sample such that at least `p` % of the
 * samples are less than or equal to it. `p` is in (0, 100]. Returns null for an empty list.
 */
export function percentile(sorted: readonly number[], p: number): number | null {
  if (!Number.isFinite(p) || p <= 0 || p > 100) throw new RangeError(`percentile must be in (0, 100], got ${String(p)}`);
  const n = sorted.length;
  if (n === 0) return null;
  const rank = Math.ceil((p / 100) * n);
  return sorted[Math.min(n, Math.max(1, rank)) - 1] ?? null;
}

/** p50, p90, p99 and max of unsorted samples (the input is not modified). */
export function summarizeLatencies(samples: readonly number[]): LatencySummary {
  const sorted = Float64Array.from(samples).sort();
  const arr = Array.from(sorted);
  return {
    p50Ms: percentile(arr, 50),
    p90Ms: percentile(arr, 90),
    p99Ms: percentile(arr, 99),
    maxMs: arr.length === 0 ? null : (arr[arr.length - 1] ?? null),
  };
}

/** Operations per second for `count` operations in `elapsedMs`; null when nothing was timed. */
export function ratePerSec(count: number, elapsedMs: number): number | null {
  if (!Number.isFinite(count) || !Number.isFinite(elapsedMs) || count < 0) return null;
  if (elapsedMs <= 0) return null;
  return (count * 1000) / elapsedMs;
}

/** `a / b`, or null when either side is missing or `b` is zero. */
export function ratio(a: number | null | undefined, b: number | null | undefined): number | null {
  if (a === null || a === undefined || b === null || b === undefined) return null;
  if (!Number.isFinite(a) || !Number.isFinite(b) || b === 0) return null;
  return a / b;
}

/** A ratio as `0.85×` (`12.3×` from 10 up); `n/a` when missing. */
export function formatRatioValue(r: number | null): string {
  if (r === null) return 'n/a';
  return `${r >= 10 ? r.toFixed(1) : r.toFixed(2)}×`;
}

/** `a / b` as `0.85×`; `n/a` when either side is missing or `b` is zero. */
export function formatRatio(a: number | null | undefined, b: number | null | undefined): string {
  return formatRatioValue(ratio(a, b));
}

/** The median of `values` (the mean of the middle two for an even count); null when empty. */
export function median(values: readonly number[]): number | null {
  if (values.length === 0) return null;
  const s = [...values].sort((x, y) => x - y);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** A rate as a whole number with thousands separators (`12,345`); `-` when missing. */
export function formatRate(v: number | null | undefined): string {
  if (v === null || v === undefined || !Number.isFinite(v)) return '-';
  return Math.round(v).toLocaleString('en-US');
}

/** Milliseconds with a precision that suits the magnitude (`0.214`, `3.41`, `127`); `-` when missing. */
export function formatMs(v: number | null | undefined): string {
  if (v === null || v === undefined || !Number.isFinite(v)) return '-';
  if (v < 1) return v.toFixed(3);
  if (v < 100) return v.toFixed(2);
  return Math.round(v).toString();
}

/** Bytes as `100 B`, `10 KB`, `512 KB`, `1.5 MB` (binary units). */
export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${+(n / 1024).toFixed(1)} KB`;
  return `${+(n / (1024 * 1024)).toFixed(1)} MB`;
}
