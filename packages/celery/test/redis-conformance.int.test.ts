import { brokerSuite, resultBackendSuite } from '@celeriac/core/testing';
import { afterAll, describe, it } from 'vitest';
import { requireServer, serverUrl } from '@celeriac/test-servers';
import { CeleryRedisResultBackend } from '../src/celery-result-backend.js';
import { KombuRedisBroker } from '../src/kombu-redis-broker.js';
import { celeryProtocol } from '../src/protocol.js';
import { ZLIB } from '../src/wire.js';
import { deleteKeys, uniquePrefix } from './redis-helpers.js';

const ok = await requireServer('redis');
const prefix = uniquePrefix('conformance');
const vt = 1000;

afterAll(async () => {
  if (ok) await deleteKeys(prefix);
});

describe.skipIf(!ok)('kombu Redis broker', () => {
  // defaultPriority 0: the suite expects an unprioritized message after every prioritized one, as
  // celeriac's other brokers order them. kombu's own default (9 here) puts it in the first list.
  brokerSuite({ describe, it }, 'kombu-redis', {
    create: () => new KombuRedisBroker({ url: serverUrl('redis'), prefix, visibilityTimeoutMs: vt, sweepIntervalMs: 100, defaultPriority: 0 }),
    sleep: (ms) => new Promise((r) => setTimeout(r, ms)),
    visibilityTimeoutMs: vt,
    slackMs: 300,
    // The app-level tests (hostile messages) run in Celery mode: a Python producer can send pickle or YAML.
    protocol: celeryProtocol,
    compression: { header: 'compression', gzip: ZLIB },
  });

  resultBackendSuite({ describe, it }, 'celery-redis', {
    create: () => new CeleryRedisResultBackend({ url: serverUrl('redis'), prefix }),
    sleep: (ms) => new Promise((r) => setTimeout(r, ms)),
    slackMs: 100,
  });
});
