import { describe, expect, it } from 'vitest';
import { formatBytes, formatMs, formatRate, formatRatio, percentile, ratePerSec, summarizeLatencies } from '../src/stats.js';

describe('percentile (nearest rank)', () => {
  const hundred = Array.from({ length: 100 }, (_, i) => i + 1); // 1..100

  it('picks the smallest sample with at least p % of samples at or below it', () => {
    expect(percentile(hundred, 50)).toBe(50);
    expect(percentile(hundred, 90)).toBe(90);
    expect(percentile(hundred, 99)).toBe(99);
    expect(percentile(hundred, 100)).toBe(100);
    expect(percentile(hundred, 0.5)).toBe(1);
  });

  it('rounds the rank up on small samples', () => {
    expect(percentile([10, 20, 30], 50)).toBe(20);
    expect(percentile([10, 20, 30, 40], 50)).toBe(20);
    expect(percentile([10, 20, 30, 40], 51)).toBe(30);
    expect(percentile([10, 20, 30, 40], 99)).toBe(40);
    expect(percentile([7], 1)).toBe(7);
  });

  it('is null for no samples and rejects a percentile outside (0, 100]', () => {
    expect(percentile([], 50)).toBeNull();
    expect(() => percentile([1], 0)).toThrow(RangeError);
    expect(() => percentile([1], 101)).toThrow(RangeError);
    expect(() => percentile([1], Number.NaN)).toThrow(RangeError);
  });
});

describe('summarizeLatencies', () => {
  it('sorts numerically (not as strings) and leaves the input alone', () => {
    const samples = [100, 9, 1000, 80, 7, 60, 5, 40, 3, 2];
    const copy = [...samples];
    expect(summarizeLatencies(samples)).toEqual({ p50Ms: 9, p90Ms: 100, p99Ms: 1000, maxMs: 1000 });
    expect(samples).toEqual(copy);
  });

  it('gives nulls for no samples', () => {
    expect(summarizeLatencies([])).toEqual({ p50Ms: null, p90Ms: null, p99Ms: null, maxMs: null });
  });

  it('handles fractional milliseconds', () => {
    const s = summarizeLatencies([0.25, 0.5, 0.125, 2.5]);
    expect(s.p50Ms).toBe(0.25);
    expect(s.maxMs).toBe(2.5);
  });
});

describe('ratePerSec', () => {
  it('is count per second of elapsed milliseconds', () => {
    expect(ratePerSec(5000, 250)).toBe(20_000);
    expect(ratePerSec(1, 1000)).toBe(1);
    expect(ratePerSec(0, 10)).toBe(0);
    expect(ratePerSec(3, 1.5)).toBeCloseTo(2000, 9);
  });

  it('is null when nothing was timed or the input is not a count', () => {
    expect(ratePerSec(10, 0)).toBeNull();
    expect(ratePerSec(10, -5)).toBeNull();
    expect(ratePerSec(-1, 10)).toBeNull();
    expect(ratePerSec(10, Number.NaN)).toBeNull();
  });
});

describe('formatRatio', () => {
  it('prints a / b with two decimals, one decimal from 10×', () => {
    expect(formatRatio(25, 10)).toBe('2.50×');
    expect(formatRatio(8.5, 10)).toBe('0.85×');
    expect(formatRatio(1, 3)).toBe('0.33×');
    expect(formatRatio(123, 10)).toBe('12.3×');
  });

  it('prints n/a when a side is missing or the base is zero', () => {
    expect(formatRatio(null, 10)).toBe('n/a');
    expect(formatRatio(10, null)).toBe('n/a');
    expect(formatRatio(10, undefined)).toBe('n/a');
    expect(formatRatio(10, 0)).toBe('n/a');
    expect(formatRatio(Number.POSITIVE_INFINITY, 1)).toBe('n/a');
  });
});

describe('number formatting', () => {
  it('formats rates, milliseconds and byte sizes', () => {
    expect(formatRate(12345.6)).toBe('12,346');
    expect(formatRate(null)).toBe('-');
    expect(formatMs(0.2144)).toBe('0.214');
    expect(formatMs(3.416)).toBe('3.42');
    expect(formatMs(127.4)).toBe('127');
    expect(formatMs(null)).toBe('-');
    expect(formatBytes(100)).toBe('100 B');
    expect(formatBytes(10 * 1024)).toBe('10 KB');
    expect(formatBytes(512 * 1024)).toBe('512 KB');
    expect(formatBytes(1.5 * 1024 * 1024)).toBe('1.5 MB');
  });
});
