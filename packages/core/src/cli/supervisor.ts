import { fork, type ChildProcess } from 'node:child_process';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ExitCode } from './cli-error.js';
import { exportUrls } from './env.js';
import { printErr, printOut } from './output.js';
import { onShutdownSignals, signalExitCode } from './signals.js';
import { isSupervisorMessage, type WorkerCommandOptions } from './worker-command.js';

/** Restart backoff: 500 ms, 1 s, 2 s, … capped at 10 s. */
const BACKOFF_BASE_MS = 500;
const BACKOFF_MAX_MS = 10_000;
/** A worker that stayed up this long after it was ready has its crash count reset. */
const STABLE_MS = 30_000;

interface Slot {
  readonly index: number;
  child: ChildProcess | undefined;
  /** The current process said it could not start (configuration): no restart. */
  fatal: boolean;
  readyAt: number | undefined;
  crashes: number;
  timer: NodeJS.Timeout | undefined;
}

/**
 * The command line of a supervised worker: the same options, one process, the slot number. The URLs
 * travel in the environment (see env.ts), not in arguments every `ps` shows.
 */
export function childArgs(opts: WorkerCommandOptions, slot: number): string[] {
  const args = ['worker', '--app', resolve(opts.app)];
  if (opts.queues !== undefined) args.push('--queues', opts.queues.join(','));
  if (opts.concurrency !== undefined) args.push('--concurrency', String(opts.concurrency));
  if (opts.prefetchMultiplier !== undefined) args.push('--prefetch-multiplier', String(opts.prefetchMultiplier));
  args.push('--shutdown-timeout-ms', String(opts.shutdownTimeoutMs));
  args.push('--connect-timeout-ms', String(opts.connectTimeoutMs));
  if (opts.verbose) args.push('--verbose');
  args.push('--internal-supervised', String(slot));
  return args;
}

/**
 * Run `opts.processes` worker processes (Celery's prefork: Node uses one core per process) and keep
 * them running. A worker that exits unexpectedly is restarted with exponential backoff; after
 * `maxRestarts` consecutive crashes of one slot the supervisor stops them all and exits 1. A worker
 * that reports it could not start (a missing module, a bad URL, an unreachable broker: it printed the
 * error) stops the supervisor at once: restarting cannot fix configuration.
 *
 * The first SIGINT/SIGTERM is forwarded as SIGTERM to every worker, which closes gracefully; the
 * supervisor exits 0 once all have exited cleanly. A second signal is forwarded again (the workers exit
 * at once) and the supervisor exits with 128 + the signal number.
 *
 * Workers run in their own process group, so a Ctrl-C in a terminal reaches only the supervisor
 * (which forwards it once); a worker whose supervisor dies sees its IPC channel close and shuts down.
 */
export function runSupervisor(opts: WorkerCommandOptions): Promise<number> {
  const main = fileURLToPath(new URL('./main.js', import.meta.url));
  const tag = `supervisor ${process.pid}`;
  const slots: Slot[] = Array.from({ length: opts.processes }, (_, index) => ({
    index,
    child: undefined,
    fatal: false,
    readyAt: undefined,
    crashes: 0,
    timer: undefined,
  }));
  let stopping = false;
  let result: number = ExitCode.OK;
  let finish: (code: number) => void = () => undefined;
  const done = new Promise<number>((r) => {
    finish = r;
  });

  const live = (): ChildProcess[] => slots.flatMap((s) => (s.child === undefined ? [] : [s.child]));

  const maybeDone = (): void => {
    if (stopping && slots.every((s) => s.child === undefined)) finish(result);
  };

  const stopAll = (): void => {
    if (stopping) return;
    stopping = true;
    for (const s of slots) {
      clearTimeout(s.timer);
      s.timer = undefined;
    }
    for (const c of live()) c.kill('SIGTERM');
    maybeDone();
  };

  const spawn = (slot: Slot): void => {
    const child = fork(main, childArgs(opts, slot.index), {
      detached: true,
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      env: { ...process.env, CELERIAC_WORKER_INDEX: String(slot.index) },
    });
    slot.child = child;
    slot.readyAt = undefined;
    slot.fatal = false;
    child.on('message', (m) => {
      if (!isSupervisorMessage(m)) return;
      if (m.type === 'celeriac:ready') slot.readyAt = Date.now();
      else slot.fatal = true;
    });
    let exited = false;
    const onGone = (code: number | null, signal: NodeJS.Signals | null): void => {
      if (exited) return;
      exited = true;
      slot.child = undefined;
      onExit(slot, child.pid, code, signal);
    };
    child.once('exit', onGone);
    child.once('error', (err) => {
      printErr(`${tag}: worker ${slot.index}: ${err.message}`);
      onGone(1, null);
    });
  };

  const onExit = (slot: Slot, pid: number | undefined, code: number | null, signal: NodeJS.Signals | null): void => {
    const how = signal === null ? `exited with code ${code ?? 'unknown'}` : `was killed by ${signal}`;
    if (stopping) {
      // SIGTERM before a worker installed its handlers ends it by the signal: still a clean stop.
      if (!(code === 0 || signal === 'SIGTERM')) {
        printErr(`${tag}: worker ${slot.index} (pid ${pid ?? '?'}) ${how} while stopping`);
        result = ExitCode.ERROR;
      }
      maybeDone();
      return;
    }
    if (slot.fatal) {
      printErr(`${tag}: worker ${slot.index} (pid ${pid ?? '?'}) could not start; stopping`);
      result = ExitCode.ERROR;
      stopAll();
      return;
    }
    if (slot.readyAt !== undefined && Date.now() - slot.readyAt >= STABLE_MS) slot.crashes = 0;
    slot.crashes++;
    if (slot.crashes > opts.maxRestarts) {
      printErr(`${tag}: worker ${slot.index} (pid ${pid ?? '?'}) ${how}; it crashed ${slot.crashes} times in a row, giving up`);
      result = ExitCode.ERROR;
      stopAll();
      return;
    }
    const delayMs = Math.min(BACKOFF_BASE_MS * 2 ** (slot.crashes - 1), BACKOFF_MAX_MS);
    printErr(
      `${tag}: worker ${slot.index} (pid ${pid ?? '?'}) ${how}; restarting in ${delayMs} ms (restart ${slot.crashes} of at most ${opts.maxRestarts})`,
    );
    slot.timer = setTimeout(() => {
      slot.timer = undefined;
      if (!stopping) spawn(slot);
    }, delayMs);
  };

  const disposeSignals = onShutdownSignals({
    first: (signal) => {
      printOut(`${tag}: ${signal} received, closing ${live().length} worker(s); send it again to exit at once`);
      stopAll();
    },
    second: (signal) => {
      printErr(`${tag}: ${signal} received again, exiting at once`);
      for (const c of live()) c.kill('SIGTERM');
      process.exit(signalExitCode(signal));
    },
  });

  exportUrls(opts);
  printOut(`${tag}: starting ${opts.processes} worker processes`);
  for (const s of slots) spawn(s);
  return done.finally(disposeSignals);
}
