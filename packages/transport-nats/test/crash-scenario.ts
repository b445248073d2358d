// The crash scenario shared by crash.int.test.ts (one server) and cluster.int.test.ts (3-node R3 cluster).
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'vitest';
import { createApp } from '@celeriac/core';

const fixture = fileURLToPath(new URL('./fixtures/crash-worker.mjs', import.meta.url));
const dist = fileURLToPath(new URL('../dist/index.js', import.meta.url));

export const TASKS = 2_000;
/** The fixture's concurrency × prefetchMultiplier. */
export const BOUND = 8 * 4;

/** Start the fixture worker; `printed` resolves once it printed `line` (a prefix). */
function startWorker(url: string, log: string, hangAfter?: number): { child: ChildProcess; printed: (line: string) => Promise<string> } {
  const args = [fixture, url, log, ...(hangAfter === undefined ? [] : [String(hangAfter)])];
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  const waiters: { prefix: string; resolve: (l: string) => void }[] = [];
  child.stdout!.on('data', (chunk: Buffer) => {
    out += chunk.toString();
    for (const w of [...waiters]) {
      const line = out.split('\n').find((l) => l.startsWith(w.prefix));
      if (line !== undefined) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(line);
      }
    }
  });
  child.stderr!.on('data', (chunk: Buffer) => (err += chunk.toString()));
  const exited = new Promise<never>((_, reject) => child.once('exit', (code, signal) => reject(new Error(`worker exited (${code ?? signal}): ${err}`))));
  exited.catch(() => undefined);
  return {
    child,
    printed: (line) => Promise.race([new Promise<string>((resolve) => waiters.push({ prefix: line, resolve })), exited]),
  };
}

/** How often each task id was logged with `word` (`start` or `done`) in these worker logs. */
async function countLogged(files: readonly string[], word: string): Promise<Map<number, number>> {
  const m = new Map<number, number>();
  for (const file of files) {
    const text = existsSync(file) ? await readFile(file, 'utf8') : '';
    for (const line of text.split('\n')) {
      const [w, i] = line.split(' ');
      if (w === word) m.set(Number(i), (m.get(Number(i)) ?? 0) + 1);
    }
  }
  return m;
}

export interface CrashScenario {
  /** Broker and result backend of the test and of both worker processes. */
  url: string;
  /** Starts the printed summary line. */
  label: string;
  /**
   * A fault injected after the kill, while the second worker is at work: `action` starts once
   * `afterResults` results are in and returns a description for the summary line. The scenario asserts
   * that tasks were still outstanding when it finished.
   */
  midRun?: { afterResults: number; action: () => Promise<string> };
  /** Most task ids allowed to complete twice. @default BOUND (what the killed worker held) */
  maxDuplicates?: number;
}

const secs = (ms: number): string => `${(ms / 1000).toFixed(1)} s`;

/**
 * TASKS tasks; worker process 1 runs 300, then hangs and fills its bound with unacked deliveries, and is
 * killed with SIGKILL once it says it holds all of them; worker process 2 finishes. Every id must end
 * SUCCESS in the result backend; re-runs and duplicates are counted, printed and bounded.
 */
export async function runCrashScenario(o: CrashScenario): Promise<void> {
  if (!existsSync(dist)) throw new Error(`build the package first (npx tsc -b packages/transport-nats): ${dist} is missing`);
  const t0 = Date.now();
  const dir = await mkdtemp(join(tmpdir(), 'celeriac-nats-crash-'));
  const logs = [join(dir, 'first.log'), join(dir, 'second.log')];
  const app = createApp({ broker: o.url, resultBackend: o.url });
  const task = app.task('crash.work', async (i: number) => i);
  const workers: ChildProcess[] = [];
  try {
    const results = await task.applyAsyncBulk(Array.from({ length: TASKS }, (_, i) => [i] as [number]));

    // Worker 1 runs 300 tasks, then hangs: it fills its bound with unacked deliveries and is killed.
    const first = startWorker(o.url, logs[0]!, 300);
    workers.push(first.child);
    const holding = await first.printed('holding ');
    expect(Number(holding.split(' ')[1])).toBe(BOUND);
    first.child.kill('SIGKILL');
    const killedAt = Date.now();

    const second = startWorker(o.url, logs[1]!);
    workers.push(second.child);
    await second.printed('ready');

    let resolved = 0;
    const midRun = o.midRun;
    const fault: { run?: Promise<{ what: string; at: number; outstanding: number }> } = {};
    const values = await Promise.all(
      results.map(async (r) => {
        const v = await r.get({ timeoutMs: 60_000 });
        if (++resolved === midRun?.afterResults) {
          fault.run = midRun.action().then((what) => ({ what, at: Date.now(), outstanding: TASKS - resolved }));
          fault.run.catch(() => undefined); // awaited below; not unhandled if a get() fails first
        }
        return v;
      }),
    );
    const doneAt = Date.now();
    expect(values).toEqual(Array.from({ length: TASKS }, (_, i) => i));
    let faultLine = '';
    if (midRun !== undefined) {
      expect(fault.run, `the mid-run fault never started (${resolved} results)`).toBeDefined();
      const f = await fault.run!;
      // Otherwise the fault came too late to test anything.
      expect(f.outstanding).toBeGreaterThan(0);
      faultLine = `; ${f.what} at ${secs(f.at - t0)} with ${f.outstanding} results outstanding`;
    }

    const backend = await app.getResultBackend();
    const states = await Promise.all(results.map((r) => backend!.get(r.id)));
    expect(states.filter((m) => m?.state === 'SUCCESS').length).toBe(TASKS);

    const starts = await countLogged(logs, 'start');
    const dones = await countLogged(logs, 'done');
    const reruns = [...starts.values()].filter((n) => n > 1).length;
    const duplicates = [...dones.values()].filter((n) => n > 1).length;
    console.log(
      `${o.label}: ${TASKS} tasks, ${reruns} run again after the kill, ${duplicates} completed twice; ` +
        `worker killed at ${secs(killedAt - t0)}, all done at ${secs(doneAt - t0)}${faultLine}`,
    );
    // The 8 hung handlers were running when the worker died: they must run again elsewhere.
    expect(reruns).toBeGreaterThanOrEqual(8);
    expect(duplicates).toBeLessThanOrEqual(o.maxDuplicates ?? BOUND);
    expect(dones.size).toBe(TASKS);
  } finally {
    const running = workers.filter((w) => w.exitCode === null && w.signalCode === null);
    for (const w of running) w.kill('SIGTERM');
    await Promise.all(running.map((w) => new Promise((r) => w.once('exit', r))));
    await app.close();
    await rm(dir, { recursive: true, force: true });
  }
}
