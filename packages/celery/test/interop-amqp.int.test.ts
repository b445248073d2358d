import { randomBytes } from 'node:crypto';
import { describe } from 'vitest';
import { requireServer, serverUrl } from '@celeriac/test-servers';
import { deleteAmqp } from './amqp-helpers.js';
import { interopSuite } from './interop-scenarios.js';
import { requirePythonCelery } from './python.js';
import { deleteKeys } from './redis-helpers.js';

const ok = (await requireServer('amqp')) && (await requireServer('redis')) && requirePythonCelery();
const amqp = serverUrl('amqp').replace(/\/+$/, '');
const redis = serverUrl('redis').replace(/\/+$/, '');
const prefix = `celeriac-test-${randomBytes(4).toString('hex')}`;
const queues = { py: `${prefix}.py`, node: `${prefix}.node`, kill: `${prefix}.kill` };

describe.skipIf(!ok)('RabbitMQ', () => {
  interopSuite('RabbitMQ', {
    brokerUrl: `${amqp}?prefix=${prefix}`,
    resultUrl: `${redis}/0`,
    pythonEnv: { CELERY_BROKER: `${amqp}//`, CELERY_BACKEND: `${redis}/0` },
    queues,
    cleanup: async (taskIds) => {
      await deleteAmqp(prefix, Object.values(queues));
      await deleteKeys(`${prefix}:`, taskIds.map((id) => `celery-task-meta-${id}`));
    },
  });
});
