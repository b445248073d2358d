import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { CeleriacError, decodeTask, type HeaderValue } from '@celeriac/core';
import { createNatsBroker, createNatsResultBackend } from '../src/index.js';
import { connectOptions } from '../src/connection.js';
import { decodeFrame, encodeFrame } from '../src/frame.js';
import { ackDelivered, parseAckSubject } from '../src/jetstream-publish.js';
import { Names, token } from '../src/names.js';
import { brokerOptionsFromUrl } from '../src/options.js';

const url = new URL('nats://127.0.0.1:4222');

describe('names', () => {
  it('passes plain names through and hex-encodes the rest into one token', () => {
    expect(token('default')).toBe('default');
    expect(token('mail_2-x')).toBe('mail_2-x');
    expect(token('email.send')).toBe('=656d61696c2e73656e64');
    expect(token('a b*>')).not.toMatch(/[.\s*>]/);
    // an encoded name never equals a plain one
    expect(token(token('email.send'))).not.toBe(token('email.send'));
  });

  it('derives every subject and name from the prefix', () => {
    const n = new Names('app');
    expect([n.tasksStream, n.delayedStream, n.deadStream]).toEqual(['app_tasks', 'app_delayed', 'app_dead']);
    expect(n.task('q')).toBe('app.tasks.q');
    expect(n.task('q', 9)).toBe('app.tasks.q.p9');
    expect(n.consumer('q', 9)).toBe('q_q=p9');
    expect(n.taskSubjectFor('app.delayed.q.p3')).toBe('app.tasks.q.p3');
    expect(n.taskSubjectFor('other.delayed.q')).toBeUndefined();
    expect(() => new Names('bad.prefix')).toThrow(RangeError);
  });
});

