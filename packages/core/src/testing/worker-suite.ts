import { gzipSync } from 'node:zlib';
import { createApp, type App } from '../app.js';
import type { AsyncResult } from '../async-result.js';
import type { Headers, OutgoingMessage } from '../broker.js';
import { ErrorCode } from '../errors.js';
import { newId, newMessageId } from '../ids.js';
import { createMemoryResultBackend } from '../memory-backend.js';
import { TaskState } from '../result-backend.js';
import { assertEqual, fail } from './assert.js';
import type { BrokerSuiteEnv, CompressionDialect, SuiteApi } from './broker-suite.js';

/**
 * One hostile message: what it is, how to build it from a valid message (or from a valid one that also
 * carries keyword arguments), the code it must be dead-lettered with.
 */
interface HostileCase {
  readonly name: string;
  readonly code: string;
  build(valid: OutgoingMessage, withKwargs: OutgoingMessage): { body: Uint8Array; headers: Headers };
}

const enc = new TextEncoder();

/** A gzip stream of 80 MiB of spaces (about 80 KiB): over the default maxDecodedBytes of 64 MiB. */
let bomb: Uint8Array | undefined;
function gzipBomb(): Uint8Array {
  bomb ??= gzipSync(Buffer.alloc(80 * 1024 * 1024, 0x20), { level: 9 });
  return bomb;
}

function without(headers: Headers, ...keys: string[]): Headers {
  const out: Headers = { ...headers };
  for (const k of keys) delete out[k];
  return out;
}

/**
 * Every kind of bad input seen published straight into a queue: each must be dead-lettered with a
 * reason that names its code, without blocking or losing any valid task.
 */
function hostileCases(dialect: CompressionDialect): HostileCase[] {
  const json = (text: string) => enc.encode(text);
  const withType = (h: Headers, type: string) => ({ ...h, 'content-type': type });
  return [
    { name: 'no headers', code: ErrorCode.SERIALIZATION, build: () => ({ body: json('[[1]]'), headers: {} }) },
    {
      name: 'random bytes',
      code: ErrorCode.SERIALIZATION,
      build: (v) => ({ body: Uint8Array.from({ length: 64 }, (_, i) => (i * 73 + 11) % 256), headers: v.headers }),
    },
    { name: 'truncated JSON', code: ErrorCode.SERIALIZATION, build: (v) => ({ body: json('[[1, 2], {"a"'), headers: v.headers }) },
    { name: 'a body that is an object', code: ErrorCode.SERIALIZATION, build: (v) => ({ body: json('{"args":[1]}'), headers: v.headers }) },
    { name: 'a body whose args are not a list', code: ErrorCode.SERIALIZATION, build: (v) => ({ body: json('[1, {}, {}]'), headers: v.headers }) },
    {
      name: 'pickle content type',
      code: ErrorCode.CONTENT_TYPE,
      // pickle protocol 4 of `()`: never deserialized, whatever it holds
      build: (v) => ({ body: Uint8Array.from([0x80, 0x04, 0x95, 0x02, 0, 0, 0, 0, 0, 0, 0, 0x29, 0x2e]), headers: withType(v.headers, 'application/x-python-serialize') }),
    },
    { name: 'YAML content type', code: ErrorCode.CONTENT_TYPE, build: (v) => ({ body: json('- [1]\n'), headers: withType(v.headers, 'application/x-yaml') }) },
    {
      name: 'a gzip label on plain bytes',
      code: ErrorCode.SERIALIZATION,
      build: (v) => ({ body: json('[[1]]'), headers: { ...v.headers, [dialect.header]: dialect.gzip } }),
    },
    {
      name: 'msgpack garbage',
      code: ErrorCode.SERIALIZATION,
      build: (v) => ({ body: Uint8Array.from([0xc1, 0xc1, 0xdd, 0xff, 0xff]), headers: withType(v.headers, 'application/x-msgpack') }),
    },
    { name: 'invalid UTF-8 in a JSON body', code: ErrorCode.SERIALIZATION, build: (v) => ({ body: Uint8Array.from([0x5b, 0x5b, 0x22, 0xff, 0xfe, 0x22, 0x5d, 0x5d]), headers: v.headers }) },
    { name: 'a numeric task name', code: ErrorCode.SERIALIZATION, build: (v) => ({ body: v.body, headers: { ...v.headers, task: 42 } }) },
    { name: 'no id header', code: ErrorCode.SERIALIZATION, build: (v) => ({ body: v.body, headers: without(v.headers, 'id', 'correlation_id') }) },
    { name: 'an unknown task', code: ErrorCode.TASK_UNKNOWN, build: (v) => ({ body: v.body, headers: { ...v.headers, task: 'nobody.home' } }) },
    {
      name: 'keyword arguments for a task that takes none',
      code: ErrorCode.TASK_SIGNATURE,
      build: (_, kw) => ({ body: kw.body, headers: kw.headers }),
    },
    {
      name: 'a gzip bomb (80 MiB from 80 KiB)',
      code: ErrorCode.PAYLOAD_TOO_LARGE,
      build: (v) => ({ body: gzipBomb(), headers: { ...v.headers, [dialect.header]: dialect.gzip } }),
    },
    {
      name: 'an unknown content-encoding (zstd)',
      code: ErrorCode.CONTENT_TYPE,
      build: (v) => ({ body: v.body, headers: { ...v.headers, 'content-encoding': 'zstd' } }),
    },
  ];
}

/**
 * The parts of the contract that need a real worker over the broker:
 * - bad input: a table of hostile messages published straight into a queue between valid tasks. Each
 *   hostile message is dead-lettered with a reason naming its code, every valid task runs, and the
 *   worker keeps consuming afterwards;
 * - the prefetch bound as the broker sees it: with prefetch 5 and slow handlers, the broker's own count
 *   of unsettled deliveries (`stats().inFlight`) never goes over 5.
 */
