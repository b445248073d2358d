import { TaskState } from '@celeriac/core';
import { describe, expect, it } from 'vitest';
import { pyJson } from '../src/python-json.js';
import { fromCeleryGroup, fromCeleryMeta, toCeleryGroup, toCeleryMeta } from '../src/result-meta.js';
import { fromKombuPriority, kombuStep, parseIsoMs, toKombuPriority } from '../src/wire.js';
import { pyEval, requirePythonCelery } from './python.js';

const PARENT = '3c9d0d93-2d1f-4f6a-9d61-3b5e1f0a8c27';
const CHILD = '28762ec5-7e0a-4c1b-8f9e-2a7d5c3b1e40';

describe('results in Celery’s Redis format (celery-wire.md §2.4)', () => {
  it('writes the captured value byte for byte (times cut to milliseconds)', () => {
    const done = Date.parse('2026-11-24T20:40:35.623Z');
    expect(pyJson(toCeleryMeta(PARENT, { state: TaskState.SUCCESS, result: 3, dateDone: done, children: [CHILD] }))).toBe(
      `{"status": "SUCCESS", "result": 3, "traceback": null, "children": [[["${CHILD}", null], null]], ` +
        `"date_done": "2026-11-24T20:40:35.623000", "task_id": "${PARENT}"}`,
    );
  });

  it('reads the captured values', () => {
    const m = fromCeleryMeta(
      JSON.parse(
        `{"status": "SUCCESS", "result": 30, "traceback": null, "children": [], "date_done": "2026-11-24T20:40:35.627188", "parent_id": "${PARENT}", "task_id": "${CHILD}"}`,
      ),
    );
    expect(m).toEqual({ state: 'SUCCESS', result: 30, dateDone: Date.parse('2026-11-24T20:40:35.627Z') });
    expect(fromCeleryMeta({ status: 'SUCCESS', result: 3, children: [[[CHILD, null], null]] }).children).toEqual([CHILD]);
  });

  it('maps failures to Celery’s exception dict and back, keeping celeriac’s code', () => {
    const error = { name: 'TypeError', code: 'ERR_X', message: 'bad', stack: 'TypeError: bad\n    at x', retryable: false };
    const meta = toCeleryMeta('t1', { state: TaskState.FAILURE, error, dateDone: 0 });
    expect(meta.result).toEqual({ exc_type: 'TypeError', exc_message: ['bad'], exc_module: 'builtins', exc_code: 'ERR_X', exc_retryable: false });
    expect(meta.traceback).toBe(error.stack);
    expect(fromCeleryMeta(JSON.parse(pyJson(meta)))).toMatchObject({ state: 'FAILURE', error });
    // what Python's prepare_exception writes for ValueError('a', 2)
    expect(fromCeleryMeta({ status: 'FAILURE', result: { exc_type: 'ValueError', exc_message: ['a', 2], exc_module: 'builtins' }, traceback: 'Traceback…' }).error).toEqual({
      name: 'ValueError',
      message: "('a', 2)",
      stack: 'Traceback…',
    });
    // celeriac's base class: Python sees the code at the end of the message; Node reads it back without.
    const base = { name: 'CeleriacError', code: 'ERR_TASK_SIGNATURE', message: 'takes no keyword arguments' };
    const baseMeta = toCeleryMeta('t3', { state: TaskState.FAILURE, error: base });
    expect(baseMeta.result).toMatchObject({ exc_type: 'CeleriacError', exc_message: ['takes no keyword arguments (ERR_TASK_SIGNATURE)'], exc_code: 'ERR_TASK_SIGNATURE' });
    expect(fromCeleryMeta(JSON.parse(pyJson(baseMeta))).error).toEqual(base);
    expect(toCeleryMeta('t2', { state: TaskState.REVOKED, error: { name: 'CeleriacError', code: 'ERR_EXPIRED', message: 'expired' } }).result).toMatchObject({
      exc_type: 'TaskRevokedError',
      exc_module: 'celery.exceptions',
    });
  });

  it('keeps a group’s members as Celery’s GroupResult tuple', () => {
    const g = toCeleryGroup('g1', ['a', 'b']);
    expect(pyJson(g)).toBe('{"result": [["g1", null], [[["a", null], null], [["b", null], null]]]}');
    expect(fromCeleryGroup(g)).toEqual({ state: 'SUCCESS', name: 'group', children: ['a', 'b'] });
  });

  it.skipIf(!requirePythonCelery())('Celery turns the stored failures back into the right Python exceptions', () => {
    const metas = [
      toCeleryMeta('t1', { state: TaskState.FAILURE, error: { name: 'TypeError', message: 'wrong type' } }),
      toCeleryMeta('t2', { state: TaskState.FAILURE, error: { name: 'QuotaError', code: 'ERR_QUOTA', message: 'over quota' } }),
      toCeleryMeta('t3', { state: TaskState.REVOKED }),
      toCeleryMeta('t4', { state: TaskState.FAILURE, error: { name: 'CeleriacError', code: 'ERR_TASK_UNKNOWN', message: 'no task named "x"' } }),
    ];
    const out = pyEval(
      [
        'import json, sys',
        'from celery import Celery',
        "app = Celery('x', backend='cache+memory://')",
        'for line in sys.stdin:',
        '    meta = app.backend.meta_from_decoded(json.loads(line))',
        "    e = app.backend.exception_to_python(meta['result'])",
        "    print(json.dumps([type(e).__name__, type(e).__module__, str(e), isinstance(e, Exception)]))",
      ].join('\n'),
      metas.map((m) => pyJson(m)).join('\n'),
    );
    expect(out.trim().split('\n').map((l) => JSON.parse(l) as unknown)).toEqual([
      ['TypeError', 'builtins', 'wrong type', true],
      ['QuotaError', 'celery.exceptions', 'over quota', true],
      ['TaskRevokedError', 'celery.exceptions', 'revoked', true],
      ['CeleriacError', 'celery.exceptions', 'no task named "x" (ERR_TASK_UNKNOWN)', true],
    ]);
  });
});

describe('wire helpers', () => {
  it('parses Python isoformat times, with or without an offset (UTC when none)', () => {
    expect(parseIsoMs('2026-11-24T20:41:22.048042+00:00')).toBeCloseTo(Date.parse('2026-11-24T20:41:22.048Z') + 0.042, 3);
    expect(parseIsoMs('2026-11-24T21:41:22+01:00')).toBe(Date.parse('2026-11-24T20:41:22Z'));
    expect(parseIsoMs('2026-11-24T20:41:22.5')).toBe(Date.parse('2026-11-24T20:41:22.500Z'));
    expect(parseIsoMs('not a time')).toBeNull();
    expect(parseIsoMs(null)).toBeNull();
  });

  it('maps celeriac priorities (9 most urgent) to kombu’s Redis lists (0 most urgent, steps 0/3/6/9)', () => {
    expect([9, 8, 7, 6, 5, 4, 3, 2, 1, 0].map((p) => kombuStep(toKombuPriority(p)))).toEqual([0, 0, 0, 3, 3, 3, 6, 6, 6, 9]);
    expect(fromKombuPriority(toKombuPriority(4))).toBe(4);
    expect(fromKombuPriority(255)).toBe(0);
  });
});
