import { resultBackendSuite } from '@celeriac/core/testing';
import { afterAll, beforeAll, describe, it } from 'vitest';
import { requireServer, startPrivateRedisCluster, type PrivateRedisCluster } from '@celeriac/test-servers';
import { createRedisResultBackend } from '../src/index.js';

// The result-backend suite on a local 3-master Redis Cluster (keys of one batch live in different slots).
const ok = await requireServer('redis');

describe.skipIf(!ok)('redis result backend on Redis Cluster', () => {
  let cluster: PrivateRedisCluster;

  beforeAll(async () => {
    cluster = await startPrivateRedisCluster();
  }, 60_000);

  afterAll(async () => {
    await cluster?.close();
  });

  resultBackendSuite({ describe, it }, 'redis cluster', {
    create: () => createRedisResultBackend(new URL(cluster.url), { prefix: 'conformance', cluster: true }, {}),
    sleep: (ms) => new Promise((r) => setTimeout(r, ms)),
    slackMs: 100,
  });
});
