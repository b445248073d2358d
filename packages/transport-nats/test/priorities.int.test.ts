import { afterAll, describe, it } from 'vitest';
import { brokerSuite } from '@celeriac/core/testing';
import { requireServer } from '@celeriac/test-servers';
import { createNatsBroker } from '../src/index.js';
import { deleteQueueConsumers, deleteStreams, natsUrl, sleep, uniquePrefix } from './helpers.js';

const ok = await requireServer('nats');
const prefix = uniquePrefix('prio');
const visibilityTimeoutMs = 1000;

// The whole suite again with priority levels on: a subject and a consumer per level, polled most
// urgent first — a different consume path (no-wait scans and per-level long polls).
describe.skipIf(!ok)('NATS JetStream broker with 10 priority levels', () => {
  afterAll(async () => {
    await deleteStreams(prefix);
  });

  brokerSuite({ describe, it }, 'nats?priorities=10', {
    create: () => createNatsBroker(natsUrl, { prefix, visibilityTimeoutMs, priorities: 10 }),
    sleep,
    visibilityTimeoutMs,
    slackMs: 300,
    cleanup: (queues) => deleteQueueConsumers(prefix, queues),
    timeoutMs: 20_000,
  });
});
