import { createApp, type App, type AsyncResult } from '@celeriac/core';
import { requirePostgresBinaries, requireServer, startPrivatePostgres, startTcpProxy } from '@celeriac/test-servers';
import { spawn, type ChildProcess } from 'node:child_process';
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { quoteIdent } from '../src/index.js';
import { postgresUrl, sleep, uniqueSchema } from './helpers.js';

// Fault tests: a real worker process SIGKILLed holding its prefetch, its connections cut through a
// TCP proxy, and a private server stopped with `-m immediate` (a crash) and restarted mid-run. Each
// counts every task: none lost, duplicates only where at-least-once allows them (counted).
const ok = await requireServer('postgres');
const privateOk = ok && requirePostgresBinaries();
const FIXTURE = new URL('./fixtures/crash-worker.mjs', import.meta.url).pathname;
const TASKS = 2000;
const CONCURRENCY = 8;
const MULTIPLIER = 4;

interface Proc {
  child: ChildProcess;
  waitFor(prefix: string, timeoutMs: number): Promise<string>;
  count(prefix: string): number;
  exited: Promise<number | null>;
}

function startWorker(url: string, schema: string, taskMs = 10): Proc {
  const child = spawn(process.execPath, [FIXTURE, url, schema, String(CONCURRENCY), String(MULTIPLIER), String(taskMs)], {
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
    exited,
    count: (prefix) => lines.filter((l) => l.startsWith(prefix)).length,
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

interface Run {
  /** The server the producer and the checks use. */
  url: string;
  /** The server the worker processes use (a proxy in front of `url`, or `url`). */
  workerUrl?: string;
  /** Kill the first worker with SIGKILL once it holds its prefetch, and let a second one finish. */
  kill: boolean;
  /** What happens to the running worker mid-run. */
  midRun?: (app: App, worker: Proc) => Promise<void>;
}

/** Enqueue TASKS tasks and run them to the end through the fault; count every run. */
async function faultRun(name: string, run: Run): Promise<void> {
  const schema = uniqueSchema(name);
  const s = quoteIdent(schema);
  const producer = createApp({
    broker: `${run.url}?prefix=${schema}&visibilityTimeoutMs=2000`,
    resultBackend: `${run.url}?prefix=${schema}`,
  });
  // A connection per statement: the restart variant stops the server under any connection kept open.
  const admin = {
    async query<R extends pg.QueryResultRow>(text: string, values?: unknown[]): Promise<pg.QueryResult<R>> {
      const c = new pg.Client(run.url);
      c.on('error', () => undefined);
      await c.connect();
      try {
        return await c.query<R>(text, values);
      } finally {
        await c.end();
      }
    },
  };
  const workers: Proc[] = [];
  const workerUrl = run.workerUrl ?? run.url;
  try {
    const task = producer.task('crash.work', (i: number) => Promise.resolve(i));
    const results: AsyncResult<number>[] = await task.applyAsyncBulk(Array.from({ length: TASKS }, (_, i) => [i] as [number]));
    await admin.query(`CREATE TABLE ${s}.runs (i integer PRIMARY KEY, n integer NOT NULL)`);
    const broker = await producer.getBroker();
    let heldN = '-';
    let leftInFlight = 0;
    if (run.kill) {
      const a = startWorker(workerUrl, schema);
      workers.push(a);
      const held = await a.waitFor('HELD ', 30_000);
      a.child.kill('SIGKILL');
      await a.exited;
      heldN = held.split(' ')[1]!;
      expect(Number(heldN)).toBeGreaterThanOrEqual(CONCURRENCY * MULTIPLIER);
      leftInFlight = (await broker.stats('default')).inFlight;
      expect(leftInFlight).toBeGreaterThanOrEqual(CONCURRENCY * MULTIPLIER);
    }
    const b = startWorker(workerUrl, schema);
    workers.push(b);
    await b.waitFor('READY', 30_000);
    const extra = run.midRun === undefined ? [] : await runMidRun(run.midRun, producer, b, task);

    const values = await Promise.all(results.map((r) => r.get({ timeoutMs: 90_000 })));
    expect(values).toEqual(Array.from({ length: TASKS }, (_, i) => i));
    const states = await Promise.all(results.map((r) => r.state()));
    expect(states.filter((x) => x !== 'SUCCESS')).toEqual([]);
    for (const r of extra) expect(await r.get({ timeoutMs: 90_000 })).toBeGreaterThanOrEqual(TASKS);

    const { rows } = await admin.query<{ i: number; n: number }>(`SELECT i, n FROM ${s}.runs WHERE i < $1`, [TASKS]);
    expect(rows).toHaveLength(TASKS);
    const duplicates = rows.reduce((n, r) => n + r.n - 1, 0);
    const stats = await broker.stats('default');
    console.log(
      `postgres ${name}: ${TASKS} tasks all SUCCESS${extra.length > 0 ? ` (+${extra.length} published during the fault, all run)` : ''}; ` +
        `${run.kill ? `worker killed holding ${heldN} (${leftInFlight} leases left behind); ` : ''}` +
        `${duplicates} duplicate runs; reconnects reported ${b.count('RECONNECTED')}; final stats ${JSON.stringify(stats)}`,
    );
    expect(stats).toEqual({ ready: 0, delayed: 0, inFlight: 0, dead: 0 });
  } finally {
    await Promise.allSettled(workers.map(stop));
    await producer.close();
    await admin.query(`DROP SCHEMA IF EXISTS ${s} CASCADE`).catch(() => undefined);
  }
}

/**
 * Run the fault while a producer keeps publishing: every publish resolves or rejects (none hangs),
 * and the tasks of the publishes that resolved run. Returns their results.
 */
async function runMidRun(
  fault: (app: App, worker: Proc) => Promise<void>,
  producer: App,
  worker: Proc,
  task: { applyAsync(args: [number]): Promise<AsyncResult<number>> },
): Promise<AsyncResult<number>[]> {
  const sent: AsyncResult<number>[] = [];
  let rejected = 0;
  let stopped = false;
  const publishing = (async () => {
    for (let i = TASKS; !stopped; i++) {
      const settled = await Promise.race([
        task.applyAsync([i]).then(
          (r) => sent.push(r),
          () => (rejected += 1),
        ),
        sleep(30_000).then(() => 'hung' as const),
      ]);
      expect(settled).not.toBe('hung');
      await sleep(20);
    }
  })();
  try {
    await fault(producer, worker);
  } finally {
    stopped = true;
    await publishing;
  }
  console.log(`publishes during the fault: ${sent.length} resolved, ${rejected} rejected`);
  return sent;
}

/** Wait until the worker has taken a good part of the queue. */
async function halfway(app: App): Promise<void> {
  const broker = await app.getBroker();
  for (let i = 0; i < 400; i++) {
    if ((await broker.stats('default')).ready < TASKS / 2) return;
    await sleep(25);
  }
}

describe.skipIf(!ok)('faults: nothing is lost', () => {
  it(`${TASKS} tasks, a worker SIGKILLed holding concurrency × prefetchMultiplier deliveries`, async () => {
    await faultRun('crash', { url: postgresUrl(), kill: true });
  }, 90_000);

  it(`${TASKS} tasks, every connection of the worker cut twice through a proxy (and refused for 1 s) mid-run`, async () => {
    const target = new URL(postgresUrl());
    const proxy = await startTcpProxy(target.hostname, Number(target.port || 5432));
    try {
      await faultRun('proxycut', {
        url: postgresUrl(),
        workerUrl: proxy.urlFor(postgresUrl()),
        kill: false,
        midRun: async (app, worker) => {
          await halfway(app);
          proxy.cut();
          await sleep(300);
          proxy.refuse();
          proxy.cut();
          await sleep(1_000);
          proxy.resume();
          await worker.waitFor('RECONNECTED', 30_000);
        },
      });
    } finally {
      await proxy.close();
    }
  }, 90_000);

  it.skipIf(!privateOk)(`${TASKS} tasks, a private PostgreSQL stopped with -m immediate and restarted mid-run (a killed worker too)`, async () => {
    const server = await startPrivatePostgres();
    try {
      await faultRun('restart', {
        url: server.url,
        kill: true,
        midRun: async (app, worker) => {
          await halfway(app);
          await server.stop({ mode: 'immediate' });
          await sleep(500);
          await server.start();
          await worker.waitFor('RECONNECTED', 30_000);
        },
      });
    } finally {
      await server.close();
    }
  }, 120_000);
});
