import { newId, resolveBroker } from '@celeriac/core';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PostgresBroker } from '../src/index.js';
import { adminClient, code, dropSchema, eventually, postgresUrl, requireServer, sleep, uniqueSchema } from './helpers.js';

const ok = await requireServer('postgres');
const schema = uniqueSchema('broker');

describe.skipIf(!ok)('postgres broker', () => {
  let admin: pg.Client;
  let broker: PostgresBroker;

  beforeAll(async () => {
    admin = await adminClient();
    broker = new PostgresBroker({ url: postgresUrl(), prefix: schema, poolSize: 2, maxMessageBytes: 100_000 });
    await broker.connect();
  });

  afterAll(async () => {
    await broker.close();
    await dropSchema(admin, schema);
    await admin.end();
  });

  it('declares its capabilities, transactional publish included', () => {
    expect(broker.name).toBe('postgres');
    expect(broker.capabilities).toEqual({
      delayedDelivery: 'native',
      priorities: 10,
      deadLetter: 'native',
      redeliveryCount: true,
      broadcast: true,
      maxMessageBytes: 100_000,
      transactionalPublish: true,
    });
  });

  it('is what core resolves postgres:// and postgresql:// broker URLs to, with the query as options', async () => {
    for (const scheme of ['postgres', 'postgresql']) {
      const u = new URL(postgresUrl());
      u.protocol = `${scheme}:`;
      u.searchParams.set('prefix', '007');
      u.searchParams.set('visibilityTimeoutMs', '4321');
      u.searchParams.set('application_name', 'kept-for-the-driver');
      const b = await resolveBroker(u.href);
      // Core imports the built package (dist/), these tests the sources: compare by shape.
      expect([b.name, b.constructor.name, b.visibilityTimeoutMs]).toEqual(['postgres', 'PostgresBroker', 4321]);
      expect((b as PostgresBroker).schema).toBe('007');
      await b.close();
    }
    await expect(resolveBroker(`${postgresUrl()}?prefx=x`)).rejects.toMatchObject({ code: 'ERR_INVALID_URL' });
  });

  it('the publish path works through the queue model: declare, publish, publishBatch, stats, purge, dead letters', async () => {
    const q = `b-${newId()}`;
    await broker.declareQueue(q);
    const enc = new TextEncoder();
    await broker.publish(q, { id: newId(), body: enc.encode('one'), headers: {} });
    await broker.publishBatch(q, [
      { id: newId(), body: enc.encode('two'), headers: {} },
      { id: newId(), body: enc.encode('three'), headers: {} },
    ], { delayMs: 60_000 });
    expect(await broker.stats(q)).toEqual({ ready: 1, delayed: 2, inFlight: 0, dead: 0 });
    const [m] = await broker.queue(q).tryClaim(1);
    await broker.queue(q).nack(m!, { requeue: false, reason: 'why not' });
    expect((await broker.deadLetters.list(q)).map((d) => d.reason)).toEqual(['why not']);
    expect(await broker.deadLetters.redrive(q)).toBe(1);
    expect(await broker.purge(q)).toBe(3);
    expect(await broker.deadLetters.purge(q)).toBe(0);
    expect(await broker.stats(q)).toEqual({ ready: 0, delayed: 0, inFlight: 0, dead: 0 });
  });

  it('close gives back at once what a consumer buffered (uncounted) and handed out (counted); consume refuses before connect', async () => {
    const b = new PostgresBroker({ url: postgresUrl(), prefix: schema, poolSize: 1 });
    expect(() => b.consume('q', { prefetch: 1 })).toThrow(expect.objectContaining({ code: 'ERR_CONNECTION' }) as Error);
    await b.connect();
    const q = `c-${newId()}`;
    const enc = new TextEncoder();
    await b.publishBatch(q, ['a', 'b', 'c'].map((t) => ({ id: newId(), body: enc.encode(t), headers: {} })));
    const it = b.consume(q, { prefetch: 3 })[Symbol.asyncIterator]();
    const first = await it.next();
    expect(first.done).toBe(false);
    await eventually(async () => (await broker.stats(q)).inFlight === 3, 5_000, 'three claimed');
    await b.close();
    expect(await broker.stats(q)).toEqual({ ready: 3, delayed: 0, inFlight: 0, dead: 0 });
    const again = await broker.queue(q).tryClaim(10);
    const byBody = Object.fromEntries(again.map((m) => [Buffer.from(m.body).toString(), m.deliveries]));
    expect(byBody).toEqual({ a: 2, b: 1, c: 1 });
    await Promise.all(again.map((m) => broker.queue(q).ack(m)));
  });

  it('refuses calls before connect and after close', async () => {
    const b = new PostgresBroker({ url: postgresUrl(), prefix: schema, poolSize: 1 });
    expect(await code(b.publish('q', { id: 'x', body: new Uint8Array(), headers: {} }))).toBe('ERR_CONNECTION');
    expect(await code(b.stats('q'))).toBe('ERR_CONNECTION');
    await b.connect();
    const closing = b.close();
    expect(b.close()).toBe(closing);
    await closing;
    expect(await code(b.stats('q'))).toBe('ERR_CLOSED');
    expect(await code(b.connect())).toBe('ERR_CLOSED');
  });

  it('connect rejects with a retryable ERR_CONNECTION when nothing listens, without the password in the message', async () => {
    const b = new PostgresBroker({ url: 'postgres://someone:s3cret@127.0.0.1:1/x', poolSize: 1, connectTimeoutMs: 2_000 });
    const err = (await b.connect().catch((e: unknown) => e)) as { code: string; retryable: boolean; message: string };
    await b.close();
    expect(err).toMatchObject({ code: 'ERR_CONNECTION', retryable: true });
    expect(err.message).not.toContain('s3cret');
  });

  describe('broadcast', () => {
    it('delivers ASCII, binary and large bodies (spilled to a table) to every subscriber, in order, until unsubscribed', async () => {
      const other = new PostgresBroker({ url: postgresUrl(), prefix: schema, poolSize: 1, maxMessageBytes: 100_000 });
      await other.connect();
      try {
        const channel = `ch-${newId()}`;
        const gotA: string[] = [];
        const gotB: Uint8Array[] = [];
        const offA = await broker.broadcast.subscribe(channel, (body) => gotA.push(Buffer.from(body).toString('latin1')));
        const offB = await other.broadcast.subscribe(channel, (body) => gotB.push(new Uint8Array(body)));
        await broker.broadcast.subscribe(`${channel}-other`, () => gotA.push('wrong channel'));
        const ascii = '{"events":[1,2,3]}';
        const binary = new Uint8Array([0, 1, 2, 200, 255]);
        const large = new Uint8Array(50_000).map((_, i) => i % 251);
        await broker.broadcast.publish(channel, Buffer.from(ascii, 'latin1'));
        await other.broadcast.publish(channel, large);
        await broker.broadcast.publish(channel, binary);
        await eventually(() => gotA.length === 3 && gotB.length === 3, 5_000, 'three broadcasts each');
        expect(gotB.map((b) => b.byteLength)).toEqual([ascii.length, large.byteLength, binary.byteLength]);
        expect(gotB[1]).toEqual(large);
        expect(gotB[2]).toEqual(binary);
        expect(gotA[0]).toBe(ascii);
        await offA();
        await offA(); // idempotent
        await broker.broadcast.publish(channel, Buffer.from('after', 'latin1'));
        await eventually(() => gotB.length === 4, 5_000, 'the other subscriber still gets it');
        await sleep(100);
        expect(gotA).toHaveLength(3);
        await offB();
        await expect(broker.broadcast.publish(channel, new Uint8Array(100_001))).rejects.toMatchObject({ code: 'ERR_PAYLOAD_TOO_LARGE' });
      } finally {
        await other.close();
      }
    });
  });
});
