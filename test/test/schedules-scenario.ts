// The runtime-schedules scenario shared by schedules-redis.int.test.ts and schedules-nats.int.test.ts: what
// issue 26 asks to show, on a real result backend (the memory backend runs the same in core's unit tests).
import { fileURLToPath } from 'node:url';
import { expect } from 'vitest';
import {
  createApp,
  createMemoryBroker,
  currentTask,
  MemoryServer,
  resolveResultBackend,
  type App,
  type ResultBackend,
  type ScheduleEntry,
} from '@celeriac/core';
import { spawnNode } from '../src/spawn.js';

const fixture = fileURLToPath(new URL('./fixtures/schedules-upsert.mjs', import.meta.url));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Processes that upsert one id at once, and the upserts each runs at once. */
const PROCESSES = 3;
const UPSERTS_EACH = 5;
const RUN_MS = 10_000;

/** The tick time of a beat task id `beat-<schedule>-<tickMs>`. */
function tickOf(taskId: string, schedule: string): number {
  const prefix = `beat-${schedule}-`;
  expect(taskId.startsWith(prefix), taskId).toBe(true);
  return Number(taskId.slice(prefix.length));
}

function gaps(ticks: readonly number[]): number[] {
  return ticks.slice(1).map((t, i) => t - ticks[i]!);
}

/**
 * While three beats run — two with the real leader lease (one leads, one stands by) and one whose lease
 * is forced, so it claims every tick against the leader — and a worker counts the task runs:
 * 1. Three OS processes, released together by a barrier (SIGUSR2), upsert the same schedule five times
 *    each at once: exactly one upsert creates it, the other fourteen find it unchanged with the same next
 *    run, and one schedule is stored. The running beats pick it up within a second.
 * 2. For 10 s from then, while a "replica" upserts the same schedule unchanged every 700 ms, each 1-s
 *    tick runs exactly once, on the grid the first upsert set: no tick missing, none twice, none shifted.
 * 3. In the same 10 s: `limit: 3` runs three times; `endAt` stops a schedule; a schedule removed after 3 s
 *    runs no tick after its removal resolved.
 */
