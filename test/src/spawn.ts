import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/** The repository root (test/src/ → ../../). */
export const repoRoot = fileURLToPath(new URL('../../', import.meta.url));

/** The built `celeriac` command. */
export const cliPath = fileURLToPath(new URL('../../packages/core/dist/cli/main.js', import.meta.url));

/** Fail with one clear line when core's CLI is not built. */
export function requireBuiltCli(): void {
  if (!existsSync(cliPath)) throw new Error(`${cliPath} is missing: build first (npx tsc -b packages/core)`);
}

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** A running node process whose output is collected, with a way to wait for a line. */
export interface Spawned {
  readonly child: ChildProcess;
  /** Everything written so far. */
  readonly stdout: () => string;
  readonly stderr: () => string;
  /** Resolves with the first match of `re` in stdout+stderr (already written or to come). */
  waitFor(re: RegExp, timeoutMs?: number): Promise<RegExpMatchArray>;
  /** Resolves with the first non-undefined value `probe(stdout, stderr)` returns as output arrives. */
  waitUntil<T>(probe: (stdout: string, stderr: string) => T | undefined, what: string, timeoutMs?: number): Promise<T>;
  readonly exited: Promise<Exit>;
}

export interface SpawnOptions {
  cwd?: string;
  env?: Record<string, string | undefined>;
}

const live = new Set<ChildProcess>();

/** Start `node <args>`. `env` is added to this process's environment (undefined removes a variable). */
export function spawnNode(args: readonly string[], opts: SpawnOptions = {}): Spawned {
  const env: Record<string, string | undefined> = { ...process.env, ...opts.env };
  for (const [k, v] of Object.entries(env)) if (v === undefined) delete env[k];
  const child = spawn(process.execPath, [...args], { cwd: opts.cwd ?? repoRoot, env, stdio: ['ignore', 'pipe', 'pipe'] });
  live.add(child);
  let out = '';
  let err = '';
  const watchers = new Set<() => void>();
  const notify = (): void => {
    for (const w of watchers) w();
  };
  child.stdout?.setEncoding('utf8').on('data', (s: string) => {
    out += s;
    notify();
  });
  child.stderr?.setEncoding('utf8').on('data', (s: string) => {
    err += s;
    notify();
  });
  let done = false;
  const exited = new Promise<Exit>((resolve) => {
    child.once('close', (code, signal) => {
      live.delete(child);
      done = true;
      resolve({ code, signal });
      notify();
    });
  });
  const waitUntil = <T>(probe: (stdout: string, stderr: string) => T | undefined, what: string, timeoutMs = 20_000): Promise<T> =>
    new Promise<T>((resolve, reject) => {
      const check = (): void => {
        const v = probe(out, err);
        if (v !== undefined) {
          finish();
          resolve(v);
        } else if (done) {
          finish();
          reject(new Error(`process exited before ${what}\nstdout:\n${out}\nstderr:\n${err}`));
        }
      };
      const timer = setTimeout(() => {
        finish();
        reject(new Error(`no ${what} within ${timeoutMs} ms\nstdout:\n${out}\nstderr:\n${err}`));
      }, timeoutMs);
      const finish = (): void => {
        clearTimeout(timer);
        watchers.delete(check);
      };
      watchers.add(check);
      check();
    });
  return {
    child,
    stdout: () => out,
    stderr: () => err,
    exited,
    waitFor: (re, timeoutMs) => waitUntil((o, e) => (o + e).match(re) ?? undefined, String(re), timeoutMs),
    waitUntil,
  };
}

/** Run `node <args>` to the end (killed after `timeoutMs`) and return its exit and output. */
export async function runNode(
  args: readonly string[],
  opts: SpawnOptions & { timeoutMs?: number } = {},
): Promise<Exit & { stdout: string; stderr: string }> {
  const p = spawnNode(args, opts);
  const timer = setTimeout(() => p.child.kill('SIGKILL'), opts.timeoutMs ?? 30_000);
  const exit = await p.exited;
  clearTimeout(timer);
  return { ...exit, stdout: p.stdout(), stderr: p.stderr() };
}

/** Run the built CLI with `args`. */
export function runCli(args: readonly string[], opts: SpawnOptions & { timeoutMs?: number } = {}) {
  return runNode([cliPath, ...args], opts);
}

/** Start the built CLI with `args`. */
export function spawnCli(args: readonly string[], opts: SpawnOptions = {}): Spawned {
  return spawnNode([cliPath, ...args], opts);
}

/** SIGKILL every process started here that is still running (afterEach/afterAll hygiene). */
export function killAllSpawned(): void {
  for (const c of live) c.kill('SIGKILL');
  live.clear();
}
