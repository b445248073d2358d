/**
 * The dashboard as a person uses it: Debian's chromium driven by playwright-core, a worker sending
 * events and the dashboard sharing one memory broker. Locally, without /usr/bin/chromium, this file
 * skips with one line; under CI=true it fails (.ci/run installs chromium).
 */
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { currentTask, type AsyncResult } from '@celeriac/core';
import { startCluster, type Cluster } from './helpers.js';

const CHROMIUM = process.env['CHROMIUM_PATH'] ?? '/usr/bin/chromium';
const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--no-first-run'];
const ARTIFACTS = resolve(dirname(fileURLToPath(import.meta.url)), '../../../test-artifacts');
const SCREENSHOT = join(ARTIFACTS, 'dashboard.png');

const haveChromium = existsSync(CHROMIUM);
if (!haveChromium) {
  const line = `chromium is not installed at ${CHROMIUM}`;
  if (process.env['CI'] === 'true') throw new Error(`${line}; CI must install it (apt-get install chromium)`);
  process.stderr.write(`skipping the dashboard browser test: ${line}\n`);
}

/** A promise the test resolves to let a task finish. */
function gate(): { wait: Promise<void>; open: () => void } {
  let open = () => {};
  const wait = new Promise<void>((resolve) => (open = resolve));
  return { wait, open };
}