export async function runSchedulesScenario(url: string, log: (line: string) => void): Promise<void> {
  const apps: App[] = [];
  const children = [] as ReturnType<typeof spawnNode>[];
  try {
    const server = new MemoryServer();
    const runs = new Map<string, string[]>();
    const worker = createApp({ broker: createMemoryBroker({ server }) });
    apps.push(worker);
    for (const name of ['tick', 'three', 'ends', 'removed']) {
      runs.set(name, []);
      worker.task(name, () => void runs.get(name)!.push(currentTask().id));
    }
    await worker.worker({ concurrency: 8 }).start();

    const beatApp = (backend: ResultBackend) => {
      const app = createApp({ broker: createMemoryBroker({ server }), resultBackend: backend });
      apps.push(app);
      return app;
    };
    const forced = Object.assign(Object.create(await resolveResultBackend(url)) as ResultBackend, {
      acquireLease: () => Promise.resolve(true),
      renewLease: () => Promise.resolve(true),
    });
    const beats = [
      beatApp(await resolveResultBackend(url)).beat({ holder: 'A', leaseMs: 3_000 }),
      beatApp(await resolveResultBackend(url)).beat({ holder: 'B', leaseMs: 3_000 }),
      beatApp(forced).beat({ holder: 'forced' }),
    ];
    for (const b of beats) await b.start();
    expect(beats.map((b) => b.isLeader)).toEqual([true, false, true]);

    // 1. The race between processes.
    for (let i = 0; i < PROCESSES; i++) children.push(spawnNode([fixture, url, 'tick', String(UPSERTS_EACH)]));
    await Promise.all(children.map((c) => c.waitFor(/^ready$/m, 20_000)));
    for (const c of children) c.child.kill('SIGUSR2');
    const upserted = (await Promise.all(children.map((c) => c.waitFor(/^upserted (.*)$/m, 20_000)))).flatMap(
      (m) => JSON.parse(m[1]!) as { status: string; nextRunAt: number }[],
    );
    const started = Date.now();
    expect((await Promise.all(children.map((c) => c.exited))).map((e) => e.code)).toEqual([0, 0, 0]);
    expect(upserted.filter((u) => u.status === 'created')).toHaveLength(1);
    expect(upserted.filter((u) => u.status === 'unchanged')).toHaveLength(PROCESSES * UPSERTS_EACH - 1);
    const tickFirst = upserted[0]!.nextRunAt;
    expect(new Set(upserted.map((u) => u.nextRunAt))).toEqual(new Set([tickFirst]));

    const observer = createApp({ broker: 'memory://', resultBackend: url });
    apps.push(observer);
    expect((await observer.schedules.list()).map((e) => e.id)).toEqual(['tick']);

    // 2. and 3.
    const three = await observer.schedules.upsert('three', { task: 'three', everyMs: 500, limit: 3 });
    const endAt = Date.now() + 2_600;
    const ends = await observer.schedules.upsert('ends', { task: 'ends', everyMs: 500, endAt });
    await observer.schedules.upsert('removed', { task: 'removed', everyMs: 500 });

    let replicating = true;
    const replicaUpserts: { status: string; nextRunAt: number | null }[] = [];
    const replica = (async () => {
      const app = createApp({ broker: 'memory://', resultBackend: url });
      apps.push(app);
      while (replicating) {
        const r = await app.schedules.upsert('tick', { task: 'tick', everyMs: 1000 });
        replicaUpserts.push({ status: r.status, nextRunAt: r.entry.nextRunAt });
        await sleep(700);
      }
    })();

    await sleep(3_000);
    expect(await observer.schedules.remove('removed')).toBe(true);
    const removedAt = Date.now();
    await sleep(started + RUN_MS + 1_000 - Date.now()); // ticks up to first + 9 s, with a second to spare
    replicating = false;
    await replica;
    for (const b of beats) await b.close();
    const stoppedAt = Date.now();
    for (let i = 0; i < 100 && (server.stats('default').ready > 0 || server.stats('default').inFlight > 0); i++) await sleep(50);

    const final = new Map<string, ScheduleEntry>((await observer.schedules.list()).map((e) => [e.id, e]));
    const all = [...runs.values()].flat();
    expect(new Set(all).size).toBe(all.length); // no task id ran twice

    // Each 1-s tick once: from the first upsert's next run, every second, none missing, to the end of the run.
    const tick = runs.get('tick')!.map((id) => tickOf(id, 'tick')).sort((a, b) => a - b);
    expect(tick[0]).toBe(tickFirst);
    expect(new Set(gaps(tick))).toEqual(new Set([1000]));
    expect(tick.length).toBeGreaterThanOrEqual(10);
    expect(tick.at(-1)! + 1000).toBeGreaterThan(stoppedAt - 1_500); // (a tick may be due while the beats close)
    expect(final.get('tick')?.runCount).toBe(tick.length);
    expect(replicaUpserts.length).toBeGreaterThanOrEqual(10);
    expect(replicaUpserts.every((u) => u.status === 'unchanged' && u.nextRunAt !== null && (u.nextRunAt - tickFirst) % 1000 === 0)).toBe(true);

    const threeTicks = runs.get('three')!.map((id) => tickOf(id, 'three')).sort((a, b) => a - b);
    expect(threeTicks).toEqual([0, 1, 2].map((i) => three.entry.nextRunAt! + i * 500));
    expect(final.get('three')).toMatchObject({ runCount: 3, nextRunAt: null });

    const endsTicks = runs.get('ends')!.map((id) => tickOf(id, 'ends')).sort((a, b) => a - b);
    const endsExpected = Math.floor((endAt - ends.entry.nextRunAt!) / 500) + 1;
    expect(endsTicks).toEqual(Array.from({ length: endsExpected }, (_, i) => ends.entry.nextRunAt! + i * 500));
    expect(final.get('ends')).toMatchObject({ runCount: endsExpected, nextRunAt: null });

    const removedTicks = runs.get('removed')!.map((id) => tickOf(id, 'removed'));
    expect(removedTicks.length).toBeGreaterThanOrEqual(4);
    expect(Math.max(...removedTicks)).toBeLessThan(removedAt);
    expect(final.has('removed')).toBe(false);

    const claimed = beats.map((b) => b.sent.length);
    log(
      `tick: ${tick.length} runs, each 1000 ms apart, ${replicaUpserts.length} unchanged upserts meanwhile; ` +
        `three: ${threeTicks.length}; ends: ${endsTicks.length} (none after endAt); removed: ${removedTicks.length} before removal, 0 after; ` +
        `ticks sent by beat A/B/forced: ${claimed.join('/')}`,
    );
  } finally {
    for (const c of children) c.child.kill('SIGKILL');
    await Promise.allSettled(apps.map((a) => a.close()));
  }
}
