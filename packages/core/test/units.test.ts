import { gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import {
  backoffDelayMs,
  CeleriacError,
  createApp,
  createMemoryBroker,
  decodeTask,
  encodeTask,
  guardBroker,
  jsonSerializer,
  newId,
  msgpackSerializer,
  parseUrlOptions,
  redactUrl,
  resolveBroker,
  resolveResultBackend,
  type TaskMessage,
} from '../src/index.js';
import { loadFromTable } from '../src/resolve.js';
import { LinkedList, SETTLED } from '../src/transport/index.js';

const base: TaskMessage = {
  id: 't1', task: 'x', args: [1, 'a', { b: [true, null] }], kwargs: { k: 1 }, embed: { callbacks: null },
  retries: 2, rootId: 'r', parentId: 'p', group: 'g', eta: Date.UTC(2026, 0, 1), expires: null,
  timeLimitMs: 1500, hardTimeLimitMs: 30_000, priority: 5, origin: 'host', traceparent: '00-abc-def-01', extra: { tenant: 'acme' }, sentAt: 1_700_000_000_000,
};

describe('message model', () => {
  for (const [serializer, gzip] of [[jsonSerializer, false], [msgpackSerializer, false], [jsonSerializer, true]] as const) {
    it(`round-trips every Celery v2 field with ${serializer.name}${gzip ? ' + gzip' : ''}`, () => {
      const out = encodeTask(base, serializer, gzip);
      expect(out.headers['content-type']).toBe(serializer.contentType);
      expect(out.headers['timelimit']).toEqual([30, 1.5]);
      expect(out.headers['eta']).toBe('2026-01-01T00:00:00.000Z');
      const back = decodeTask(out, new Set([serializer.contentType]));
      expect(back).toEqual(base);
    });
  }

  it('gives each publish a fresh message id, never the task id', () => {
    const a = encodeTask(base, jsonSerializer);
    const b = encodeTask(base, jsonSerializer);
    expect(a.id).not.toBe(b.id);
    expect(a.id).not.toBe(base.id);
    const many = new Set(Array.from({ length: 10_000 }, () => encodeTask(base, jsonSerializer).id));
    expect(many.size).toBe(10_000);
  });

  it('refuses content types outside accept and undecodable bodies with stable codes', () => {
    const out = encodeTask(base, msgpackSerializer);
    expect(() => decodeTask(out, new Set(['application/json']))).toThrow(expect.objectContaining({ code: 'ERR_CONTENT_TYPE' }));
    const bad = { body: new TextEncoder().encode('[1'), headers: { id: 'a', task: 'b', 'content-type': 'application/json' } };
    expect(() => decodeTask(bad, new Set(['application/json']))).toThrow(expect.objectContaining({ code: 'ERR_SERIALIZATION' }));
    const pickle = { body: new Uint8Array([0x80, 0x04]), headers: { id: 'a', task: 'b', 'content-type': 'application/x-python-serialize' } };
    expect(() => decodeTask(pickle, new Set(['application/json']))).toThrow(expect.objectContaining({ code: 'ERR_CONTENT_TYPE' }));
  });

  it('refuses an unknown content-encoding with ERR_CONTENT_TYPE, naming it, instead of reading the bytes as they are', () => {
    const out = encodeTask(base, jsonSerializer);
    const zstd = { body: out.body, headers: { ...out.headers, 'content-encoding': 'zstd' } };
    expect(() => decodeTask(zstd, new Set(['application/json']))).toThrow(
      expect.objectContaining({ code: 'ERR_CONTENT_TYPE', message: expect.stringContaining('"zstd"') as unknown }),
    );
  });

  it('stops inflating at maxDecodedBytes (ERR_PAYLOAD_TOO_LARGE) and keeps reading gzip bodies under it', () => {
    const accept = new Set(['application/json']);
    // 8 MiB of one repeated byte gzips to a few KiB: a bomb for a 1 MiB bound.
    const bomb = gzipSync(Buffer.alloc(8 * 1024 * 1024, 0x20));
    expect(bomb.byteLength).toBeLessThan(64 * 1024);
    const headers = { id: 'a', task: 'b', 'content-type': 'application/json', 'content-encoding': 'gzip' };
    expect(() => decodeTask({ body: bomb, headers }, accept, 1024 * 1024)).toThrow(expect.objectContaining({ code: 'ERR_PAYLOAD_TOO_LARGE' }));
    const ok = encodeTask(base, jsonSerializer, true);
    expect(decodeTask(ok, accept, 1024 * 1024)).toEqual(base);
    // A plain body over the bound is refused the same way.
    const plain = encodeTask({ ...base, args: ['x'.repeat(2000)] }, jsonSerializer);
    expect(() => decodeTask(plain, accept, 1000)).toThrow(expect.objectContaining({ code: 'ERR_PAYLOAD_TOO_LARGE' }));
  });

  it('refuses to encode a body whose decoded size is over maxDecodedBytes, compressed or not', async () => {
    expect(() => encodeTask({ ...base, args: ['x'.repeat(2000)] }, jsonSerializer, true, 1000)).toThrow(
      expect.objectContaining({ code: 'ERR_PAYLOAD_TOO_LARGE' }),
    );
    const app = createApp({ broker: 'memory://', maxDecodedBytes: 1000 });
    const echo = app.task('echo', (s: string) => s, { compression: 'gzip' });
    await expect(echo.delay('x'.repeat(2000))).rejects.toMatchObject({ code: 'ERR_PAYLOAD_TOO_LARGE' });
    await expect(echo.delay('short')).resolves.toBeDefined();
    await app.close();
    expect(() => createApp({ broker: 'memory://', maxDecodedBytes: 0 })).toThrow(RangeError);
  });
});

describe('parsedBody', () => {
  const accept = new Set(['application/json', 'application/x-msgpack']);
  it('takes a JSON body the transport already parsed instead of decoding the bytes again', () => {
    const out = encodeTask(base, jsonSerializer);
    // Bytes that would not decode: the parsed body is what is read.
    const back = decodeTask({ ...out, body: new Uint8Array([0xff]), parsedBody: [[7], { k: 2 }, {}] }, accept);
    expect(back.args).toEqual([7]);
    expect(back.kwargs).toEqual({ k: 2 });
    // A parsed body is still checked for the task body's shape.
    expect(() => decodeTask({ ...out, parsedBody: { args: [1] } }, accept)).toThrow(expect.objectContaining({ code: 'ERR_SERIALIZATION' }));
  });

  it('decodes the bytes when the body is compressed or not JSON, whatever parsedBody says', () => {
    for (const out of [encodeTask(base, jsonSerializer, true), encodeTask(base, msgpackSerializer)]) {
      expect(decodeTask({ ...out, parsedBody: [['wrong']] }, accept)).toEqual(base);
    }
  });
});

describe('newId', () => {
  it('gives UUID v4 strings, all different, across refills of its random pool', () => {
    const ids = Array.from({ length: 5_000 }, () => newId());
    for (const id of ids) expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(new Set(ids).size).toBe(ids.length);
    // Every hex digit shows up in every free position: the bytes are random, not a counter.
    const firstDigits = new Set(ids.map((id) => id[0]));
    expect(firstDigits.size).toBe(16);
  });
});

describe('applyAsync', () => {
  it('rejects bad arguments (never throws) before and after the first publish, and reports every send', async () => {
    const app = createApp({ broker: 'memory://' });
    const t = app.task('units.echo', (x: number) => x);
    const sent: string[] = [];
    app.on('task:sent', (e) => void sent.push(`${e.name}@${e.queue}`));
    const bad = (): Promise<unknown> => t.applyAsync(5 as unknown as [number]);
    const early = bad();
    await expect(early).rejects.toThrow(TypeError);
    const first = await t.applyAsync([1]);
    // Now connected and declared: the short path, with the same refusals.
    await expect(bad()).rejects.toThrow(TypeError);
    await expect(t.applyAsync([1], { countdownMs: -1 })).rejects.toThrow(RangeError);
    await expect(t.applyAsync([1n as unknown as number])).rejects.toThrow(TypeError); // BigInt: not JSON
    const second = await t.applyAsync([2]);
    expect(second.id).not.toBe(first.id);
    expect(sent).toEqual(['units.echo@default', 'units.echo@default']);
    await app.close();
  });
});

describe('LinkedList', () => {
  interface Item { name: string; prev: Item | undefined; next: Item | undefined }
  const item = (name: string): Item => ({ name, prev: undefined, next: undefined });
  const names = (l: LinkedList<Item>) => [...l].map((i) => i.name);

  it('keeps insertion order, deletes from any place once, and clears the links it drops', () => {
    const l = new LinkedList<Item>();
    const [a, b, c, d] = ['a', 'b', 'c', 'd'].map(item) as [Item, Item, Item, Item];
    for (const x of [a, b, c, d]) l.add(x);
    expect(names(l)).toEqual(['a', 'b', 'c', 'd']);
    expect(l.delete(b)).toBe(true);
    expect(l.delete(b)).toBe(false);
    expect(b.prev).toBeUndefined();
    expect(b.next).toBeUndefined();
    expect(l.delete(a)).toBe(true); // the head
    expect(l.delete(d)).toBe(true); // the tail
    expect(names(l)).toEqual(['c']);
    expect(l.size).toBe(1);
    l.add(a);
    expect(names(l)).toEqual(['c', 'a']);
    expect(l.delete(item('stranger'))).toBe(false);
    l.clear();
    expect(l.size).toBe(0);
    expect(names(l)).toEqual([]);
    expect([c.prev, c.next, a.prev, a.next]).toEqual([undefined, undefined, undefined, undefined]);
  });

  it('lets a loop delete and add while it iterates', () => {
    const l = new LinkedList<Item>();
    const all = ['a', 'b', 'c'].map(item);
    for (const x of all) l.add(x);
    const seen: string[] = [];
    for (const x of l) {
      seen.push(x.name);
      l.delete(x);
      if (x.name === 'a') l.delete(all[1]!); // the next one goes too
      if (x.name === 'c') l.add(item('d'));
    }
    expect(seen).toEqual(['a', 'b', 'c']);
    expect(names(l)).toEqual(['d']);
  });
});

describe('retry backoff', () => {
  it('is exponential from retryBackoffMs, capped by retryBackoffMaxMs', () => {
    const o = { retryBackoffMs: 1000, retryBackoffMaxMs: 5000, retryJitter: false };
    expect([0, 1, 2, 3, 4].map((n) => backoffDelayMs(n, o))).toEqual([1000, 2000, 4000, 5000, 5000]);
  });
  it('uses full jitter between 0 and the backoff', () => {
    const o = { retryBackoffMs: 1000, retryJitter: true };
    expect(backoffDelayMs(2, o, () => 0)).toBe(0);
    expect(backoffDelayMs(2, o, () => 0.5)).toBe(2000);
    expect(backoffDelayMs(2, o, () => 0.999999)).toBe(4000);
  });
});

describe('URL resolution', () => {
  it('parses query parameters as options with numbers and booleans', () => {
    expect(parseUrlOptions(new URL('redis://h:1/0?visibilityTimeoutMs=5000&prefix=app&tls=true&ratio=0.5'))).toEqual({
      visibilityTimeoutMs: 5000, prefix: 'app', tls: true, ratio: 0.5,
    });
  });
  it('resolves memory:// to the memory broker and backend, with options', async () => {
    const b = await resolveBroker('memory://?visibilityTimeoutMs=1234');
    expect(b.name).toBe('memory');
    expect(b.visibilityTimeoutMs).toBe(1234);
    expect((await resolveResultBackend('memory://')).name).toBe('memory');
  });
  it('rejects unknown schemes and bad URLs with ERR_INVALID_URL, never echoing credentials', async () => {
    await expect(resolveBroker('kafka://x')).rejects.toMatchObject({ code: 'ERR_INVALID_URL' });
    const err = (await resolveBroker('not a url :// user:secret@').catch((e: unknown) => e)) as CeleriacError;
    expect(err.code).toBe('ERR_INVALID_URL');
    expect(redactUrl('amqp://guest:secret@127.0.0.1:5672')).toBe('amqp://guest:***@127.0.0.1:5672');
  });
  it('names the package to install when a transport is missing', async () => {
    const table = { 'zz:': { pkg: '@celeriac/transport-zz', factory: 'createZz' } };
    await expect(loadFromTable(table, 'broker', 'zz://h')).rejects.toMatchObject({
      code: 'ERR_MODULE_MISSING',
      message: 'the zz: broker needs the package @celeriac/transport-zz: npm install @celeriac/transport-zz',
    });
  });
});

describe('the guard', () => {
  it('refuses a priority where the broker has none, and bad arguments at the call site', async () => {
    const inner = createMemoryBroker();
    const noPrio = Object.create(inner, { capabilities: { value: { ...inner.capabilities, priorities: 0 } } }) as typeof inner;
    const g = guardBroker(noPrio);
    const m = { id: '1', body: new Uint8Array(1), headers: {} };
    await expect(g.publish('q', m, { priority: 1 })).rejects.toMatchObject({ code: 'ERR_UNSUPPORTED' });
    await expect(guardBroker(createMemoryBroker()).publish('q', m, { priority: 10 })).rejects.toBeInstanceOf(RangeError);
    await expect(g.publish('', m)).rejects.toBeInstanceOf(TypeError);
    expect(() => g.consume('q', { prefetch: 0 })).toThrow(RangeError);
    await g.close();
  });
  it('wraps driver errors as retryable ERR_CONNECTION with the cause', async () => {
    const inner = createMemoryBroker();
    const failing = Object.create(inner, { publish: { value: () => Promise.reject(new Error('ECONNRESET')) } }) as typeof inner;
    const err = (await guardBroker(failing).publish('q', { id: '1', body: new Uint8Array(1), headers: {} }).catch((e: unknown) => e)) as CeleriacError;
    expect(err).toBeInstanceOf(CeleriacError);
    expect(err.code).toBe('ERR_CONNECTION');
    expect(err.retryable).toBe(true);
    expect((err.cause as Error).message).toBe('ECONNRESET');
  });
  it('hands out buffered deliveries through takeSync within prefetch; each settles once; SETTLED passes through', async () => {
    const g = guardBroker(createMemoryBroker());
    for (const id of ['a', 'b', 'c']) await g.publish('q', { id, body: new Uint8Array(1), headers: {} });
    const it = g.consume('q', { prefetch: 2 });
    const first = it.takeSync();
    const second = it.takeSync();
    expect([first?.id, second?.id]).toEqual(['a', 'b']);
    expect(it.takeSync()).toBeUndefined(); // prefetch 2 is held
    expect(it.held).toBe(2);
    const ack = first!.ack();
    expect(ack).toBe(SETTLED); // done at once: passed through without a wrapper promise
    await ack;
    await expect(first!.ack()).rejects.toMatchObject({ code: 'ERR_ALREADY_SETTLED' });
    expect(it.takeSync()?.id).toBe('c'); // the freed slot took the next one
    expect(it.takeSync()).toBeUndefined(); // the queue is empty: next() would wait
    const waiting = it.next();
    await g.publish('q', { id: 'd', body: new Uint8Array(1), headers: {} });
    expect(it.takeSync()).toBeUndefined(); // prefetch 2 is held (b and c)
    await second!.ack();
    expect((await waiting).value?.id).toBe('d');
    await it.return();
    await g.close();
  });
});

describe('memory broker leases', () => {
  it('redelivers after visibilityTimeoutMs when the holder stops extending, and fences the stale holder', async () => {
    const { createFakeClock } = await import('../src/testing/index.js');
    const { MemoryServer } = await import('../src/index.js');
    const clock = createFakeClock();
    const server = new MemoryServer({ clock, visibilityTimeoutMs: 1000 });
    // a "process" whose clock is frozen: its kit never renews the lease
    const a = createMemoryBroker({ server, clock: createFakeClock() });
    const b = createMemoryBroker({ server });
    await a.publish('q', { id: 'm', body: new Uint8Array([1]), headers: {} });
    const first = (await a.consume('q', { prefetch: 1 })[Symbol.asyncIterator]().next()).value!;
    const itB = b.consume('q', { prefetch: 1 })[Symbol.asyncIterator]();
    const next = itB.next();
    await clock.advance(999);
    await first.extend!(); // renewed by hand: a live holder keeps it
    await clock.advance(999);
    expect(server.stats('q').inFlight).toBe(1);
    await clock.advance(1); // lease ran out: handed to b
    const second = (await next).value!;
    expect(second.deliveries).toBe(2);
    await expect(first.ack()).rejects.toMatchObject({ code: 'ERR_STALE_DELIVERY' });
    await second.ack();
    expect(server.stats('q')).toEqual({ ready: 0, delayed: 0, inFlight: 0, dead: 0 });
    await a.close();
    await b.close();
  });
});
