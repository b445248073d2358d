import { describe, expect, it } from 'vitest';
import { fileURLToPath } from 'node:url';
// The fixture and this test share core's built dist, as a user's worker would.
import * as fx from './fixtures/thread-app.mjs';

const appModule = fileURLToPath(new URL('./fixtures/thread-app.mjs', import.meta.url));

describe("pool: 'threads'", () => {
  it('terminates a CPU-bound task at its hard time limit while the worker keeps serving', async () => {
    const { app } = fx;
    const events: string[] = [];
    app.on('task:failed', (e) => void events.push(`${e.name}:${e.error.code}`));
    const w = app.worker({ pool: 'threads', appModule, concurrency: 2 });
    await w.start();
    const stuck = await fx.spin.delay();
    const sums = await Promise.all(Array.from({ length: 20 }, (_, i) => fx.add.delay(i, 1)));
    expect(await Promise.all(sums.map((r) => r.get({ timeoutMs: 10_000 })))).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
    await expect(stuck.get({ timeoutMs: 10_000 })).rejects.toMatchObject({ code: 'ERR_TIME_LIMIT' });
    // The replaced thread serves the next tasks.
    const after = await Promise.all([fx.add.delay(40, 2), fx.where.delay()]);
    expect(await after[0].get({ timeoutMs: 10_000 })).toBe(42);
    const place = (await after[1].get({ timeoutMs: 10_000 })) as { threadId: number; taskId: string };
    expect(place.threadId).toBeGreaterThan(0); // ran in a worker thread, not the main one
    expect(place.taskId).toBe(after[1].id);
    // UnrecoverableError crosses the thread by name and is not retried; progress crosses back.
    const f = await fx.fatal.delay();
    await expect(f.get({ timeoutMs: 10_000 })).rejects.toMatchObject({ name: 'UnrecoverableError' });
    const p = await fx.progress.delay();
    expect(await p.get({ timeoutMs: 10_000 })).toBe('ok');
    // A kwargs: true handler gets its kwargs in the thread too.
    const g = await fx.greet.applyAsync(['ann'], { kwargs: { greeting: 'hello' } });
    const greeted = await g.get({ timeoutMs: 10_000 });
    expect(greeted.text).toBe('hello ann');
    expect(greeted.threadId).toBeGreaterThan(0);
    expect(events).toContain('spin:ERR_TIME_LIMIT');
    expect(events.filter((e) => e.startsWith('fatal'))).toHaveLength(1);
    await app.close();
  });
});
