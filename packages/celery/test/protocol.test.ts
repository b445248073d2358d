import { createApp } from '@celeriac/core';
import { describe, expect, it } from 'vitest';
import { CeleryAmqpBroker } from '../src/celery-amqp-broker.js';
import { CeleryRedisResultBackend } from '../src/celery-result-backend.js';
import { KombuRedisBroker } from '../src/kombu-redis-broker.js';
import { celeryProtocol } from '../src/protocol.js';

describe('celeryProtocol', () => {
  it('resolves redis:// to the kombu transport and amqp:// to the Celery AMQP broker; memory:// to core', async () => {
    const redis = await celeryProtocol.resolveBroker!('redis://127.0.0.1:6379/2?prefix=app%3A&visibilityTimeoutMs=5000', {});
    expect(redis).toBeInstanceOf(KombuRedisBroker);
    expect((redis as KombuRedisBroker).options).toMatchObject({ prefix: 'app:', visibilityTimeoutMs: 5000 });
    expect(redis!.visibilityTimeoutMs).toBe(5000);
    await redis!.close();
    const amqp = await celeryProtocol.resolveBroker!('amqp://guest:guest@127.0.0.1:5672?maxPriority=9', {});
    expect(amqp).toBeInstanceOf(CeleryAmqpBroker);
    expect(amqp!.capabilities.priorities).toBe(10);
    await amqp!.close();
    expect(await celeryProtocol.resolveBroker!('memory://', {})).toBeUndefined();
    const rb = await celeryProtocol.resolveResultBackend!('redis://127.0.0.1:6379/1', {});
    expect(rb).toBeInstanceOf(CeleryRedisResultBackend);
    expect((rb as CeleryRedisResultBackend).key('abc')).toBe('celery-task-meta-abc');
    expect((rb as CeleryRedisResultBackend).key('group:g')).toBe('celery-taskset-meta-g');
    await rb!.close();
  });

  it('refuses unknown URL options rather than ignoring them', async () => {
    await expect(Promise.resolve().then(() => celeryProtocol.resolveBroker!('redis://h?visibilityTimeout=5', {}))).rejects.toMatchObject({
      code: 'ERR_INVALID_URL',
    });
  });

  it("is what createApp({ protocol: 'celery' }) loads (from the built package), on queue celery", async () => {
    const app = createApp({ protocol: 'celery', broker: 'memory://' });
    expect(app.defaultQueue).toBe('celery');
    const proto = await app.loadProtocol();
    expect(proto.name).toBe('celery');
    expect(app.codec.encode.name).toBe('encodeCeleryTask'); // dist's copy, not this test's src import
    await app.close();
  });

  it('runs Celery-protocol tasks end to end on the memory broker', async () => {
    const app = createApp({ protocol: celeryProtocol, broker: 'memory://' });
    app.task('add', (a: number, b: number) => a + b);
    const w = app.worker();
    await w.start();
    const r = await app.sendTask<number>('add', [2, 3]);
    expect(await r.get({ timeoutMs: 5000 })).toBe(5);
    await app.close();
  });
});
