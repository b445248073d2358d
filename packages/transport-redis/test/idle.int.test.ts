import { createApp } from '@celeriac/core';
import { Redis } from 'ioredis';
import { describe, expect, it } from 'vitest';
import { requireServer, startPrivateRedis } from '@celeriac/test-servers';

const ok = await requireServer('redis');

/** Calls per command, Lua-internal ones included (INFO commandstats). */
async function commandCounts(admin: Redis): Promise<Map<string, number>> {
  const info = await admin.info('commandstats');
  const out = new Map<string, number>();
  for (const line of info.split('\n')) {
    const m = /^cmdstat_([^:]+):calls=(\d+)/.exec(line);
    if (m !== null) out.set(m[1]!, Number(m[2]));
  }
  return out;
}

describe.skipIf(!ok)('an idle worker', () => {
  it('sends at most one command per second (10 s on a private server)', async () => {
    const server = await startPrivateRedis();
    const admin = new Redis(server.url);
    const monitor = await admin.monitor();
    const app = createApp({ broker: `${server.url}?prefix=idle`, resultBackend: `${server.url}?prefix=idle-results` });
    try {
      app.task('idle.noop', () => Promise.resolve(1));
      const worker = app.worker({ concurrency: 8, queues: ['default', 'other'] });
      await worker.start();
      await new Promise((r) => setTimeout(r, 1500)); // connections and first claims settle
      // MONITOR tells what clients sent from what scripts ran inside Redis ("lua").
      const sent: string[] = [];
      const onCommand = (_time: string, args: string[], source: string) => {
        if (source !== 'lua' && args[0]?.toLowerCase() !== 'info') sent.push(args[0]!.toLowerCase());
      };
      const before = await commandCounts(admin);
      monitor.on('monitor', onCommand);
      await new Promise((r) => setTimeout(r, 10_000));
      monitor.off('monitor', onCommand);
      const after = await commandCounts(admin);
      const all: Record<string, number> = {};
      for (const [cmd, n] of after) {
        const d = n - (before.get(cmd) ?? 0) - (cmd === 'info' ? 1 : 0);
        if (d > 0) all[cmd] = d;
      }
      const byCommand: Record<string, number> = {};
      for (const c of sent) byCommand[c] = (byCommand[c] ?? 0) + 1;
      console.log(
        `idle worker on 2 queues, 10 s: ${sent.length} commands sent ${JSON.stringify(byCommand)}; ` +
          `INFO commandstats delta incl. script-internal calls ${JSON.stringify(all)}`,
      );
      expect(sent.length).toBeLessThanOrEqual(10);
    } finally {
      await app.close();
      monitor.disconnect();
      admin.disconnect();
      await server.close();
    }
  }, 30_000);
});
