import { afterAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { connect } from '@nats-io/transport-node';
import { jetstreamManager } from '@nats-io/jetstream';
import pg from 'pg';
import { chain, chord, createApp, currentTask, group, GroupResult, type App, type Beat } from '@celeriac/core';
import { requireServer, serverUrl } from '@celeriac/test-servers';

/**
 * Issue 8's workflows on real brokers (the memory broker runs the same in core's unit tests):
 * Redis with the Redis result backend, NATS JetStream with its KV result backend, and PostgreSQL as
 * both broker and result backend (one schema).
 */
interface Config {
  name: string;
  kind: 'redis' | 'nats' | 'postgres';
  broker(prefix: string): string;
  backend(prefix: string): string;
  cleanup(prefix: string): Promise<void>;
}

const redisUrl = serverUrl('redis');
const natsUrl = serverUrl('nats');
const postgresUrl = serverUrl('postgres');
const CONFIGS: Config[] = [
  {
    name: 'redis',
    kind: 'redis',
    broker: (p) => `${redisUrl}?prefix=${p}&visibilityTimeoutMs=5000`,
    backend: (p) => `${redisUrl}?prefix=${p}r`,
    async cleanup(p) {
      const r = new Redis(redisUrl);
      let cursor = '0';
      do {
        const [next, keys] = await r.scan(cursor, 'MATCH', `*${p}*`, 'COUNT', 1000);
        cursor = next;
        if (keys.length > 0) await r.del(...keys);
      } while (cursor !== '0');
      r.disconnect();
    },
  },
  {
    name: 'nats',
    kind: 'nats',
    broker: (p) => `${natsUrl}?prefix=${p}&visibilityTimeoutMs=5000`,
    backend: (p) => `${natsUrl}?prefix=${p}`,
    async cleanup(p) {
      const u = new URL(natsUrl);
      const nc = await connect({ servers: `${u.hostname}:${u.port === '' ? 4222 : u.port}` });
      const jsm = await jetstreamManager(nc);
      const names: string[] = [];
      for await (const n of jsm.streams.names()) if (n.startsWith(p) || n.startsWith(`KV_${p}`)) names.push(n);
      for (const n of names) await jsm.streams.delete(n);
      await nc.close();
    },
  },
  {
    name: 'postgres',
    kind: 'postgres',
    broker: (p) => `${postgresUrl}?prefix=${p}&visibilityTimeoutMs=5000`,
    backend: (p) => `${postgresUrl}?prefix=${p}`,
    async cleanup(p) {
      const c = new pg.Client(postgresUrl);
      await c.connect();
      await c.query(`DROP SCHEMA IF EXISTS "${p}" CASCADE`);
      await c.end();
    },
  },
];

const available = new Map<string, boolean>();
for (const c of CONFIGS) available.set(c.name, await requireServer(c.kind));

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

for (const cfg of CONFIGS) {
  describe.skipIf(!available.get(cfg.name))(`workflows on ${cfg.name}`, () => {
    const prefix = `wf${randomBytes(4).toString('hex')}`;
    const apps: App[] = [];
    const make = () => {
      const app = createApp({ broker: cfg.broker(prefix), resultBackend: cfg.backend(prefix) });
      apps.push(app);
      const runs: Record<string, number> = {};
      const count = (n: string) => (runs[n] = (runs[n] ?? 0) + 1);
      const tasks = {
        add: app.task('add', async (a: number, b: number) => (count('add'), a + b)),
        mul: app.task('mul', async (a: number, b: number) => (count('mul'), a * b)),
        sum: app.task('sum', async (xs: number[]) => (count('sum'), xs.reduce((x, y) => x + y, 0))),
        fail: app.task('fail', async (x: number) => {
          count('fail');
          throw new TypeError(`bad ${x}`);
        }),
      };
      return { app, tasks, runs };
    };
    afterAll(async () => {
      await Promise.all(apps.map((a) => a.close()));
      await cfg.cleanup(prefix);
    });

    it('a 3-step chain; a group of 100 restored by id in another app; a racing chord of 1,000 fires once; a failing member fails the chord', async () => {
      const one = make();
      const two = make();
      await one.app.worker({ concurrency: 16 }).start();
      await two.app.worker({ concurrency: 16 }).start();
      const c = await chain(one.tasks.add.s(1, 2), one.tasks.mul.s(10), one.tasks.add.s(5)).applyAsync();
      expect(await c.get({ timeoutMs: 20_000 })).toBe(35);

      const g = await group(Array.from({ length: 100 }, (_, i) => one.tasks.add.s(i, i))).applyAsync();
      const elsewhere = make().app; // another process: only the URLs in common
      const restored = await GroupResult.restore<number>(elsewhere, g.id);
      expect(await restored!.get({ timeoutMs: 20_000 })).toEqual(Array.from({ length: 100 }, (_, i) => 2 * i));

      const r = await chord(Array.from({ length: 1000 }, (_, i) => one.tasks.add.s(i, 1)), one.tasks.sum.s()).applyAsync();
      expect(await r.get({ timeoutMs: 60_000 })).toBe((1000 * 1001) / 2);
      await sleep(300);
      expect((one.runs['sum'] ?? 0) + (two.runs['sum'] ?? 0)).toBe(1);
      expect((one.runs['add'] ?? 0) > 0 && (two.runs['add'] ?? 0) > 0).toBe(true);

      const bad = await chord([one.tasks.add.s(1, 1), one.tasks.fail.s(7), one.tasks.add.s(2, 2)], one.tasks.sum.s()).applyAsync();
      await expect(bad.get({ timeoutMs: 20_000 })).rejects.toMatchObject({ name: 'TypeError', message: expect.stringContaining('bad 7') });
      await sleep(300);
      expect((one.runs['sum'] ?? 0) + (two.runs['sum'] ?? 0)).toBe(1);
    }, 90_000);

    it('two beats send each 1-second tick once; after the leader is killed the other takes over, no tick twice', async () => {
      const schedules = { t: { task: 'add', args: [0, 0], everyMs: 1000 } };
      const a = make().app.beat({ schedules, leaseMs: 1500, holder: 'A' });
      const b = make().app.beat({ schedules, leaseMs: 1500, holder: 'B' });
      await a.start();
      await b.start();
      await sleep(3200);
      await a.close({ release: false }); // killed: its lease expires on its own
      await sleep(4000);
      const ticks = (...bs: Beat[]) => bs.flatMap((x) => x.sent.map((s) => s.tickMs));
      const all = ticks(a, b);
      expect(new Set(all).size).toBe(all.length);
      expect(ticks(a).length).toBeGreaterThanOrEqual(2);
      expect(ticks(b).length).toBeGreaterThanOrEqual(1);
      expect(b.isLeader).toBe(true);
      await b.close();
    }, 30_000);

    it('a 50/s rate limit holds across two workers, the rest waiting in the broker', async () => {
      const starts: number[] = [];
      const mk = () => {
        const app = createApp({ broker: cfg.broker(prefix), resultBackend: cfg.backend(prefix) });
        apps.push(app);
        const t = app.task('limited', async () => void starts.push(Date.now()), { rateLimit: '50/s', queue: 'limited' });
        return { app, t };
      };
      const one = mk();
      const two = mk();
      await one.app.worker({ queues: ['limited'], concurrency: 8 }).start();
      await two.app.worker({ queues: ['limited'], concurrency: 8 }).start();
      const rs = await one.t.applyAsyncBulk(Array.from({ length: 150 }, () => [] as []));
      await Promise.all(rs.map((r) => r.get({ timeoutMs: 30_000 })));
      expect(starts).toHaveLength(150);
      starts.sort((x, y) => x - y);
      const burst = 50;
      const slackMs = 100; // clock reads in two workers
      for (const from of starts) {
        const n = starts.filter((s) => s >= from && s < from + 1000 - slackMs).length;
        expect(n).toBeLessThanOrEqual(50 + burst);
      }
    }, 60_000);

    it('revoke: a delayed task never runs, a running one is aborted, a worker started later still skips it', async () => {
      const p = make();
      let aborted = false;
      const slow = p.app.task(
        'slow',
        async () => {
          const signal = currentTask().signal;
          await new Promise((_, reject) => signal.addEventListener('abort', () => ((aborted = true), reject(signal.reason as Error))));
        },
        { queue: 'rev-run' }, // workers of the other tests consume 'default' and do not know this task
      );
      const later = await p.tasks.add.applyAsync([1, 1], { countdownMs: 1500, queue: 'rev' });
      await later.revoke();
      const queued = await p.tasks.add.applyAsync([2, 2], { queue: 'rev2' });
      await queued.revoke();
      await p.app.worker({ queues: ['rev-run', 'rev'] }).start();
      const running = await slow.delay();
      await sleep(500);
      await running.revoke();
      expect(await running.get({ timeoutMs: 10_000 }).catch((e: { code: string }) => e.code)).toBe('ERR_REVOKED');
      // The state is stored before the broadcast goes out: wait for the running task to hear it.
      for (let i = 0; i < 100 && !aborted; i++) await sleep(50);
      expect(aborted).toBe(true);
      await sleep(2000);
      expect(await later.state()).toBe('REVOKED');
      const fresh = make(); // started after both revokes
      await fresh.app.worker({ queues: ['rev2'] }).start();
      await sleep(1000);
      expect(fresh.runs['add']).toBeUndefined();
      expect(await queued.state()).toBe('REVOKED');
    }, 30_000);

    it("a CPU-bound task is killed by its hard limit in pool 'threads' while the worker keeps serving", async () => {
      process.env['BROKER_URL'] = cfg.broker(prefix);
      process.env['RESULT_BACKEND_URL'] = cfg.backend(prefix);
      const moduleUrl = `${new URL('./fixtures/wf-threads.mjs', import.meta.url).href}?broker=${cfg.name}`;
      const fx = (await import(moduleUrl)) as typeof import('./fixtures/wf-threads.mjs');
      apps.push(fx.app);
      await fx.app.worker({ pool: 'threads', appModule: moduleUrl, concurrency: 2, queues: ['wf-threads'] }).start();
      const stuck = await fx.spin.delay();
      const sums = await Promise.all(Array.from({ length: 10 }, (_, i) => fx.add.delay(i, 1)));
      expect(await Promise.all(sums.map((r) => r.get({ timeoutMs: 20_000 })))).toEqual(Array.from({ length: 10 }, (_, i) => i + 1));
      await expect(stuck.get({ timeoutMs: 20_000 })).rejects.toMatchObject({ code: 'ERR_TIME_LIMIT' });
      expect(await (await fx.add.delay(40, 2)).get({ timeoutMs: 20_000 })).toBe(42);
    }, 60_000);
  });
}
