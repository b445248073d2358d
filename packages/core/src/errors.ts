/**
 * Stable error codes. Codes are stable within a major version; messages are not.
 * Branch on `code`, never on `message`.
 */
export const ErrorCode = {
  CONNECTION: 'ERR_CONNECTION',
  TIMEOUT: 'ERR_TIMEOUT',
  UNSUPPORTED: 'ERR_UNSUPPORTED',
  SERIALIZATION: 'ERR_SERIALIZATION',
  CONTENT_TYPE: 'ERR_CONTENT_TYPE',
  PAYLOAD_TOO_LARGE: 'ERR_PAYLOAD_TOO_LARGE',
  ALREADY_SETTLED: 'ERR_ALREADY_SETTLED',
  STALE_DELIVERY: 'ERR_STALE_DELIVERY',
  TASK_UNKNOWN: 'ERR_TASK_UNKNOWN',
  /**
   * A message does not fit the task's signature: keyword arguments for a task registered without
   * `kwargs: true`. Dead-lettered, never run with the arguments dropped.
   */
  TASK_SIGNATURE: 'ERR_TASK_SIGNATURE',
  TIME_LIMIT: 'ERR_TIME_LIMIT',
  REVOKED: 'ERR_REVOKED',
  EXPIRED: 'ERR_EXPIRED',
  CLOSED: 'ERR_CLOSED',
  MODULE_MISSING: 'ERR_MODULE_MISSING',
  INVALID_URL: 'ERR_INVALID_URL',
  POISON_MESSAGE: 'ERR_POISON_MESSAGE',
  TASK_FAILED: 'ERR_TASK_FAILED',
  NO_RESULT_BACKEND: 'ERR_NO_RESULT_BACKEND',
  ABORTED: 'ERR_ABORTED',
  /** A compare-and-set kept losing to other writers (`app.schedules.upsert` under heavy contention). */
  CONFLICT: 'ERR_CONFLICT',
} as const;

/** Any of the codes above, or a code carried over from a remote task's error. */
export type ErrorCodeValue = (typeof ErrorCode)[keyof typeof ErrorCode];

const RETRYABLE_BY_DEFAULT: ReadonlySet<string> = new Set([ErrorCode.CONNECTION, ErrorCode.TIMEOUT]);

export interface CeleriacErrorOptions {
  cause?: unknown;
  /** @default true for ERR_CONNECTION and ERR_TIMEOUT, false otherwise */
  retryable?: boolean;
}

/** The one base class of every error celeriac throws. */
export class CeleriacError extends Error {
  readonly code: string;
  readonly retryable: boolean;

  constructor(code: string, message: string, options: CeleriacErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'CeleriacError';
    this.code = code;
    this.retryable = options.retryable ?? RETRYABLE_BY_DEFAULT.has(code);
  }
}

/**
 * Thrown from a handler to fail the task at once: no retry, whatever the retry options say.
 */
export class UnrecoverableError extends CeleriacError {
  constructor(message: string, options: { cause?: unknown } = {}) {
    super('ERR_UNRECOVERABLE', message, { ...options, retryable: false });
    this.name = 'UnrecoverableError';
  }
}

/**
 * The error `AsyncResult.get()` throws for a task that failed in a worker: `name`, `code`,
 * `message` and `stack` are the original error's.
 */
export class TaskFailedError extends CeleriacError {
  readonly remoteStack: string | undefined;
  constructor(info: SerializedError) {
    super(info.code ?? ErrorCode.TASK_FAILED, info.message, { retryable: info.retryable ?? false });
    this.name = info.name;
    this.remoteStack = info.stack;
    if (info.stack !== undefined) this.stack = info.stack;
  }
}

/** An error as stored in a result backend and carried in events. */
export interface SerializedError {
  name: string;
  message: string;
  code?: string;
  stack?: string;
  retryable?: boolean;
}

export function serializeError(err: unknown): SerializedError {
  if (err instanceof Error) {
    const out: SerializedError = { name: err.name, message: err.message };
    const code = (err as { code?: unknown }).code;
    if (typeof code === 'string') out.code = code;
    if (err.stack !== undefined) out.stack = err.stack;
    const retryable = (err as { retryable?: unknown }).retryable;
    if (typeof retryable === 'boolean') out.retryable = retryable;
    return out;
  }
  return { name: 'Error', message: typeof err === 'string' ? err : safeString(err) };
}

function safeString(value: unknown): string {
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}

/** Wrap a driver error: CeleriacErrors pass through, anything else becomes `code` with the original as `cause`. */
export function wrapError(err: unknown, code: string, message?: string, retryable?: boolean): CeleriacError {
  if (err instanceof CeleriacError) return err;
  const text = message ?? (err instanceof Error ? err.message : String(err));
  return new CeleriacError(code, text, retryable === undefined ? { cause: err } : { cause: err, retryable });
}

export function isCeleriacError(err: unknown, code?: string): err is CeleriacError {
  return err instanceof CeleriacError && (code === undefined || err.code === code);
}
