import { TaskState, type ResultMeta, type SerializedError } from '@celeriac/core';
import { hostname } from 'node:os';
import { pyRepr } from './python-repr.js';
import { isoNaive, parseIsoMs } from './wire.js';

/** Celery's exception dict (`Backend.prepare_exception` with a JSON serializer), plus celeriac's extras. */
export interface CeleryExceptionInfo {
  exc_type: string;
  exc_message: unknown;
  exc_module?: string | null;
  /** celeriac's error code; Celery ignores it. */
  exc_code?: string;
  /** celeriac's retryable flag; Celery ignores it. */
  exc_retryable?: boolean;
}

/** A `celery-task-meta-<id>` value. */
export interface CeleryMeta {
  status: string;
  result: unknown;
  traceback: string | null;
  children: unknown[];
  date_done: string | null;
  task_id?: string;
  [k: string]: unknown;
}

/** Exception names Python has as builtins: a JS error with one of these names becomes that Python class. */
const PY_BUILTINS = new Set([
  'Exception', 'ArithmeticError', 'AssertionError', 'AttributeError', 'ConnectionError', 'EOFError',
  'FileNotFoundError', 'IndexError', 'IOError', 'KeyError', 'LookupError', 'MemoryError', 'NotImplementedError',
  'OSError', 'OverflowError', 'PermissionError', 'RecursionError', 'RuntimeError', 'SyntaxError',
  'TimeoutError', 'TypeError', 'UnicodeError', 'ValueError', 'ZeroDivisionError',
]);

/** What Celery stores for a revoked task, so Python's `get()` raises `TaskRevokedError`. */
const REVOKED_TYPE = 'TaskRevokedError';

const READY = new Set<string>([TaskState.SUCCESS, TaskState.FAILURE, TaskState.REVOKED]);

/**
 * The name of celeriac's base error class, which tells a Python reader nothing: Python gets the code at
 * the end of the message instead (`… (ERR_TASK_SIGNATURE)`, as the CLI writes it), and Node reads it back
 * without it.
 */
const BASE_ERROR = 'CeleriacError';

/** A celeriac error → Celery's exception dict. */
export function toExceptionInfo(error: SerializedError, type = error.name): CeleryExceptionInfo {
  const withCode = type === BASE_ERROR && error.code !== undefined;
  const info: CeleryExceptionInfo = {
    exc_type: type,
    exc_message: [withCode ? `${error.message} (${error.code})` : error.message],
    // builtins: Python re-raises the real class; otherwise Celery makes a class of that name.
    exc_module: type === REVOKED_TYPE ? 'celery.exceptions' : PY_BUILTINS.has(type) ? 'builtins' : 'celeriac',
  };
  if (error.code !== undefined) info.exc_code = error.code;
  if (error.retryable !== undefined) info.exc_retryable = error.retryable;
  return info;
}

/** `str(exc)` of an exception rebuilt from `exc_message` (its `args`). */
function messageOf(excMessage: unknown): string {
  if (typeof excMessage === 'string') return excMessage;
  if (Array.isArray(excMessage)) {
    if (excMessage.length === 0) return '';
    if (excMessage.length === 1) return typeof excMessage[0] === 'string' ? excMessage[0] : pyRepr(excMessage[0]);
    return `(${excMessage.map(pyRepr).join(', ')})`;
  }
  return excMessage === null || excMessage === undefined ? '' : pyRepr(excMessage);
}

/** Celery's exception dict (and traceback) → a celeriac error, keys in `serializeError`'s order. */
export function fromExceptionInfo(raw: unknown, traceback: unknown): SerializedError {
  const info = raw !== null && typeof raw === 'object' && !Array.isArray(raw) ? (raw as Partial<CeleryExceptionInfo>) : {};
  const name = typeof info.exc_type === 'string' ? info.exc_type : 'Error';
  let message = raw === null || typeof raw !== 'object' ? messageOf(raw) : messageOf(info.exc_message);
  const suffix = ` (${String(info.exc_code)})`;
  if (name === BASE_ERROR && typeof info.exc_code === 'string' && message.endsWith(suffix)) message = message.slice(0, -suffix.length);
  // serializeError's key order: name, code, message, stack, retryable
  const out = (typeof info.exc_code === 'string' ? { name, code: info.exc_code, message } : { name, message }) as SerializedError;
  if (typeof traceback === 'string' && traceback !== '') out.stack = traceback;
  if (typeof info.exc_retryable === 'boolean') out.retryable = info.exc_retryable;
  return out;
}