describe('frame', () => {
  it('round-trips the id, typed headers and a binary body', () => {
    const body = new Uint8Array([0, 1, 255]);
    const f = decodeFrame(encodeFrame({ i: 'id-1', h: { n: 1, b: true, z: null, a: ['x', [2]] }, n: 3 }, body));
    expect(f.env).toEqual({ i: 'id-1', h: { n: 1, b: true, z: null, a: ['x', [2]] }, n: 3 });
    expect([...f.body]).toEqual([0, 1, 255]);
  });

  it('writes the envelope as an array: placed headers by position, the rest and dead-letter fields after', () => {
    const h = { task: 't.add', id: 'a1', sent_at: 1_700_000_000_000, origin: 'host', 'content-type': 'application/x-msgpack' };
    const plain = encodeFrame({ i: 'm1', h }, new Uint8Array([7]));
    expect(plain[0]).toBe(0xcf);
    const text = Buffer.from(plain).toString('utf8', 5, plain.length - 1);
    expect(JSON.parse(text)).toEqual(['m1', 0, 't.add', 'a1', 1_700_000_000_000, 'host', 'application/x-msgpack']);
    expect(decodeFrame(plain).env).toEqual({ i: 'm1', h });
    expect([...decodeFrame(plain).body]).toEqual([7]);
    expect(decodeFrame(plain).parsed).toBeUndefined();
    // Published under its id as Nats-Msg-Id: the envelope leaves it out.
    const byHeader = encodeFrame({ i: 'm1', h }, new Uint8Array([7]), true);
    const inner = Buffer.from(byHeader).toString('utf8', 5, byHeader.length - 1);
    expect(JSON.parse(inner)).toEqual([null, 0, 't.add', 'a1', 1_700_000_000_000, 'host', 'application/x-msgpack']);
    expect(decodeFrame(byHeader).env).toEqual({ h });
    // gzip-encoded JSON is bytes too: only a plain JSON body becomes one document.
    const gz = encodeFrame({ i: 'm1', h: { ...h, 'content-type': 'application/json', 'content-encoding': 'gzip' } }, new Uint8Array([7]));
    expect(gz[0]).toBe(0xcf);
    expect(JSON.parse(Buffer.from(gz).toString('utf8', 5, gz.length - 1))).toEqual(['m1', 0, 't.add', 'a1', 1_700_000_000_000, 'host', 1, { 'content-encoding': 'gzip' }]);

    // Placed names with other types travel in the rest; so does a `__proto__` key, as an own header.
    const odd: Record<string, HeaderValue> = { task: 5, sent_at: 'soon', origin: null, retries: 2, eta: '2026-01-01T00:00:00.000Z' };
    Object.defineProperty(odd, '__proto__', { value: 'x', enumerable: true, writable: true, configurable: true });
    const dead = decodeFrame(encodeFrame({ i: 'm2', h: odd, n: 4, r: 'ERR_X: no', t: 123, l: 2 }, new Uint8Array())).env;
    expect(dead).toEqual({ i: 'm2', h: odd, n: 4, r: 'ERR_X: no', t: 123, l: 2 });
    expect(Object.getPrototypeOf(dead.h)).toBe(Object.prototype);
    expect(Object.keys(dead.h)).toContain('__proto__');
  });

  it('writes a JSON body and its envelope as one document, parsed once', () => {
    const h = { task: 't.add', id: 'a1', sent_at: 1_700_000_000_000, origin: 'host', 'content-type': 'application/json' };
    const body = Buffer.from('[[1,"é"],{"k":2}]');
    const byHeader = encodeFrame({ i: 'm1', h }, body, true);
    expect(byHeader[0]).toBe(0xd0);
    expect(Buffer.from(byHeader).readUInt32BE(1)).toBe(body.byteLength);
    // The body first, as it is; the slots after `origin` that hold their defaults left out.
    expect(JSON.parse(Buffer.from(byHeader).toString('utf8', 5))).toEqual([[[1, 'é'], { k: 2 }], 't.add', 'a1', 1_700_000_000_000, 'host']);
    const f = decodeFrame(byHeader);
    expect(f.env).toEqual({ h });
    expect(f.parsed).toEqual([[1, 'é'], { k: 2 }]);
    expect(Buffer.from(f.body).equals(body)).toBe(true);

    // The id, a delivery count, other headers and dead-letter fields each take their slot.
    const h2 = { ...h, retries: 1, eta: null };
    const dead = encodeFrame({ i: 'm2', h: h2, n: 3, r: 'ERR_X: no', t: 9, l: 1 }, body);
    const d = decodeFrame(dead);
    expect(d.env).toEqual({ i: 'm2', h: h2, n: 3, r: 'ERR_X: no', t: 9, l: 1 });
    expect(d.parsed).toEqual([[1, 'é'], { k: 2 }]);
    expect(decodeFrame(encodeFrame({ i: 'm3', h }, body)).env).toEqual({ i: 'm3', h });
  });

  it('reads the envelope of a document whose body is not JSON, and leaves the body to core', () => {
    const h = { task: 't.add', id: 'a1', sent_at: 1, origin: 'host', 'content-type': 'application/json' };
    const junk = Buffer.from('[[1],oops');
    const f = decodeFrame(encodeFrame({ i: 'm1', h, n: 2 }, junk));
    expect(f.env).toEqual({ i: 'm1', h, n: 2 });
    expect(f.parsed).toBeUndefined();
    expect(Buffer.from(f.body).equals(junk)).toBe(true);
    // Core then refuses it, under the message's own task id.
    expect(() => decodeTask({ headers: f.env.h, body: f.body, parsedBody: f.parsed }, new Set(['application/json']))).toThrow(
      expect.objectContaining({ code: 'ERR_SERIALIZATION' }),
    );
  });

  it('still reads frames written with the object envelope (0xCE)', () => {
    const json = Buffer.from(JSON.stringify({ i: 'old-1', h: { task: 't', id: 'x', lang: 'js' }, n: 2 }));
    const bytes = Buffer.concat([Buffer.from([0xce, 0, 0, 0, json.length]), json, Buffer.from('[[],{},{}]')]);
    const f = decodeFrame(bytes);
    expect(f.env).toEqual({ i: 'old-1', h: { task: 't', id: 'x', lang: 'js' }, n: 2 });
    expect(Buffer.from(f.body).toString()).toBe('[[],{},{}]');
  });

  it('refuses bytes that are not a celeriac frame with ERR_SERIALIZATION', () => {
    const envelope = (magic: number, text: string): Uint8Array => {
      const json = Buffer.from(text);
      return Buffer.concat([Buffer.from([magic, 0, 0, 0, json.length]), json]);
    };
    for (const bad of [
      new Uint8Array([1, 2, 3]),
      new TextEncoder().encode('{"json":true}'),
      encodeFrame({ i: 'x', h: {} }, new Uint8Array()).subarray(0, 8),
      envelope(0xcf, '["x",0,"t"]'),
      envelope(0xcf, '{"i":"x","h":{}}'),
      envelope(0xcf, '["x",0,null,null,null,null,null,[1]]'),
      envelope(0xce, '["x",0,null,null,null,null,null]'),
      // documents: too short, no opening bracket, no comma after the body, envelope slots of the wrong type
      Buffer.from([0xd0, 0, 0, 0, 2, 0x5b, 0x31, 0x31, 0x5d]),
      Buffer.concat([Buffer.from([0xd0, 0, 0, 0, 1]), Buffer.from('{1,"t","i",1,"o"]')]),
      Buffer.concat([Buffer.from([0xd0, 0, 0, 0, 1]), Buffer.from('[1]"t","i",1,"o"]')]),
      Buffer.concat([Buffer.from([0xd0, 0, 0, 0, 1]), Buffer.from('[1,"t","i",1,"o",5]')]),
      Buffer.concat([Buffer.from([0xd0, 0, 0, 0, 1]), Buffer.from('[1,"t","i"]')]),
      Buffer.concat([Buffer.from([0xd0, 0, 0, 0, 1]), Buffer.from('[1,"t","i",1,"o",null,0,0,7]')]),
      Buffer.concat([Buffer.from([0xd0, 0, 0, 0, 1]), Buffer.from('[x,"t","i",1,"o",null,"n"]')]),
    ]) {
      let caught: unknown;
      try {
        decodeFrame(bad);
      } catch (err) {
        caught = err;
      }
      expect(caught).toBeInstanceOf(CeleriacError);
      expect((caught as CeleriacError).code).toBe('ERR_SERIALIZATION');
    }
  });
});

