import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { requireServer, serverUrl } from '@celeriac/test-servers';
import { requireBuiltCli } from '../src/spawn.js';
import { runSchedulesScenario } from './schedules-scenario.js';

// Issue 26 on the Redis result backend: see runSchedulesScenario.
const ok = await requireServer('redis');
const prefix = `sched${randomBytes(4).toString('hex')}`;
const url = `${serverUrl('redis')}?prefix=${prefix}`;

describe.skipIf(!ok)('runtime schedules on the Redis result backend', () => {
  requireBuiltCli(); // the processes import the built packages

  afterAll(async () => {
    const r = new Redis(serverUrl('redis'));
    let cursor = '0';
    do {
      const [next, keys] = await r.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
      cursor = next;
      if (keys.length > 0) await r.del(...keys);
    } while (cursor !== '0');
    r.disconnect();
  });

  it('3 processes upsert one schedule at once → one schedule; over 10 s with two beats each 1-s tick runs once; limit, endAt and remove hold', async () => {
    await runSchedulesScenario(url, (line) => console.log(`redis: ${line}`));
    const r = new Redis(serverUrl('redis'));
    // What is left is the schedules hash and its version counter, nothing else for schedules.
    expect((await r.hkeys(`${prefix}:{schedules}`)).sort()).toEqual(['ends', 'three', 'tick']);
    r.disconnect();
  }, 40_000);
});
