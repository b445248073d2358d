import { brokerSuite } from '@celeriac/core/testing';
import { Cluster } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { requireServer, startPrivateRedisCluster, type PrivateRedisCluster } from '@celeriac/test-servers';
import { createRedisBroker, queueKeys } from '../src/index.js';

// The broker suite again, on a local 3-master Redis Cluster: every script must stay in one slot.
const ok = await requireServer('redis');

describe.skipIf(!ok)('redis broker on Redis Cluster', () => {
  let cluster: PrivateRedisCluster;
  let admin: Cluster;
  const prefix = 'conformance';

  beforeAll(async () => {
    cluster = await startPrivateRedisCluster();
    admin = new Cluster([{ host: '127.0.0.1', port: cluster.nodes[0]!.port }]);
  }, 60_000);

  afterAll(async () => {
    await admin.quit().catch(() => undefined);
    await cluster?.close();
  });

  it('spreads different queues over the shards (one hash tag per queue)', async () => {
    const slots = new Set<number>();
    for (let i = 0; i < 20; i++) slots.add(Number(await admin.cluster('KEYSLOT', queueKeys(prefix, `q${i}`).msg)));
    expect(slots.size).toBeGreaterThan(1);
  });

  brokerSuite({ describe, it }, 'redis cluster', {
    create: () => {
      const url = new URL(cluster.url);
      return createRedisBroker(url, { prefix, cluster: true, visibilityTimeoutMs: 1000, blockTimeoutMs: 1000 }, {});
    },
    sleep: (ms) => new Promise((r) => setTimeout(r, ms)),
    visibilityTimeoutMs: 1000,
    slackMs: 150,
  });
});