describe('ack subjects', () => {
  it('parses the classic and the domain form', () => {
    expect(parseAckSubject('$JS.ACK.S.c.3.17.12.1795555727810438183.0')).toEqual({
      stream: 'S',
      delivered: 3,
      streamSeq: 17,
      timestampNs: '1795555727810438183',
    });
    expect(parseAckSubject('$JS.ACK.dom.hash.S.c.2.5.4.1795555727810438183.0.rnd')?.delivered).toBe(2);
    expect(parseAckSubject('_INBOX.x')).toBeUndefined();
    expect(ackDelivered(Buffer.from('$JS.ACK.S.c.3.17.12.1795555727810438183.0'))).toBe(3);
    expect(ackDelivered(Buffer.from('$JS.ACK.dom.hash.S.c.2.5.4.1795555727810438183.0.rnd'))).toBe(2);
    expect(ackDelivered(Buffer.from('$JS.ACK.S.c.x.17.12.1795555727810438183.0'))).toBeUndefined();
    expect(ackDelivered(Buffer.from('$JS.ACK.S.c.3'))).toBeUndefined();
    expect(ackDelivered(Buffer.from('_INBOX.x'))).toBeUndefined();
  });
});

describe('options', () => {
  it('reads typed URL options and refuses unknown ones', () => {
    expect(brokerOptionsFromUrl({ prefix: 'p', visibilityTimeoutMs: 5000, storage: 'memory', replicas: 3, maxAckPending: 10 })).toEqual({
      prefix: 'p',
      visibilityTimeoutMs: 5000,
      storage: 'memory',
      replicas: 3,
      maxAckPending: 10,
    });
    expect(() => brokerOptionsFromUrl({ visibilityTimeoutMS: 5 })).toThrow(/unknown NATS option/);
    expect(() => brokerOptionsFromUrl({ storage: 'disk' })).toThrow(RangeError);
    expect(() => brokerOptionsFromUrl({ replicas: 'three' })).toThrow(RangeError);
  });

  it('takes credentials and cluster seeds from the URL', () => {
    const o = connectOptions(new URL('nats://alice:s%40cret@10.0.0.1:4333'), { servers: '10.0.0.2:4222, 10.0.0.3:4222' });
    expect(o.servers).toEqual(['10.0.0.1:4333', '10.0.0.2:4222', '10.0.0.3:4222']);
    expect([o.user, o.pass, o.token]).toEqual(['alice', 's@cret', undefined]);
    expect(connectOptions(new URL('nats://tok@host'), {}).token).toBe('tok');
  });

  it('validates priorities and numbers at construction', () => {
    expect(() => createNatsBroker(url, { priorities: 1 })).toThrow(RangeError);
    expect(() => createNatsBroker(url, { priorities: 11 })).toThrow(RangeError);
    expect(() => createNatsBroker(url, { visibilityTimeoutMs: 10 })).toThrow(RangeError);
    expect(createNatsBroker(url, { priorities: 3 }).capabilities.priorities).toBe(3);
    expect(createNatsBroker(url, { visibilityTimeoutMs: 4500 }).visibilityTimeoutMs).toBe(4500);
  });

  it('lets one URL serve as broker and result backend', () => {
    const shared = { prefix: 'p', visibilityTimeoutMs: 5000, resultsMaxAgeMs: 3_600_000 };
    expect(() => createNatsBroker(url, shared)).not.toThrow();
    expect(() => createNatsResultBackend(url, shared)).not.toThrow();
    expect(() => createNatsResultBackend(url, { nope: 1 })).toThrow(/unknown NATS option/);
  });
});

describe('README', () => {
  it("capability table matches the code's capabilities", () => {
    const plain = createNatsBroker(url, {}).capabilities;
    const prio = createNatsBroker(url, { priorities: 10 }).capabilities;
    const backend = createNatsResultBackend(url, {}).capabilities;
    const rows = (Object.keys(plain) as (keyof typeof plain)[]).map((k) => {
      const p = k === 'priorities' ? 'N (2–10)' : String(prio[k]);
      return `| ${k} | ${String(plain[k])} | ${p} |`;
    });
    expect(prio.priorities).toBe(10);
    const table = [
      '| capability | broker (`priorities=0`, the default) | broker (`priorities=N`) |',
      '|---|---|---|',
      ...rows,
      '',
      '| capability | result backend |',
      '|---|---|',
      ...(Object.keys(backend) as (keyof typeof backend)[]).map((k) => `| ${k} | ${String(backend[k])} |`),
    ].join('\n');
    const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
    const block = /<!-- capabilities:start[^>]*-->\n([\s\S]*?)\n<!-- capabilities:end -->/.exec(readme)?.[1];
    expect(block).toBe(table);
  });
});
