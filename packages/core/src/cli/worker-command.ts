import { resolve } from 'node:path';
import type { App } from '../app.js';
import { CeleriacError, ErrorCode } from '../errors.js';
import type { Worker, WorkerOptions } from '../worker.js';
import { CliError, ExitCode, UsageError, describeError, redactText } from './cli-error.js';
import { exportUrls } from './env.js';
import { loadApp } from './load-app.js';
import { printErr, printOut } from './output.js';
import { onShutdownSignals, signalExitCode } from './signals.js';

/** Options of `celeriac worker`, as parsed from the command line. */
export interface WorkerCommandOptions {
  /** Path of the module exporting the app, relative to the current directory. */
  app: string;
  broker?: string;
  resultBackend?: string;
  /** @default the app's default queue */
  queues?: string[];
  /** @default 8 (core's) */
  concurrency?: number;
  /** @default 4 (core's) */
  prefetchMultiplier?: number;
  /** @default 1: one worker in this process, no supervisor */
  processes: number;
  /** Consecutive crashes of one worker process before the supervisor gives up. @default 5 */
  maxRestarts: number;
  /** How long running tasks may take to finish on shutdown. @default 30_000 */
  shutdownTimeoutMs: number;
  /** How long `start()` may take to connect. @default 30_000 */
  connectTimeoutMs: number;
  /** Print every task event and the stacks of errors. @default false */
  verbose: boolean;
  /** Publish task events for dashboards and monitors (Celery's -E). @default false */
  events?: boolean;
  /** 'threads' enforces hard time limits. @default 'async' */
  pool?: 'async' | 'threads';
  /** Set by the supervisor on the processes it forks: the worker's slot number. */
  internalSupervised?: number;
}

/**
 * What a supervised worker tells its supervisor: `ready` once it consumes, `fatal` when it could not
 * start for a reason a restart cannot fix (the module, the URL, the broker); it then exits.
 */
export interface SupervisorMessage {
  type: 'celeriac:ready' | 'celeriac:fatal';
  pid: number;
}

export function isSupervisorMessage(m: unknown): m is SupervisorMessage {
  const type = typeof m === 'object' && m !== null ? (m as { type?: unknown }).type : undefined;
  return type === 'celeriac:ready' || type === 'celeriac:fatal';
}

/** Send over the IPC channel and wait until it is written (an exit right after would lose it). */
function tellSupervisor(type: SupervisorMessage['type']): Promise<void> {
  return new Promise((resolve) => {
    if (process.send === undefined || !process.connected) {
      resolve();
      return;
    }
    process.send({ type, pid: process.pid } satisfies SupervisorMessage, undefined, {}, () => resolve());
  });
}

type StopReason = NodeJS.Signals | 'disconnect';

/**
 * Run one worker in this process until SIGINT/SIGTERM (or, when supervised, until the supervisor's
 * IPC channel closes): then close it gracefully, close the app and resolve with exit code 0. A second
 * signal exits at once with 128 + the signal number.
 */
export async function runWorker(opts: WorkerCommandOptions): Promise<number> {
  const tag = `worker ${process.pid}`;
  let stopRequested: (reason: StopReason) => void = () => undefined;
  const stopped = new Promise<StopReason>((resolve) => {
    stopRequested = resolve;
  });
  let ready = false;
  // Signals are handled from the first moment, so a Ctrl-C while the app loads or connects is graceful too.
  const disposeSignals = onShutdownSignals({
    first: (signal) => {
      printOut(`${tag}: ${signal} received, closing${ready ? ' (running tasks may finish)' : ''}; send it again to exit at once`);
      stopRequested(signal);
    },
    second: (signal) => {
      printErr(`${tag}: ${signal} received again, exiting at once (unfinished tasks are redelivered by the broker)`);
      process.exit(signalExitCode(signal));
    },
  });
  const onDisconnect = (): void => {
    printErr(`${tag}: the supervisor is gone, closing`);
    stopRequested('disconnect');
  };
  const supervised = opts.internalSupervised !== undefined;
  if (supervised) process.once('disconnect', onDisconnect);
  const detach: (() => void)[] = [disposeSignals, () => process.off('disconnect', onDisconnect)];
  let app: App | undefined;
  try {
    exportUrls(opts);
    app = await loadApp(opts.app);
    const worker = createWorker(app, opts);
    detach.push(...watchEvents(app, tag, opts.verbose, () => ready));

    const outcome = await Promise.race([
      startWithin(worker, opts.connectTimeoutMs).then(() => 'started' as const),
      stopped.then(() => 'stopped' as const),
    ]);
    if (outcome === 'stopped') {
      // Interrupted before the worker was ready: close what was opened, within the shutdown timeout.
      await withinMs(app.close(), opts.shutdownTimeoutMs);
      printOut(`${tag}: stopped before it was ready`);
      return ExitCode.OK;
    }
    ready = true;
    const broker = await app.getBroker();
    printOut(
      `${tag}: ready (broker ${broker.name}, queues ${worker.queues.join(',')}, concurrency ${worker.concurrency}, prefetch ${worker.prefetch})`,
    );
    if (supervised) await tellSupervisor('celeriac:ready');

    await stopped;
    const report = await worker.close({ timeoutMs: opts.shutdownTimeoutMs });
    await app.close();
    printOut(`${tag}: closed (${report.givenBack} given back, ${report.abandoned} abandoned)`);
    return ExitCode.OK;
  } catch (err) {
    // Close what was opened, but do not let a hung connection attempt keep the process alive.
    if (app !== undefined) await withinMs(app.close(), 2_000);
    if (supervised && !ready) await tellSupervisor('celeriac:fatal');
    throw err;
  } finally {
    for (const d of detach) d();
  }
}