describe.skipIf(!haveChromium)('dashboard in a browser', () => {
  let c: Cluster;
  let ctx: BrowserContext;
  let page: Page;
  let userDataDir: string;
  const token = randomBytes(16).toString('hex');
  const ran = new Map<string, number>();
  const slowGate = gate();
  const progressGate = gate();
  let failing = true;

  beforeAll(async () => {
    c = await startCluster({ token, queues: ['default', 'parked'] });
    const { app } = c;
    app.task('report.build', async (a: number, b: number) => {
      await slowGate.wait;
      return { total: a + b };
    });
    app.task('import.rows', async (rows: number) => {
      await currentTask().progress({ done: Math.floor(rows / 3), of: rows });
      await progressGate.wait;
      return rows;
    });
    app.task('mail.send', async (to: string) => {
      if (failing) throw new Error(`SMTP 451 for ${to}`);
      return 'sent';
    });
    app.task('echo', async (s: string) => s);
    app.task('wait.forever', async () => {
      const signal = currentTask().signal;
      await new Promise((resolve) => signal.addEventListener('abort', resolve, { once: true }));
      throw signal.reason;
    });
    app.task('charge.card', async () => {
      throw new RangeError('amount must be > 0');
    });
    app.task('parked.job', async () => 1, { queue: 'parked' });
    for (const state of ['succeeded', 'failed', 'dead-lettered', 'revoked'] as const) {
      app.on(`task:${state}`, (e) => void ran.set(`${e.name ?? '?'} ${state.replace('-', '_')}`, (ran.get(`${e.name ?? '?'} ${state.replace('-', '_')}`) ?? 0) + 1));
    }
    await app.worker({ sendEvents: true, concurrency: 8, heartbeatMs: 500 }).start();

    userDataDir = mkdtempSync(join(tmpdir(), 'celeriac-dashboard-e2e-'));
    ctx = await chromium.launchPersistentContext(userDataDir, {
      executablePath: CHROMIUM,
      args: ARGS,
      headless: true,
      viewport: { width: 1440, height: 1100 },
    });
    page = ctx.pages()[0] ?? (await ctx.newPage());
    page.setDefaultTimeout(10_000);
  });

  afterAll(async () => {
    slowGate.open();
    progressGate.open();
    await ctx?.close();
    await c?.close();
    if (userDataDir !== undefined) rmSync(userDataDir, { recursive: true, force: true });
  });

  const row = (id: string) => page.locator(`#tasks-body tr[data-task-id="${id}"]`);
  const badge = (id: string, state: string) => row(id).locator('.state .badge').filter({ hasText: new RegExp(`^${state}$`) });
  const queueCell = (queue: string, column: number) => page.locator(`#queues-body tr[data-queue="${queue}"] td`).nth(column);
  const send = (name: string, args: unknown[] = []): Promise<AsyncResult> => c.app.sendTask(name, args);

  it('signs in, then shows tasks, workers and queues live, and acts on them', async () => {
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    let navigations = 0;
    page.on('framenavigated', (f) => {
      if (f === page.mainFrame()) navigations++;
    });

    // Sign in with the token, as a person would.
    await page.goto(c.dashboard.url);
    await page.getByLabel('Access token').fill(token);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.locator('#conn', { hasText: 'live' }).waitFor();
    await page.locator('#workers-body .badge', { hasText: 'online' }).waitFor();
    const loadedAt = navigations;

    // A task goes STARTED → SUCCESS on screen, without a reload.
    const slow = await send('report.build', [2, 3]);
    await badge(slow.id, 'STARTED').waitFor();
    expect(await row(slow.id).locator('td').nth(3).textContent()).toBe('[2,3]');
    slowGate.open();
    await badge(slow.id, 'SUCCESS').waitFor();
    expect(await row(slow.id).locator('td').nth(4).textContent()).toBe('{"total":5}');
    expect(await row(slow.id).locator('.badge.dead').isHidden()).toBe(true);

    // Two dead-lettered tasks: one run again from its row's Retry, the other by redriving the queue.
    const m1 = await send('mail.send', ['ann@example.com']);
    const m2 = await send('mail.send', ['bob@example.com']);
    await row(m1.id).locator('.badge.dead:visible').waitFor();
    await row(m2.id).locator('.badge.dead:visible').waitFor();
    expect(await row(m1.id).locator('td').nth(4).textContent()).toBe('Error: SMTP 451 for ann@example.com');
    await page.locator('#queues-body tr[data-queue="default"] td.dead', { hasText: '2' }).waitFor();
    failing = false;
    await row(m1.id).getByRole('button', { name: 'Retry' }).click();
    await badge(m1.id, 'SUCCESS').waitFor();
    expect(await row(m1.id).locator('.badge.dead').isHidden()).toBe(true);
    expect(await row(m2.id).locator('.badge.dead').isVisible()).toBe(true);
    await queueCell('default', 4).filter({ hasText: /^1$/ }).waitFor();
    await page.getByRole('button', { name: 'Redrive all dead letters of default' }).click();
    await badge(m2.id, 'SUCCESS').waitFor();
    await row(m2.id).locator('.badge.dead').waitFor({ state: 'hidden' });
    await queueCell('default', 4).filter({ hasText: /^0$/ }).waitFor();
    expect(await m1.get({ timeoutMs: 5_000 })).toBe('sent');
    expect(await m2.get({ timeoutMs: 5_000 })).toBe('sent');

    // Task data is shown as text, never run as markup.
    const hostile = '<img src=x onerror="window.__pwned=1"><script>window.__pwned=2</script>';
    const echo = await send('echo', [hostile]);
    await badge(echo.id, 'SUCCESS').waitFor();
    expect(await row(echo.id).locator('td').nth(4).textContent()).toBe(JSON.stringify(hostile));
    expect(await page.locator('#tasks-body img, #tasks-body script').count()).toBe(0);
    expect(await page.evaluate(() => (globalThis as { __pwned?: number }).__pwned)).toBeUndefined();

    // Revoke a running task from its row.
    const stuck = await send('wait.forever');
    await badge(stuck.id, 'STARTED').waitFor();
    await row(stuck.id).getByRole('button', { name: 'Revoke' }).click();
    await badge(stuck.id, 'REVOKED').waitFor();

    // Purge asks first: dismissing keeps the messages, accepting deletes them.
    await Promise.all([send('parked.job'), send('parked.job'), send('parked.job')]);
    await queueCell('parked', 1).filter({ hasText: /^3$/ }).waitFor();
    const dialogs: string[] = [];
    page.once('dialog', (d) => {
      dialogs.push(d.message());
      void d.dismiss();
    });
    await page.getByRole('button', { name: 'Purge queue parked' }).click();
    expect((await c.getJson<{ queues: { name: string; ready: number }[] }>('/api/queues', { Authorization: `Bearer ${token}` })).body.queues.find((q) => q.name === 'parked')!.ready).toBe(3);
    page.once('dialog', (d) => void d.accept());
    await page.getByRole('button', { name: 'Purge queue parked' }).click();
    await queueCell('parked', 1).filter({ hasText: /^0$/ }).waitFor();
    expect(dialogs[0]).toContain('Purge queue "parked"? This deletes its 3 ready messages');

    // Runtime schedules: one another process upserts appears (on Refresh; the panel also refreshes every
    // 5 s), its id shown as text; Remove asks first, then removes it behind the same auth and CSRF guard.
    const schedId = 'nightly <i>report</i>';
    await c.app.schedules.upsert(schedId, { task: 'report.build', args: [1, 2], cron: '30 2 * * *', timezone: 'Europe/Stockholm', limit: 3 });
    await c.app.schedules.upsert('cache.sweep', { task: 'echo', args: ['sweep'], everyMs: 900_000, endAt: Date.now() + 30 * 86_400_000 }); // stays, for the screenshot
    await page.getByRole('button', { name: 'Refresh' }).click();
    const sched = page.locator('#schedules-body tr').filter({ hasText: schedId });
    await sched.waitFor({ timeout: 2_000 });
    expect(await sched.locator('td').nth(3).textContent()).toBe('cron "30 2 * * *" Europe/Stockholm');
    expect(await sched.locator('td').nth(5).textContent()).toBe('0 / 3');
    expect(await page.locator('#schedules-body i').count()).toBe(0);
    page.once('dialog', (d) => {
      dialogs.push(d.message());
      void d.dismiss();
    });
    await sched.getByRole('button', { name: `Remove schedule ${schedId}` }).click();
    expect(await c.app.schedules.get(schedId)).toBeDefined();
    page.once('dialog', (d) => void d.accept());
    await sched.getByRole('button', { name: `Remove schedule ${schedId}` }).click();
    await sched.waitFor({ state: 'detached' });
    expect(await c.app.schedules.get(schedId)).toBeUndefined();
    expect(dialogs[1]).toBe(`Remove the schedule "${schedId}"? No beat will send it again.`);

    // What the screenshot shows: a task in progress, a failure with its stack open, the rate chart.
    const imp = await send('import.rows', [1200]);
    await badge(imp.id, 'PROGRESS').waitFor();
    const charge = await send('charge.card', []);
    await badge(charge.id, 'FAILURE').waitFor();
    await page.getByLabel('Task id').fill(charge.id);
    await page.getByRole('button', { name: 'Look up' }).click();
    await page.locator(`#detail [data-detail-for="${charge.id}"] pre.stack`, { hasText: 'RangeError: amount must be > 0' }).waitFor();
    await queueCell('default', 3).filter({ hasText: /^1$/ }).waitFor(); // import.rows in flight
    await queueCell('default', 4).filter({ hasText: /^1$/ }).waitFor(); // charge.card dead
    await page.locator('#workers-body tr td').nth(3).filter({ hasText: /^[1-9]\d*$/ }).waitFor(); // a heartbeat counted the work
    mkdirSync(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: SCREENSHOT, fullPage: true });
    progressGate.open();
    await badge(imp.id, 'SUCCESS').waitFor();

    expect(navigations).toBe(loadedAt); // everything above happened without a reload
    expect(errors).toEqual([]);

    // /metrics, opened in the same signed-in browser, counts exactly what ran.
    await c.app.close(); // the worker stops: every event it will send has been sent
    await page.locator('#workers-body .badge', { hasText: 'offline' }).waitFor();
    expect(await page.locator('#workers-summary').textContent()).toBe('0 online, 1 offline');
    const metricsPage = await ctx.newPage();
    const res = await metricsPage.goto(new URL('metrics', c.dashboard.url).toString());
    expect(res?.status()).toBe(200);
    const text = await metricsPage.locator('body').innerText();
    expect(ran.get('mail.send failed')).toBe(2);
    expect(ran.get('mail.send succeeded')).toBe(2);
    for (const [key, n] of ran) {
      const [task, state] = key.split(' ');
      expect(text).toContain(`celeriac_tasks_total{task="${task}",state="${state}"} ${n}`);
    }
    const total = [...text.matchAll(/^celeriac_tasks_total\{task="[^"]+",state="(succeeded|failed|dead_lettered|revoked)"\} (\d+)$/gm)].reduce(
      (sum, m) => sum + Number(m[2]),
      0,
    );
    expect(total).toBe([...ran.values()].reduce((a, b) => a + b, 0));
    expect(text).toContain('celeriac_queue_messages{queue="parked",state="ready"} 0');
    expect(existsSync(SCREENSHOT)).toBe(true);
  }, 60_000);
});
