import { jsonSerializer, msgpackSerializer, type TaskMessage } from '@celeriac/core';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { decodeCeleryTask, encodeCeleryTask } from '../src/celery-codec.js';
import { buildEnvelope, parseEnvelope, serializeEnvelope } from '../src/kombu-envelope.js';
import { pyJson } from '../src/python-json.js';
import { argsRepr, kwargsRepr } from '../src/python-repr.js';
import { pyEval, requirePythonCelery, runPython } from './python.js';

const accept = new Set(['application/json', 'application/x-msgpack']);

/**
 * The capture of celery-wire.md §2.2 — `apply_async((2,2), countdown=60, priority=3, expires=3600,
 * time_limit=30, soft_time_limit=20)` on Celery 5.2.6 / kombu 5.2.4 — with the ids the note
 * shortens written out and the times cut to milliseconds (JavaScript's precision).
 */
const ID = '48435a16-8c3e-4a8e-9d0b-6f2f8a3c1d2e';
const REPLY = '01a671a5-3a54-3f2c-a0d6-8f1f0a9b7c11';
const TAG = '2dbe1210-5b4e-4c55-9d43-0e6c6a1f9a77';
const NOTE_CAPTURE =
  '{"body": "W1syLCAyXSwge30sIHsiY2FsbGJhY2tzIjogbnVsbCwgImVycmJhY2tzIjogbnVsbCwgImNoYWluIjogbnVsbCwgImNob3JkIjogbnVsbH1d", ' +
  '"content-encoding": "utf-8", "content-type": "application/json", ' +
  `"headers": {"lang": "py", "task": "proj.tasks.add", "id": "${ID}", "shadow": null, ` +
  '"eta": "2026-11-24T20:41:22.048000+00:00", "expires": "2026-11-24T21:40:22.048000+00:00", ' +
  '"group": null, "group_index": null, "retries": 0, "timelimit": [30, 20], ' +
  `"root_id": "${ID}", "parent_id": null, "argsrepr": "(2, 2)", "kwargsrepr": "{}", ` +
  '"origin": "gen12129@vm", "ignore_result": false}, ' +
  `"properties": {"correlation_id": "${ID}", "reply_to": "${REPLY}", "delivery_mode": 2, ` +
  '"expiration": "3600000", "delivery_info": {"exchange": "", "routing_key": "celery"}, ' +
  `"priority": 3, "body_encoding": "base64", "delivery_tag": "${TAG}"}}`;

const ETA = Date.parse('2026-11-24T20:41:22.048Z');
const SENT = ETA - 60_000;

function noteMessage(): TaskMessage {
  return {
    id: ID,
    task: 'proj.tasks.add',
    args: [2, 2],
    kwargs: {},
    embed: {},
    retries: 0,
    rootId: ID,
    parentId: null,
    group: null,
    eta: ETA,
    expires: SENT + 3_600_000,
    timeLimitMs: 20_000,
    hardTimeLimitMs: 30_000,
    priority: 6, // celeriac's scale: kombu's 3 on Redis
    origin: 'gen12129@vm',
    traceparent: null,
    extra: { reply_to: REPLY },
  };
}

function envelopeOf(msg: TaskMessage, serializer = jsonSerializer, gzip = false, queue = 'celery'): string {
  const out = encodeCeleryTask(msg, serializer, gzip);
  const pri = typeof out.headers['priority'] === 'number' ? 9 - out.headers['priority'] : 0;
  return serializeEnvelope(buildEnvelope({ ...out, id: TAG }, '', queue, pri));
}

afterEach(() => {
  vi.useRealTimers();
});

