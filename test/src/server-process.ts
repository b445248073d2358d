import { spawn, type ChildProcess } from 'node:child_process';
import { readdir, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

/** Ports this process has handed out: the kernel may give a closed one out again. */
const handedOut = new Set<number>();

function probePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr !== null ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

/**
 * A free TCP port on 127.0.0.1 (bound and released; a server started right after gets it), and never
 * one this process handed out before: a test that asks for several ports before starting anything (a
 * cluster's route ports, then each node's client port) would otherwise sometimes get the same port
 * twice, and a node fails with "address already in use".
 */
export async function freePort(): Promise<number> {
  for (;;) {
    const port = await probePort();
    if (handedOut.has(port)) continue;
    handedOut.add(port);
    return port;
  }
}

/** A server process started by a test, with the tail of its output for error messages. */
export interface ServerProcess {
  readonly child: ChildProcess;
  readonly pid: number;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** False once the process has exited. */
  alive(): boolean;
  /** The last few KB of its stdout and stderr. */
  output(): string;
}

const OUTPUT_TAIL = 8_192;

/**
 * Start `command args` with its output captured. The process is SIGKILLed if this process exits
 * first, so a failed test run leaves no server behind.
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
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
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

/** Signal the process and wait for it to exit; SIGKILL after `timeoutMs`. */
export async function stopServerProcess(
  p: ServerProcess,
  signal: NodeJS.Signals = 'SIGTERM',
  timeoutMs = 10_000,
): Promise<void> {
  if (!p.alive()) return;
  p.child.kill(signal);
  const timer = setTimeout(() => p.child.kill('SIGKILL'), timeoutMs);
  await p.exited;
  clearTimeout(timer);
}

/**
 * Poll `probe` until it returns true. Fails with the server's output when the process exits first or
 * `timeoutMs` passes.
 */
export async function waitUntilReady(
  p: ServerProcess,
  what: string,
  probe: () => Promise<boolean>,
  opts: { timeoutMs?: number; intervalMs?: number } = {},
): Promise<void> {
  const deadline = Date.now() + (opts.timeoutMs ?? 30_000);
  for (;;) {
    if (!p.alive()) {
      const { code, signal } = await p.exited;
      throw new Error(`${what} exited before it was ready (code ${code}, signal ${signal}):\n${p.output()}`);
    }
    if (await probe().catch(() => false)) return;
    if (Date.now() > deadline) throw new Error(`${what} was not ready within ${opts.timeoutMs ?? 30_000} ms:\n${p.output()}`);
    await sleep(opts.intervalMs ?? 50);
  }
}

/** The kinds of private server and what every one of them offers a fault test. */
export interface PrivateServer {
  readonly kind: 'redis' | 'nats' | 'amqp';
  /** The client URL (loopback, private port). */
  readonly url: string;
  readonly port: number;
  /** The server's own data directory (removed by `stop()`). */
  readonly dataDir: string;
  /** Stop the server: gracefully, or with SIGKILL when `hard` (a crash). Data stays. */
  down(opts?: { hard?: boolean }): Promise<void>;
  /** Start it again on the same ports (after `down()`); resolves once it is ready. */
  up(opts?: { keepData?: boolean }): Promise<void>;
  /** `down()` then `up()`. `keepData: false` wipes the data directory in between. @default keepData true */
  restart(opts?: { keepData?: boolean; hard?: boolean }): Promise<void>;
  /** Stop it for good and remove its data directory. Idempotent. */
  stop(): Promise<void>;
}

/**
 * Start again on a fresh port when the server could not bind the one `freePort()` gave (another
 * process took it in between).
 */
export async function retryOnPortClash<T>(start: () => Promise<T>, attempts = 3): Promise<T> {
  for (let i = 1; ; i++) {
    try {
      return await start();
    } catch (err) {
      if (i >= attempts || !/address already in use|eaddrinuse/i.test(String(err))) throw err;
    }
  }
}

/** Empty a data directory, keeping the directory itself. */
export async function wipe(dir: string): Promise<void> {
  for (const entry of await readdir(dir)) await rm(join(dir, entry), { recursive: true, force: true });
}

/**
 * The lifecycle every private server shares: start it now, then `down` / `up` / `restart` / `stop`,
 * keeping or wiping its data directory. `start` spawns the server and waits until it is ready;
 * `down(hard)` stops it (SIGKILL when hard); `abort` cleans up after a first start that failed.
 */
export async function managedServer<X extends object>(o: {
  fields: Omit<PrivateServer, 'down' | 'up' | 'restart' | 'stop'> & X;
  /** Removed by `stop()`: the data directory, or the folder that holds it. */
  root: string;
  start(): Promise<void>;
  down(hard: boolean): Promise<void>;
  abort?(): Promise<void>;
}): Promise<PrivateServer & X> {
  try {
    await o.start();
  } catch (err) {
    await o.abort?.();
    await rm(o.root, { recursive: true, force: true });
    throw err;
  }
  const down = (d: { hard?: boolean } = {}): Promise<void> => o.down(d.hard === true);
  let stopping: Promise<void> | undefined;
  return {
    ...o.fields,
    down,
    up: async (u = {}) => {
      if (u.keepData === false) await wipe(o.fields.dataDir);
      await o.start();
    },
    restart: async (r = {}) => {
      await down(r.hard === undefined ? {} : { hard: r.hard });
      if (r.keepData === false) await wipe(o.fields.dataDir);
      await o.start();
    },
    stop: () => {
      stopping ??= (async () => {
        await down();
        await rm(o.root, { recursive: true, force: true });
      })();
      return stopping;
    },
  };
}
