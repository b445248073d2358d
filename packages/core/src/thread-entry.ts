/**
 * Runs inside a worker thread of the `threads` pool: imports the app module by path (never a handler
 * turned into source text), then runs the handlers the main thread asks for, one at a time.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { pathToFileURL } from 'node:url';
import { isAbsolute } from 'node:path';
import type { App } from './app.js';
import { RetryRequest, taskStorage, type TaskContext } from './context.js';
import { CeleriacError, ErrorCode, serializeError } from './errors.js';
import type { ThreadReply, ThreadRequest } from './thread-pool.js';

const port = parentPort;
if (port === null) throw new Error('thread-entry must run in a worker thread');

const spec = (workerData as { appModule: string }).appModule;
const url = isAbsolute(spec) ? pathToFileURL(spec).href : spec;
const mod = (await import(url)) as { default?: unknown; app?: unknown };
const app = (mod.app ?? mod.default) as App | undefined;
if (app === undefined || typeof (app as { tasks?: unknown }).tasks !== 'object') {
  throw new CeleriacError(ErrorCode.TASK_UNKNOWN, `${spec} exports no app (export it as \`app\` or as the default export)`);
}

let current: AbortController | undefined;

port.on('message', (m: ThreadRequest) => {
  if (m.type === 'abort') {
    current?.abort(new CeleriacError(m.code, m.message));
    return;
  }
  void run(m);
});

async function run(m: Extract<ThreadRequest, { type: 'run' }>): Promise<void> {
  const reply = (r: ThreadReply) => port!.postMessage(r);
  const task = app!.tasks.get(m.task);
  if (task === undefined) {
    reply({ type: 'error', error: serializeError(new CeleriacError(ErrorCode.TASK_UNKNOWN, `no task named "${m.task}" in ${spec}`)) });
    return;
  }
  const ac = new AbortController();
  current = ac;
  const ctx: TaskContext = {
    ...m.context,
    signal: ac.signal,
    retry: (o = {}) => {
      throw new RetryRequest(o.countdownMs, o.error);
    },
    progress: (value) => {
      reply({ type: 'progress', value });
      return Promise.resolve();
    },
  };
  try {
    const result = await taskStorage.run(ctx, () => (task.handler as (...a: unknown[]) => unknown)(...m.args));
    reply({ type: 'result', value: result });
  } catch (err) {
    if (err instanceof RetryRequest) {
      reply({ type: 'retry', countdownMs: err.countdownMs ?? null, error: err.error === undefined ? null : serializeError(err.error) });
    } else reply({ type: 'error', error: serializeError(err) });
  } finally {
    current = undefined;
  }
}

port.postMessage({ type: 'ready' } satisfies ThreadReply);
