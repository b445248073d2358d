import type { MessageProperties } from 'amqplib';
import { describe, expect, it } from 'vitest';
import { encodeHeaderFrame as encodeFrame } from '@celeriac/core/transport';
import { FRAME_TYPE, readMessage } from '../src/headers.js';

const props = (over: Partial<MessageProperties>): MessageProperties => ({ headers: {}, ...over }) as MessageProperties;

describe('framed bodies (celeriac headers in the content, not the AMQP table)', () => {
  it('round-trips every header value type and the body bytes', () => {
    const headers = { task: 'a.b', retries: 2, ratio: 0.5, ok: true, none: null, list: ['x', 1, false], 'ünï': 'ç' };
    const body = new Uint8Array([0, 1, 2, 255]);
    const out = readMessage(encodeFrame(headers, body), props({ type: FRAME_TYPE }));
    expect(out.headers).toEqual(headers);
    expect([...out.body]).toEqual([0, 1, 2, 255]);
  });

  it('reads a message another client published: application headers from the table, the whole body', () => {
    const content = Buffer.from('{"x":1}');
    const out = readMessage(content, props({ headers: { task: 't', 'x-death': [], 'x-celeriac-reason': 'r' } }));
    expect(out.headers).toEqual({ task: 't' });
    expect(out.body).toBe(content);
  });

  it('a frame that does not parse gives no headers and the raw content (core dead-letters it)', () => {
    for (const content of [Buffer.from([0, 0]), Buffer.from([0, 0, 0, 9, 1]), Buffer.from([0, 0, 0, 2, 0x7b, 0x7b]), Buffer.from([0, 0, 0, 2, 0x5b, 0x5d])]) {
      const out = readMessage(content, props({ type: FRAME_TYPE }));
      expect(out.headers).toEqual({});
      expect(out.body).toBe(content);
    }
  });
});
