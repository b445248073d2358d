import { Queue, Worker, type ConnectionOptions, type Job } from 'bullmq';
import type { BenchTask, ConsumerHooks, Driver } from './driver.js';
import type { RowSpec } from './record.js';

/** ioredis options for a `redis://` URL (BullMQ workers need `maxRetriesPerRequest: null`). */
export function redisConnectionOptions(url: string): ConnectionOptions {
  const u = new URL(url);
  const db = u.pathname.length > 1 ? Number(u.pathname.slice(1)) : 0;
  return {
    host: u.hostname === '' ? '127.0.0.1' : u.hostname.replace(/^\[|\]$/g, ''),
    port: u.port === '' ? 6379 : Number(u.port),
    ...(u.username === '' ? {} : { username: decodeURIComponent(u.username) }),
    ...(u.password === '' ? {} : { password: decodeURIComponent(u.password) }),
    ...(Number.isInteger(db) && db > 0 ? { db } : {}),
    ...(u.protocol === 'rediss:' ? { tls: {} } : {}),
    maxRetriesPerRequest: null,
  };
}

/**
 * BullMQ as its users run it: a Queue and a Worker, `removeOnComplete`, the same concurrency as the
 * celeriac worker; `addBulk` for bulk rows. Its keys live under the row's own BullMQ prefix and the
 * queue is obliterated on close.
 */
export function createBullmqDriver(spec: RowSpec): Driver {
  if (spec.url === undefined) throw new TypeError('a BullMQ row needs a Redis URL');
  const connection = redisConnectionOptions(spec.url);
  const retry = spec.scenario === 'retry';
  const queueName = 'bench';
  const queue = new Queue<BenchTask>(queueName, {
    connection,
    prefix: spec.prefix,
    defaultJobOptions: {
      removeOnComplete: true,
      removeOnFail: true,
      ...(retry ? { attempts: 2, backoff: { type: 'fixed', delay: spec.retryBackoffMs } } : {}),
    },
  });
  // Errors surface on the calls; without a listener an 'error' event would crash the process.
  queue.on('error', () => undefined);
  let worker: Worker<BenchTask> | undefined;
  let closing: Promise<void> | undefined;
  const options: Record<string, string | number | boolean> = { removeOnComplete: true };
  if (retry) {
    options['attempts'] = 2;
    options['backoffMs'] = spec.retryBackoffMs;
  }
  if (spec.enqueue === 'bulk') options['enqueue'] = `addBulk×${spec.bulkSize}`;
  else if (spec.scenario !== 'latency') options['enqueue'] = `add, ${spec.inFlight} in flight`;

  return {
    options,
    supportsRetry: true,
    async open() {
      await queue.waitUntilReady();
    },
    async enqueue(t) {
      await queue.add('bench.work', t);
    },
    async enqueueBulk(ts) {
      await queue.addBulk(ts.map((t) => ({ name: 'bench.work', data: t })));
    },
    async startConsumer(concurrency, hooks: ConsumerHooks) {
      const w = new Worker<BenchTask>(queueName, (job: Job<BenchTask>) => hooks.handler(job.data, job.attemptsMade), {
        connection,
        prefix: spec.prefix,
        concurrency,
        autorun: false,
      });
      worker = w;
      w.on('completed', () => hooks.onDone());
      w.on('failed', (job, err) => {
        const attempts = job?.opts.attempts ?? 1;
        if (job === undefined || job.attemptsMade >= attempts) hooks.onError(err);
      });
      w.on('error', (err) => hooks.onError(err));
      await w.waitUntilReady();
      w.run().catch((err: unknown) => hooks.onError(err));
    },
    close() {
      closing ??= (async () => {
        await worker?.close().catch(() => undefined);
        await queue.obliterate({ force: true }).catch(() => undefined);
        await queue.close().catch(() => undefined);
      })();
      return closing;
    },
  };
}
