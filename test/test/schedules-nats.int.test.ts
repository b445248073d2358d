import { randomBytes } from 'node:crypto';
import { connect } from '@nats-io/transport-node';
import { jetstreamManager } from '@nats-io/jetstream';
import { afterAll, describe, it } from 'vitest';
import { requireServer, serverUrl } from '@celeriac/test-servers';
import { requireBuiltCli } from '../src/spawn.js';
import { runSchedulesScenario } from './schedules-scenario.js';

// Issue 26 on the NATS JetStream KV result backend: see runSchedulesScenario.
const ok = await requireServer('nats');
const prefix = `sched${randomBytes(4).toString('hex')}`;
const url = `${serverUrl('nats')}?prefix=${prefix}`;

describe.skipIf(!ok)('runtime schedules on the NATS KV result backend', () => {
  requireBuiltCli(); // the processes import the built packages

  afterAll(async () => {
    const u = new URL(serverUrl('nats'));
    const nc = await connect({ servers: `${u.hostname}:${u.port === '' ? 4222 : u.port}` });
    const jsm = await jetstreamManager(nc);
    const names: string[] = [];
    for await (const n of jsm.streams.names()) if (n.startsWith(`KV_${prefix}`)) names.push(n);
    for (const n of names) await jsm.streams.delete(n);
    await nc.close();
  });

  it('3 processes upsert one schedule at once → one schedule; over 10 s with two beats each 1-s tick runs once; limit, endAt and remove hold', async () => {
    await runSchedulesScenario(url, (line) => console.log(`nats: ${line}`));
  }, 40_000);
});
