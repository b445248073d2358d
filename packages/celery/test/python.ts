import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/** Debian's Python, which sees python3-celery (the first `python3` on PATH may not). */
export const PYTHON = process.env['CELERY_PYTHON'] ?? '/usr/bin/python3';
export const FIXTURES = fileURLToPath(new URL('./fixtures/', import.meta.url));

let available: boolean | undefined;

/**
 * Whether Celery 5 is importable by {@link PYTHON}. Locally a missing Celery skips the tests that need
 * it with one line; under CI=true it fails (CI must install python3-celery python3-redis python3-msgpack).
 */
export function requirePythonCelery(): boolean {
  if (available === undefined) {
    const r = spawnSync(PYTHON, ['-c', 'import celery, redis, msgpack; assert celery.VERSION[0] == 5'], { encoding: 'utf8' });
    available = r.status === 0;
    if (!available) {
      const line = `Celery 5 is not importable by ${PYTHON}: ${(r.stderr || String(r.error)).trim().split('\n').pop()}`;
      if (process.env['CI'] === 'true') throw new Error(`${line}; CI must run apt-get install -y python3-celery python3-redis python3-msgpack`);
      process.stderr.write(`skipping Celery interop tests: ${line}\n`);
    }
  }
  return available;
}

function pyEnv(env: Record<string, string>): NodeJS.ProcessEnv {
  return { ...process.env, ...env, PYTHONPATH: FIXTURES, PYTHONUNBUFFERED: '1', PYTHONDONTWRITEBYTECODE: '1' };
}

/** Run a fixture script to completion; its stdout. */
export function runPython(script: string, args: string[] = [], input = '', env: Record<string, string> = {}): string {
  const r = spawnSync(PYTHON, [FIXTURES + script, ...args], { input, encoding: 'utf8', env: pyEnv(env), cwd: FIXTURES, timeout: 30_000 });
  if (r.status !== 0) throw new Error(`${script} failed (${r.status}): ${r.stderr}`);
  return r.stdout;
}

interface Pending {
  resolve: (v: Record<string, unknown>) => void;
  reject: (e: Error) => void;
}

/** A long-lived Python Celery client (fixtures/driver.py): one JSON request and answer per line. */
export class PythonDriver {
  private seq = 0;
  private readonly pending = new Map<number, Pending>();
  private buf = '';
  private stderr = '';

  private constructor(private readonly proc: ChildProcess) {
    proc.stdout!.setEncoding('utf8');
    proc.stdout!.on('data', (chunk: string) => {
      this.buf += chunk;
      let i: number;
      while ((i = this.buf.indexOf('\n')) >= 0) {
        const line = this.buf.slice(0, i);
        this.buf = this.buf.slice(i + 1);
        const msg = JSON.parse(line) as Record<string, unknown> & { seq: number };
        const p = this.pending.get(msg.seq);
        this.pending.delete(msg.seq);
        if (typeof msg['fatal'] === 'string') p?.reject(new Error(`driver: ${msg['fatal']}`));
        else p?.resolve(msg);
      }
    });
    proc.stderr!.setEncoding('utf8');
    proc.stderr!.on('data', (chunk: string) => {
      this.stderr = (this.stderr + chunk).slice(-4000);
    });
    proc.on('exit', (code) => {
      for (const p of this.pending.values()) p.reject(new Error(`driver exited (${code}): ${this.stderr}`));
      this.pending.clear();
    });
  }

  static start(env: Record<string, string>): PythonDriver {
    return new PythonDriver(spawn(PYTHON, [`${FIXTURES}driver.py`], { env: pyEnv(env), cwd: FIXTURES, stdio: ['pipe', 'pipe', 'pipe'] }));
  }

  request<T = Record<string, unknown>>(req: Record<string, unknown>): Promise<T> {
    const seq = ++this.seq;
    return new Promise<T>((resolve, reject) => {
      this.pending.set(seq, { resolve: resolve as (v: Record<string, unknown>) => void, reject });
      this.proc.stdin!.write(`${JSON.stringify({ ...req, seq })}\n`);
    });
  }

