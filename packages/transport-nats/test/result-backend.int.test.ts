import { afterAll, describe, expect, it } from 'vitest';
import type { NatsConnection } from '@nats-io/transport-node';
import { resultBackendSuite } from '@celeriac/core/testing';
import { newId, TaskState } from '@celeriac/core';
import { requireServer } from '@celeriac/test-servers';
import { createNatsResultBackend } from '../src/index.js';
import { deleteStreams, natsUrl, sleep, uniquePrefix } from './helpers.js';

const ok = await requireServer('nats');
const prefix = uniquePrefix('rb');

describe.skipIf(!ok)('NATS JetStream KV result backend', () => {
  afterAll(async () => {
    await deleteStreams(prefix);
  });

  resultBackendSuite({ describe, it }, 'nats', {
    create: () => createNatsResultBackend(natsUrl, { prefix }),
    sleep,
    slackMs: 200,
    timeoutMs: 20_000,
  });
});

describe.skipIf(!ok)('NATS KV result backend: a lost notification', () => {
  const p = uniquePrefix('rblost');
  afterAll(async () => {
    await deleteStreams(p);
  });

  it('a wait still resolves when the republished notification never comes (a stream leader died)', async () => {
    const waiting = createNatsResultBackend(natsUrl, { prefix: p });
    const writer = createNatsResultBackend(natsUrl, { prefix: p });
    const id = newId();
    try {
      await waiting.get(id); // connects and creates the bucket
      // Fault injection: this client's notification subscriptions hear nothing, as when the stream
      // leader that would have republished the write dies before it does.
      const conn = (waiting as unknown as { conn: NatsConnection }).conn;
      const subscribe = conn.subscribe.bind(conn);
      conn.subscribe = (subject, opts) => subscribe(subject, { ...opts, callback: () => undefined });
      // Write only once the wait has read its key (and found nothing): the result can then reach it only
      // through the re-read, never through that first read.
      const inner = waiting as unknown as { readLeader(key: string): Promise<unknown> };
      const readLeader = inner.readLeader.bind(waiting);
      let firstRead!: () => void;
      const read = new Promise<void>((resolve) => (firstRead = resolve));
      inner.readLeader = (key) => readLeader(key).finally(() => firstRead());
      const waited = waiting.wait(id, { timeoutMs: 20_000 });
      await read;
      const t0 = Date.now();
      await writer.set(id, { state: TaskState.SUCCESS, result: 7 }, { ttlMs: 60_000 });
      expect((await waited).result).toBe(7);
      expect(Date.now() - t0).toBeLessThan(15_000);
    } finally {
      await writer.close();
      await waiting.close();
    }
  });
});
