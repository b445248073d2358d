import { CeleriacError, ErrorCode, TaskFailedError } from './errors.js';
import { TaskState, type ResultMeta } from './result-backend.js';

/** What an AsyncResult needs from its app. */
export interface ResultSource {
  waitResult(taskId: string, opts: { timeoutMs: number; signal?: AbortSignal }): Promise<ResultMeta>;
  readResult(taskId: string): Promise<ResultMeta | undefined>;
  revokeTask(taskId: string): Promise<void>;
}

export interface GetOptions {
  /** @default Infinity (wait as long as it takes, like Celery) */
  timeoutMs?: number;
  signal?: AbortSignal;
}

/** A handle on a task's outcome. */
export class AsyncResult<R = unknown> {
  constructor(
    readonly id: string,
    private readonly source: ResultSource,
  ) {}

  /**
   * The task's return value, once it is ready. Waits on the result backend's notification, never a
   * busy poll. A failed task's error is re-thrown as a `TaskFailedError` carrying its `name`, `code`
   * and `message`; a revoked task rejects with ERR_REVOKED; a timeout with ERR_TIMEOUT.
   */
  async get(opts: GetOptions = {}): Promise<R> {
    const meta = await this.source.waitResult(this.id, {
      timeoutMs: opts.timeoutMs ?? Infinity,
      ...(opts.signal === undefined ? {} : { signal: opts.signal }),
    });
    return unwrap<R>(this.id, meta);
  }

  /** The current state: PENDING when the backend knows nothing of the id. */
  async state(): Promise<TaskState> {
    const meta = await this.source.readResult(this.id);
    return meta?.state ?? TaskState.PENDING;
  }

  /** Everything the backend holds for the task, or undefined (PENDING). */
  info(): Promise<ResultMeta | undefined> {
    return this.source.readResult(this.id);
  }

  /** A waiting or delayed task never runs; a running one has its `currentTask().signal` aborted. */
  revoke(): Promise<void> {
    return this.source.revokeTask(this.id);
  }

  toJSON(): { id: string } {
    return { id: this.id };
  }
}

export function unwrap<R>(taskId: string, meta: ResultMeta): R {
  switch (meta.state) {
    case TaskState.SUCCESS:
      return meta.result as R;
    case TaskState.FAILURE:
      throw new TaskFailedError(meta.error ?? { name: 'Error', message: `task ${taskId} failed` });
    case TaskState.REVOKED:
      throw new CeleriacError(ErrorCode.REVOKED, `task ${taskId} was revoked${meta.error ? `: ${meta.error.message}` : ''}`);
    default:
      throw new CeleriacError(ErrorCode.TIMEOUT, `task ${taskId} is not ready (${meta.state})`);
  }
}
