import { spawn, type ChildProcess } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';

/** How a server process ended. */
export interface ProcessExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** A server process started by a test, with the tail of its output for error messages. */
export interface ServerProcess {
  readonly child: ChildProcess;
  readonly pid: number;
  /** Resolves once the process has exited (or could not be spawned); never rejects. */
  readonly exited: Promise<ProcessExit>;
  /** False once the process has exited. */
  alive(): boolean;
  /** The last few KB of its stdout and stderr. */
  output(): string;
}

const OUTPUT_TAIL = 8_192;

/**
 * Start `command args` with its output captured. The process is SIGKILLed if this process exits
 * first, so a test run that dies leaves no server behind; that `exit` listener is removed once the
 * server process has exited.
 */
export function startServerProcess(
  command: string,
  args: readonly string[],
  opts: { env?: NodeJS.ProcessEnv; cwd?: string } = {},
): ServerProcess {
  const child = spawn(command, [...args], {
    env: opts.env ?? process.env,
    cwd: opts.cwd,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let tail = '';
  const keep = (chunk: Buffer): void => {
    tail = (tail + chunk.toString('utf8')).slice(-OUTPUT_TAIL);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  let running = true;
  const killOnExit = (): void => {
    child.kill('SIGKILL');
  };
  process.once('exit', killOnExit);
  const exited = new Promise<ProcessExit>((resolve) => {
    const done = (code: number | null, signal: NodeJS.Signals | null): void => {
      if (!running) return;
      running = false;
      process.off('exit', killOnExit);
      resolve({ code, signal });
    };
    child.once('exit', done);
    child.once('error', (err) => {
      tail += `\n${command}: ${err.message}`;
      done(null, null);
    });
  });
  return {
    child,
    pid: child.pid ?? -1,
    exited,
    alive: () => running,
    output: () => tail,
  };
}

/** Send `signal` and wait for the process to exit; SIGKILL after `timeoutMs`. Nothing if it has exited. */
export async function stopServerProcess(p: ServerProcess, signal: NodeJS.Signals = 'SIGTERM', timeoutMs = 10_000): Promise<void> {
  if (!p.alive()) return;
  p.child.kill(signal);
  const timer = setTimeout(() => p.child.kill('SIGKILL'), timeoutMs);
  await p.exited;
  clearTimeout(timer);
}

/**
 * Poll `probe` every `intervalMs` until it resolves true (a rejection counts as false). Fails with the
 * server's output when the process exits first or `timeoutMs` passes.
 * @default timeoutMs 30_000, intervalMs 50
 */
export async function waitUntilReady(
  p: ServerProcess,
  what: string,
  probe: () => Promise<boolean>,
  opts: { timeoutMs?: number; intervalMs?: number } = {},
): Promise<void> {
  const timeoutMs = opts.timeoutMs ?? 30_000;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (!p.alive()) {
      const { code, signal } = await p.exited;
      throw new Error(`${what} exited before it was ready (code ${code}, signal ${signal}):\n${p.output()}`);
    }
    if (await probe().catch(() => false)) return;
    if (Date.now() > deadline) throw new Error(`${what} was not ready within ${timeoutMs} ms:\n${p.output()}`);
    await sleep(opts.intervalMs ?? 50);
  }
}
