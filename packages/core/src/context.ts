import { AsyncLocalStorage } from 'node:async_hooks';
import type { HeaderValue } from './broker.js';
import { CeleriacError, ErrorCode } from './errors.js';

/** What `currentTask()` returns inside a running handler. */
export interface TaskContext {
  readonly id: string;
  readonly name: string;
  readonly queue: string;
  /** Failed runs that were retried before this one. */
  readonly retries: number;
  /** How often the broker handed this message out (crash redeliveries included). */
  readonly deliveries: number;
  readonly headers: Readonly<Record<string, HeaderValue>>;
  readonly rootId: string | null;
  readonly parentId: string | null;
  /** Aborted on the soft time limit, on revoke, and on worker shutdown; `signal.reason` says which. */
  readonly signal: AbortSignal;
  /** Ask for a retry (Celery's `self.retry`): throws, so `throw`/`return` after it is never reached. */
  retry(opts?: { countdownMs?: number; error?: unknown }): never;
  /** Store PROGRESS with this value and emit `task:progress`. */
  progress(value: unknown): Promise<void>;
}

/** Thrown by `currentTask().retry()`; the worker turns it into a retry. */
export class RetryRequest extends Error {
  constructor(
    readonly countdownMs: number | undefined,
    readonly error: unknown,
  ) {
    super('retry requested');
    this.name = 'RetryRequest';
  }
}

export const taskStorage = new AsyncLocalStorage<TaskContext>();

/** The running task's context. Throws outside a task handler. */
export function currentTask(): TaskContext {
  const ctx = taskStorage.getStore();
  if (ctx === undefined) {
    throw new CeleriacError(ErrorCode.UNSUPPORTED, 'currentTask() was called outside a running task');
  }
  return ctx;
}
