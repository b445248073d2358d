import { afterAll, describe, expect, it } from 'vitest';
import { createApp, isCeleriacError } from '@celeriac/core';
import { rabbitMqServerCommand, requireBinary, startPrivateRabbitMq, type PrivateRabbitMqServer } from '@celeriac/test-servers';

const available = requireBinary(rabbitMqServerCommand());

const TASKS = 600;
let rabbit: PrivateRabbitMqServer | undefined;

afterAll(async () => {
  await rabbit?.close();
});

describe.skipIf(!available)('amqp broker restart (private RabbitMQ node)', () => {
  it('a worker and a producer ride out a restart of RabbitMQ mid-run and nothing is lost', async () => {
    rabbit = await startPrivateRabbitMq();
    const url = `${rabbit.url}?prefix=restart&connectTimeoutMs=30000`;
    const producer = createApp({ broker: url });
    const workerApp = createApp({ broker: url });
    const send = producer.task('restart.work', async (i: number) => i);
    workerApp.task('restart.work', async (i: number) => {
      await new Promise((r) => setTimeout(r, 2));
      return i;
    });
    const done = new Map<number, number>();
    workerApp.on('task:succeeded', ({ result }) => {
      done.set(result as number, (done.get(result as number) ?? 0) + 1);
    });
    let reconnects = 0;
    workerApp.on('broker:reconnected', () => {
      reconnects++;
    });
    producer.on('broker:reconnected', () => {
      reconnects++;
    });
    const worker = workerApp.worker({ concurrency: 8, prefetchMultiplier: 4, heartbeatMs: 0 });
    try {
      await worker.start();
      // Publish steadily; a publish that fails with a retryable error is retried, as a caller would.
      let retried = 0;
      let restarting = false;
      let duringOutage = 0;
      const publishing = (async () => {
        for (let i = 0; i < TASKS; i++) {
          if (restarting) duringOutage++;
          for (;;) {
            try {
              await send.delay(i);
              break;
            } catch (err) {
              if (!isCeleriacError(err) || !err.retryable) throw err;
              retried++;
              await new Promise((r) => setTimeout(r, 200));
            }
          }
          await new Promise((r) => setTimeout(r, 15)); // spread the publishes over the restart
        }
      })();
      for (let waited = 0; done.size < 100; waited += 20) {
        if (waited > 30_000) throw new Error('the worker did not get going');
        await new Promise((r) => setTimeout(r, 20));
      }
      const before = done.size;
      restarting = true;
      await rabbit.restart();
      restarting = false;
      await publishing;
      for (let waited = 0; done.size < TASKS; waited += 50) {
        if (waited > 60_000) throw new Error(`only ${done.size} of ${TASKS} tasks ran after the restart`);
        await new Promise((r) => setTimeout(r, 50));
      }
      const duplicates = [...done.values()].reduce((a, n) => a + n - 1, 0);
      console.log(
        `broker restart: ${before} tasks done before the restart, all ${TASKS} after it; ` +
          `${duringOutage} publishes started during the restart, ${reconnects} reconnects reported, ` +
          `${retried} publishes retried by the caller, ${duplicates} tasks ran twice`,
      );
      expect(done.size).toBe(TASKS);
      expect(reconnects).toBeGreaterThanOrEqual(2);
      expect(duringOutage).toBeGreaterThan(0); // the producer really published during the restart
    } finally {
      await worker.close({ timeoutMs: 5000 });
      await workerApp.close();
      await producer.close();
    }
  }, 120_000);
});
