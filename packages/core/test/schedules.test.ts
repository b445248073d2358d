import { afterEach, describe, expect, it } from 'vitest';
import {
  CeleriacError,
  createApp,
  createMemoryBroker,
  createMemoryResultBackend,
  MemoryServer,
  type App,
  type Beat,
  type Logger,
  type MemoryResultBackend,
  type ResultBackend,
  type RuntimeSchedule,
} from '../src/index.js';
import { createFakeClock, type FakeClock } from '../src/testing/index.js';

const apps: App[] = [];
afterEach(async () => {
  await Promise.all(apps.splice(0).map((a) => a.close()));
});

const T0 = Date.UTC(2026, 10, 24, 10, 0, 0);

/** Apps sharing one memory broker server and one memory result backend, on a fake clock. */
function world(start = T0) {
  const clock = createFakeClock(start);
  const server = new MemoryServer({ clock });
  const backend = createMemoryResultBackend({ clock });
  /** Task ids published by any app of this world: what the broker got, not what a beat says it sent. */
  const published: string[] = [];
  const make = (opts: { backend?: ResultBackend; logger?: Logger } = {}) => {
    const app = createApp({
      broker: createMemoryBroker({ server }),
      resultBackend: opts.backend ?? backend,
      clock,
      ...(opts.logger === undefined ? {} : { logger: opts.logger }),
    });
    app.on('task:sent', (e) => void published.push(e.taskId));
    apps.push(app);
    return app;
  };
  return { clock, server, backend, make, published };
}

/** The tick times of schedule `id` among published task ids, sorted. */
function ticksOf(published: readonly string[], id: string): number[] {
  const prefix = `beat-${id}-`;
  return published.filter((t) => t.startsWith(prefix)).map((t) => Number(t.slice(prefix.length))).sort((a, b) => a - b);
}

function every(ms: number, from: number, n: number): number[] {
  return Array.from({ length: n }, (_, i) => from + (i + 1) * ms);
}

/** Start the beats and run what their start made due now (timers of 0 ms run when the clock is advanced). */
async function startBeats(clock: FakeClock, ...beats: Beat[]): Promise<void> {
  for (const b of beats) await b.start();
  await clock.advance(0);
}

describe('app.schedules: validation at the call', () => {
  const { make } = world();

  it.each<[string, unknown, RegExp, 'TypeError' | 'RangeError']>([
    ['a bad cron expression', { task: 't', cron: 'every monday' }, /invalid cron expression/, 'TypeError'],
    ['a cron field out of range', { task: 't', cron: '61 * * * *' }, /invalid cron expression/, 'TypeError'],
    ['an unknown time zone', { task: 't', cron: '0 9 * * *', timezone: 'Mars/Olympus' }, /unknown time zone "Mars\/Olympus"/, 'RangeError'],
    ['everyMs 0', { task: 't', everyMs: 0 }, /everyMs must be a whole number of milliseconds > 0/, 'RangeError'],
    ['everyMs < 0', { task: 't', everyMs: -5 }, /everyMs/, 'RangeError'],
    ['a fractional everyMs', { task: 't', everyMs: 1.5 }, /everyMs/, 'RangeError'],
    ['neither cron nor everyMs', { task: 't' }, /exactly one of cron and everyMs/, 'TypeError'],
    ['both cron and everyMs', { task: 't', cron: '* * * * *', everyMs: 5 }, /exactly one of cron and everyMs/, 'TypeError'],
    ['no task', { everyMs: 5 }, /task must be a non-empty task name/, 'TypeError'],
    ['an unknown field', { task: 't', everyMs: 5, every: 5 }, /unknown field "every"/, 'TypeError'],
    ['args that are not an array', { task: 't', everyMs: 5, args: 'x' }, /args must be an array/, 'TypeError'],
    ['a Date in args', { task: 't', everyMs: 5, args: [new Date()] }, /only plain objects/, 'TypeError'],
    ['NaN in args', { task: 't', everyMs: 5, args: [Number.NaN] }, /NaN/, 'TypeError'],
    ['a tick option', { task: 't', everyMs: 5, options: { taskId: 'x' } }, /options.taskId is not allowed/, 'TypeError'],
    ['a bad priority', { task: 't', everyMs: 5, options: { priority: 10 } }, /priority/, 'RangeError'],
    ['a time zone with everyMs', { task: 't', everyMs: 5, timezone: 'UTC' }, /timezone applies to cron only/, 'TypeError'],
    ['a bad catchUp', { task: 't', everyMs: 5, catchUp: 'some' }, /catchUp/, 'TypeError'],
    ['a bad startAt', { task: 't', everyMs: 5, startAt: 'tomorrow' }, /startAt must be a Date/, 'RangeError'],
    ['endAt before startAt', { task: 't', everyMs: 5, startAt: T0 + 10, endAt: T0 }, /endAt is before startAt/, 'RangeError'],
    ['limit 0', { task: 't', everyMs: 5, limit: 0 }, /limit must be a whole number >= 1/, 'RangeError'],
    ['a cron with no future time', { task: 't', cron: '0 0 30 2 *' }, /has no time after now/, 'RangeError'],
  ])('%s throws at the call', (_what, schedule, message, type) => {
    const app = make();
    let thrown: unknown;
    try {
      // Not awaited: the error is thrown by the call itself, before any promise.
      void app.schedules.upsert('s', schedule as RuntimeSchedule);
    } catch (err) {
      thrown = err;
    }
    expect(thrown).toBeInstanceOf(type === 'TypeError' ? TypeError : RangeError);
    expect((thrown as Error).message).toMatch(message);
  });

  it('a bad id throws at the call, for every operation', () => {
    const app = make();
    for (const id of ['', 'x'.repeat(201), 7 as unknown as string]) {
      expect(() => void app.schedules.upsert(id, { task: 't', everyMs: 5 })).toThrow(TypeError);
      expect(() => void app.schedules.remove(id)).toThrow(TypeError);
      expect(() => void app.schedules.get(id)).toThrow(TypeError);
    }
  });
});