  /** `app.send_task(name, args, kwargs, **options)` → the task id. */
  async send(name: string, args: unknown[] = [], options: Record<string, unknown> = {}, kwargs: Record<string, unknown> = {}): Promise<string> {
    const r = await this.request<{ id: string }>({ op: 'send', name, args, kwargs, options });
    return r.id;
  }

  /** `app.signature(name, options=…).delay(*args, **kwargs)`: a Python call with keyword arguments → the task id. */
  async delay(name: string, args: unknown[], kwargs: Record<string, unknown>, options: Record<string, unknown> = {}): Promise<string> {
    const r = await this.request<{ id: string }>({ op: 'delay', name, args, kwargs, options });
    return r.id;
  }

  /** `AsyncResult(id).get()`: the value, or what Python raised. */
  get(id: string, timeout = 20): Promise<{ value?: unknown; state: string; error?: { type: string; module: string; message: string } }> {
    return this.request({ op: 'get', id, timeout });
  }

  async state(id: string): Promise<string> {
    return (await this.request<{ state: string }>({ op: 'state', id })).state;
  }

  async close(): Promise<void> {
    const exited = new Promise<void>((r) => this.proc.once('exit', () => r()));
    this.proc.stdin!.end();
    if (this.proc.exitCode === null) await exited;
  }
}

/** A Celery worker process (`celery -A interop_app worker --pool solo`). */
export class PythonWorker {
  private log = '';
  private exited: Promise<void>;

  private constructor(readonly proc: ChildProcess) {
    this.exited = new Promise((r) => proc.once('exit', () => r()));
    const keep = (chunk: string) => {
      this.log = (this.log + chunk).slice(-20_000);
    };
    proc.stdout!.setEncoding('utf8');
    proc.stderr!.setEncoding('utf8');
    proc.stdout!.on('data', keep);
    proc.stderr!.on('data', keep);
  }

  /** Start a worker on `queues` and resolve once it logged "ready". */
  static async start(env: Record<string, string>, queues: string[], name: string): Promise<PythonWorker> {
    const proc = spawn(
      PYTHON,
      ['-m', 'celery', '-A', 'interop_app', 'worker', '--pool', 'solo', '-Q', queues.join(','), '-n', `${name}@%h`,
        '--without-heartbeat', '--without-mingle', '--without-gossip', '-l', 'info'],
      { env: pyEnv(env), cwd: FIXTURES, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    const w = new PythonWorker(proc);
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`celery worker did not start:\n${w.log}`)), 30_000);
      const check = () => {
        if (/ready\./.test(w.log)) {
          clearTimeout(timer);
          resolve();
        }
      };
      proc.stdout!.on('data', check);
      proc.stderr!.on('data', check);
      proc.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`celery worker exited (${code}):\n${w.log}`));
      });
    });
    return w;
  }

  get output(): string {
    return this.log;
  }

  /** SIGKILL: the worker dies holding whatever it holds. */
  async kill(): Promise<void> {
    if (this.proc.exitCode === null && this.proc.signalCode === null) this.proc.kill('SIGKILL');
    await this.exited;
  }

  /** Cold shutdown (SIGQUIT), then SIGKILL if it lingers. */
  async stop(): Promise<void> {
    if (this.proc.exitCode !== null || this.proc.signalCode !== null) return;
    this.proc.kill('SIGQUIT');
    const timer = setTimeout(() => this.proc.kill('SIGKILL'), 5000);
    await this.exited;
    clearTimeout(timer);
  }
}

/** `python3 -c code` with `input` on stdin; its stdout. */
export function pyEval(code: string, input = ''): string {
  const r = spawnSync(PYTHON, ['-c', code], { input, encoding: 'utf8', env: pyEnv({}), cwd: FIXTURES, timeout: 30_000 });
  if (r.status !== 0) throw new Error(`python failed (${r.status}): ${r.stderr}`);
  return r.stdout;
}
