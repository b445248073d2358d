import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApp } from '@celeriac/core';
import { requireBinary, startPrivateNats, type PrivateNatsServer } from '@celeriac/test-servers';
import { urlWith } from './helpers.js';

const hasServer = requireBinary('nats-server');

const BEFORE = 600;
const AFTER = 400;

describe.skipIf(!hasServer)('NATS: the server restarts (SIGKILL) in the middle of a run, on a private server', () => {
  let server: PrivateNatsServer;
  beforeAll(async () => {
    server = await startPrivateNats();
  }, 30_000);
  afterAll(async () => {
    await server?.close();
  });

  it(`every task of ${BEFORE} before and ${AFTER} after the restart completes; consumers and delays survive`, async () => {
    const url = urlWith({ prefix: 'restart', visibilityTimeoutMs: 3000 }, server.url);
    const app = createApp({ broker: url, resultBackend: url });
    const done = new Set<number>();
    let runs = 0;
    const task = app.task('restart.work', async (i: number) => {
      runs++;
      await new Promise((r) => setTimeout(r, 2));
      done.add(i);
      return i;
    });
    let reconnected = 0;
    app.on('broker:reconnected', () => {
      reconnected++;
    });
    const worker = app.worker({ concurrency: 8, prefetchMultiplier: 4 });
    try {
      const first = await task.applyAsyncBulk(Array.from({ length: BEFORE }, (_, i) => [i] as [number]));
      const delayed = await task.applyAsync([-1], { countdownMs: 1_500 });
      await worker.start();
      while (done.size < 150) await new Promise((r) => setTimeout(r, 5));
      await server.restart({ mode: 'immediate' });
      const second = await task.applyAsyncBulk(Array.from({ length: AFTER }, (_, i) => [BEFORE + i] as [number]));
      const all = [...first, ...second, delayed];
      const values = await Promise.all(all.map((r) => r.get({ timeoutMs: 60_000 })));
      expect(values.slice(0, BEFORE + AFTER)).toEqual(Array.from({ length: BEFORE + AFTER }, (_, i) => i));
      expect(values[BEFORE + AFTER]).toBe(-1);
      expect(reconnected).toBeGreaterThanOrEqual(1);
      console.log(`restart test: ${BEFORE + AFTER + 1} tasks, ${runs} runs (${runs - done.size} repeated), ${reconnected} reconnect event(s)`);
    } finally {
      await app.close();
    }
  }, 90_000);
});
