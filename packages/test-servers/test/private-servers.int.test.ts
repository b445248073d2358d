import { connect as natsConnect } from '@nats-io/transport-node';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import amqp from 'amqplib';
import { existsSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import {
  rabbitMqServerCommand,
  redisCommand,
  requireBinary,
  startPrivateNats,
  startPrivateRabbitMq,
  startPrivateRedis,
  startPrivateRedisCluster,
  type PrivateRedisCluster,
  type PrivateServer,
} from '@celeriac/test-servers';

const started: (PrivateServer | PrivateRedisCluster)[] = [];
afterAll(async () => {
  await Promise.all(started.map((s) => s.close()));
});

/** True when nothing accepts connections on the port any more. */
async function refuses(port: number): Promise<boolean> {
  return redisCommand(port, ['PING'], 500).then(
    () => false,
    (err: NodeJS.ErrnoException) => err.code === 'ECONNREFUSED',
  );
}


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
    await redis.restart({ mode: 'immediate' }); // a crash: appendfsync always kept the acknowledged write
    expect(await redisCommand(redis.port, ['EXISTS', 'k2'])).toBe(':1');

    await redis.stop();
    expect(redis.running()).toBe(false);
    expect(await refuses(redis.port)).toBe(true);
    await redis.stop(); // nothing when stopped
    await redis.start();
    expect(redis.running()).toBe(true);
    expect(await redisCommand(redis.port, ['DBSIZE'])).toBe(':2');

    await redis.restart({ keepData: false });
    expect(await redisCommand(redis.port, ['GET', 'k'])).toBe('$-1');
    expect(await redisCommand(redis.port, ['DBSIZE'])).toBe(':0');

    const closing = redis.close();
    expect(redis.close()).toBe(closing); // idempotent: the same promise
    await closing;
    expect(await refuses(redis.port)).toBe(true);
    expect(existsSync(redis.dataDir)).toBe(false);
    await expect(redis.start()).rejects.toThrow(/was closed/);
  });

  it('without appendonly, a restart loses the data', async () => {
    const redis = await startPrivateRedis();
    started.push(redis);
    expect(await redisCommand(redis.port, ['SET', 'k', 'v'])).toBe('+OK');
    await redis.restart();
    expect(await redisCommand(redis.port, ['EXISTS', 'k'])).toBe(':0');
    await redis.close();
  });

  it('a 3-master cluster: every node ok, the slots split over three nodes, close removes every node', async () => {
    const cluster = await startPrivateRedisCluster();
    started.push(cluster);
    expect(cluster.nodes).toHaveLength(3);
    expect(cluster.url).toBe(cluster.nodes[0]!.url);
    for (const n of cluster.nodes) {
      const info = await redisCommand(n.port, ['CLUSTER', 'INFO']);
      expect(info).toContain('cluster_state:ok');
      expect(info).toContain('cluster_slots_assigned:16384');
      expect(info).toContain('cluster_known_nodes:3');
    }
    // A key lives on exactly one node: the others redirect.
    const replies = await Promise.all(cluster.nodes.map((n) => redisCommand(n.port, ['SET', 'celeriac', '1'])));
    expect(replies.filter((r) => r === '+OK')).toHaveLength(1);
    expect(replies.filter((r) => r.startsWith('-MOVED'))).toHaveLength(2);
    await cluster.close();
    for (const n of cluster.nodes) {
      expect(await refuses(n.port)).toBe(true);
      expect(existsSync(n.dataDir)).toBe(false);
    }
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

    await nats.restart({ mode: 'immediate' });
    nc = await natsConnect({ servers: nats.url });
    jsm = await jetstreamManager(nc);
    expect((await jsm.streams.info(stream)).state.messages).toBe(1);
    await nc.close();

    await nats.close();
    expect(await refuses(nats.port)).toBe(true);
    expect(existsSync(nats.dataDir)).toBe(false);
  });
});

describe.skipIf(!requireBinary(rabbitMqServerCommand()))('private RabbitMQ node', () => {
  it('starts its own node, keeps a durable queue and a persistent message over a restart, stops', async () => {
    const rabbit = await startPrivateRabbitMq();
    started.push(rabbit);
    expect(rabbit.port).not.toBe(5672);
    expect(rabbit.distPort).not.toBe(rabbit.port);
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

    expect(await rabbit.ctl(['list_queues', 'name', 'messages', '--quiet'])).toMatch(/^celeriac\.harness\s+1$/m);

    await rabbit.close();
    expect(await refuses(rabbit.port)).toBe(true);
    expect(existsSync(rabbit.root)).toBe(false);
  }, 120_000);

  it('runs a node with the name, cookie and Erlang arguments it is given (what a local cluster builds on)', async () => {
    const cookie = 'CELERIACHARNESSCOOKIE';
    const nodeName = `celeriac-harness-${process.pid}@localhost`; // unique on the machine's epmd
    const rabbit = await startPrivateRabbitMq({ nodeName, cookie, erlArgs: ['+S', '1:1', '+sbwt', 'none'] });
    started.push(rabbit);
    expect(rabbit.nodeName).toBe(nodeName);
    expect((await rabbit.ctl(['eval', 'erlang:system_info(schedulers).'])).trim()).toBe('1');
    expect((await rabbit.ctl(['eval', 'erlang:get_cookie().'])).trim()).toBe(`'${cookie}'`);
    await rabbit.close();
  }, 120_000);
});