describe('the Celery codec against celery-wire.md', () => {
  it('writes the captured envelope byte for byte (but for lang: js)', () => {
    vi.useFakeTimers({ now: SENT, toFake: ['Date'] });
    expect(envelopeOf(noteMessage())).toBe(NOTE_CAPTURE.replace('"lang": "py"', '"lang": "js"'));
  });

  it('reads the captured envelope (with microseconds, as Python writes them)', () => {
    const capture = NOTE_CAPTURE.replace('22.048000', '22.048042').replace('22.048000', '22.048042');
    const p = parseEnvelope(capture);
    expect(p.tag).toBe(TAG);
    expect(p.kombuPriority).toBe(3);
    const m = decodeCeleryTask(p, accept);
    expect(m).toMatchObject({
      id: ID, task: 'proj.tasks.add', args: [2, 2], kwargs: {}, retries: 0, rootId: ID, parentId: null, group: null,
      timeLimitMs: 20_000, hardTimeLimitMs: 30_000, priority: 6, origin: 'gen12129@vm',
    });
    expect(m.eta).toBeCloseTo(ETA + 0.042, 3);
    expect(m.expires).toBeCloseTo(SENT + 3_600_000 + 0.042, 3);
    expect(m.extra).toMatchObject({ reply_to: REPLY, shadow: null, group_index: null, ignore_result: false });
    expect(m.embed).toEqual({});
  });

  it('refuses a content type outside accept (pickle) and a message without task headers', () => {
    const p = parseEnvelope(NOTE_CAPTURE);
    expect(() => decodeCeleryTask({ ...p, headers: { ...p.headers, 'content-type': 'application/x-python-serialize' } }, accept)).toThrow(
      expect.objectContaining({ code: 'ERR_CONTENT_TYPE' }),
    );
    expect(() => decodeCeleryTask({ body: p.body, headers: { 'content-type': 'application/json' } }, accept)).toThrow(
      expect.objectContaining({ code: 'ERR_SERIALIZATION' }),
    );
  });
});

describe('keyword arguments in the Celery codec', () => {
  it("kwargs are the body's second element; the sender's argsrepr/kwargsrepr are kept through a retry, Python reprs otherwise", () => {
    const msg: TaskMessage = { ...noteMessage(), args: ['ann'], kwargs: { subject: "it's", n: [1, null] } };
    const out = encodeCeleryTask(msg, jsonSerializer);
    expect(new TextDecoder().decode(out.body)).toBe(
      '[["ann"], {"subject": "it\'s", "n": [1, null]}, {"callbacks": null, "errbacks": null, "chain": null, "chord": null}]',
    );
    expect([out.headers['argsrepr'], out.headers['kwargsrepr']]).toEqual(["('ann',)", `{'subject': "it's", 'n': [1, None]}`]);
    const back = decodeCeleryTask(out, accept);
    expect(back.kwargs).toEqual({ subject: "it's", n: [1, null] });
    expect([back.argsRepr, back.kwargsRepr]).toEqual(["('ann',)", `{'subject': "it's", 'n': [1, None]}`]);
    // A Python producer may hide secrets with apply_async(argsrepr=..., kwargsrepr=...): a Node retry keeps them.
    const hidden = decodeCeleryTask({ body: out.body, headers: { ...out.headers, argsrepr: '(***)', kwargsrepr: "{'subject': '***'}" } }, accept);
    expect([hidden.argsRepr, hidden.kwargsRepr]).toEqual(['(***)', "{'subject': '***'}"]);
    const retried = encodeCeleryTask({ ...hidden, retries: 1 }, jsonSerializer);
    expect([retried.headers['argsrepr'], retried.headers['kwargsrepr']]).toEqual(['(***)', "{'subject': '***'}"]);
    // Without the headers (another protocol v2 producer), the reprs are Python's.
    const { argsrepr: _a, kwargsrepr: _k, ...bare } = out.headers;
    expect(decodeCeleryTask({ body: out.body, headers: bare }, accept)).toMatchObject({ argsRepr: "('ann',)", kwargsRepr: `{'subject': "it's", 'n': [1, None]}` });
  });

  it('refuses a body whose kwargs are not a dict', () => {
    const out = encodeCeleryTask(noteMessage(), jsonSerializer);
    for (const kw of ['[1]', '"x"', '3']) {
      const body = new TextEncoder().encode(`[[1], ${kw}, {}]`);
      expect(() => decodeCeleryTask({ body, headers: out.headers }, accept)).toThrow(expect.objectContaining({ code: 'ERR_SERIALIZATION' }));
    }
    expect(decodeCeleryTask({ body: new TextEncoder().encode('[[1], null, {}]'), headers: out.headers }, accept).kwargs).toEqual({});
  });
});

