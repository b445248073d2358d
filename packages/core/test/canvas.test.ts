import { afterEach, describe, expect, expectTypeOf, it } from 'vitest';
import {
  chain,
  chord,
  createApp,
  createMemoryBroker,
  createMemoryResultBackend,
  group,
  GroupResult,
  MemoryServer,
  type App,
  type AsyncResult,
} from '../src/index.js';
import { createFakeClock, type FakeClock } from '../src/testing/index.js';

const apps: App[] = [];
afterEach(async () => {
  await Promise.all(apps.splice(0).map((a) => a.close()));
});

function world() {
  const clock = createFakeClock();
  const server = new MemoryServer({ clock });
  const backend = createMemoryResultBackend({ clock });
  const make = () => {
    const app = createApp({ broker: createMemoryBroker({ server }), resultBackend: backend, clock });
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
      report: app.task('report', async (day: string) => (count('report'), `report for ${day}`)),
      email: app.task('email', async (body: string, to: string) => (count('email'), `sent "${body}" to ${to}`)),
      onError: app.task('on.error', async (taskId: string, error: { message: string }) => (count('on.error'), `${taskId}: ${error.message}`)),
      constant: app.task('constant', async () => (count('constant'), 'k')),
    };
    return { app, tasks, runs };
  };
  return { clock, server, backend, make };
}

async function settle(clock: FakeClock, rounds = 30): Promise<void> {
  for (let i = 0; i < rounds; i++) await clock.flush();
}

describe('canvas', () => {
  it('a 3-step chain passes each result on and resolves to the last one', async () => {
    const { clock, make } = world();
    const { app, tasks } = make();
    await app.worker().start();
    const c = chain(tasks.add.s(1, 2), tasks.mul.s(10), tasks.add.s(5));
    const r = await c.applyAsync();
    expectTypeOf(r).toEqualTypeOf<AsyncResult<number>>();
    await settle(clock);
    expect(await r.get({ timeoutMs: 10 })).toBe(35); // ((1 + 2) * 10) + 5
  });

  it("the seed's chain: daily_report | send_email, with an immutable step", async () => {
    const { clock, make } = world();
    const { app, tasks } = make();
    await app.worker().start();
    const r = await chain(tasks.report.s('2026-11-24'), tasks.email.s('ops@example.com'), tasks.constant.si()).applyAsync();
    await settle(clock);
    expect(await r.get({ timeoutMs: 10 })).toBe('k');
    const r2 = await chain(tasks.report.s('mon'), tasks.email.s('a@b')).applyAsync();
    await settle(clock);
    expect(await r2.get({ timeoutMs: 10 })).toBe('sent "report for mon" to a@b');
  });

  it('a failed chain step stops the chain, fails the rest with its error and runs its errback', async () => {
    const { clock, make } = world();
    const { app, tasks, runs } = make();
    await app.worker().start();
    const r = await chain(tasks.add.s(1, 1), tasks.fail.s().linkError(tasks.onError.s()), tasks.mul.s(3)).applyAsync();
    await settle(clock);
    await expect(r.get({ timeoutMs: 10 })).rejects.toMatchObject({ name: 'TypeError', message: 'bad 2' });
    expect(runs['mul']).toBeUndefined();
    expect(runs['on.error']).toBe(1);
  });

  it('link runs a callback with the result', async () => {
    const { clock, make } = world();
    const { app, tasks, runs } = make();
    await app.worker().start();
    const r = await tasks.add.s(2, 2).link(tasks.mul.s(100)).applyAsync();
    await settle(clock);
    expect(await r.get({ timeoutMs: 10 })).toBe(4);
    expect(runs['mul']).toBe(1);
  });

  it('a group of 100 runs in parallel, results in order, restorable by id from another app', async () => {
    const { clock, make } = world();
    const { app, tasks } = make();
    await app.worker({ concurrency: 16 }).start();
    const g = await group(Array.from({ length: 100 }, (_, i) => tasks.add.s(i, i))).applyAsync();
    await settle(clock);
    expect(await g.get({ timeoutMs: 10 })).toEqual(Array.from({ length: 100 }, (_, i) => 2 * i));
    const other = make().app; // another process sharing the broker and result backend
    const restored = await GroupResult.restore<number>(other, g.id);
    expect(restored?.results.map((r) => r.id)).toEqual(g.results.map((r) => r.id));
    expect(await restored!.get({ timeoutMs: 10 })).toHaveLength(100);
    expect(await restored!.completedCount()).toBe(100);
    expect(await GroupResult.restore(other, 'no-such-group')).toBeUndefined();
  });

  it('a chord of 1,000 runs its callback exactly once with two workers racing', async () => {
    const { clock, make } = world();
    const one = make();
    const two = make();
    await one.app.worker({ concurrency: 8 }).start();
    await two.app.worker({ concurrency: 8 }).start();
    const r = await chord(
      Array.from({ length: 1000 }, (_, i) => one.tasks.add.s(i, 1)),
      one.tasks.sum.s(),
    ).applyAsync();
    await settle(clock, 200);
    expect(await r.get({ timeoutMs: 10 })).toBe((1000 * 1001) / 2);
    expect((one.runs['sum'] ?? 0) + (two.runs['sum'] ?? 0)).toBe(1);
    expect((one.runs['add'] ?? 0) + (two.runs['add'] ?? 0)).toBe(1000);
    expect(one.runs['add']! > 0 && two.runs['add']! > 0).toBe(true);
  });

  it('a failing chord member fails the chord and never runs the callback', async () => {
    const { clock, make } = world();
    const { app, tasks, runs } = make();
    await app.worker().start();
    const r = await chord([tasks.add.s(1, 1), tasks.fail.s(7), tasks.add.s(2, 2)], tasks.sum.s()).applyAsync();
    await settle(clock);
    await expect(r.get({ timeoutMs: 10 })).rejects.toMatchObject({ name: 'TypeError', message: expect.stringContaining('bad 7') });
    expect(runs['sum']).toBeUndefined();
  });

  it('an empty chord runs its callback with no results', async () => {
    const { clock, make } = world();
    const { app, tasks } = make();
    await app.worker().start();
    const r = await chord([], tasks.sum.s()).applyAsync();
    await settle(clock);
    expect(await r.get({ timeoutMs: 10 })).toBe(0);
  });
});
