import type { DeadLetter } from '../broker.js';
import { guardBroker, type GuardedBroker } from '../guard.js';
import { redactUrl } from '../logger.js';
import { resolveBroker } from '../resolve.js';
import { CliError, UsageError, describeError } from './cli-error.js';
import { brokerUrlFromEnv, exportUrls } from './env.js';
import { loadApp } from './load-app.js';
import { printErr, printOut } from './output.js';

/** How the queue commands find the broker: `--app`, else `--broker`, else the environment. */
export interface BrokerSource {
  app?: string;
  broker?: string;
  json: boolean;
}

/**
 * Run `fn` with a connected broker, then close it. With `--app` it is the app's own broker
 * (`app.getBroker()`, so the module decides the URL and options); otherwise one resolved from the URL.
 */
export async function withBroker<T>(src: BrokerSource, fn: (broker: GuardedBroker) => Promise<T>): Promise<T> {
  if (src.app !== undefined) {
    exportUrls(src);
    const app = await loadApp(src.app);
    try {
      const broker = await app.getBroker().catch((err: unknown) => {
        throw new CliError(`cannot connect to the app's broker: ${describeError(err)}`, { cause: err });
      });
      return await fn(broker);
    } finally {
      await app.close();
    }
  }
  const url = src.broker ?? brokerUrlFromEnv();
  if (url === undefined) {
    throw new UsageError('say which broker: --app ./tasks.js, --broker URL, or CELERIAC_BROKER_URL / BROKER_URL');
  }
  if (url.startsWith('memory:') && !src.json) {
    printErr(`note: ${url} lives inside one process; this command sees an empty broker of its own`);
  }
  const broker = guardBroker(await resolveBroker(url));
  try {
    await broker.connect().catch((err: unknown) => {
      throw new CliError(`cannot connect to ${redactUrl(url)}: ${describeError(err)}`, { cause: err });
    });
    return await fn(broker);
  } finally {
    await broker.close();
  }
}

export function emit(json: boolean, value: unknown, text: string | (() => string[])): void {
  if (json) printOut(JSON.stringify(value));
  else if (typeof text === 'string') printOut(text);
  else for (const line of text()) printOut(line);
}

/** `celeriac purge <queue>`: drop every ready message of the queue. */
export async function purgeCommand(queue: string, src: BrokerSource): Promise<void> {
  const purged = await withBroker(src, (b) => b.purge(queue));
  emit(src.json, { queue, purged }, `purged ${purged} message${purged === 1 ? '' : 's'} from queue ${queue}`);
}

/** A dead letter as `--json` prints it: the body is summarised by its size, headers are kept. */
export interface DeadLetterJson {
  id: string;
  queue: string;
  task: string | null;
  taskId: string | null;
  reason: string;
  deadAt: string | null;
  bodyBytes: number;
  headers: DeadLetter['headers'];
}

function toJson(d: DeadLetter): DeadLetterJson {
  const task = d.headers['task'];
  const id = d.headers['id'];
  return {
    id: d.id,
    queue: d.queue,
    task: typeof task === 'string' ? task : null,
    taskId: typeof id === 'string' ? id : null,
    reason: d.reason,
    deadAt: d.deadAt === null ? null : new Date(d.deadAt).toISOString(),
    bodyBytes: d.body.byteLength,
    headers: d.headers,
  };
}

/** `celeriac dlq list <queue>`: the dead letters of a queue, oldest first as the broker keeps them. */
export async function dlqListCommand(queue: string, opts: BrokerSource & { limit: number }): Promise<void> {
  const letters = await withBroker(opts, (b) => b.deadLetters.list(queue, { limit: opts.limit }));
  const rows = letters.map(toJson);
  emit(opts.json, { queue, deadLetters: rows }, () => [
    `${rows.length} dead letter${rows.length === 1 ? '' : 's'} in queue ${queue}${rows.length === opts.limit ? ` (first ${opts.limit}; --limit for more)` : ''}`,
    ...rows.map((r) => `  ${r.id}  ${r.deadAt ?? '-'}  ${r.task ?? '?'}  ${r.reason}`),
  ]);
}

/** `celeriac dlq redrive <queue>`: move dead letters (all, or `--ids`) back to the queue. */
export async function dlqRedriveCommand(queue: string, opts: BrokerSource & { ids?: string[] }): Promise<void> {
  const moved = await withBroker(opts, (b) => b.deadLetters.redrive(queue, opts.ids));
  emit(opts.json, { queue, redriven: moved }, `moved ${moved} dead letter${moved === 1 ? '' : 's'} back to queue ${queue}`);
}

/** `celeriac dlq purge <queue>`: drop the dead letters of a queue. */
export async function dlqPurgeCommand(queue: string, opts: BrokerSource): Promise<void> {
  const purged = await withBroker(opts, (b) => b.deadLetters.purge(queue));
  emit(opts.json, { queue, purged }, `purged ${purged} dead letter${purged === 1 ? '' : 's'} of queue ${queue}`);
}