function createWorker(app: App, opts: WorkerCommandOptions): Worker {
  const wo: WorkerOptions = {};
  if (opts.queues !== undefined) wo.queues = opts.queues;
  if (opts.concurrency !== undefined) wo.concurrency = opts.concurrency;
  if (opts.prefetchMultiplier !== undefined) wo.prefetchMultiplier = opts.prefetchMultiplier;
  if (opts.events === true) wo.sendEvents = true;
  if (opts.pool !== undefined) {
    wo.pool = opts.pool;
    if (opts.pool === 'threads') wo.appModule = resolve(opts.app);
  }
  try {
    return app.worker(wo);
  } catch (err) {
    // The worker validates its options (e.g. prefetch below the number of queues): a command-line mistake.
    if (err instanceof RangeError || err instanceof TypeError) throw new UsageError(err.message, { cause: err });
    throw err;
  }
}

async function startWithin(worker: Worker, timeoutMs: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () =>
        reject(
          new CeleriacError(ErrorCode.TIMEOUT, `the worker could not connect to the broker within ${timeoutMs} ms`),
        ),
      timeoutMs,
    );
  });
  try {
    await Promise.race([worker.start(), timeout]);
  } catch (err) {
    throw new CliError(`the worker could not start: ${describeError(err)}`, { cause: err });
  } finally {
    clearTimeout(timer);
  }
}

/** Resolve when `p` settles or after `ms`, whichever comes first; never rejects. */
async function withinMs(p: Promise<unknown>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([p.catch(() => undefined), new Promise<void>((r) => (timer = setTimeout(r, ms)))]);
  clearTimeout(timer);
}

/**
 * Failures and broker trouble are always printed; with `verbose`, every task event. Broker errors
 * before the worker is ready are not: a failed start is reported once, as the error line.
 */
function watchEvents(app: App, tag: string, verbose: boolean, isReady: () => boolean): (() => void)[] {
  const offs = [
    app.on('task:failed', (e) =>
      printErr(`${tag}: task ${e.name} ${e.taskId} failed: ${e.error.code ?? e.error.name}: ${redactText(e.error.message)}`),
    ),
    app.on('broker:error', (e) => {
      if (isReady() || verbose) printErr(`${tag}: broker error: ${redactText(e.error.message)}`);
    }),
    app.on('broker:reconnected', (e) => printOut(`${tag}: reconnected to the ${e.broker} broker`)),
  ];
  if (verbose) {
    offs.push(
      app.on('task:received', (e) => printOut(`${tag}: task ${e.name} ${e.taskId} received (delivery ${e.deliveries})`)),
      app.on('task:succeeded', (e) => printOut(`${tag}: task ${e.name} ${e.taskId} succeeded in ${e.runtimeMs} ms`)),
      app.on('task:retried', (e) =>
        printOut(`${tag}: task ${e.name} ${e.taskId} retry ${e.retries + 1} in ${e.delayMs} ms: ${e.error.message}`),
      ),
      app.on('task:dead-lettered', (e) => printErr(`${tag}: task ${e.taskId} dead-lettered: ${redactText(e.reason)}`)),
    );
  }
  return offs;
}
