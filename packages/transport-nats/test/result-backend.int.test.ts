import { afterAll, describe, it } from 'vitest';
import { resultBackendSuite } from '@celeriac/core/testing';
import { requireServer } from '../../../test/src/servers.js';
import { createNatsResultBackend } from '../src/index.js';
import { deleteStreams, natsUrl, sleep, uniquePrefix } from './helpers.js';

const ok = await requireServer('nats');
const prefix = uniquePrefix('rb');

describe.skipIf(!ok)('NATS JetStream KV result backend', () => {
  afterAll(async () => {
    await deleteStreams(prefix);
  });

  resultBackendSuite({ describe, it }, 'nats', {
    create: () => createNatsResultBackend(natsUrl, { prefix }),
    sleep,
    slackMs: 200,
    timeoutMs: 20_000,
  });
});
