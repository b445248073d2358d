import { createApp, newId, TaskState } from '@celeriac/core';
import { Redis } from 'ioredis';
import { describe, expect, it } from 'vitest';
import { requireServer, startPrivateRedis } from '@celeriac/test-servers';

const ok = await requireServer('redis');

async function connectedClients(admin: Redis): Promise<number> {
  const info = await admin.info('clients');
  return Number(/connected_clients:(\d+)/.exec(info)?.[1]);
}

describe.skipIf(!ok)('10,000 get() calls', () => {
  it('leave no subscription and no connection behind once settled (success, failure, timeout)', async () => {
    const server = await startPrivateRedis();
    const admin = new Redis(server.url);
    try {
      const baseline = await connectedClients(admin);
      const prefix = 'leak';
      const app = createApp({ broker: 'memory://', resultBackend: `${server.url}?prefix=${prefix}` });
      const backend = (await app.getResultBackend())!;
      const n = 10_000;
      const ids = Array.from({ length: n }, () => newId());
      const ttl = { ttlMs: 60_000 };
      // A third succeeded before the get, a third fails while it waits, a third times out.
      await Promise.all(ids.filter((_, i) => i % 3 === 0).map((id) => backend.set(id, { state: TaskState.SUCCESS, result: 1 }, ttl)));
      const gets = ids.map((id, i) => app.asyncResult(id).get({ timeoutMs: i % 3 === 2 ? 1000 : 30_000 }));
      const all = Promise.allSettled(gets);
      await new Promise((r) => setTimeout(r, 100));
      expect(await connectedClients(admin)).toBe(baseline + 2); // commands + one shared subscriber
      await Promise.all(
        ids.filter((_, i) => i % 3 === 1).map((id) => backend.set(id, { state: TaskState.FAILURE, error: { name: 'Error', message: 'x' } }, ttl)),
      );
      const settled = await all;
      const outcome = (i: number) => {
        const s = settled[i]!;
        return s.status === 'fulfilled' ? 'ok' : (s.reason as { code?: string }).code;
      };
      expect(settled.map((_, i) => outcome(i))).toEqual(ids.map((_, i) => ['ok', 'ERR_TASK_FAILED', 'ERR_TIMEOUT'][i % 3]));
      // Unsubscribing is sent on the next turn of the event loop: wait for the server to agree.
      let channels: string[] = [];
      for (let i = 0; i < 100; i++) {
        channels = (await admin.pubsub('CHANNELS', `${prefix}:*`)) as string[];
        if (channels.length === 0) break;
        await new Promise((r) => setTimeout(r, 20));
      }
      expect(channels).toEqual([]);
      const numsub = (await admin.pubsub('NUMSUB', ...ids.slice(0, 100).map((id) => `${prefix}:result:${id}`))) as (string | number)[];
      expect(numsub.filter((_, i) => i % 2 === 1).map(Number).every((c) => c === 0)).toBe(true);
      expect(Number(await admin.pubsub('NUMPAT'))).toBe(0);
      expect(await connectedClients(admin)).toBe(baseline + 2);
      await app.close();
      for (let i = 0; i < 50 && (await connectedClients(admin)) !== baseline; i++) await new Promise((r) => setTimeout(r, 20));
      expect(await connectedClients(admin)).toBe(baseline);
    } finally {
      admin.disconnect();
      await server.close();
    }
  }, 60_000);
});
