import type { SignatureData } from '@celeriac/core';

/** A signature as Celery puts it in a message (`dict(Signature)`). */
export interface CelerySignature {
  task: string;
  args: unknown[];
  kwargs: Record<string, unknown>;
  options: Record<string, unknown>;
  subtask_type: string | null;
  immutable: boolean;
  [key: string]: unknown;
}

/**
 * Where a Celery signature's fields that celeriac does not model are kept inside a celeriac
 * signature's options, so a signature passing through a Node worker (the rest of a chain, a link)
 * goes on to Python unchanged.
 */
export const CELERY_EXTRA = 'celery';

interface CeleryExtra {
  options?: Record<string, unknown>;
  subtask_type?: string | null;
  top?: Record<string, unknown>;
}

const SIG_KEYS = new Set(['task', 'args', 'kwargs', 'options', 'subtask_type', 'immutable']);

function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

function seconds(ms: number): number {
  return ms / 1000;
}

/** celeriac → Celery. */
export function toCelerySignature(sig: SignatureData): CelerySignature {
  const o = { ...(sig.options ?? {}) };
  const extra = isObject(o[CELERY_EXTRA]) ? (o[CELERY_EXTRA] as CeleryExtra) : {};
  const options: Record<string, unknown> = { ...(extra.options ?? {}) };
  if (typeof o['taskId'] === 'string') options['task_id'] = o['taskId'];
  if (typeof o['queue'] === 'string') options['queue'] = o['queue'];
  if (typeof o['priority'] === 'number') options['priority'] = o['priority'];
  if (typeof o['countdownMs'] === 'number') options['countdown'] = seconds(o['countdownMs']);
  if (typeof o['expiresMs'] === 'number') options['expires'] = seconds(o['expiresMs']);
  if (typeof o['timeLimitMs'] === 'number') options['soft_time_limit'] = seconds(o['timeLimitMs']);
  if (typeof o['chordSize'] === 'number') options['chord_size'] = o['chordSize'];
  if (Array.isArray(o['link'])) options['link'] = (o['link'] as SignatureData[]).map(toCelerySignature);
  if (Array.isArray(o['linkError'])) options['link_error'] = (o['linkError'] as SignatureData[]).map(toCelerySignature);
  return {
    task: sig.task,
    args: [...sig.args],
    kwargs: { ...(sig.kwargs ?? {}) },
    options,
    subtask_type: extra.subtask_type ?? null,
    immutable: sig.immutable === true,
    ...(extra.top ?? {}),
  };
}

/** Celery → celeriac. Options celeriac has no name for are kept (see {@link CELERY_EXTRA}). */
export function fromCelerySignature(raw: unknown): SignatureData {
  if (!isObject(raw) || typeof raw['task'] !== 'string') {
    throw new TypeError('a Celery signature needs a "task" name');
  }
  const src = isObject(raw['options']) ? raw['options'] : {};
  const options: Record<string, unknown> = {};
  const rest: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(src)) {
    switch (k) {
      case 'task_id':
        if (typeof v === 'string') options['taskId'] = v;
        else rest[k] = v;
        break;
      case 'queue':
        // Celery may hold a Queue as a dict; only a name maps.
        if (typeof v === 'string') options['queue'] = v;
        else rest[k] = v;
        break;
      case 'priority':
        if (typeof v === 'number') options['priority'] = v;
        else rest[k] = v;
        break;
      case 'countdown':
        if (typeof v === 'number') options['countdownMs'] = v * 1000;
        else rest[k] = v;
        break;
      case 'expires':
        if (typeof v === 'number') options['expiresMs'] = v * 1000;
        else rest[k] = v; // an ISO date: passed on as is
        break;
      case 'soft_time_limit':
        if (typeof v === 'number') options['timeLimitMs'] = v * 1000;
        else rest[k] = v;
        break;
      case 'chord_size':
        if (typeof v === 'number') options['chordSize'] = v;
        else rest[k] = v;
        break;
      case 'link':
      case 'link_error': {
        const list = Array.isArray(v) ? v : isObject(v) ? [v] : [];
        options[k === 'link' ? 'link' : 'linkError'] = list.map(fromCelerySignature);
        break;
      }
      default:
        rest[k] = v;
    }
  }
  const top: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(raw)) if (!SIG_KEYS.has(k)) top[k] = v;
  const subtaskType = typeof raw['subtask_type'] === 'string' ? raw['subtask_type'] : null;
  if (Object.keys(rest).length > 0 || subtaskType !== null || Object.keys(top).length > 0) {
    const extra: CeleryExtra = {};
    if (Object.keys(rest).length > 0) extra.options = rest;
    if (subtaskType !== null) extra.subtask_type = subtaskType;
    if (Object.keys(top).length > 0) extra.top = top;
    options[CELERY_EXTRA] = extra;
  }
  const out: SignatureData = {
    task: raw['task'],
    args: Array.isArray(raw['args']) ? [...(raw['args'] as unknown[])] : [],
    options,
  };
  if (isObject(raw['kwargs']) && Object.keys(raw['kwargs']).length > 0) out.kwargs = { ...raw['kwargs'] };
  if (raw['immutable'] === true) out.immutable = true;
  return out;
}
