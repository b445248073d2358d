/**
 * Child-process entry of one row (forked by the harness): receives a `RunMessage`, runs the row,
 * sends progress and one `result`, and exits. Running each row in its own process makes `peakRssMb`
 * that row's alone.
 */
import type { Driver } from './driver.js';
import { createDriver } from './drivers.js';
import type { BenchRecord, ChildMessage, RowSpec, RunMessage } from './record.js';
import { warmupSpec } from './plan.js';
import { classify, emptyRecordFor } from './records.js';
import { runScenario } from './scenario.js';

const CLOSE_TIMEOUT_MS = 15_000;
const RSS_SAMPLE_MS = 25;

function send(msg: ChildMessage): Promise<void> {
  return new Promise((resolve) => {
    if (process.send === undefined) {
      resolve();
      return;
    }
    process.send(msg, undefined, {}, () => resolve());
  });
}

/** Close a driver; false when it did not finish within CLOSE_TIMEOUT_MS. */
async function closeWithin(d: Driver): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const closed = await Promise.race([
    d.close().then(
      () => true,
      () => true,
    ),
    new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(false), CLOSE_TIMEOUT_MS);
    }),
  ]);
  clearTimeout(timer);
  return closed;
}

async function runRow(spec: RowSpec): Promise<BenchRecord> {
  let peak = process.memoryUsage.rss();
  const sampler = setInterval(() => {
    peak = Math.max(peak, process.memoryUsage.rss());
  }, RSS_SAMPLE_MS);
  let driver: Driver | undefined;
  let record: BenchRecord;
  try {
    const warm = warmupSpec(spec);
    if (warm !== undefined) {
      const w = await createDriver(warm);
      try {
        await runScenario(w, warm, (phase, done, total) => void send({ type: 'progress', phase: `warm-up ${phase}`, done, total }));
      } finally {
        await closeWithin(w);
      }
    }
    driver = await createDriver(spec);
    const m = await runScenario(driver, spec, (phase, done, total) => {
      peak = Math.max(peak, process.memoryUsage.rss());
      void send({ type: 'progress', phase, done, total });
    });
    record = { ...emptyRecordFor(spec, 'ok', ''), ...m, options: { ...driver.options } };
    delete record.message;
  } catch (err) {
    const { status, message } = classify(err);
    record = emptyRecordFor(spec, status, message);
    if (driver !== undefined) record.options = { ...driver.options };
  }
  if (driver !== undefined) {
    const closed = await closeWithin(driver);
    if (!closed && record.status === 'ok') {
      record.message = `close did not finish within ${CLOSE_TIMEOUT_MS} ms`;
    }
  }
  clearInterval(sampler);
  peak = Math.max(peak, process.memoryUsage.rss());
  record.peakRssMb = Math.round((peak / (1024 * 1024)) * 10) / 10;
  return record;
}

process.once('message', (msg: RunMessage) => {
  if (msg?.type !== 'run') process.exit(2);
  runRow(msg.spec)
    .then((record) => send({ type: 'result', record }))
    .then(
      () => process.exit(0),
      () => process.exit(1),
    );
});
