import { afterAll, describe, it } from 'vitest';
import { brokerSuite } from '@celeriac/core/testing';
import { requireServer } from '@celeriac/test-servers';
import { createNatsBroker } from '../src/index.js';
import { deleteQueueConsumers, deleteStreams, natsUrl, sleep, uniquePrefix } from './helpers.js';

const ok = await requireServer('nats');
const prefix = uniquePrefix('conf');
const visibilityTimeoutMs = 1000;

describe.skipIf(!ok)('NATS JetStream broker', () => {
  afterAll(async () => {
    await deleteStreams(prefix);
  });

  brokerSuite({ describe, it }, 'nats', {
    create: () => createNatsBroker(natsUrl, { prefix, visibilityTimeoutMs }),
    sleep,
    visibilityTimeoutMs,
    slackMs: 300,
    cleanup: (queues) => deleteQueueConsumers(prefix, queues),
    timeoutMs: 20_000,
  });
});
