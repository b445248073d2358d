import { performance } from 'node:perf_hooks';
import { benchHandler, windowed, type BenchTask, type ConsumerHooks, type Driver, type Probe } from './driver.js';
import type { RowSpec } from './record.js';
import { ratePerSec, summarizeLatencies, type LatencySummary } from './stats.js';

/** What a scenario measured. */
export interface Measurement extends LatencySummary {
  enqueuePerSec: number | null;
  processPerSec: number | null;
}

/**
 * Progress callback: phase name, tasks done in that phase, tasks in the row. Called every 100 ms and
 * at the end of each phase (the row process samples its memory there too).
 */
export type ProgressSink = (phase: string, done: number, total: number) => void;

const PROGRESS_EVERY_MS = 100;
const PACE_TICK_MS = 2;

/**
 * Runs one row's scenario over `driver` (which must not be opened yet). The caller closes the driver.
 *
 * - throughput / payload / retry: enqueue every task first (single calls with `inFlight` in flight,
 *   or bulk calls of `bulkSize`), then start one consumer and time the drain.
 * - latency: start the consumer, then publish at `ratePerSec`; latency is publish call to handler start.
 */
export async function runScenario(driver: Driver, spec: RowSpec, progress: ProgressSink): Promise<Measurement> {
  const n = spec.tasks;
  const pad = 'x'.repeat(spec.payloadBytes);
  const failOnce = spec.scenario === 'retry';
  const makeTask = (i: number): BenchTask => ({ i, t: performance.now(), failOnce, pad });
  const measureLatency = spec.scenario === 'latency';
  const latencies: number[] = [];
  const probe: Probe = {
    started: (task, attempt) => {
      if (measureLatency && attempt === 0) latencies.push(performance.now() - task.t);
    },
  };

  let phase = 'connect';
  let enqueued = 0;
  let done = 0;
  let settle!: { resolve: () => void; reject: (err: unknown) => void };
  const allDone = new Promise<void>((resolve, reject) => {
    settle = { resolve, reject };
  });
  allDone.catch(() => undefined); // observed below; avoid an unhandled rejection before that
  const hooks: ConsumerHooks = {
    handler: (task, attempt) => benchHandler(task, attempt, probe),
    onDone: () => {
      done++;
      if (done === n) settle.resolve();
    },
    onError: (err) => settle.reject(err),
  };

  // Every phase races this: a system that stops making progress fails the row instead of hanging it.
  let stall!: (err: Error) => void;
  const stalled = new Promise<never>((_, reject) => {
    stall = reject;
  });
  stalled.catch(() => undefined);
  const guard = <T>(p: Promise<T>): Promise<T> => Promise.race([p, stalled]);
  let lastCount = -1;
  let lastProgressAt = performance.now();
  const ticker = setInterval(() => {
    const count = enqueued + done;
    progress(phase, phase === 'enqueue' ? enqueued : done, n);
    const now = performance.now();
    if (count !== lastCount) {
      lastCount = count;
      lastProgressAt = now;
    } else if (now - lastProgressAt > spec.stallTimeoutMs) {
      stall(new Error(`stalled in ${phase}: ${enqueued}/${n} enqueued, ${done}/${n} done, no progress for ${spec.stallTimeoutMs} ms`));
    }
  }, PROGRESS_EVERY_MS);
  ticker.unref();

  try {
    await guard(driver.open());
    if (spec.scenario === 'latency') {
      phase = 'latency';
      await guard(driver.startConsumer(spec.concurrency, hooks));
      const t0 = performance.now();
      const lastPublished = await guard(paced(n, spec.ratePerSec, (i) => driver.enqueue(makeTask(i)).then(() => void enqueued++)));
      await guard(allDone);
      const t2 = performance.now();
      progress(phase, done, n);
      return {
        enqueuePerSec: ratePerSec(n, lastPublished - t0),
        processPerSec: ratePerSec(n, t2 - t0),
        ...summarizeLatencies(latencies),
      };
    }

    phase = 'enqueue';
    const t0 = performance.now();
    if (spec.enqueue === 'bulk') {
      for (let i = 0; i < n; i += spec.bulkSize) {
        const chunk: BenchTask[] = [];
        for (let j = i; j < Math.min(n, i + spec.bulkSize); j++) chunk.push(makeTask(j));
        await guard(driver.enqueueBulk(chunk));
        enqueued += chunk.length;
      }
    } else {
      await guard(
        windowed(n, spec.inFlight, async (i) => {
          await driver.enqueue(makeTask(i));
          enqueued++;
        }),
      );
    }
    const t1 = performance.now();
    progress(phase, enqueued, n); // also a memory sample point: every task is queued now
    phase = 'drain';
    const tStart = performance.now();
    await guard(driver.startConsumer(spec.concurrency, hooks));
    await guard(allDone);
    const t2 = performance.now();
    progress(phase, done, n);
    return {
      enqueuePerSec: ratePerSec(n, t1 - t0),
      processPerSec: ratePerSec(n, t2 - tStart),
      p50Ms: null,
      p90Ms: null,
      p99Ms: null,
      maxMs: null,
    };
  } finally {
    clearInterval(ticker);
    progress(phase, phase === 'enqueue' ? enqueued : done, n);
  }
}

/**
 * Calls `publish(i)` for i in [0, n) at `rate` per second, without waiting for one publish before the
 * next is due. Resolves with the `performance.now()` at which the last publish resolved; rejects on the
 * first failure.
 */
async function paced(n: number, rate: number, publish: (i: number) => Promise<void>): Promise<number> {
  const t0 = performance.now();
  const pending: Promise<void>[] = [];
  let lastAt = t0;
  let failed: { err: unknown } | undefined;
  let sent = 0;
  while (sent < n) {
    if (failed !== undefined) throw failed.err;
    const due = Math.min(n, Math.floor(((performance.now() - t0) * rate) / 1000) + 1);
    while (sent < due) {
      const p = publish(sent++).then(
        () => {
          lastAt = performance.now();
        },
        (err: unknown) => {
          failed ??= { err };
        },
      );
      pending.push(p);
    }
    if (sent < n) await new Promise<void>((r) => setTimeout(r, PACE_TICK_MS));
  }
  await Promise.all(pending);
  if (failed !== undefined) throw failed.err;
  return lastAt;
}
