import { brokerSuite } from '@celeriac/core/testing';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'vitest';
import { requireServer, serverUrl } from '@celeriac/test-servers';
import { CeleryAmqpBroker } from '../src/celery-amqp-broker.js';
import { deleteAmqp } from './amqp-helpers.js';
import { celeryProtocol } from '../src/protocol.js';
import { ZLIB } from '../src/wire.js';

const ok = await requireServer('amqp');
const prefix = `celeriac-test-${randomBytes(4).toString('hex')}`;

describe.skipIf(!ok)('Celery AMQP broker', () => {
  // maxPriority 9: queues declared with x-max-priority, as with Celery's task_queue_max_priority = 9.
  const create = () => new CeleryAmqpBroker({ url: serverUrl('amqp'), prefix, maxPriority: 9 });
  const cleanup = async (queues: string[]) => {
    // Drop what a test left delayed (the levels are shared by the file's queues), then everything.
    const b = create();
    try {
      for (const q of queues) await b.purge(q).catch(() => undefined);
    } finally {
      await b.close();
    }
    await deleteAmqp(prefix, queues);
  };
  brokerSuite({ describe, it }, 'celery-amqp', {
    create,
    sleep: (ms) => new Promise((r) => setTimeout(r, ms)),
    visibilityTimeoutMs: 1000,
    slackMs: 300,
    cleanup,
    // The app-level tests (hostile messages) run in Celery mode: a Python producer can send pickle or YAML.
    protocol: celeryProtocol,
    compression: { header: 'compression', gzip: ZLIB },
  });
});