export function workerSuite(api: SuiteApi, name: string, env: BrokerSuiteEnv): void {
  const dialect = env.compression ?? { header: 'content-encoding', gzip: 'gzip' };
  const cases = hostileCases(dialect);
  const budgetMs = Math.max(10_000, env.slackMs * 20);

  async function waitUntil(what: string, cond: () => Promise<boolean>): Promise<void> {
    for (let waited = 0; !(await cond()); waited += 20) {
      if (waited > budgetMs) fail(`${what} within ${budgetMs} ms`);
      await env.sleep(20);
    }
  }

  /** An app on a fresh connection of `env`, a unique default queue, results in memory. */
  async function openApp(queue: string): Promise<App> {
    return createApp({
      broker: await env.create(),
      resultBackend: createMemoryResultBackend(env.clock === undefined ? {} : { clock: env.clock }),
      defaultQueue: queue,
      ...(env.protocol === undefined ? {} : { protocol: env.protocol }),
      ...(env.clock === undefined ? {} : { clock: env.clock }),
    });
  }

  api.describe(`through a worker: ${name}`, () => {
    api.it(
      'with prefetch 5 and slow handlers, the broker never counts more than 5 deliveries in flight',
      async () => {
        const queue = `bound-${newId().slice(0, 8)}`;
        const app = await openApp(queue);
        try {
          const gates: (() => void)[] = [];
          const slow = app.task('bound.slow', () => new Promise<void>((resolve) => gates.push(resolve)), { ignoreResult: true });
          const total = 12;
          for (let i = 0; i < total; i++) await slow.delay();
          const worker = app.worker({ concurrency: 1, prefetchMultiplier: 5, heartbeatMs: 0 });
          await worker.start();
          const broker = await app.getBroker();
          let maxInFlight = 0;
          for (let done = 0; done < total; done++) {
            await waitUntil(`task ${done + 1} running`, () => Promise.resolve(gates.length > 0));
            // Give the consumer time to claim all it may, then read the broker's own count.
            await env.sleep(Math.max(100, env.slackMs));
            const { inFlight } = await broker.stats(queue);
            if (inFlight > 5) fail(`${inFlight} deliveries in flight with prefetch 5 (after ${done} tasks done)`);
            maxInFlight = Math.max(maxInFlight, inFlight);
            gates.shift()!();
          }
          await waitUntil('every task acked', async () => {
            const s = await broker.stats(queue);
            return s.ready === 0 && s.inFlight === 0;
          });
          // The bound was reached (12 tasks waited for 5 slots), so the test could have seen a breach.
          assertEqual(maxInFlight, 5, 'most deliveries in flight at once');
        } finally {
          await app.close();
          if (env.cleanup !== undefined) await env.cleanup([queue]);
        }
      },
      env.timeoutMs ?? 60_000,
    );

    api.it(
      'hostile messages are dead-lettered with their reason; valid tasks between them all run; the worker keeps consuming',
      async () => {
        const queue = `hostile-${newId().slice(0, 8)}`;
        const app = await openApp(queue);
        try {
          const echo = app.task('hostile.echo', (n: number) => n * 2);
          const worker = app.worker({ concurrency: 4, prefetchMultiplier: 1, heartbeatMs: 0 });
          await worker.start();
          const broker = await app.getBroker();
          const results: AsyncResult<number>[] = [];
          const sent = new Map<string, HostileCase>();
          for (const [i, c] of cases.entries()) {
            results.push(await echo.delay(i));
            const { msg } = app.buildMessage('hostile.echo', [i], {}, {});
            const valid = app.encode(msg, {});
            const withKwargs = app.encode(app.buildMessage('hostile.echo', [i], { kwargs: { unexpected: i } }, {}).msg, {});
            const out: OutgoingMessage = { id: newMessageId(), ...c.build(valid, withKwargs) };
            await broker.publish(queue, out);
            sent.set(out.id, c);
          }
          results.push(await echo.delay(cases.length));

          const reasons = new Map<string, string>();
          await waitUntil(`all ${cases.length} hostile messages dead-lettered`, async () => {
            for (const d of await broker.deadLetters.list(queue, { limit: 1000 })) reasons.set(d.id, d.reason);
            return reasons.size >= cases.length;
          });
          for (const [id, c] of sent) {
            const reason = reasons.get(id);
            if (reason === undefined) fail(`${c.name}: not dead-lettered under its message id (dead letters: ${[...reasons.keys()].join(', ')})`);
            if (!reason.includes(c.code)) fail(`${c.name}: dead-lettered with "${reason}", expected a reason naming ${c.code}`);
          }
          await waitUntil('every valid task SUCCESS', async () => {
            const states = await Promise.all(results.map((r) => r.state()));
            return states.every((s) => s === TaskState.SUCCESS);
          });
          // The worker still consumes after all of it.
          const last = await echo.delay(1000);
          await waitUntil('a task sent after the hostile table runs', async () => (await last.state()) === TaskState.SUCCESS);
          assertEqual(reasons.size, cases.length, 'dead letters');
          let stats = await broker.stats(queue);
          await waitUntil('nothing left ready or in flight', async () => {
            stats = await broker.stats(queue);
            return stats.ready === 0 && stats.inFlight === 0;
          });
          assertEqual(stats.dead, cases.length, 'dead');
        } finally {
          await app.close();
          if (env.cleanup !== undefined) await env.cleanup([queue]);
        }
      },
      env.timeoutMs ?? 60_000,
    );
  });
}
