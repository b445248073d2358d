import type { BenchTask, ConsumerHooks, Driver } from './driver.js';
import type { RowSpec } from './record.js';

/** pg-boss's shortest polling interval (its `MIN_POLLING_INTERVAL_MS`, 0.5 s). */
export const PG_BOSS_POLLING_INTERVAL_SECONDS = 0.5;

/**
 * pg-boss (10.x, an optional dependency of the bench) as its documentation says to run it fast: its
 * shortest polling interval, one `work()` that fetches `concurrency` jobs per poll (`batchSize`) and
 * runs them at once, `send` for single enqueues and `insert` for bulk ones. Supervision (maintenance)
 * and scheduling are off, so its timers do not compete with the row. Its tables live in a schema named
 * after the row's prefix (dropped by the row's sweep).
 */
export async function createPgBossDriver(spec: RowSpec): Promise<Driver> {
  if (spec.url === undefined) throw new TypeError('a pg-boss row needs a PostgreSQL URL');
  const { default: PgBoss } = await import('pg-boss');
  const queueName = 'bench';
  const retry = spec.scenario === 'retry';
  const boss = new PgBoss({ connectionString: spec.url, schema: spec.prefix, supervise: false, schedule: false });
  boss.on('error', () => undefined); // surfaced through the calls and the worker's onError
  const options: Record<string, string | number | boolean> = {
    pollingIntervalSeconds: PG_BOSS_POLLING_INTERVAL_SECONDS,
    batchSize: spec.concurrency,
    pool: 10,
  };
  if (retry) options['retryLimit'] = 1;
  if (spec.enqueue === 'bulk') options['enqueue'] = `insert×${spec.bulkSize}`;
  else if (spec.scenario !== 'latency') options['enqueue'] = `send, ${spec.inFlight} in flight`;
  const attempts = new Map<string, number>();
  let closing: Promise<void> | undefined;
  const jobOptions = retry ? { retryLimit: 1, retryDelay: 0 } : { retryLimit: 0 };

  return {
    options,
    supportsRetry: true,
    async open() {
      await boss.start();
      await boss.createQueue(queueName);
    },
    async enqueue(t) {
      await boss.send(queueName, t, jobOptions);
    },
    async enqueueBulk(ts) {
      await boss.insert(ts.map((t) => ({ name: queueName, data: t, ...jobOptions })));
    },
    async startConsumer(concurrency, hooks: ConsumerHooks) {
      await boss.work<BenchTask>(
        queueName,
        { batchSize: concurrency, pollingIntervalSeconds: PG_BOSS_POLLING_INTERVAL_SECONDS },
        async (jobs) => {
          // The batch runs at once (at most `concurrency` jobs); pg-boss completes it when all settled.
          const settled = await Promise.allSettled(
            jobs.map((job) => {
              const attempt = attempts.get(job.id) ?? 0;
              attempts.set(job.id, attempt + 1);
              return hooks.handler(job.data, attempt);
            }),
          );
          const failed = settled.find((r) => r.status === 'rejected');
          if (failed !== undefined) {
            if (!retry) hooks.onError(failed.reason);
            throw failed.reason;
          }
          for (let i = 0; i < jobs.length; i++) hooks.onDone();
        },
      );
    },
    close() {
      closing ??= boss.stop({ graceful: false, wait: true, timeout: 5_000 }).catch(() => undefined);
      return closing;
    },
  };
}
