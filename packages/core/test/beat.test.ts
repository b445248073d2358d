import { afterEach, describe, expect, it } from 'vitest';
import { createApp, createMemoryBroker, createMemoryResultBackend, MemoryServer, type App, type Beat } from '../src/index.js';
import { createFakeClock } from '../src/testing/index.js';

const apps: App[] = [];
afterEach(async () => {
  await Promise.all(apps.splice(0).map((a) => a.close()));
});

function world(start = Date.UTC(2026, 10, 24, 10, 0, 0)) {
  const clock = createFakeClock(start);
  const server = new MemoryServer({ clock });
  const backend = createMemoryResultBackend({ clock });
  const make = () => {
    const app = createApp({ broker: createMemoryBroker({ server }), resultBackend: backend, clock });
    apps.push(app);
    return app;
  };
  return { clock, server, make };
}

const ticks = (...beats: Beat[]) => beats.flatMap((b) => b.sent.map((s) => s.tickMs)).sort((a, b) => a - b);

describe('beat', () => {
  it('two beat processes send each 1-second tick exactly once for 10 seconds', async () => {
    const { clock, server, make } = world();
    const a = make().beat({ schedules: { tick: { task: 'tick', everyMs: 1000 } }, leaseMs: 3000, holder: 'A' });
    const b = make().beat({ schedules: { tick: { task: 'tick', everyMs: 1000 } }, leaseMs: 3000, holder: 'B' });
    await a.start();
    await b.start();
    expect([a.isLeader, b.isLeader]).toEqual([true, false]);
    await clock.advance(10_000);
    const sent = ticks(a, b);
    expect(sent).toHaveLength(10);
    expect(new Set(sent).size).toBe(10);
    expect(server.stats('default').ready).toBe(10);
  });

  it('after the leader is killed the other takes over and no tick is sent twice', async () => {
    const { clock, make } = world();
    const a = make().beat({ schedules: { tick: { task: 'tick', everyMs: 1000 } }, leaseMs: 3000, holder: 'A' });
    const b = make().beat({ schedules: { tick: { task: 'tick', everyMs: 1000 } }, leaseMs: 3000, holder: 'B' });
    await a.start();
    await b.start();
    await clock.advance(4_500);
    await a.close({ release: false }); // killed: the lease is left to expire
    await clock.advance(10_000);
    expect(b.isLeader).toBe(true);
    const sent = ticks(a, b);
    expect(new Set(sent).size).toBe(sent.length);
    expect(b.sent.length).toBeGreaterThan(5);
    expect(Math.max(...ticks(a))).toBeLessThan(Math.min(...ticks(b)));
  });

  it('a tick re-sent during a handover is deduplicated by its tick id', async () => {
    const { clock, server } = world();
    const backend = createMemoryResultBackend({ clock });
    const mk = () => {
      const app = createApp({ broker: createMemoryBroker({ server }), resultBackend: backend, clock });
      apps.push(app);
      return app;
    };
    const t0 = Date.UTC(2026, 10, 24, 10, 0, 0);
    const a = mk().beat({ schedules: { t: { task: 't', everyMs: 1000 } }, holder: 'A' });
    await a.start();
    await clock.advance(1000);
    expect(ticks(a)).toEqual([t0 + 1000]);
    await a.close({ release: true });
    // A died after sending tick t0+1000 but before remembering it: the record still says t0.
    await backend.set('beat:last:t', { state: 'PROGRESS', progress: t0, name: 't' }, { ttlMs: 86_400_000 });
    const b = mk().beat({ schedules: { t: { task: 't', everyMs: 1000, catchUp: 'all' } }, holder: 'B' });
    await b.start(); // catches up t0+1000 again: the tick counter makes it a no-op
    await clock.advance(1000);
    expect(ticks(b)).toEqual([t0 + 2000]);
    expect(server.stats('default').ready).toBe(2);
  });

  it('catches up once after downtime, not once per missed tick, unless configured', async () => {
    for (const [mode, expected] of [['once', 1], ['all', 60], ['none', 0]] as const) {
      const { clock, make } = world();
      const first = make().beat({ schedules: { m: { task: 'm', everyMs: 60_000 } } });
      await first.start();
      await clock.advance(60_000);
      await first.close();
      await clock.advance(60 * 60_000); // an hour of downtime
      const second = make().beat({ schedules: { m: { task: 'm', everyMs: 60_000, catchUp: mode } } });
      await second.start();
      expect(second.sent.length).toBe(expected);
    }
  });

  it('follows cron expressions in a time zone', async () => {
    const { clock, make } = world(Date.UTC(2026, 10, 24, 6, 0, 0));
    const b = make().beat({ schedules: { daily: { task: 'report', cron: '0 9 * * *', timezone: 'Europe/Stockholm' } } });
    await b.start();
    await clock.advance(2 * 86_400_000);
    expect(b.sent.map((s) => new Date(s.tickMs).toISOString())).toEqual(['2026-11-24T08:00:00.000Z', '2026-11-25T08:00:00.000Z']);
    expect(b.sent[0]!.taskId).toBe(`beat-daily-${Date.UTC(2026, 10, 24, 8)}`);
  });

  it('refuses a schedule with neither or both of cron and everyMs, and a bad cron expression', () => {
    const { make } = world();
    const app = make();
    expect(() => app.beat({ schedules: { x: { task: 't' } } })).toThrow(TypeError);
    expect(() => app.beat({ schedules: { x: { task: 't', cron: 'nope' } } })).toThrow(/invalid cron/);
  });
});
