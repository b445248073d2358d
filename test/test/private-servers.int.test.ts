import { connect as natsConnect } from '@nats-io/transport-node';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import amqp from 'amqplib';
import { existsSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { requireBinary } from '../src/binaries.js';
import { startPrivateNats } from '../src/private-nats.js';
import { startPrivateRabbitMq } from '../src/private-rabbitmq.js';
import { redisCommand, startPrivateRedis } from '../src/private-redis.js';
import type { PrivateServer } from '../src/server-process.js';

const started: PrivateServer[] = [];
afterAll(async () => {
  await Promise.all(started.map((s) => s.stop()));
});

/** True when nothing accepts connections on the port any more. */
async function refuses(port: number): Promise<boolean> {
  return redisCommand(port, ['PING'], 500).then(
    () => false,
    (err: NodeJS.ErrnoException) => err.code === 'ECONNREFUSED',
  );
}

const rabbitTool = existsSync('/usr/lib/rabbitmq/bin/rabbitmq-server') ? '/usr/lib/rabbitmq/bin/rabbitmq-server' : 'rabbitmq-server';

describe.skipIf(!requireBinary('redis-server'))('private redis-server', () => {
  it('starts on a private port, keeps AOF data over a graceful and a SIGKILL restart, wipes on request, stops', async () => {
    const redis = await startPrivateRedis({ appendonly: true });
    started.push(redis);
    expect(redis.url).toBe(`redis://127.0.0.1:${redis.port}`);
    expect(redis.port).not.toBe(6379);
    expect(await redisCommand(redis.port, ['PING'])).toBe('+PONG');
    expect(await redisCommand(redis.port, ['SET', 'k', 'v1'])).toBe('+OK');

    await redis.restart();
    expect(await redisCommand(redis.port, ['GET', 'k'])).toBe('v1');

    expect(await redisCommand(redis.port, ['SET', 'k2', 'v2'])).toBe('+OK');
    await redis.restart({ hard: true }); // a crash: appendfsync always kept the acknowledged write
    expect(await redisCommand(redis.port, ['EXISTS', 'k2'])).toBe(':1');

    await redis.down();
    expect(await refuses(redis.port)).toBe(true);
    await redis.up();
    expect(await redisCommand(redis.port, ['DBSIZE'])).toBe(':2');

    await redis.restart({ keepData: false });
    expect(await redisCommand(redis.port, ['GET', 'k'])).toBe('$-1');
    expect(await redisCommand(redis.port, ['DBSIZE'])).toBe(':0');

    await redis.stop();
    expect(await refuses(redis.port)).toBe(true);
    expect(existsSync(redis.dataDir)).toBe(false);
    await redis.stop(); // idempotent
  });

  it('without appendonly, a restart loses the data', async () => {
    const redis = await startPrivateRedis();
    started.push(redis);
    expect(await redisCommand(redis.port, ['SET', 'k', 'v'])).toBe('+OK');
    await redis.restart();
    expect(await redisCommand(redis.port, ['EXISTS', 'k'])).toBe(':0');
    await redis.stop();
  });
});

describe.skipIf(!requireBinary('nats-server'))('private nats-server (JetStream)', () => {
  it('starts with JetStream, keeps a stream over a SIGKILL restart, stops', async () => {
    const nats = await startPrivateNats();
    started.push(nats);
    expect(nats.port).not.toBe(4222);
    const stream = 'CELERIAC_HARNESS';
    let nc = await natsConnect({ servers: nats.url });
    let jsm = await jetstreamManager(nc);
    await jsm.streams.add({ name: stream, subjects: ['harness.>'] });
    const ack = await jetstream(nc).publish('harness.one', 'hello');
    expect(ack.seq).toBe(1);
    await nc.close();

    await nats.restart({ hard: true });
    nc = await natsConnect({ servers: nats.url });
    jsm = await jetstreamManager(nc);
    expect((await jsm.streams.info(stream)).state.messages).toBe(1);
    await nc.close();

    await nats.stop();
    expect(await refuses(nats.port)).toBe(true);
    expect(existsSync(nats.dataDir)).toBe(false);
  });
});

describe.skipIf(!requireBinary(rabbitTool))('private RabbitMQ node', () => {
  it('starts its own node, keeps a durable queue and a persistent message over a restart, stops', async () => {
    const rabbit = await startPrivateRabbitMq();
    started.push(rabbit);
    expect(rabbit.port).not.toBe(5672);
    expect(rabbit.nodeName).toMatch(/^celeriac-\d+@localhost$/);
    let conn = await amqp.connect(rabbit.url);
    let ch = await conn.createConfirmChannel();
    await ch.assertQueue('celeriac.harness', { durable: true });
    ch.sendToQueue('celeriac.harness', Buffer.from('kept'), { persistent: true });
    await ch.waitForConfirms();
    await conn.close();

    await rabbit.restart();
    conn = await amqp.connect(rabbit.url);
    ch = await conn.createConfirmChannel();
    const q = await ch.checkQueue('celeriac.harness');
    expect(q.messageCount).toBe(1);
    await conn.close();

    await rabbit.stop();
    expect(await refuses(rabbit.port)).toBe(true);
  });
});
