import { resultBackendSuite } from '@celeriac/core/testing';
import { afterAll, beforeAll, describe, it } from 'vitest';
import { requireServer } from '../../../test/src/servers.js';
import { PrivateCluster } from '../../transport-redis/test/private-redis.js';
import { createRedisResultBackend } from '../src/index.js';

// The result-backend suite on a local 3-master Redis Cluster (keys of one batch live in different slots).
const ok = await requireServer('redis');

describe.skipIf(!ok)('redis result backend on Redis Cluster', () => {
  let cluster: PrivateCluster;

  beforeAll(async () => {
    cluster = await PrivateCluster.start();
  }, 60_000);

  afterAll(async () => {
    await cluster.stop();
  });

  resultBackendSuite({ describe, it }, 'redis cluster', {
    create: () => createRedisResultBackend(new URL(cluster.url), { prefix: 'conformance', cluster: true }, {}),
    sleep: (ms) => new Promise((r) => setTimeout(r, ms)),
    slackMs: 100,
  });
});
