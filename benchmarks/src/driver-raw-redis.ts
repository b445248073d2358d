import { Redis } from 'ioredis';
import type { BenchTask, ConsumerHooks, Driver } from './driver.js';
import type { RowSpec } from './record.js';

/**
 * The Redis floor: a reliable queue (LPUSH; LMOVE to a processing list; LREM on ack) with plain
 * ioredis. `concurrency` loops share one pipelined connection; when the queue runs dry, one blocking
 * BLMOVE on a second connection waits for the next task and hands it to an idle loop.
 */
export function createRawRedisDriver(spec: RowSpec): Driver {
  if (spec.url === undefined) throw new TypeError('a raw Redis row needs a Redis URL');
  const url = spec.url;
  const queueKey = `{${spec.prefix}}:q`;
  const processingKey = `{${spec.prefix}}:processing`;
  const cmd = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 2 });
  const blocking = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 2 });
  cmd.on('error', () => undefined);
  blocking.on('error', () => undefined);
  let stopped = false;
  let closing: Promise<void> | undefined;
  const loops: Promise<void>[] = [];
  // Loops with nothing to do wait here; resolved with a task (from BLMOVE) or null (look again).
  const idle: ((raw: string | null) => void)[] = [];
  // A task BLMOVE brought while no loop was idle (they were woken meanwhile): the next free loop takes it.
  const handoff: string[] = [];
  let sentinel: Promise<void> | undefined;

  const wakeOne = (raw: string | null) => idle.shift()?.(raw);
  const deliver = (raw: string) => {
    const waiter = idle.shift();
    if (waiter === undefined) handoff.push(raw);
    else waiter(raw);
  };

  const runSentinel = async (onError: (err: unknown) => void): Promise<void> => {
    while (!stopped && idle.length > 0) {
      let raw: string | null;
      try {
        raw = await blocking.blmove(queueKey, processingKey, 'RIGHT', 'LEFT', 1);
      } catch (err) {
        if (!stopped) onError(err);
        return;
      }
      if (raw !== null) {
        deliver(raw);
        wakeOne(null); // another loop looks for more
      }
    }
  };

  const kickSentinel = (onError: (err: unknown) => void) => {
    sentinel ??= runSentinel(onError).finally(() => {
      sentinel = undefined;
      if (!stopped && idle.length > 0) kickSentinel(onError);
    });
  };

  const loop = async (hooks: ConsumerHooks): Promise<void> => {
    while (!stopped) {
      let raw: string | null = handoff.shift() ?? (await cmd.lmove(queueKey, processingKey, 'RIGHT', 'LEFT'));
      if (stopped) return; // close() released the idle loops already: do not wait again
      if (raw === null) {
        if (handoff.length > 0) continue;
        raw = await new Promise<string | null>((resolve) => {
          idle.push(resolve);
          kickSentinel(hooks.onError);
        });
        if (raw === null) continue;
      } else if (idle.length > 0) {
        wakeOne(null);
      }
      const task = JSON.parse(raw) as BenchTask;
      await hooks.handler(task, 0);
      await cmd.lrem(processingKey, 1, raw);
      hooks.onDone();
    }
  };

  return {
    options: {
      queue: 'LPUSH, LMOVE, LREM',
      ...(spec.scenario === 'latency' ? {} : { enqueue: spec.enqueue === 'bulk' ? `LPUSH×${spec.bulkSize}` : `LPUSH, ${spec.inFlight} in flight` }),
    },
    supportsRetry: false,
    async open() {
      await Promise.all([cmd.connect(), blocking.connect()]);
    },
    async enqueue(t) {
      await cmd.lpush(queueKey, JSON.stringify(t));
    },
    async enqueueBulk(ts) {
      await cmd.lpush(queueKey, ...ts.map((t) => JSON.stringify(t)));
    },
    startConsumer(concurrency, hooks) {
      for (let i = 0; i < concurrency; i++) {
        loops.push(loop(hooks).catch((err: unknown) => (stopped ? undefined : hooks.onError(err))));
      }
      return Promise.resolve();
    },
    close() {
      closing ??= (async () => {
        stopped = true;
        for (const w of idle.splice(0)) w(null);
        blocking.disconnect();
        await Promise.allSettled(loops);
        await cmd.del(queueKey, processingKey).catch(() => undefined);
        cmd.disconnect();
      })();
      return closing;
    },
  };
}
