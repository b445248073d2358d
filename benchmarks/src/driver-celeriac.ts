import { createApp, createMemoryResultBackend, currentTask, type App, type ResultBackend, type Task } from '@celeriac/core';
import type { BenchTask, ConsumerHooks, Driver } from './driver.js';
import type { RowSpec } from './record.js';

const TASK_NAME = 'bench.work';

/** Loaded by name at run time: the package may not be built (or installed) yet. */
const REDIS_RESULT_PACKAGE = '@celeriac/result-redis';

/** `url` with `prefix` set in its query string: how a celeriac row namespaces what it creates. */
export function withPrefix(url: string, prefix: string): string {
  const u = new URL(url);
  u.searchParams.set('prefix', prefix);
  return u.toString();
}

/** The broker URL of a celeriac row: `memory://`, or the server URL with the row's prefix. */
export function celeriacBrokerUrl(spec: Pick<RowSpec, 'transport' | 'url' | 'prefix' | 'amqpQueueType'>): string {
  if (spec.transport === 'memory') return 'memory://';
  if (spec.url === undefined) throw new TypeError(`a ${spec.transport} row needs a server URL`);
  const url = new URL(withPrefix(spec.url, spec.prefix));
  if (spec.transport === 'amqp') url.searchParams.set('queueType', spec.amqpQueueType);
  return url.toString();
}

/** Register an OpenTelemetry SDK whose spans go nowhere: the cost of tracing itself, without export. */
async function registerTracingSdk(): Promise<void> {
  const { context, trace } = await import('@opentelemetry/api');
  const { AsyncLocalStorageContextManager } = await import('@opentelemetry/context-async-hooks');
  const { BasicTracerProvider } = await import('@opentelemetry/sdk-trace-base');
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  trace.setGlobalTracerProvider(new BasicTracerProvider());
}

async function redisResultBackendLoads(): Promise<boolean> {
  try {
    const mod = (await import(REDIS_RESULT_PACKAGE)) as Record<string, unknown>;
    return typeof mod['createRedisResultBackend'] === 'function';
  } catch {
    return false;
  }
}

/**
 * celeriac through its public API with the default options (ack-late, results stored, prefetch
 * multiplier 4). Producer and worker share one app: on the memory broker they must (one in-process
 * broker per app), and on a server it keeps the latency clock in one process.
 *
 * Results: the memory broker uses the app's default (memory backend), the PostgreSQL broker the
 * PostgreSQL result backend (same database and schema). Other brokers use the Redis result backend when `@celeriac/result-redis` loads and Redis answers, otherwise an in-process
 * memory backend; the row's options say which.
 */
export async function createCeleriacDriver(spec: RowSpec): Promise<Driver> {
  const options: Record<string, string | number | boolean> = {
    serializer: spec.serializer,
    acks: 'late',
    prefetch: spec.concurrency * 4,
  };
  if (spec.transport === 'amqp') options['queueType'] = spec.amqpQueueType;
  if (spec.tracing === 'sdk') {
    await registerTracingSdk();
    options['tracing'] = 'sdk (no exporter)';
  }
  let resultBackend: string | ResultBackend | undefined;
  const ignoreResult = spec.results === 'none';
  if (ignoreResult) {
    options['results'] = 'none';
  } else if (spec.transport === 'memory') {
    options['results'] = 'memory';
  } else if (spec.transport === 'postgres' && spec.url !== undefined) {
    // PostgreSQL alone: results in the broker's database and schema.
    resultBackend = withPrefix(spec.url, spec.prefix);
    options['results'] = 'postgres';
  } else if (spec.redisUrl !== undefined && (await redisResultBackendLoads())) {
    resultBackend = withPrefix(spec.redisUrl, spec.prefix);
    options['results'] = 'redis';
  } else {
    resultBackend = createMemoryResultBackend();
    options['results'] = 'memory (in-process)';
  }
  if (spec.scenario === 'retry') {
    options['maxRetries'] = 1;
    options['retryBackoffMs'] = spec.retryBackoffMs;
  }
  if (spec.enqueue === 'bulk') options['enqueue'] = `applyAsyncBulk×${spec.bulkSize}`;
  else if (spec.scenario !== 'latency') options['enqueue'] = `applyAsync, ${spec.inFlight} in flight`;

  const app: App = createApp({
    broker: celeriacBrokerUrl(spec),
    serializer: spec.serializer,
    ...(resultBackend === undefined ? {} : { resultBackend }),
  });
  let hooks: ConsumerHooks | undefined;
  const task: Task<[BenchTask], void> = app.task(
    TASK_NAME,
    // Returns the bench handler's promise as it is, like the raw drivers' handlers: an async wrapper
    // would add two promises per task, each paying AsyncLocalStorage's hook (`currentTask()`).
    (t: BenchTask): Promise<void> => {
      if (hooks === undefined) return Promise.reject(new Error('the consumer is not started'));
      return hooks.handler(t, currentTask().retries);
    },
    {
      ...(spec.scenario === 'retry' ? { maxRetries: 1, retryBackoffMs: spec.retryBackoffMs, retryJitter: false } : {}),
      ...(ignoreResult ? { ignoreResult: true } : {}),
    },
  );
  let closing: Promise<void> | undefined;

  return {
    options,
    supportsRetry: true,
    async open() {
      // Connect before the clock starts, so the enqueue rate is not charged with the handshake.
      await app.getBroker();
      await app.getResultBackend();
    },
    async enqueue(t) {
      await task.applyAsync([t]);
    },
    async enqueueBulk(ts) {
      await task.applyAsyncBulk(ts.map((t) => [t] as [BenchTask]));
    },
    async startConsumer(concurrency, h) {
      hooks = h;
      app.on('task:succeeded', () => h.onDone());
      app.on('task:failed', (e) => h.onError(new Error(`task ${e.taskId} failed: ${e.error.message}`)));
      const worker = app.worker({ concurrency });
      await worker.start();
    },
    close() {
      closing ??= app.close();
      return closing;
    },
  };
}
