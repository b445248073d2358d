import type { BenchTask, ConsumerHooks, Driver } from './driver.js';
import type { RowSpec } from './record.js';

/**
 * graphile-worker (0.17, an optional dependency of the bench) with the settings its performance
 * documentation gives for high throughput of fast jobs: `concurrentJobs` = the row's concurrency,
 * `maxPoolSize` = concurrency + 2 (its recommendation), a local queue that locks jobs in batches
 * (`localQueue.size` 500) and batched completions (`completeJobBatchDelay` 0). `addJob` for single
 * enqueues, `addJobs` for bulk ones. Its tables live in a schema named after the row's prefix.
 */
export async function createGraphileWorkerDriver(spec: RowSpec): Promise<Driver> {
  if (spec.url === undefined) throw new TypeError('a graphile-worker row needs a PostgreSQL URL');
  const gw = await import('graphile-worker');
  const url = spec.url;
  const retry = spec.scenario === 'retry';
  const logger = new gw.Logger(() => () => undefined);
  const settings = {
    concurrentJobs: spec.concurrency,
    maxPoolSize: spec.concurrency + 2,
    localQueue: { size: 500 },
    completeJobBatchDelay: 0,
    pollInterval: 2_000,
  };
  const options: Record<string, string | number | boolean> = {
    concurrentJobs: settings.concurrentJobs,
    maxPoolSize: settings.maxPoolSize,
    'localQueue.size': settings.localQueue.size,
    completeJobBatchDelay: settings.completeJobBatchDelay,
  };
  if (retry) options['maxAttempts'] = 2;
  if (spec.enqueue === 'bulk') options['enqueue'] = `addJobs×${spec.bulkSize}`;
  else if (spec.scenario !== 'latency') options['enqueue'] = `addJob, ${spec.inFlight} in flight`;
  let utils: Awaited<ReturnType<typeof gw.makeWorkerUtils>> | undefined;
  let runner: Awaited<ReturnType<typeof gw.run>> | undefined;
  let closing: Promise<void> | undefined;
  const maxAttempts = retry ? 2 : 1;

  return {
    options,
    supportsRetry: true,
    async open() {
      utils = await gw.makeWorkerUtils({ connectionString: url, schema: spec.prefix, logger });
      await utils.migrate();
    },
    async enqueue(t) {
      await utils!.addJob('bench', t, { maxAttempts });
    },
    async enqueueBulk(ts) {
      await utils!.addJobs(ts.map((t) => ({ identifier: 'bench', payload: t, maxAttempts })));
    },
    async startConsumer(_concurrency, hooks: ConsumerHooks) {
      runner = await gw.run({
        noHandleSignals: true,
        logger,
        preset: { worker: { connectionString: url, schema: spec.prefix, ...settings } },
        taskList: { bench: (payload, helpers) => hooks.handler(payload as BenchTask, helpers.job.attempts - 1) },
      });
      runner.events.on('job:complete', ({ error }) => {
        if (error === undefined || error === null) hooks.onDone();
      });
      runner.events.on('job:failed', ({ error }) => hooks.onError(error));
    },
    close() {
      closing ??= (async () => {
        await runner?.stop().catch(() => undefined);
        await Promise.resolve(utils?.release()).catch(() => undefined);
      })();
      return closing;
    },
  };
}
