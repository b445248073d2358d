import { jetstream } from '@nats-io/jetstream';
import { headers as natsHeaders } from '@nats-io/transport-node';
import { createApp, createMemoryResultBackend, newId } from '@celeriac/core';
import { afterAll, describe, expect, it } from 'vitest';
import { requireServer } from '@celeriac/test-servers';
import { createNatsBroker } from '../src/index.js';
import { Names } from '../src/names.js';
import { adminConnection, deleteStreams, natsUrl, sleep, uniquePrefix } from './helpers.js';

const ok = await requireServer('nats');
const prefix = uniquePrefix('raw');

/**
 * Messages another NATS client published onto a queue's subject, without celeriac's frame: each is
 * kept out of the way in the dead-letter stream with its reason; the consumer keeps going.
 */
describe.skipIf(!ok)('nats: messages another client published onto a work subject', () => {
  afterAll(async () => {
    await deleteStreams(prefix);
  });

  it('bare bytes, a broken frame and an empty message are dead-lettered with their reason; tasks around them run', async () => {
    const queue = `raw-${newId().slice(0, 8)}`;
    const app = createApp({
      broker: createNatsBroker(natsUrl, { prefix, visibilityTimeoutMs: 2000 }),
      resultBackend: createMemoryResultBackend(),
      defaultQueue: queue,
    });
    const nc = await adminConnection();
    try {
      const echo = app.task('raw.echo', (n: number) => n);
      const before = await echo.delay(1); // declares the streams and the queue's consumer
      const js = jetstream(nc);
      const subject = new Names(prefix).task(queue);
      await js.publish(subject, new TextEncoder().encode('hello from another client'));
      // celeriac's one-document magic, then a length that points past the end
      await js.publish(subject, Uint8Array.from([0xd0, 0xff, 0xff, 0xff, 0x7f, 0x5b]));
      const h = natsHeaders();
      h.set('Nats-Msg-Id', 'empty-one');
      await js.publish(subject, new Uint8Array(0), { headers: h });
      const after = await echo.delay(2);
      await app.worker({ concurrency: 2, heartbeatMs: 0 }).start();

      expect(await before.get({ timeoutMs: 10_000 })).toBe(1);
      expect(await after.get({ timeoutMs: 10_000 })).toBe(2);
      const broker = await app.getBroker();
      let dead = await broker.deadLetters.list(queue);
      for (let i = 0; dead.length < 3 && i < 100; i++) {
        await sleep(50);
        dead = await broker.deadLetters.list(queue);
      }
      expect(dead.map((d) => d.reason)).toEqual([
        expect.stringMatching(/^ERR_SERIALIZATION: /),
        expect.stringMatching(/^ERR_SERIALIZATION: /),
        expect.stringMatching(/^ERR_SERIALIZATION: /),
      ]);
      expect(dead.map((d) => Buffer.from(d.body).toString('latin1'))).toContain('hello from another client');
      expect(dead.map((d) => d.id)).toContain('empty-one');
      const last = await echo.delay(3);
      expect(await last.get({ timeoutMs: 10_000 })).toBe(3);
      expect(await broker.stats(queue)).toMatchObject({ ready: 0, dead: 3 });
    } finally {
      await nc.close();
      await app.close();
    }
  });
});
