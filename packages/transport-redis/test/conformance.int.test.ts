import { brokerSuite } from '@celeriac/core/testing';
import { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { requireServer, serverUrl } from '@celeriac/test-servers';
import { createRedisBroker, prefixPattern } from '../src/index.js';
import { deleteMatching, globEscape, uniquePrefix } from './helpers.js';

const ok = await requireServer('redis');
const prefix = uniquePrefix('conformance');
const url = serverUrl('redis');

describe.skipIf(!ok)('redis broker', () => {
  const admin = new Redis(url, { lazyConnect: true });

  afterAll(async () => {
    await deleteMatching(admin, prefixPattern(prefix));
    const left = await admin.scan('0', 'MATCH', prefixPattern(prefix), 'COUNT', 10_000);
    admin.disconnect();
    expect(left[1]).toEqual([]);
  });

  brokerSuite({ describe, it }, 'redis', {
    create: () => {
      const u = new URL(url);
      u.searchParams.set('prefix', prefix);
      u.searchParams.set('visibilityTimeoutMs', '1000');
      return createRedisBroker(u, { prefix, visibilityTimeoutMs: 1000, blockTimeoutMs: 1000 }, {});
    },
    sleep: (ms) => new Promise((r) => setTimeout(r, ms)),
    visibilityTimeoutMs: 1000,
    slackMs: 150,
    cleanup: async (queues) => {
      for (const q of queues) await deleteMatching(admin, `{${globEscape(prefix)}:${globEscape(q)}}:*`);
    },
  });
});
