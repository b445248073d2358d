import { createApp, newId, type App } from '@celeriac/core';
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { requirePackage } from '../src/packages.js';
import { requireServer, serverUrl } from '@celeriac/test-servers';
import { killAllSpawned, requireBuiltCli, runCli, spawnCli } from '../src/spawn.js';

/**
 * `celeriac schedules list|remove` and `celeriac beat` with runtime schedules, against a real Redis
 * (a memory store lives inside one process): the test process upserts, the CLI processes list, remove
 * and send. Everything lives under a unique prefix, removed afterwards.
 */
const ok = (await requireServer('redis')) && (await requirePackage('@celeriac/transport-redis')) && (await requirePackage('@celeriac/result-redis'));

const prefix = `cli-sched-${newId().slice(0, 8)}`;
const withPrefix = (extra: Record<string, string> = {}) => {
  const u = new URL(serverUrl('redis'));
  u.searchParams.set('prefix', prefix);
  for (const [k, v] of Object.entries(extra)) u.searchParams.set(k, v);
  return u.toString();
};
const backendUrl = withPrefix();
const brokerUrl = withPrefix({ visibilityTimeoutMs: '5000' });
const fixture = 'test/test/fixtures/app-inspect.mjs';
const env = { BROKER_URL: brokerUrl, RESULT_BACKEND_URL: backendUrl, CELERIAC_RESULT_BACKEND_URL: undefined };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe.skipIf(!ok)('celeriac schedules and beat on Redis', () => {
  let app: App;
  beforeAll(() => {
    requireBuiltCli();
    app = createApp({ broker: brokerUrl, resultBackend: backendUrl });
  });
  afterEach(() => killAllSpawned());
  afterAll(async () => {
    await app?.close();
    const redis = new Redis(serverUrl('redis'));
    try {
      let cursor = '0';
      do {
        const [next, keys] = await redis.scan(cursor, 'MATCH', `*${prefix}*`, 'COUNT', 500);
        cursor = next;
        if (keys.length > 0) await redis.del(...keys);
      } while (cursor !== '0');
    } finally {
      redis.disconnect();
    }
  });

  it('list (text and --json) shows each schedule with its next run and run count; remove removes it, and says when there was none', async () => {
    await app.schedules.upsert('b-report', { task: 'reports.daily', args: [42], cron: '0 9 * * 1-5', timezone: 'Europe/Stockholm', limit: 10 });
    const ping = await app.schedules.upsert('a-ping', { task: 'ops.ping', everyMs: 30_000 });

    const json = await runCli(['schedules', 'list', '--result-backend', backendUrl, '--json'], { env });
    expect(json.code).toBe(0);
    const listed = (JSON.parse(json.stdout) as { schedules: Record<string, unknown>[] }).schedules;
    expect(listed.map((s) => s['id'])).toEqual(['a-ping', 'b-report']);
    expect(listed[0]).toMatchObject({ task: 'ops.ping', everyMs: 30_000, cron: null, runCount: 0, limit: null, nextRunAt: new Date(ping.entry.nextRunAt!).toISOString() });
    expect(listed[1]).toMatchObject({ task: 'reports.daily', args: [42], cron: '0 9 * * 1-5', timezone: 'Europe/Stockholm', limit: 10, runCount: 0 });
    expect(new Date(listed[1]!['nextRunAt'] as string).getUTCMinutes()).toBe(0);

    const text = await runCli(['schedules', 'list', '-A', fixture], { env });
    expect(text.code).toBe(0);
    expect(text.stdout).toContain('2 runtime schedules (times in UTC)');
    expect(text.stdout).toMatch(/ID\s+TASK\s+SCHEDULE\s+NEXT RUN\s+RUNS\s+LAST RUN/);
    expect(text.stdout).toMatch(/a-ping\s+ops\.ping\s+every 30 s\s+\S+Z\s+0\s+-/);
    expect(text.stdout).toMatch(/b-report\s+reports\.daily\s+cron "0 9 \* \* 1-5" Europe\/Stockholm\s+\S+Z\s+0\/10\s+-/);

    const removed = await runCli(['schedules', 'remove', 'a-ping', '--result-backend', backendUrl], { env });
    expect([removed.code, removed.stdout.trim()]).toEqual([0, 'removed runtime schedule a-ping']);
    expect((await app.schedules.list()).map((e) => e.id)).toEqual(['b-report']);
    const again = await runCli(['schedules', 'remove', 'a-ping', '-A', fixture], { env });
    expect(again.code).toBe(1);
    expect(again.stderr).toContain('no runtime schedule "a-ping"');
    const againJson = await runCli(['schedules', 'remove', 'a-ping', '--result-backend', backendUrl, '--json'], { env });
    expect(againJson.code).toBe(1);
    expect(JSON.parse(againJson.stdout)).toEqual({ id: 'a-ping', removed: false });
    await app.schedules.remove('b-report');
  });

  it('a running `celeriac beat` sends a runtime schedule upserted by another process, and stops within a tick when the CLI removes it', async () => {
    await app.schedules.upsert('cli-tick', { task: 'fixture.echo', args: ['tick'], everyMs: 300 });
    const beat = spawnCli(['beat', '-A', fixture, '--lease-ms', '3000'], { env });
    await beat.waitFor(/0 static schedule\(s\); runtime schedules from the redis result backend; leader/);
    const broker = await app.getBroker();
    for (let i = 0; i < 100 && (await broker.stats('default')).ready < 3; i++) await sleep(50);
    const removed = await runCli(['schedules', 'remove', 'cli-tick', '--result-backend', backendUrl], { env });
    expect(removed.code).toBe(0);
    await sleep(150); // a tick claimed just before the removal is published right after its claim
    const atRemoval = (await broker.stats('default')).ready;
    expect(atRemoval).toBeGreaterThanOrEqual(3);
    await sleep(1_000); // three more periods: nothing more may arrive
    expect((await broker.stats('default')).ready).toBe(atRemoval);
    beat.child.kill('SIGINT');
    expect((await beat.exited).code).toBe(0);
    // The ticks in the queue are exactly the ones the beat says it sent.
    expect(Number(/sent (\d+) tick\(s\)/.exec(beat.stdout())?.[1])).toBe(atRemoval);
    await broker.purge('default');
  });

  it('schedules with no result backend to use is a usage error (exit 2); --help explains where they come from', async () => {
    const r = await runCli(['schedules', 'list'], { env: { RESULT_BACKEND_URL: undefined, CELERIAC_RESULT_BACKEND_URL: undefined } });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('say which result backend');
    const bad = await runCli(['schedules', 'remove', 'x'.repeat(201), '--result-backend', backendUrl]);
    expect(bad.code).toBe(2);
    const help = await runCli(['schedules', 'list', '--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('--result-backend <url>');
    expect(help.stdout).toContain('app.schedules.upsert(id, schedule)');
  });
});
