import { describe, expect, it } from 'vitest';
import { decodeHeaderFrame as decodePayload, encodeHeaderFrame as encodePayload } from '@celeriac/core/transport';
import { activeMember, delayArg, packPublishes, parseActiveMember, unpackClaimed } from '../src/codec.js';

describe('payload codec', () => {
  it('round-trips headers of every value type and a binary body', () => {
    const headers = { s: 'ü', n: -1.5, t: true, f: false, nul: null, arr: ['a', 1, [true, null]], empty: [] };
    const body = new Uint8Array([0, 1, 2, 254, 255]);
    const out = decodePayload(encodePayload(headers, body));
    expect(out.headers).toEqual(headers);
    expect([...out.body]).toEqual([0, 1, 2, 254, 255]);
  });

  it('round-trips an empty body and empty headers', () => {
    const out = decodePayload(encodePayload({}, new Uint8Array(0)));
    expect(out.headers).toEqual({});
    expect(out.body.byteLength).toBe(0);
  });

  it('returns the body as a view on the stored bytes, not a copy', () => {
    const stored = encodePayload({ a: 1 }, new Uint8Array([7, 8, 9]));
    const { body } = decodePayload(stored);
    expect(body.buffer).toBe(stored.buffer);
  });

  it('refuses a truncated payload', () => {
    const stored = encodePayload({ a: 'long header value' }, new Uint8Array([1]));
    expect(() => decodePayload(stored.subarray(0, 10))).toThrow(RangeError);
    expect(() => decodePayload(Buffer.from([0, 0]))).toThrow(RangeError);
  });
});

describe('active members', () => {
  it('round-trip, including ids that contain the separator', () => {
    const m = activeMember(42, 9, 3, 'a|b|c');
    expect(m).toBe('42|9|3|a|b|c');
    expect(parseActiveMember(m)).toEqual({ token: 42, priority: 9, deliveries: 3, id: 'a|b|c' });
  });

  it('are distinct for two claims of the same message (the token fences a stale holder)', () => {
    expect(activeMember(1, 0, 1, 'x')).not.toBe(activeMember(2, 0, 2, 'x'));
  });

  it('reject malformed input', () => {
    expect(() => parseActiveMember('nope')).toThrow(RangeError);
  });
});

describe('delay argument', () => {
  it('is whole milliseconds, rounded up so a message is never early', () => {
    expect(delayArg(undefined)).toBe(0);
    expect(delayArg(0)).toBe(0);
    expect(delayArg(0.2)).toBe(1);
    expect(delayArg(1500.5)).toBe(1501);
    expect(delayArg(14 * 86_400_000)).toBe(1_209_600_000);
  });
});

describe('packPublishes (the one argument of lua/publish.lua)', () => {
  it('writes a count, then id, payload, priority and delay per message, big-endian', () => {
    const payload = Buffer.from([0, 255, 10, 13]);
    const buf = packPublishes([
      { id: 'a-1', payload, priority: 9, delayMs: 0 },
      { id: 'é', payload: Buffer.alloc(0), priority: 0, delayMs: 1_209_600_000.5 },
    ]);
    let pos = 0;
    expect(buf.readUInt32BE(pos)).toBe(2);
    pos += 4;
    const read = () => {
      const idLen = buf.readUInt16BE(pos);
      const id = buf.toString('utf8', pos + 2, pos + 2 + idLen);
      pos += 2 + idLen;
      const n = buf.readUInt32BE(pos);
      const body = buf.subarray(pos + 4, pos + 4 + n);
      pos += 4 + n;
      const priority = buf.readUInt8(pos);
      const delay = buf.readDoubleBE(pos + 1);
      pos += 9;
      return { id, body: [...body], priority, delay };
    };
    expect(read()).toEqual({ id: 'a-1', body: [0, 255, 10, 13], priority: 9, delay: 0 });
    expect(read()).toEqual({ id: 'é', body: [], priority: 0, delay: 1_209_600_000.5 });
    expect(pos).toBe(buf.length);
  });

  it('refuses an id longer than its 2-byte length', () => {
    expect(() => packPublishes([{ id: 'x'.repeat(70_000), payload: Buffer.alloc(1), priority: 0, delayMs: 0 }])).toThrow(RangeError);
  });
});

describe('unpackClaimed (the packed deliveries of a claim reply)', () => {
  const pack = (items: { priority: number; deliveries: number; id: string; payload: Buffer }[]): Buffer =>
    Buffer.concat(
      items.flatMap((d) => {
        const head = Buffer.alloc(7);
        head.writeUInt8(d.priority, 0);
        head.writeUInt32BE(d.deliveries, 1);
        const id = Buffer.from(d.id, 'utf8');
        head.writeUInt16BE(id.length, 5);
        const len = Buffer.alloc(4);
        len.writeUInt32BE(d.payload.length, 0);
        return [head, id, len, d.payload];
      }),
    );

  it('reads every delivery, the payload as a view', () => {
    const packed = pack([
      { priority: 9, deliveries: 1, id: 'a-1', payload: Buffer.from([0, 255]) },
      { priority: 0, deliveries: 70_000, id: 'é', payload: Buffer.alloc(0) },
    ]);
    const out = unpackClaimed(packed);
    expect(out.map((d) => ({ ...d, payload: [...d.payload] }))).toEqual([
      { priority: 9, deliveries: 1, id: 'a-1', payload: [0, 255] },
      { priority: 0, deliveries: 70_000, id: 'é', payload: [] },
    ]);
    expect(out[0]!.payload.buffer).toBe(packed.buffer);
    expect(unpackClaimed(Buffer.alloc(0))).toEqual([]);
  });

  it('refuses a truncated reply', () => {
    const packed = pack([{ priority: 1, deliveries: 2, id: 'id', payload: Buffer.from('body') }]);
    for (const cut of [3, 8, 12, packed.length - 1]) expect(() => unpackClaimed(packed.subarray(0, cut))).toThrow(RangeError);
  });
});
