import type { App } from '../app.js';
import { watchEvents, type RemoteEvent } from '../monitor.js';
import { CliError, UsageError, describeError } from './cli-error.js';
import { exportUrls } from './env.js';
import { loadApp } from './load-app.js';
import { emit, withBroker, type BrokerSource } from './queue-commands.js';

/** `celeriac inspect queues [names]`: depths of each queue (ready, delayed, in flight, dead). */
export async function inspectQueues(queues: string[], src: BrokerSource): Promise<void> {
  const names = queues.length > 0 ? queues : ['default'];
  const rows = await withBroker(src, async (b) => Promise.all(names.map(async (queue) => ({ queue, ...(await b.stats(queue)) }))));
  emit(src.json, rows, () => [
    `${'queue'.padEnd(24)} ${'ready'.padStart(8)} ${'delayed'.padStart(8)} ${'in flight'.padStart(9)} ${'dead'.padStart(8)}`,
    ...rows.map((r) => `${r.queue.padEnd(24)} ${String(r.ready).padStart(8)} ${String(r.delayed).padStart(8)} ${String(r.inFlight).padStart(9)} ${String(r.dead).padStart(8)}`),
  ]);
}

interface WorkerRow {
  workerId: string;
  hostname: string;
  pid: number;
  concurrency: number | null;
  active: number | null;
  processed: number | null;
  queues: string[] | null;
}

/**
 * `celeriac inspect workers`: every worker heard over the broker's broadcast within `waitMs`
 * (workers send a heartbeat every 2 s).
 */
export async function inspectWorkers(src: BrokerSource & { waitMs: number }): Promise<void> {
  const rows = await withBroker(src, async (b) => {
    if (b.broadcast === undefined) throw new CliError(`the ${b.name} broker has no broadcast, so workers cannot be heard`);
    const seen = new Map<string, WorkerRow>();
    const off = await watchEvents(b.broadcast, (e: RemoteEvent) => {
      if (e.type !== 'worker:heartbeat' && e.type !== 'worker:ready' && e.type !== 'worker:offline') return;
      const row = seen.get(e.workerId) ?? { workerId: e.workerId, hostname: e.hostname, pid: e.pid, concurrency: null, active: null, processed: null, queues: null };
      if (e.type === 'worker:offline') {
        seen.delete(e.workerId);
        return;
      }
      if (e.type === 'worker:ready') {
        row.queues = e.queues;
        row.concurrency = e.concurrency;
      } else {
        row.active = e.active;
        row.processed = e.processed;
        row.concurrency = e.concurrency;
      }
      seen.set(e.workerId, row);
    });
    await new Promise((r) => setTimeout(r, src.waitMs));
    await off();
    return [...seen.values()];
  });
  emit(src.json, rows, () =>
    rows.length === 0
      ? [`no worker heard within ${src.waitMs} ms`]
      : rows.map((w) => `${w.hostname}:${w.pid}  active ${w.active ?? '?'} / ${w.concurrency ?? '?'}  processed ${w.processed ?? '?'}  id ${w.workerId}`),
  );
}

/** `celeriac inspect task <id>`: what the result backend knows of a task. */
export async function inspectTask(id: string, src: { app?: string; broker?: string; resultBackend?: string; json: boolean }): Promise<void> {
  if (src.app === undefined) throw new UsageError('inspect task needs --app (the app module names its result backend)');
  exportUrls(src);
  const app: App = await loadApp(src.app);
  try {
    const info = await app.asyncResult(id).info().catch((err: unknown) => {
      throw new CliError(`cannot read the result backend: ${describeError(err)}`, { cause: err });
    });
    const value = { id, state: info?.state ?? 'PENDING', ...info };
    emit(src.json, value, () => {
      const lines = [`${id}  ${value.state}${info?.name === undefined ? '' : `  ${info.name}`}`];
      if (info?.result !== undefined) lines.push(`result: ${JSON.stringify(info.result)}`);
      if (info?.progress !== undefined) lines.push(`progress: ${JSON.stringify(info.progress)}`);
      if (info?.error !== undefined) lines.push(`error: ${info.error.name}${info.error.code === undefined ? '' : ` (${info.error.code})`}: ${info.error.message}`);
      if (info?.retries !== undefined) lines.push(`retries: ${info.retries}`);
      return lines;
    });
  } finally {
    await app.close();
  }
}
