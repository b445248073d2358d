import { CeleriacError, ErrorCode, type App, type CeleriacEvents, type EventName } from '@celeriac/core';
import { hostname as osHostname, loadavg, type as osType } from 'node:os';
import { pyJson } from './python-json.js';
import { pyRepr } from './python-repr.js';

/** A broker of this package that can publish Celery monitoring events. */
export interface CeleryEventPublisher {
  publishCeleryEvent(routingKey: string, event: Uint8Array, hostname: string): Promise<void>;
}

export interface CeleryEventsOptions {
  /**
   * The worker's name in Celery's monitoring tools (Flower, `celery events`, `celery inspect`).
   * @default `celeriac@<host name>`
   */
  hostname?: string;
  /** Send `task-*` events as well as the worker's (Celery's `-E`). @default true */
  taskEvents?: boolean;
  /** `freq` of the heartbeats, in seconds: match the workers' `heartbeatMs`. @default 2 (Celery's) */
  heartbeatSeconds?: number;
}

const SW_VERSION = '0.1.0';

function isPublisher(b: unknown): b is CeleryEventPublisher {
  return typeof (b as Partial<CeleryEventPublisher> | null)?.publishCeleryEvent === 'function';
}

function excRepr(error: { name: string; message: string }): string {
  return `${error.name}(${pyRepr(error.message)})`;
}

function truncate(s: string, max = 1024): string {
  return s.length > max ? `${s.slice(0, max - 3)}...` : s;
}

/**
 * Publish the app's worker and task events in Celery's format (protocol.rst "Event Messages"), on
 * the `celeryev` exchange of the app's broker, so Celery's monitors — Flower's event stream,
 * `celery events` — list Node workers and their tasks: `worker-online`, `worker-heartbeat`
 * (with `active`, `processed`, `loadavg`, `freq`), `worker-offline`, `task-received`,
 * `task-started`, `task-succeeded`, `task-failed`, `task-retried`, `task-revoked`.
 *
 * Not done: the remote-control (pidbox) replies Flower's `inspect` calls expect (`stats`,
 * `active_queues`, `registered`, …), so Flower shows Node workers from their events only; and
 * Celery's `enable_events`/`disable_events` commands are not obeyed. Needs the app's broker to be
 * this package's (protocol: 'celery' with a `redis://` or `amqp://` URL). Resolves to a function
 * that stops publishing.
 */
export async function sendCeleryEvents(app: App, opts: CeleryEventsOptions = {}): Promise<() => void> {
  const broker = await app.getBroker();
  const inner = broker.inner;
  if (!isPublisher(inner)) {
    throw new CeleriacError(ErrorCode.UNSUPPORTED, `Celery events need a broker of @celeriac/celery; this app's is ${broker.name}`);
  }
  const hostname = opts.hostname ?? `celeriac@${osHostname()}`;
  const freq = opts.heartbeatSeconds ?? 2;
  let clock = 0;
  const utcoffset = -Math.round(new Date().getTimezoneOffset() / 60);
  const enc = new TextEncoder();

  const send = (type: string, fields: Record<string, unknown>) => {
    const event = { hostname, utcoffset, pid: process.pid, clock: ++clock, ...fields, timestamp: Date.now() / 1000, type };
    inner.publishCeleryEvent(type.replace(/-/g, '.'), enc.encode(pyJson(event)), hostname).catch((err: unknown) => {
      app.logger.warn('could not publish a Celery event', { type, error: String(err) });
    });
  };
  const workerFields = (active: number, processed: number) => ({
    freq,
    sw_ident: 'celeriac',
    sw_ver: SW_VERSION,
    sw_sys: osType(),
    active,
    processed,
    loadavg: loadavg().map((l) => Math.round(l * 100) / 100),
  });

  const offs: (() => void)[] = [];
  const on = <K extends EventName>(name: K, fn: (e: CeleriacEvents[K]) => void) => offs.push(app.on(name, fn));
  let processed = 0;
  on('worker:ready', () => send('worker-online', workerFields(0, processed)));
  on('worker:heartbeat', (e) => {
    processed = e.processed;
    send('worker-heartbeat', workerFields(e.active, e.processed));
  });
  on('task:succeeded', () => processed++);
  on('task:failed', () => processed++);
  on('worker:offline', () => send('worker-offline', workerFields(0, processed)));
  if (opts.taskEvents !== false) {
    on('task:received', (e) =>
      send('task-received', { uuid: e.taskId, name: e.name, args: truncate(e.argsRepr), kwargs: truncate(e.kwargsRepr), retries: e.retries, queue: e.queue }),
    );
    on('task:started', (e) => send('task-started', { uuid: e.taskId }));
    on('task:succeeded', (e) => send('task-succeeded', { uuid: e.taskId, result: truncate(pyRepr(e.result)), runtime: e.runtimeMs / 1000 }));
    on('task:failed', (e) => send('task-failed', { uuid: e.taskId, exception: excRepr(e.error), traceback: e.error.stack ?? null }));
    on('task:retried', (e) => send('task-retried', { uuid: e.taskId, exception: excRepr(e.error), traceback: e.error.stack ?? null }));
    on('task:revoked', (e) =>
      send('task-revoked', { uuid: e.taskId, terminated: e.reason === 'terminated', signum: null, expired: e.reason === 'expired' }),
    );
  }
  return () => {
    for (const off of offs.splice(0)) off();
  };
}
