import { afterAll, describe, it } from 'vitest';
import { newId } from '@celeriac/core';
import { brokerSuite } from '@celeriac/core/testing';
import { requireServer, serverUrl } from '@celeriac/test-servers';
import { AmqpBroker, type QueueType } from '../src/index.js';

const ok = await requireServer('amqp');
const url = serverUrl('amqp');

for (const queueType of ['quorum', 'classic'] as const satisfies readonly QueueType[]) {
  const prefix = `conf-${queueType}-${newId().slice(0, 8)}`;
  const create = () => new AmqpBroker(url, { queueType, prefix, connectTimeoutMs: 5000 });
  let adminBroker: AmqpBroker | undefined;
  const admin = () => (adminBroker ??= create());

  describe.skipIf(!ok)(`amqp ${queueType}`, () => {
    brokerSuite({ describe, it }, `amqp (${queueType} queues)`, {
      create,
      sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
      // RabbitMQ has no visibility timeout; the suite uses this to size its waits.
      visibilityTimeoutMs: 500,
      slackMs: 150,
      // One connection deletes every queue the tests used, then the prefix's exchanges.
      cleanup: (queues) => admin().deleteQueues(queues),
    });

    afterAll(async () => {
      try {
        await admin().deleteExchanges();
      } finally {
        await admin().close();
      }
    });
  });
}