describe('Python-compatible text', () => {
  it('pyJson writes what json.dumps writes', () => {
    const values = [
      { a: [1, 2.5, -0.0001, 1e-7, 123456789012, true, null], 's': 'ü "q" \\ \n\t\u0001 😀 /', e: {}, l: [] },
      [[], {}, 'x'],
    ];
    if (requirePythonCelery()) {
      for (const v of values) {
        const py = pyEval('import json,sys; print(json.dumps(json.loads(sys.stdin.read())), end="")', JSON.stringify(v));
        expect(pyJson(v)).toBe(py);
      }
    }
    expect(pyJson({ a: 1e-5, b: [undefined], c: undefined })).toBe('{"a": 1e-05, "b": [null]}');
  });

  it('argsrepr and kwargsrepr are Python reprs', () => {
    expect(argsRepr([2, 2])).toBe('(2, 2)');
    expect(argsRepr([1])).toBe('(1,)');
    expect(argsRepr(["it's", null, true, [1, 'a']])).toBe(`("it's", None, True, [1, 'a'])`);
    expect(kwargsRepr({ x: 1, s: 'a' })).toBe("{'x': 1, 's': 'a'}");
    expect(argsRepr(['x'.repeat(2000)])).toHaveLength(1024);
  });
});

describe.skipIf(!requirePythonCelery())('the Celery codec against live Celery 5 (kombu in-memory transport)', () => {
  for (const serializer of ['json', 'msgpack'] as const) {
    it(`reads what Celery writes (${serializer}) and writes it back so Celery reads the same`, () => {
      const lines = runPython('capture.py', [serializer]).trim().split('\n');
      expect(lines).toHaveLength(7);
      const msgs = lines.map((l) => decodeCeleryTask(parseEnvelope(l), accept));
      const [plain, full, chained, linked, chord1, chord2, compressed] = msgs as [TaskMessage, ...TaskMessage[]];
      expect(plain.args).toEqual([2, 2]);
      expect(plain.priority).toBe(9); // kombu's default 0: its most urgent list
      expect(full!.kwargs).toEqual({ x: 1, s: 'ü' });
      expect(full!.eta! - Date.now()).toBeGreaterThan(50_000);
      expect(full!.expires! - full!.eta!).toBeCloseTo(3_540_000, -2);
      expect([full!.hardTimeLimitMs, full!.timeLimitMs, full!.priority]).toEqual([30_000, 20_000, 6]);
      // the chain travels reversed: the next step is the last element
      const chain = chained!.embed.chain!;
      expect(chain.map((s) => [s.task, s.args, s.immutable === true, s.options?.['queue']])).toEqual([
        ['proj.mul', [3], true, undefined],
        ['proj.mul', [10], false, 'nodeq'],
      ]);
      expect(typeof chain[1]!.options?.['taskId']).toBe('string');
      expect(linked!.embed.callbacks!.map((s) => s.task)).toEqual(['proj.cb']);
      expect(linked!.embed.errbacks!.map((s) => s.task)).toEqual(['proj.eb']);
      expect(chord1!.group).toBe(chord2!.group);
      expect([chord1!.extra['group_index'], chord2!.extra['group_index']]).toEqual([0, 1]);
      expect(chord1!.embed.chord?.task).toBe('proj.sum');
      expect(compressed!.args).toEqual([5, 6]);

      // Write each back (as a Node worker retrying it would) and let Celery read it.
      const ser = serializer === 'json' ? jsonSerializer : msgpackSerializer;
      const again = msgs.map((m, i) => envelopeOf({ ...m, retries: 1 }, ser, i === 6, 'capture'));
      const seen = runPython('parse.py', [], `${again.join('\n')}\n`)
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as Record<string, unknown>);
      const original = lines.map((l) => JSON.parse(l) as { headers: Record<string, unknown> });
      seen.forEach((s, i) => {
        expect(s['id']).toBe(original[i]!.headers['id']);
        expect(s['retries']).toBe(1);
        expect(s['root_id']).toBe(original[i]!.headers['root_id']);
        expect(s['group']).toBe(original[i]!.headers['group']);
        expect(s['argsrepr']).toBe(original[i]!.headers['argsrepr']);
        expect(s['kwargsrepr']).toBe(original[i]!.headers['kwargsrepr']);
        expect(s['content_type']).toBe(ser.contentType);
      });
      expect(seen[1]!['kwargs']).toEqual({ x: 1, s: 'ü' });
      expect(seen[1]!['time_limits']).toEqual([30, 20]);
      expect(Date.parse(seen[1]!['eta'] as string)).toBeCloseTo(full!.eta!, -1);
      expect(seen[1]!['priority']).toBe(3);
      const pyChain = (seen[2]!['embed'] as { chain: { task: string; args: unknown[]; immutable: boolean; options: Record<string, unknown> }[] }).chain;
      const origChain = (ser.decode(Buffer.from((JSON.parse(lines[2]!) as { body: string }).body, 'base64')) as unknown[])[2] as {
        chain: { options: Record<string, unknown> }[];
      };
      expect(pyChain.map((s) => [s.task, s.args, s.immutable])).toEqual([['proj.mul', [3], true], ['proj.mul', [10], false]]);
      // options Celery set and celeriac has no name for (reply_to) survive the round trip
      expect(pyChain.map((s) => s.options)).toEqual(origChain.chain.map((s) => s.options));
      expect(seen[6]!['args']).toEqual([5, 6]);
    });
  }

  it('writes what a Celery worker reads: every protocol v2 field, the canvas, gzip (zlib) and msgpack', () => {
    const now = Date.now();
    const base: TaskMessage = {
      ...noteMessage(),
      id: 'a1f4c0de-0000-4000-8000-000000000001',
      task: 'node.add',
      args: [1, 'two', { three: 3 }],
      kwargs: { k: [1] },
      rootId: 'root-1',
      parentId: 'parent-1',
      group: 'group-1',
      eta: now + 5000,
      expires: now + 60_000,
      timeLimitMs: 2500,
      hardTimeLimitMs: null,
      retries: 2,
      extra: {},
      embed: {
        chain: [{ task: 'py.mul', args: [10], kwargs: { round: true }, options: { taskId: 'next-1', queue: 'pyq', countdownMs: 1500 } }],
        errbacks: [{ task: 'node.on_error', args: [], immutable: true }],
      },
    };
    const envs = [envelopeOf(base), envelopeOf({ ...base, id: 'a1f4c0de-0000-4000-8000-000000000002' }, msgpackSerializer, true)];
    const seen = runPython('parse.py', [], `${envs.join('\n')}\n`)
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    for (const s of seen) {
      expect(s).toMatchObject({
        name: 'node.add', args: [1, 'two', { three: 3 }], kwargs: { k: [1] }, root_id: 'root-1', parent_id: 'parent-1',
        group: 'group-1', retries: 2, time_limits: [null, 2.5], argsrepr: "(1, 'two', {'three': 3})", kwargsrepr: "{'k': [1]}",
        delivery_tag: TAG,
      });
      expect(Date.parse(s['eta'] as string)).toBe(now + 5000);
      expect(Date.parse(s['expires'] as string)).toBe(now + 60_000);
      expect(s['embed']).toEqual({
        callbacks: null,
        errbacks: [{ task: 'node.on_error', args: [], kwargs: {}, options: {}, subtask_type: null, immutable: true }],
        chain: [{ task: 'py.mul', args: [10], kwargs: { round: true }, options: { task_id: 'next-1', queue: 'pyq', countdown: 1.5 }, subtask_type: null, immutable: false }],
        chord: null,
      });
    }
    expect(seen.map((s) => s['content_type'])).toEqual(['application/json', 'application/x-msgpack']);
    expect(seen[0]!['correlation_id']).toBe('a1f4c0de-0000-4000-8000-000000000001');
  });
});