describe('app.schedules: refusals', () => {
  it('a backend without the schedules capability is refused with ERR_UNSUPPORTED, an app without a backend with ERR_NO_RESULT_BACKEND', async () => {
    const { make, backend } = world();
    const plain = Object.assign(Object.create(backend) as MemoryResultBackend, {
      capabilities: { ...backend.capabilities, schedules: false },
      close: () => Promise.resolve(),
    });
    const app = make({ backend: plain });
    await expect(app.schedules.list()).rejects.toMatchObject({ code: 'ERR_UNSUPPORTED' });
    await expect(app.schedules.upsert('x', { task: 't', everyMs: 5 })).rejects.toBeInstanceOf(CeleriacError);
    const none = createApp({ broker: 'redis://127.0.0.1:1' });
    await expect(none.schedules.list()).rejects.toMatchObject({ code: 'ERR_NO_RESULT_BACKEND' });
    await none.close();
    // A beat with nothing static to send needs the capability.
    await expect(app.beat({}).start()).rejects.toMatchObject({ code: 'ERR_UNSUPPORTED' });
  });
});

describe('runtime schedules under beat (memory, fake clock)', () => {
  it('three apps upsert one id at once: one schedule; two beats send each 1-second tick once over 10 s', async () => {
    const { clock, make, published } = world();
    const writers = [make(), make(), make()];
    const results = await Promise.all(writers.map((w) => w.schedules.upsert('tick', { task: 'tick', everyMs: 1000 })));
    expect(results.map((r) => r.status).sort()).toEqual(['created', 'unchanged', 'unchanged']);
    expect((await writers[0]!.schedules.list()).map((e) => e.id)).toEqual(['tick']);
    const a = make().beat({ leaseMs: 3000, holder: 'A' });
    const b = make().beat({ leaseMs: 3000, holder: 'B' });
    await startBeats(clock, a, b);
    expect([a.isLeader, b.isLeader]).toEqual([true, false]);
    await clock.advance(10_000);
    expect(ticksOf(published, 'tick')).toEqual(every(1000, T0, 10));
    expect(new Set(published).size).toBe(published.length);
    const [entry] = await writers[1]!.schedules.list();
    expect(entry).toMatchObject({ id: 'tick', runCount: 10, lastRunAt: T0 + 10_000, nextRunAt: T0 + 11_000 });
  });

  it('two beats that both think they lead (a split lease) still send each tick once: the claim is a compare-and-set', async () => {
    const { clock, make, backend, published } = world();
    const alwaysLeader = () =>
      Object.assign(Object.create(backend) as MemoryResultBackend, {
        acquireLease: () => Promise.resolve(true),
        renewLease: () => Promise.resolve(true),
        close: () => Promise.resolve(),
      });
    await make().schedules.upsert('tick', { task: 'tick', everyMs: 1000 });
    const a = make({ backend: alwaysLeader() }).beat({ holder: 'A' });
    const b = make({ backend: alwaysLeader() }).beat({ holder: 'B' });
    await startBeats(clock, a, b);
    expect([a.isLeader, b.isLeader]).toEqual([true, true]);
    await clock.advance(10_000);
    expect(ticksOf(published, 'tick')).toEqual(every(1000, T0, 10));
    expect(a.sent.length + b.sent.length).toBe(10);
  });

  it('a running beat picks up an upsert within one sync, and static schedules keep working beside it', async () => {
    const { clock, make, published } = world();
    const beat = make().beat({ schedules: { fixed: { task: 'fixed', everyMs: 2000 } } });
    await startBeats(clock, beat);
    await clock.advance(500);
    await make().schedules.upsert('late', { task: 'late', everyMs: 1000 });
    await clock.advance(5_500);
    expect(ticksOf(published, 'late')).toEqual(every(1000, T0 + 500, 5));
    expect(ticksOf(published, 'fixed')).toEqual(every(2000, T0, 3));
  });

  it('an unchanged upsert does not shift the next run nor reset the run count; a changed one takes effect from its next tick', async () => {
    const { clock, make, published } = world();
    const writer = make();
    await writer.schedules.upsert('s', { task: 's', everyMs: 1000 });
    const beat = make().beat();
    await startBeats(clock, beat);
    await clock.advance(2_500);
    // Every replica booting again upserts the same definition: nothing moves.
    for (let i = 0; i < 5; i++) {
      const r = await make().schedules.upsert('s', { task: 's', everyMs: 1000 });
      expect(r.status).toBe('unchanged');
      expect([r.entry.nextRunAt, r.entry.runCount]).toEqual([T0 + 3000, 2]);
      await clock.advance(100);
    }
    await clock.advance(500); // now T0 + 3500
    expect(ticksOf(published, 's')).toEqual(every(1000, T0, 3));
    const changed = await writer.schedules.upsert('s', { task: 's', everyMs: 5000 });
    expect(changed.status).toBe('changed');
    expect([changed.entry.nextRunAt, changed.entry.runCount]).toEqual([T0 + 8500, 3]);
    await clock.advance(10_000);
    expect(ticksOf(published, 's')).toEqual([...every(1000, T0, 3), T0 + 8500, T0 + 13_500]);
  });

  it('a change to an earlier next run is picked up within one sync', async () => {
    const { clock, make, published } = world();
    const writer = make();
    await writer.schedules.upsert('s', { task: 's', everyMs: 3_600_000 });
    await startBeats(clock, make().beat());
    await clock.advance(1_000);
    await writer.schedules.upsert('s', { task: 's', everyMs: 2_000 });
    await clock.advance(4_000);
    expect(ticksOf(published, 's')).toEqual([T0 + 3000, T0 + 5000]);
  });

  it('remove stops a schedule within a tick: nothing is sent after remove resolves', async () => {
    const { clock, make, published } = world();
    const writer = make();
    await writer.schedules.upsert('s', { task: 's', everyMs: 1000 });
    await startBeats(clock, make().beat({ syncMs: 60_000 }));
    await clock.advance(3_000);
    expect(await writer.schedules.remove('s')).toBe(true);
    const before = ticksOf(published, 's');
    // The beat does not even sync in this time: its claim of the next tick fails on the missing record.
    await clock.advance(10_000);
    expect(ticksOf(published, 's')).toEqual(before);
    expect(before).toEqual(every(1000, T0, 3));
    expect(await writer.schedules.list()).toEqual([]);
  });

  it('limit: 3 runs three times, then the schedule stays finished, even when every replica upserts it again', async () => {
    const { clock, make, published } = world();
    const writer = make();
    await writer.schedules.upsert('three', { task: 't', everyMs: 1000, limit: 3 });
    await startBeats(clock, make().beat());
    await clock.advance(10_000);
    expect(ticksOf(published, 'three')).toEqual(every(1000, T0, 3));
    const again = await writer.schedules.upsert('three', { task: 't', everyMs: 1000, limit: 3 });
    expect(again).toMatchObject({ status: 'unchanged', entry: { runCount: 3, nextRunAt: null, lastRunAt: T0 + 3000 } });
    await clock.advance(5_000);
    expect(ticksOf(published, 'three')).toHaveLength(3);
    // Raising the limit counts the runs already made.
    const raised = await writer.schedules.upsert('three', { task: 't', everyMs: 1000, limit: 4 });
    expect(raised.entry).toMatchObject({ runCount: 3, nextRunAt: T0 + 16_000 });
    await clock.advance(5_000);
    expect(ticksOf(published, 'three')).toEqual([...every(1000, T0, 3), T0 + 16_000]);
  });

  it('endAt stops it; startAt starts it, with everyMs ticks on the startAt grid', async () => {
    const { clock, make, published } = world();
    const writer = make();
    await writer.schedules.upsert('ends', { task: 't', everyMs: 1000, endAt: T0 + 3_500 });
    await writer.schedules.upsert('starts', { task: 't', everyMs: 1000, startAt: new Date(T0 + 5_250) });
    await writer.schedules.upsert('window', { task: 't', everyMs: 500, startAt: T0 - 10_100, endAt: new Date(T0 + 1_000).toISOString() });
    await startBeats(clock, make().beat());
    await clock.advance(8_000);
    expect(ticksOf(published, 'ends')).toEqual(every(1000, T0, 3));
    expect(ticksOf(published, 'starts')).toEqual([T0 + 5_250, T0 + 6_250, T0 + 7_250]);
    expect(ticksOf(published, 'window')).toEqual([T0 + 400, T0 + 900]);
    expect((await writer.schedules.get('ends'))?.nextRunAt).toBeNull();
  });

  it('after downtime: catchUp once sends the latest missed tick, all every one, none nothing — and a restarted beat sends none again', async () => {
    for (const [mode, expected] of [['once', 1], ['all', 60], ['none', 0]] as const) {
      const { clock, make, published } = world();
      const writer = make();
      await writer.schedules.upsert('m', { task: 'm', everyMs: 60_000, catchUp: mode });
      const first = make().beat();
      await startBeats(clock, first);
      await clock.advance(60_000);
      await first.close();
      expect(ticksOf(published, 'm')).toEqual([T0 + 60_000]);
      await clock.advance(60 * 60_000); // an hour without a beat
      const second = make().beat();
      await startBeats(clock, second);
      const caught = ticksOf(published, 'm').slice(1);
      expect(caught).toHaveLength(expected);
      if (mode === 'once') expect(caught).toEqual([T0 + 61 * 60_000]);
      const entry = await writer.schedules.get('m');
      expect(entry).toMatchObject({ runCount: 1 + expected, nextRunAt: T0 + 62 * 60_000 });
      await second.close();
      // Restarted right away: the stored next run says what is due, nothing is sent again.
      const third = make().beat();
      await startBeats(clock, third);
      await clock.advance(1_000);
      expect(ticksOf(published, 'm')).toHaveLength(1 + expected);
      expect(new Set(published).size).toBe(published.length);
    }
  });

  it('after the leader is killed the other takes over: no tick twice, and only the ticks of the handover are missed', async () => {
    const { clock, make, published } = world();
    await make().schedules.upsert('s', { task: 's', everyMs: 1000, catchUp: 'none' });
    const a = make().beat({ leaseMs: 3000, holder: 'A' });
    const b = make().beat({ leaseMs: 3000, holder: 'B' });
    await startBeats(clock, a, b);
    await clock.advance(4_500);
    await a.close({ release: false }); // killed: the lease expires on its own
    await clock.advance(10_000);
    expect(b.isLeader).toBe(true);
    const sent = ticksOf(published, 's');
    expect(new Set(sent).size).toBe(sent.length);
    expect(sent.slice(0, 4)).toEqual(every(1000, T0, 4));
    expect(sent.at(-1)).toBe(T0 + 14_000);
    expect(b.sent.length).toBeGreaterThan(5);
  });

  it('a runtime schedule with the name of a static one is ignored by that beat, with a warning', async () => {
    const { clock, make, published } = world();
    const warnings: string[] = [];
    const logger: Logger = { debug: () => undefined, info: () => undefined, error: () => undefined, warn: (m) => void warnings.push(m) };
    await make().schedules.upsert('same', { task: 'runtime', everyMs: 1000 });
    await startBeats(clock, make({ logger }).beat({ schedules: { same: { task: 'static', everyMs: 2000 } } }));
    await clock.advance(4_000);
    expect(ticksOf(published, 'same')).toEqual(every(2000, T0, 2));
    expect(warnings.filter((w) => w.includes('static schedule of the same name'))).toHaveLength(1);
  });

  it('records this version cannot read are skipped by list and the beat, refused by get and upsert, and removable', async () => {
    const { clock, make, backend, published } = world();
    await backend.putSchedule('future', '{"v":2,"shape":"new"}', 0);
    const app = make();
    await app.schedules.upsert('ok', { task: 'ok', everyMs: 1000 });
    expect((await app.schedules.list()).map((e) => e.id)).toEqual(['ok']);
    await expect(app.schedules.get('future')).rejects.toMatchObject({ code: 'ERR_SERIALIZATION' });
    await startBeats(clock, make().beat());
    await clock.advance(2_000);
    expect(ticksOf(published, 'ok')).toHaveLength(2);
    // An upsert never overwrites what it cannot read (a newer version's record, during a rolling upgrade).
    await expect(app.schedules.upsert('future', { task: 'f', everyMs: 1000 })).rejects.toMatchObject({ code: 'ERR_SERIALIZATION' });
    expect((await backend.getSchedule('future'))?.data).toBe('{"v":2,"shape":"new"}');
    expect(await app.schedules.remove('future')).toBe(true);
    expect((await app.schedules.upsert('future', { task: 'f', everyMs: 1000 })).status).toBe('created');
  });
});

