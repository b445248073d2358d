import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApp } from '@celeriac/core';
import { requireBinary } from '../../../test/src/binaries.js';
import { startPrivateNats, type PrivateNatsServer } from '../../../test/src/private-nats.js';
import { freePort } from '../../../test/src/server-process.js';
import { createNatsBroker } from '../src/index.js';
import { urlWith } from './helpers.js';

const hasServer = requireBinary('nats-server');

const BEFORE = 600;
const AFTER = 400;

describe.skipIf(!hasServer)('NATS: a 3-node JetStream cluster on loopback, streams replicated 3 times', () => {
  const nodes: PrivateNatsServer[] = [];
  let url = '';

  beforeAll(async () => {
    const clusterPorts = await Promise.all([freePort(), freePort(), freePort()]);
    const routes = clusterPorts.map((p) => `nats://127.0.0.1:${p}`).join(',');
    // All three at once: JetStream in a cluster needs a quorum before any node is healthy.
    nodes.push(
      ...(await Promise.all(
        clusterPorts.map((p) =>
          startPrivateNats({ args: ['--cluster_name', 'celeriac', '--cluster', `nats://127.0.0.1:${p}`, '--routes', routes] }),
        ),
      )),
    );
    url = urlWith(
      { prefix: 'cluster', replicas: 3, visibilityTimeoutMs: 3000, servers: nodes.slice(1).map((n) => `127.0.0.1:${n.port}`).join(',') },
      nodes[0]!.url,
    );
    // Wait for a JetStream meta leader: until then creating streams fails.
    for (const deadline = Date.now() + 30_000; ; ) {
      const probe = createNatsBroker(new URL(url), { prefix: 'cluster', replicas: 3 });
      try {
        await probe.connect();
        break;
      } catch (err) {
        if (Date.now() > deadline) throw err;
        await new Promise((r) => setTimeout(r, 250));
      } finally {
        await probe.close();
      }
    }
  }, 60_000);

  afterAll(async () => {
    await Promise.all(nodes.map((n) => n.stop()));
  });

  it(`runs ${BEFORE} tasks, keeps going when one node is killed, and runs ${AFTER} more`, async () => {
    const app = createApp({ broker: url, resultBackend: url });
    const done = new Set<number>();
    let runs = 0;
    const task = app.task('cluster.work', async (i: number) => {
      runs++;
      await new Promise((r) => setTimeout(r, 2));
      done.add(i);
      return i;
    });
    const worker = app.worker({ concurrency: 8, prefetchMultiplier: 4 });
    try {
      const first = await task.applyAsyncBulk(Array.from({ length: BEFORE }, (_, i) => [i] as [number]));
      const delayed = await task.applyAsync([-1], { countdownMs: 1_500 });
      await worker.start();
      while (done.size < 150) await new Promise((r) => setTimeout(r, 5));
      await nodes[0]!.down({ hard: true });
      const second = await task.applyAsyncBulk(Array.from({ length: AFTER }, (_, i) => [BEFORE + i] as [number]));
      const values = await Promise.all([...first, ...second, delayed].map((r) => r.get({ timeoutMs: 60_000 })));
      expect(values.slice(0, BEFORE + AFTER)).toEqual(Array.from({ length: BEFORE + AFTER }, (_, i) => i));
      expect(values[BEFORE + AFTER]).toBe(-1);
      console.log(`cluster test: ${BEFORE + AFTER + 1} tasks, ${runs} runs (${runs - done.size} repeated) with one of three nodes killed`);
    } finally {
      await app.close();
    }
  }, 90_000);
});