/** celeriac's result → the JSON Celery's Redis backend stores (`_get_result_meta` + `task_id`). */
export function toCeleryMeta(taskId: string, meta: ResultMeta, now = Date.now()): CeleryMeta {
  let result: unknown;
  let traceback: string | null = null;
  switch (meta.state) {
    case TaskState.SUCCESS:
      result = meta.result ?? null;
      break;
    case TaskState.FAILURE:
    case TaskState.RETRY: {
      const error = meta.error ?? { name: 'Error', message: `task ${taskId} failed` };
      result = toExceptionInfo(error);
      traceback = error.stack ?? null;
      break;
    }
    case TaskState.REVOKED: {
      const error = meta.error ?? { name: REVOKED_TYPE, message: 'revoked' };
      result = toExceptionInfo(error, REVOKED_TYPE);
      break;
    }
    case TaskState.PROGRESS:
      result = meta.progress ?? null;
      break;
    case TaskState.STARTED:
      result = { pid: process.pid, hostname: hostname() };
      break;
    default:
      result = meta.result ?? null;
  }
  const out: CeleryMeta = {
    status: meta.state,
    result,
    traceback,
    children: (meta.children ?? []).map((id) => [[id, null], null]),
    date_done: READY.has(meta.state) ? isoNaive(meta.dateDone ?? now) : null,
    task_id: taskId,
  };
  if (meta.name !== undefined) out['name'] = meta.name;
  if (meta.retries !== undefined) out['retries'] = meta.retries;
  return out;
}

function childIds(children: unknown): string[] | undefined {
  if (!Array.isArray(children) || children.length === 0) return undefined;
  const ids: string[] = [];
  for (const c of children) {
    // AsyncResult.as_tuple(): ((id, parent), None); GroupResult: ((id, parent), [members])
    if (Array.isArray(c) && Array.isArray(c[0]) && typeof c[0][0] === 'string') ids.push(c[0][0]);
    else if (typeof c === 'string') ids.push(c);
  }
  return ids.length > 0 ? ids : undefined;
}

/** A stored Celery result → celeriac's. */
export function fromCeleryMeta(raw: unknown): ResultMeta {
  const m = (raw !== null && typeof raw === 'object' ? raw : {}) as Partial<CeleryMeta>;
  const state = (typeof m.status === 'string' ? m.status : TaskState.PENDING) as TaskState;
  const out: ResultMeta = { state };
  switch (state) {
    case TaskState.SUCCESS:
      out.result = m.result;
      break;
    case TaskState.FAILURE:
    case TaskState.RETRY:
    case TaskState.REVOKED:
      out.error = fromExceptionInfo(m.result, m.traceback);
      break;
    case TaskState.PROGRESS:
      out.progress = m.result;
      break;
    default:
      if (m.result !== null && m.result !== undefined) out.result = m.result;
  }
  if (typeof m['name'] === 'string') out.name = m['name'];
  if (typeof m['retries'] === 'number') out.retries = m['retries'];
  const done = parseIsoMs(m.date_done);
  if (done !== null) out.dateDone = Math.round(done);
  const children = childIds(m.children);
  if (children !== undefined) out.children = children;
  return out;
}

/** `celery-taskset-meta-<gid>`: `{"result": GroupResult.as_tuple()}`. */
export function toCeleryGroup(groupId: string, memberIds: readonly string[]): { result: unknown } {
  return { result: [[groupId, null], memberIds.map((id) => [[id, null], null])] };
}

export function fromCeleryGroup(raw: unknown): ResultMeta | undefined {
  const r = (raw !== null && typeof raw === 'object' ? raw : {}) as { result?: unknown };
  const t = r.result;
  if (!Array.isArray(t) || !Array.isArray(t[1])) return undefined;
  return { state: TaskState.SUCCESS, name: 'group', children: childIds(t[1]) ?? [] };
}
