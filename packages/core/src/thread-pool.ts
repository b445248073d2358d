import { Worker as Thread } from 'node:worker_threads';
import { isAbsolute, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { HeaderValue } from './broker.js';
import { RetryRequest } from './context.js';
import { CeleriacError, ErrorCode, type SerializedError } from './errors.js';
import type { Logger } from './logger.js';

/** The part of the task context that crosses into the thread. */
export interface ThreadContext {
  id: string;
  name: string;
  queue: string;
  retries: number;
  deliveries: number;
  headers: Record<string, HeaderValue>;
  rootId: string | null;
  parentId: string | null;
}

export type ThreadRequest =
  | { type: 'run'; task: string; args: unknown[]; context: ThreadContext }
  | { type: 'abort'; code: string; message: string };

export type ThreadReply =
  | { type: 'ready' }
  | { type: 'result'; value: unknown }
  | { type: 'error'; error: SerializedError }
  | { type: 'retry'; countdownMs: number | null; error: SerializedError | null }
  | { type: 'progress'; value: unknown };

/** An error thrown by a handler in a thread, rebuilt with its original name, code, message and stack. */
export class ThreadTaskError extends CeleriacError {
  readonly remote = true;
  constructor(info: SerializedError) {
    super(info.code ?? ErrorCode.TASK_FAILED, info.message, { retryable: info.retryable ?? false });
    this.name = info.name;
    if (info.stack !== undefined) this.stack = info.stack;
  }
}

interface Slot {
  thread: Thread;
  ready: Promise<void>;
  busy: boolean;
  onReply: ((r: ThreadReply) => void) | undefined;
  onExit: ((code: number) => void) | undefined;
}

const ENTRY = new URL('./thread-entry.js', import.meta.url);

/**
 * A fixed set of worker threads that run handlers from an app module imported by path. A task past
 * its hard time limit has its thread terminated (and replaced); the worker goes on.
 */
export class ThreadPool {
  private readonly slots: Slot[] = [];
  private readonly moduleUrl: string;
  private closed = false;

  constructor(
    appModule: string,
    readonly size: number,
    private readonly logger: Logger,
  ) {
    this.moduleUrl = appModule.startsWith('file:') ? appModule : pathToFileURL(isAbsolute(appModule) ? appModule : resolve(appModule)).href;
  }

  /** Start every thread and wait until each imported the app module. */
  async start(): Promise<void> {
    for (let i = 0; i < this.size; i++) {
      const slot = { busy: false, onReply: undefined, onExit: undefined } as unknown as Slot;
      this.spawnInto(slot);
      this.slots.push(slot);
    }
    await Promise.all(this.slots.map((s) => s.ready));
  }

  private spawnInto(slot: Slot): void {
    const thread = new Thread(ENTRY, { workerData: { appModule: this.moduleUrl } });
    slot.thread = thread;
    slot.ready = new Promise<void>((resolveReady, reject) => {
      const onError = (err: unknown) =>
        reject(new CeleriacError(ErrorCode.TASK_UNKNOWN, `thread could not load ${this.moduleUrl}: ${String(err)}`, { cause: err }));
      thread.once('error', onError);
      thread.once('message', (m: ThreadReply) => {
        if (m.type === 'ready') {
          thread.off('error', onError);
          resolveReady();
        }
      });
    });
    slot.ready.catch(() => undefined);
    thread.on('message', (m: ThreadReply) => slot.onReply?.(m));
    thread.on('error', (err) => this.logger.error('task thread failed', { error: String(err) }));
    thread.on('exit', (code) => slot.onExit?.(code));
  }

  /**
   * Run a handler in an idle thread. `hardLimitMs` terminates the thread and rejects with
   * ERR_TIME_LIMIT; `signal` forwards a soft abort into the thread's task signal.
   */
  async run(
    task: string,
    args: unknown[],
    context: ThreadContext,
    opts: { hardLimitMs: number | null; signal: AbortSignal | undefined; onProgress: (v: unknown) => Promise<void> },
  ): Promise<unknown> {
    const slot = this.slots.find((s) => !s.busy);
    if (slot === undefined || this.closed) throw new CeleriacError(ErrorCode.CLOSED, 'no idle task thread');
    slot.busy = true;
    try {
      await slot.ready;
      return await new Promise<unknown>((resolvePromise, reject) => {
        let timer: NodeJS.Timeout | undefined;
        const done = () => {
          if (timer !== undefined) clearTimeout(timer);
          opts.signal?.removeEventListener('abort', onAbort);
          slot.onReply = undefined;
          slot.onExit = undefined;
        };
        const onAbort = () => {
          const reason = opts.signal?.reason as { code?: string; message?: string } | undefined;
          slot.thread.postMessage({ type: 'abort', code: reason?.code ?? ErrorCode.ABORTED, message: reason?.message ?? 'aborted' } satisfies ThreadRequest);
        };
        slot.onReply = (m) => {
          if (m.type === 'progress') {
            opts.onProgress(m.value).catch((err: unknown) => this.logger.warn('progress failed', { error: String(err) }));
            return;
          }
          if (m.type === 'ready') return;
          done();
          if (m.type === 'result') resolvePromise(m.value);
          else if (m.type === 'error') reject(new ThreadTaskError(m.error));
          else reject(new RetryRequest(m.countdownMs ?? undefined, m.error === null ? undefined : new ThreadTaskError(m.error)));
        };
        slot.onExit = (code) => {
          done();
          reject(new CeleriacError(ErrorCode.TASK_FAILED, `task thread exited with code ${code}`));
          this.replace(slot);
        };
        if (opts.hardLimitMs !== null) {
          timer = setTimeout(() => {
            done();
            reject(new CeleriacError(ErrorCode.TIME_LIMIT, `task ${task} exceeded its hard time limit of ${opts.hardLimitMs} ms; its thread was terminated`));
            this.replace(slot);
          }, opts.hardLimitMs);
        }
        if (opts.signal?.aborted === true) onAbort();
        else opts.signal?.addEventListener('abort', onAbort, { once: true });
        slot.thread.postMessage({ type: 'run', task, args, context } satisfies ThreadRequest);
      });
    } finally {
      slot.busy = false;
    }
  }

  /** Terminate a thread (stuck or dead) and put a fresh one in its place. */
  private replace(slot: Slot): void {
    const old = slot.thread;
    old.removeAllListeners('exit');
    void old.terminate();
    if (!this.closed) this.spawnInto(slot);
  }

  async close(): Promise<void> {
    this.closed = true;
    await Promise.all(this.slots.map((s) => s.thread.terminate()));
  }
}
