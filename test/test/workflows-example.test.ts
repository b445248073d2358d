import { describe, expect, it } from 'vitest';
import { runNode } from '../src/spawn.js';

describe('examples/workflows', () => {
  it('runs the daily_report | send_email chain and three beat ticks, then exits 0', async () => {
    const r = await runNode(['examples/workflows/main.mjs'], { timeoutMs: 20_000 });
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('daily_report | send_email -> sent "2026-11-24: 42 orders, 1299.00 EUR" to ops@example.com');
    expect(r.stdout).toMatch(/beat +sent \d\d:\d\d:\d\d, \d\d:\d\d:\d\d, \d\d:\d\d:\d\d/);
  });
});
