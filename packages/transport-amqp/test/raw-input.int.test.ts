import amqp from 'amqplib';
import { createApp, createMemoryResultBackend, newId } from '@celeriac/core';
import { afterAll, describe, expect, it } from 'vitest';
import { requireServer, serverUrl } from '@celeriac/test-servers';
import { AmqpBroker } from '../src/index.js';
import { FRAME_TYPE } from '../src/headers.js';

const ok = await requireServer('amqp');
const url = serverUrl('amqp');
const prefix = `raw-${newId().slice(0, 8)}`;

/**
 * Messages another AMQP client put into a work queue, which this transport's framing cannot read: a
 * message without celeriac's frame or headers, and one that claims to be a frame but is not. Each is
 * dead-lettered with its reason; the consumer keeps going.
 */
describe.skipIf(!ok)('amqp: messages another client published into a work queue', () => {
  const admin = new AmqpBroker(url, { prefix, queueType: 'quorum' });
  const queues: string[] = [];

  afterAll(async () => {
    try {
      await admin.deleteQueues(queues);
      await admin.deleteExchanges();
    } finally {
      await admin.close();
    }
  });

  it('a bare message and a broken frame are dead-lettered with their reason; tasks around them run', async () => {
    const queue = `raw-${newId().slice(0, 8)}`;
    queues.push(queue);
    const app = createApp({
      broker: new AmqpBroker(url, { prefix, queueType: 'quorum' }),
      resultBackend: createMemoryResultBackend(),
      defaultQueue: queue,
    });
    const conn = await amqp.connect(url);
    try {
      const echo = app.task('raw.echo', (n: number) => n);
      const before = await echo.delay(1);
      const ch = await conn.createConfirmChannel();
      const work = `${prefix}.${queue}`;
      // No properties at all: no message id, no type, no headers.
      ch.sendToQueue(work, Buffer.from('hello from another client'));
      // Says it is celeriac's frame, but the length prefix points past the end.
      ch.sendToQueue(work, Buffer.from([0xff, 0xff, 0xff, 0x7f, 0x7b]), { type: FRAME_TYPE, messageId: 'broken-frame' });
      // Headers in the AMQP table, but a task body that does not parse.
      ch.sendToQueue(work, Buffer.from('[[1'), { messageId: 'table-headers', headers: { id: 'x1', task: 'raw.echo' }, contentType: 'application/json' });
      await ch.waitForConfirms();
      await ch.close();
      const after = await echo.delay(2);
      await app.worker({ concurrency: 2, heartbeatMs: 0 }).start();

      expect(await before.get({ timeoutMs: 10_000 })).toBe(1);
      expect(await after.get({ timeoutMs: 10_000 })).toBe(2);
      const broker = await app.getBroker();
      let dead = await broker.deadLetters.list(queue);
      for (let i = 0; dead.length < 3 && i < 100; i++) {
        await new Promise((r) => setTimeout(r, 50));
        dead = await broker.deadLetters.list(queue);
      }
      expect(dead.map((d) => d.reason).sort()).toEqual([
        expect.stringMatching(/^ERR_SERIALIZATION: /),
        expect.stringMatching(/^ERR_SERIALIZATION: /),
        expect.stringMatching(/^ERR_SERIALIZATION: undecodable body/),
      ]);
      expect(dead.map((d) => Buffer.from(d.body).toString('latin1'))).toContain('hello from another client');
      const last = await echo.delay(3);
      expect(await last.get({ timeoutMs: 10_000 })).toBe(3);
    } finally {
      await conn.close();
      await app.close();
    }
  });
});
