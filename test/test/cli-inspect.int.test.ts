import { afterAll, describe, expect, it } from 'vitest';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { createApp, newId } from '@celeriac/core';
import { requireServer, serverUrl } from '@celeriac/test-servers';
import { requirePackage } from '../src/packages.js';
import { killAllSpawned, requireBuiltCli, runCli, spawnCli } from '../src/spawn.js';

const ok = (await requireServer('redis')) && (await requirePackage('@celeriac/transport-redis')) && (await requirePackage('@celeriac/result-redis'));
const prefix = `inspect-${newId().slice(0, 8)}`;
const env = {
  BROKER_URL: `${serverUrl('redis')}?prefix=${prefix}`,
  RESULT_BACKEND_URL: `${serverUrl('redis')}?prefix=${prefix}r`,
};
const fixture = fileURLToPath(new URL('./fixtures/app-inspect.mjs', import.meta.url));

describe.skipIf(!ok)('celeriac inspect on Redis', () => {
  afterAll(async () => {
    killAllSpawned();
    const redis = new Redis(serverUrl('redis'));
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `*${prefix}*`, 'COUNT', 500);
      cursor = next;
      if (keys.length > 0) await redis.del(...keys);
    } while (cursor !== '0');
    redis.disconnect();
  });

  it('sees a worker process, queue depths and a task by id, as JSON', async () => {
    requireBuiltCli();
    const worker = spawnCli(['worker', '-A', fixture, '-E'], { env });
    await worker.waitFor(/ready \(broker redis/);
    const app = createApp({ broker: env.BROKER_URL, resultBackend: env.RESULT_BACKEND_URL });
    try {
      const r = await app.sendTask('fixture.echo', ['hello']);
      expect(await r.get({ timeoutMs: 10_000 })).toBe('hello');
      await app.sendTask('fixture.echo', ['parked'], { queue: 'parked' });

      const workers = await runCli(['inspect', 'workers', '-A', fixture, '--json', '--wait-ms', '2500'], { env });
      expect(workers.code).toBe(0);
      const seen = JSON.parse(workers.stdout) as { pid: number; processed: number | null }[];
      expect(seen.map((w) => w.pid)).toEqual([worker.child.pid]);

      const queues = await runCli(['inspect', 'queues', 'default', 'parked', '-A', fixture, '--json'], { env });
      expect(JSON.parse(queues.stdout)).toEqual([
        { queue: 'default', ready: 0, delayed: 0, inFlight: 0, dead: 0 },
        { queue: 'parked', ready: 1, delayed: 0, inFlight: 0, dead: 0 },
      ]);

      const task = await runCli(['inspect', 'task', r.id, '-A', fixture, '--json'], { env });
      expect(JSON.parse(task.stdout)).toMatchObject({ id: r.id, state: 'SUCCESS', result: 'hello', name: 'fixture.echo' });
      const unknown = await runCli(['inspect', 'task', 'no-such-id', '-A', fixture], { env });
      expect(unknown.stdout).toContain('no-such-id  PENDING');
    } finally {
      await app.close();
      worker.child.kill('SIGTERM');
      await worker.exited;
    }
  }, 60_000);
});
