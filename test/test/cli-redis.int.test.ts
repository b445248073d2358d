import { createApp, newId, type App } from '@celeriac/core';
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { freePort, requireServer, serverUrl } from '@celeriac/test-servers';
import { killAllSpawned, requireBuiltCli, runCli, spawnCli } from '../src/spawn.js';
import { requirePackage } from '../src/packages.js';

/**
 * The CLI against a real Redis, across processes: the test process produces, the CLI process
 * consumes, purges and redrives. Everything lives under a unique prefix, removed afterwards.
 */
const ok = (await requireServer('redis')) && (await requirePackage('@celeriac/transport-redis'));

const prefix = `cli-test-${newId().slice(0, 8)}`;
const url = (() => {
  const u = new URL(serverUrl('redis'));
  u.searchParams.set('prefix', prefix);
  u.searchParams.set('visibilityTimeoutMs', '5000');
  return u.toString();
})();

describe.skipIf(!ok)('celeriac CLI on Redis', () => {
  let app: App;
  beforeAll(() => {
    requireBuiltCli();
    app = createApp({ broker: url });
  });
  afterEach(() => killAllSpawned());
  afterAll(async () => {
    await app?.close();
    // Remove every key this file created (all of them carry the prefix's hash tag).
    const redis = new Redis(serverUrl('redis'));
    try {
      let cursor = '0';
      do {
        const [next, keys] = await redis.scan(cursor, 'MATCH', `{${prefix}:*`, 'COUNT', 500);
        cursor = next;
        if (keys.length > 0) await redis.del(...keys);
      } while (cursor !== '0');
    } finally {
      redis.disconnect();
    }
  });

  it('a worker started with --broker runs a task another process sent', async () => {
    const w = spawnCli(['worker', '--app', 'test/test/fixtures/app-basic.mjs', '--broker', url, '-Q', 'cli.work', '--verbose']);
    await w.waitFor(/ready \(broker \w+, queues cli\.work/);
    const r = await app.sendTask('fixture.echo', ['hello'], { queue: 'cli.work' });
    await w.waitFor(new RegExp(`task fixture\\.echo ${r.id} succeeded`));
    w.child.kill('SIGTERM');
    expect(await w.exited).toEqual({ code: 0, signal: null });
  });

  it('--processes 2 with --broker: both workers get the URL and share the queue', async () => {
    const w = spawnCli(['worker', '--app', 'test/test/fixtures/app-basic.mjs', '--broker', url, '-Q', 'cli.multi', '-p', '2', '--verbose']);
    await w.waitFor(/(ready \(broker redis, queues cli\.multi[^\n]*\n[\s\S]*){2}/);
    const sent = await Promise.all([1, 2, 3, 4].map((i) => app.sendTask('fixture.echo', [i], { queue: 'cli.multi' })));
    for (const r of sent) await w.waitFor(new RegExp(`task fixture\\.echo ${r.id} succeeded`));
    w.child.kill('SIGTERM');
    expect(await w.exited).toEqual({ code: 0, signal: null });
  });

  it('purge empties a queue another process filled', async () => {
    for (let i = 0; i < 3; i++) await app.sendTask('fixture.echo', [i], { queue: 'cli.purge' });
    const r = await runCli(['purge', 'cli.purge', '--broker', url, '--json']);
    expect(r.stderr).toBe('');
    expect(JSON.parse(r.stdout)).toEqual({ queue: 'cli.purge', purged: 3 });
    const broker = await app.getBroker();
    expect((await broker.stats('cli.purge')).ready).toBe(0);
  });

  it('dlq list, redrive --ids and purge act on the dead letters another process made', async () => {
    const fail = app.task(
      'cli.fail',
      (n: number) => {
        throw new Error(`boom ${n}`);
      },
      { queue: 'cli.dlq', maxRetries: 0 },
    );
    const worker = app.worker({ queues: ['cli.dlq'], concurrency: 2 });
    let failed = 0;
    const bothFailed = new Promise<void>((resolve) => {
      app.on('task:failed', () => {
        if (++failed === 2) resolve();
      });
    });
    await worker.start();
    await fail.delay(1);
    await fail.delay(2);
    await bothFailed;
    await worker.close();

    const listed = await runCli(['dlq', 'list', 'cli.dlq', '--broker', url, '--json']);
    expect(listed.code).toBe(0);
    const letters = (JSON.parse(listed.stdout) as { deadLetters: { id: string; task: string; reason: string }[] }).deadLetters;
    expect(letters.map((d) => d.task)).toEqual(['cli.fail', 'cli.fail']);
    expect(letters.map((d) => d.reason).sort()).toEqual([expect.stringMatching(/boom 1/), expect.stringMatching(/boom 2/)]);

    const redriven = await runCli(['dlq', 'redrive', 'cli.dlq', '--broker', url, '--ids', letters[0]!.id, '--json']);
    expect(JSON.parse(redriven.stdout)).toEqual({ queue: 'cli.dlq', redriven: 1 });
    const broker = await app.getBroker();
    expect(await broker.stats('cli.dlq')).toMatchObject({ ready: 1, dead: 1 });

    const purged = await runCli(['dlq', 'purge', 'cli.dlq', '--broker', url, '--json']);
    expect(JSON.parse(purged.stdout)).toEqual({ queue: 'cli.dlq', purged: 1 });
    expect(await broker.stats('cli.dlq')).toMatchObject({ ready: 1, dead: 0 });
    await broker.purge('cli.dlq');
  });

  it('an unreachable Redis: exit 1 with one line, no password', async () => {
    const port = await freePort();
    const r = await runCli([
      'worker',
      '--app',
      'test/test/fixtures/app-basic.mjs',
      '--broker',
      `redis://ada:s3cret@127.0.0.1:${port}`,
      '--connect-timeout-ms',
      '3000',
    ]);
    expect(r.code).toBe(1);
    const lines = r.stderr.trimEnd().split('\n');
    expect(lines, r.stderr).toHaveLength(1);
    expect(lines[0]).toMatch(/^celeriac: error: the worker could not start: .*\((ERR_CONNECTION|ERR_TIMEOUT)\)$/);
    expect(r.stdout + r.stderr).not.toContain('s3cret');
  });
});
