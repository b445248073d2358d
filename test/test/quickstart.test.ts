import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { killAllSpawned, requireBuiltCli, runNode, spawnCli } from '../src/spawn.js';

beforeAll(() => requireBuiltCli());
afterEach(() => killAllSpawned());

describe('examples/quickstart', () => {
  it('prints the retry, the alert and the delayed task, then exits 0 on its own', async () => {
    // BROKER_URL unset: the example's default, memory://.
    const r = await runNode(['examples/quickstart/main.mjs'], { env: { BROKER_URL: undefined }, timeoutMs: 15_000 });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const lines = r.stdout.trimEnd().split('\n');
    const find = (re: RegExp): number => lines.findIndex((l) => re.test(l));
    const ready = find(/ready +service on http:\/\/127\.0\.0\.1:\d+, worker on memory:\/\//);
    expect(ready).toBe(0);
    // Each request is accepted with a task id.
    expect(lines.filter((l) => /http +POST \/(orders|reports|reminders) -> 202 task [0-9a-f]{8}/.test(l))).toHaveLength(4);
    // Both orders fail once and are retried, then succeed.
    expect(lines.filter((l) => /retry +orders\.charge [0-9a-f]{8} failed \(payment gateway timed out for order A-[12]\); retry 1 in 200 ms/.test(l))).toHaveLength(2);
    expect(lines.filter((l) => /done +orders\.charge [0-9a-f]{8} -> \{"orderId":"A-[12]","chargedCents":\d+\}/.test(l))).toHaveLength(2);
    // The report is retried once, then fails for good: the task:failed handler raises the alert.
    const reportRetry = find(/retry +reports\.build .*retry 1 in \d+ ms/);
    const alert = find(/ALERT +reports\.build [0-9a-f]{8} failed for good after 2 attempts: report "weekly": the data warehouse is unreachable/);
    expect(reportRetry).toBeGreaterThan(0);
    expect(alert).toBeGreaterThan(reportRetry);
    // The reminder is scheduled with a countdown and runs after it.
    const scheduled = find(/delayed +email\.reminder [0-9a-f]{8} will run in 1000 ms/);
    const sent = find(/done +email\.reminder [0-9a-f]{8} -> "reminder sent to ada@example\.com" \(\d+ ms after the request\)/);
    expect(scheduled).toBeGreaterThan(0);
    expect(sent).toBeGreaterThan(scheduled);
    // Not before its countdown (measured from before the HTTP request, so the bound is exact).
    const waited = Number(/\((\d+) ms after the request\)/.exec(lines[sent]!)![1]);
    expect(waited).toBeGreaterThanOrEqual(1000);
    // The result of the first order, read over HTTP from the result backend.
    expect(lines[lines.length - 2]).toMatch(/http +GET \/tasks\/[0-9a-f]{8} -> 200 \{"state":"SUCCESS","result":\{"orderId":"A-1","chargedCents":1250\}\}/);
    expect(lines[lines.length - 1]).toMatch(/bye +service and worker closed/);
  });

  it('its tasks module also runs under `celeriac worker --app`', async () => {
    const w = spawnCli(['worker', '--app', 'examples/quickstart/tasks.mjs'], { env: { BROKER_URL: undefined } });
    await w.waitFor(/worker \d+: ready \(broker memory, queues default/);
    w.child.kill('SIGTERM');
    expect(await w.exited).toEqual({ code: 0, signal: null });
  });
});