describe('runtime schedules: time zones and daylight saving (croner, fake clock)', () => {
  it('a 02:30 daily job runs once at 03:00 on the spring-forward day, and once (the first 02:30) on the fall-back day', async () => {
    // Europe/Stockholm: 2026-03-29 02:00 → 03:00 (CET → CEST); 2026-10-25 03:00 → 02:00 (CEST → CET).
    for (const [start, expected] of [
      [Date.UTC(2026, 2, 27, 12), ['2026-03-28T01:30:00.000Z', '2026-03-29T01:00:00.000Z', '2026-03-30T00:30:00.000Z']],
      [Date.UTC(2026, 9, 23, 12), ['2026-10-24T00:30:00.000Z', '2026-10-25T00:30:00.000Z', '2026-10-26T01:30:00.000Z']],
    ] as const) {
      const { clock, make, published } = world(start);
      await make().schedules.upsert('nightly', { task: 'n', cron: '30 2 * * *', timezone: 'Europe/Stockholm' });
      // Long sync and lease periods: this test is about cron times, and three days of 1-s timers are slow on a fake clock.
      await startBeats(clock, make().beat({ syncMs: 3_600_000, leaseMs: 3_600_000 }));
      await clock.advance(3 * 86_400_000);
      expect(ticksOf(published, 'nightly').map((t) => new Date(t).toISOString())).toEqual(expected);
    }
  });

  it('an hourly job runs every real hour through both transitions (23 ticks on the short day, 25 on the long one)', async () => {
    for (const [day, n] of [[Date.UTC(2026, 2, 28, 23), 23], [Date.UTC(2026, 9, 24, 22), 25]] as const) {
      const { clock, make, published } = world(day - 1);
      await make().schedules.upsert('hourly', { task: 'h', cron: '0 * * * *', timezone: 'Europe/Stockholm' });
      await startBeats(clock, make().beat({ syncMs: 3_600_000, leaseMs: 3_600_000 }));
      await clock.advance(n * 3_600_000);
      const ticks = ticksOf(published, 'hourly');
      expect(ticks).toHaveLength(n); // one local day
      expect(ticks.every((t, i) => i === 0 || t - ticks[i - 1]! === 3_600_000)).toBe(true);
    }
  });
});
