import { createApp, type App } from '@celeriac/core';
import { spawn, type ChildProcess } from 'node:child_process';
import { Redis } from 'ioredis';
import { describe, expect, it } from 'vitest';
import { requireServer, startPrivateRedis, type PrivateServer } from '@celeriac/test-servers';

// Fault tests run on a private redis-server (kill -9 and restart), never the shared one. The shared
// server's presence gates them like every Redis integration test.
const ok = await requireServer('redis');
const FIXTURE = new URL('./fixtures/crash-worker.mjs', import.meta.url).pathname;
const TASKS = 2000;
const CONCURRENCY = 8;
const MULTIPLIER = 4;

interface Proc {
  child: ChildProcess;
  lines: string[];
  waitFor(prefix: string, timeoutMs: number): Promise<string>;
  exited: Promise<number | null>;
}

function startWorker(url: string, prefix: string): Proc {
  const child = spawn(process.execPath, [FIXTURE, url, prefix, String(CONCURRENCY), String(MULTIPLIER), '10'], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const lines: string[] = [];
  const waiters: { prefix: string; resolve: (l: string) => void }[] = [];
  let buf = '';
  child.stdout!.on('data', (chunk: Buffer) => {
    buf += chunk.toString();
    for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      lines.push(line);
      for (const w of [...waiters]) {
        if (line.startsWith(w.prefix)) {
          waiters.splice(waiters.indexOf(w), 1);
          w.resolve(line);
        }
      }
    }
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return {
    child,
    lines,
    exited,
    waitFor: (prefix, timeoutMs) => {
      const seen = lines.find((l) => l.startsWith(prefix));
      if (seen !== undefined) return Promise.resolve(seen);
      return new Promise((resolve, reject) => {
        const t = setTimeout(() => reject(new Error(`worker printed no "${prefix}" line within ${timeoutMs} ms`)), timeoutMs);
        waiters.push({
          prefix,
          resolve: (l) => {
            clearTimeout(t);
            resolve(l);
          },
        });
        void exited.then((code) => reject(new Error(`worker exited (${String(code)}) before printing "${prefix}"`)));
      });
    },
  };
}

async function stop(p: Proc): Promise<void> {
  if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGTERM');
  await p.exited;
}

/** Enqueue TASKS tasks, SIGKILL a worker holding a full prefetch, let a second one finish. */
async function crashRun(server: PrivateServer, prefix: string, midRun?: (app: App, worker: Proc) => Promise<void>): Promise<void> {
  const producer = createApp({
    broker: `${server.url}?prefix=${prefix}&visibilityTimeoutMs=2000`,
    resultBackend: `${server.url}?prefix=${prefix}-results`,
  });
  const admin = new Redis(server.url);
  admin.on('error', () => undefined); // the restart variant kills the server under it
  const workers: Proc[] = [];
  try {
    const task = producer.task('crash.work', (i: number) => Promise.resolve(i));
    const results = await task.applyAsyncBulk(Array.from({ length: TASKS }, (_, i) => [i] as [number]));

    const a = startWorker(server.url, prefix);
    workers.push(a);
    const held = await a.waitFor('HELD ', 30_000);
    a.child.kill('SIGKILL');
    await a.exited;
    const [, heldN, , inFlightN] = held.split(' ');
    expect(Number(heldN)).toBeGreaterThanOrEqual(CONCURRENCY * MULTIPLIER);
    expect(Number(inFlightN)).toBeGreaterThanOrEqual(CONCURRENCY * MULTIPLIER);
    const broker = await producer.getBroker();
    const leftInFlight = (await broker.stats('default')).inFlight;
    expect(leftInFlight).toBeGreaterThanOrEqual(CONCURRENCY * MULTIPLIER);

    const b = startWorker(server.url, prefix);
    workers.push(b);
    await b.waitFor('READY', 30_000);
    if (midRun !== undefined) await midRun(producer, b);

    const values = await Promise.all(results.map((r) => r.get({ timeoutMs: 60_000 })));
    expect(values).toEqual(Array.from({ length: TASKS }, (_, i) => i));
    const states = await Promise.all(results.map((r) => r.state()));
    expect(states.filter((s) => s !== 'SUCCESS')).toEqual([]);

    const runs = await admin.hgetall(`${prefix}-runs`);
    const counts = Object.values(runs).map(Number);
    expect(Object.keys(runs)).toHaveLength(TASKS);
    const duplicates = counts.reduce((n, c) => n + c - 1, 0);
    const stats = await broker.stats('default');
    console.log(
      `crash test (${prefix}): ${TASKS} tasks all SUCCESS; worker killed holding ${heldN} (${inFlightN} in flight in Redis, ` +
        `${leftInFlight} leases left behind); ${duplicates} duplicate runs; final stats ${JSON.stringify(stats)}`,
    );
    expect(stats).toEqual({ ready: 0, delayed: 0, inFlight: 0, dead: 0 });
  } finally {
    await Promise.allSettled(workers.map(stop));
    await producer.close();
    admin.disconnect();
  }
}

describe.skipIf(!ok)('crash: a worker killed with SIGKILL loses nothing', () => {
  it(`${TASKS} tasks, a worker killed holding concurrency × prefetchMultiplier deliveries`, async () => {
    const server = await startPrivateRedis({ appendonly: true });
    try {
      await crashRun(server, 'crash');
    } finally {
      await server.close();
    }
  }, 90_000);

  it(`the same across a Redis restart mid-run (appendonly yes)`, async () => {
    const server = await startPrivateRedis({ appendonly: true });
    try {
      await crashRun(server, 'restart', async (app, worker) => {
        // Let the second worker get going, then kill -9 Redis and bring it back on the same data.
        const broker = await app.getBroker();
        for (let i = 0; i < 200; i++) {
          const s = await broker.stats('default');
          if (s.ready < TASKS / 2) break;
          await new Promise((r) => setTimeout(r, 25));
        }
        await server.stop({ mode: 'immediate' });
        await new Promise((r) => setTimeout(r, 300));
        await server.start();
        // The worker's consumer resumes by itself and says so (core's broker:reconnected event).
        await worker.waitFor('RECONNECTED', 30_000);
      });
    } finally {
      await server.close();
    }
  }, 90_000);
});
