import type { Broker, Delivery, Headers, OutgoingMessage, TransactionClient } from '../broker.js';
import type { Clock } from '../clock.js';
import type { Protocol } from '../protocol.js';
import { assertEqual, fail, rejectsWith } from './assert.js';
import { guardBroker, type GuardedBroker } from '../guard.js';
import { newId } from '../ids.js';
import { workerSuite } from './worker-suite.js';

/** The test-runner functions the suites need (vitest, node:test, mocha and jest all fit). */
export interface SuiteApi {
  describe(name: string, fn: () => void): void;
  it(name: string, fn: () => Promise<void>, timeoutMs?: number): void;
}

export interface BrokerSuiteEnv {
  /** A new connection to the same server (another "process"), not yet connected. */
  create(): Broker | Promise<Broker>;
  /** Let `ms` pass: a fake clock's `advance` for in-process brokers, a real sleep for servers. */
  sleep(ms: number): Promise<void>;
  /** The visibility timeout `create()` configures. Keep it short (≈1 s) for real servers. */
  visibilityTimeoutMs: number;
  /** How late a delayed or redelivered message may be: scheduling slack of the server. */
  slackMs: number;
  /** The clock the broker uses (fake clock for in-process brokers). @default the system clock */
  clock?: Clock;
  /** True when `sleep` moves a fake clock, so days-long delays can be run to the end. */
  fakeTime?: boolean;
  /** Remove whatever a test left on the server under these queue names. */
  cleanup?(queues: string[]): Promise<void>;
  /** Per-test timeout handed to `it`. @default 30_000 */
  timeoutMs?: number;
  /**
   * The wire protocol of the app in the tests that run a worker (the hostile-message table); a
   * broker that carries another protocol's framing (Celery's) passes it. @default celeriac's
   */
  protocol?: Protocol;
  /** How that protocol labels a gzip body. @default `content-encoding: gzip` */
  compression?: CompressionDialect;
  /**
   * Open a transaction on the broker's server (a client inside `BEGIN`), for the test of
   * `capabilities.transactionalPublish`. Required when the broker declares it.
   */
  beginTransaction?(): Promise<SuiteTransaction>;
}

/** A transaction the suite publishes in, then commits or rolls back. */
export interface SuiteTransaction {
  readonly client: TransactionClient;
  commit(): Promise<void>;
  rollback(): Promise<void>;
}

/** How a protocol labels a compressed body. */
export interface CompressionDialect {
  /** The header that names the compression, e.g. 'content-encoding'. */
  header: string;
  /** Its value for gzip, e.g. 'gzip'. */
  gzip: string;
}

const enc = new TextEncoder();
const dec = new TextDecoder();

function msg(text: string, headers: Headers = {}): OutgoingMessage {
  return { id: newId(), body: enc.encode(text), headers };
}

function text(d: Delivery): string {
  return dec.decode(d.body);
}


/** Collects deliveries of one consumer in the background. */
class Collector {
  readonly got: Delivery[] = [];
  private readonly abort = new AbortController();
  private readonly done: Promise<void>;
  error: unknown;

  constructor(broker: GuardedBroker, queue: string, prefetch: number) {
    const it = broker.consume(queue, { prefetch, signal: this.abort.signal });
    this.done = (async () => {
      try {
        // What the consumer buffered without a promise (as the worker takes), `next()` to wait.
        for (;;) {
          const d = it.takeSync() ?? (await it.next()).value;
          if (d === undefined) break;
          this.got.push(d);
        }
      } catch (err) {
        if (!this.abort.signal.aborted) this.error = err;
      }
    })();
  }

  async stop(): Promise<void> {
    this.abort.abort();
    await this.done;
  }
}

/**
 * The broker conformance suite: every bullet of DESIGN.md §3–§4 as a named test, run on every
 * transport. Capabilities choose between the supported branch and the documented refusal.
 */
export function brokerSuite(api: SuiteApi, name: string, env: BrokerSuiteEnv): void {
  const timeout = env.timeoutMs ?? 30_000;
  const vt = env.visibilityTimeoutMs;

  /** Run a test with fresh queue names and brokers that are closed and cleaned afterwards. */
  function test(title: string, fn: (t: TestKit) => Promise<void>): void {
    api.it(
      title,
      async () => {
        const kit = new TestKit(env);
        try {
          await fn(kit);
        } finally {
          await kit.dispose();
        }
      },
      timeout,
    );
  }

  /** Wait until `c` holds at least `n` deliveries, or fail after `budgetMs`. */
  async function waitFor(c: Collector, n: number, budgetMs: number, what: string): Promise<void> {
    const step = 10;
    for (let waited = 0; c.got.length < n; waited += step) {
      if (c.error !== undefined) throw c.error as Error;
      if (waited > budgetMs) fail(`${what}: expected ${n} deliveries within ${budgetMs} ms, got ${c.got.length}`);
      await env.sleep(step);
    }
  }

  const quiet = () => env.sleep(Math.max(200, env.slackMs));
  const soon = Math.max(2000, env.slackMs * 4);

  api.describe(`broker conformance: ${name}`, () => {
    api.describe('contract basics', () => {
      test('publish then consume round-trips the id, the body and every header value type', async (t) => {
        const b = await t.broker();
        const q = t.queue();
        await b.declareQueue(q);
        const headers: Headers = {
          s: 'text ünïcode',
          n: 42,
          f: 1.5,
          neg: -7,
          t: true,
          fl: false,
          nul: null,
          arr: ['a', 1, true, null, ['nested', 2]],
          empty: [],
        };
        const m = { id: newId(), body: new Uint8Array([0, 1, 2, 255, 254]), headers };
        await b.publish(q, m);
        const c = t.collect(b, q, 1);
        await waitFor(c, 1, soon, 'round trip');
        const d = c.got[0]!;
        assertEqual(d.id, m.id, 'id');
        assertEqual([...d.body], [0, 1, 2, 255, 254], 'body');
        for (const [k, v] of Object.entries(headers)) assertEqual(d.headers[k], v, `header ${k}`);
        assertEqual(d.deliveries, 1, 'deliveries on first delivery');
        await d.ack();
      });

      test('stats count ready, delayed, in-flight and dead messages', async (t) => {
        const b = await t.broker();
        const q = t.queue();
        await b.declareQueue(q);
        await b.publish(q, msg('ready-1'));
        await b.publish(q, msg('ready-2'));
        await b.publish(q, msg('ready-3'));
        await b.publish(q, msg('delayed'), { delayMs: 3_600_000 });
        const c = t.collect(b, q, 2);
        await waitFor(c, 2, soon, 'two in flight');
        await c.got[0]!.nack({ requeue: false, reason: 'test' });
        await quiet();
        const s = await b.stats(q);
        assertEqual(s, { ready: 0, delayed: 1, inFlight: 2, dead: 1 }, 'stats');
      });

      test('purge removes ready and delayed messages and returns how many', async (t) => {
        const b = await t.broker();
        const q = t.queue();
        await b.declareQueue(q);
        await b.publishBatch(q, [msg('1'), msg('2'), msg('3')]);
        await b.publish(q, msg('later'), { delayMs: 3_600_000 });
        const n = await b.purge(q);
        assertEqual(n, 4, 'purged count');
        const s = await b.stats(q);
        assertEqual([s.ready, s.delayed], [0, 0], 'after purge');
      });

      test('publishBatch delivers every message in order', async (t) => {
        const b = await t.broker();
        const q = t.queue();
        await b.declareQueue(q);
        await b.publishBatch(q, Array.from({ length: 20 }, (_, i) => msg(`m${i}`)));
        const c = t.collect(b, q, 20);
        await waitFor(c, 20, soon, 'batch');
        assertEqual(c.got.map(text), Array.from({ length: 20 }, (_, i) => `m${i}`), 'order');
      });

      test('close is idempotent', async (t) => {
        const b = await t.broker();
        await Promise.all([b.close(), b.close()]);
        await b.close();
      });

      test('the guard refuses a payload over maxMessageBytes with ERR_PAYLOAD_TOO_LARGE', async (t) => {
        const b = await t.broker();
        const q = t.queue();
        await b.declareQueue(q);
        const big = { id: newId(), body: new Uint8Array(b.capabilities.maxMessageBytes + 1), headers: {} };
        await rejectsWith(b.publish(q, big), 'ERR_PAYLOAD_TOO_LARGE', 'oversize publish');
        await b.publish(q, msg('small'));
        const c = t.collect(b, q, 1);
        await waitFor(c, 1, soon, 'the next message still flows');
      });

      test('a second ack or nack of one delivery throws ERR_ALREADY_SETTLED', async (t) => {
        const b = await t.broker();
        const q = t.queue();
        await b.declareQueue(q);
        await b.publish(q, msg('once'));
        const c = t.collect(b, q, 1);
        await waitFor(c, 1, soon, 'delivery');
        await c.got[0]!.ack();
        await rejectsWith(c.got[0]!.ack(), 'ERR_ALREADY_SETTLED', 'second ack');
        await rejectsWith(c.got[0]!.nack({ requeue: true }), 'ERR_ALREADY_SETTLED', 'nack after ack');
      });
    });

    api.describe('at least once', () => {
      test('an unacked delivery of a consumer that dies is delivered again', async (t) => {
        const a = await t.broker();
        const q = t.queue();
        await a.declareQueue(q);
        await a.publish(q, msg('survivor'));
        const ca = t.collect(a, q, 1);
        await waitFor(ca, 1, soon, 'first delivery');
        await ca.stop();
        await a.close(); // dies holding the delivery unacked
        const b = await t.broker();
        const cb = t.collect(b, q, 1);
        await waitFor(cb, 1, vt * 3 + soon, 'redelivery after the holder died');
        assertEqual(text(cb.got[0]!), 'survivor', 'redelivered body');
        if (b.capabilities.redeliveryCount) assertEqual(cb.got[0]!.deliveries, 2, 'deliveries after a crash');
        else if (cb.got[0]!.deliveries < 2) fail('a redelivered message must have deliveries >= 2');
        await cb.got[0]!.ack();
      });

      test('a delivery is not delivered again while its holder is alive and extending its lease', async (t) => {
        const a = await t.broker();
        const b = await t.broker();
        const q = t.queue();
        await a.declareQueue(q);
        await a.publish(q, msg('long task'));
        const ca = t.collect(a, q, 1);
        await waitFor(ca, 1, soon, 'first delivery');
        const cb = t.collect(b, q, 1);
        await env.sleep(vt * 3); // the guard renews the lease every visibilityTimeoutMs / 3
        assertEqual(cb.got.length, 0, 'deliveries to a second consumer while the first holds the lease');
        await ca.got[0]!.ack();
        await quiet();
        assertEqual(cb.got.length, 0, 'deliveries after the ack');
      });

      test('an acked delivery is never delivered again, even after the visibility timeout', async (t) => {
        const a = await t.broker();
        const q = t.queue();
        await a.declareQueue(q);
        await a.publish(q, msg('done'));
        const ca = t.collect(a, q, 1);
        await waitFor(ca, 1, soon, 'delivery');
        await ca.got[0]!.ack();
        await ca.stop();
        await a.close();
        const b = await t.broker();
        const cb = t.collect(b, q, 5);
        await env.sleep(vt * 2 + env.slackMs);
        assertEqual(cb.got.length, 0, 'redeliveries of an acked message');
      });

      test('nack with requeue delivers the message again and counts the delivery', async (t) => {
        const b = await t.broker();
        const q = t.queue();
        await b.declareQueue(q);
        await b.publish(q, msg('again'));
        const c = t.collect(b, q, 1);
        await waitFor(c, 1, soon, 'first');
        await c.got[0]!.nack({ requeue: true });
        await waitFor(c, 2, soon, 'second');
        await c.got[1]!.nack({ requeue: true });
        await waitFor(c, 3, soon, 'third');
        assertEqual(text(c.got[2]!), 'again', 'body');
        if (b.capabilities.redeliveryCount) assertEqual(c.got.map((d) => d.deliveries), [1, 2, 3], 'deliveries');
        else if (c.got[2]!.deliveries < 2) fail('a redelivered message must have deliveries >= 2');
      });
    });

    api.describe('delays live in the broker', () => {
      test('a delayed message is not delivered before its delay, and is delivered after it', async (t) => {
        const b = await t.broker();
        const q = t.queue();
        await b.declareQueue(q);
        const delay = Math.max(500, env.slackMs * 2);
        await b.publish(q, msg('later'), { delayMs: delay });
        const c = t.collect(b, q, 1);
        await env.sleep(delay / 2);
        assertEqual(c.got.length, 0, 'deliveries before the delay');
        await waitFor(c, 1, delay + soon, 'delivery after the delay');
      });

      test('a delayed message does not occupy a prefetch slot', async (t) => {
        const b = await t.broker();
        const q = t.queue();
        await b.declareQueue(q);
        await b.publish(q, msg('in an hour'), { delayMs: 3_600_000 });
        await b.publish(q, msg('now'));
        const c = t.collect(b, q, 1);
        await waitFor(c, 1, soon, 'the immediate message with prefetch 1');
        assertEqual(text(c.got[0]!), 'now', 'first delivery');
        const s = await b.stats(q);
        assertEqual([s.delayed, s.inFlight], [1, 1], 'delayed and in-flight counts');
      });

      test('a delayed message survives the restart of every publisher and consumer', async (t) => {
        const a = await t.broker();
        const q = t.queue();
        await a.declareQueue(q);
        const delay = Math.max(300, env.slackMs);
        await a.publish(q, msg('kept by the broker'), { delayMs: delay });
        await a.close();
        await env.sleep(delay + env.slackMs);
        const b = await t.broker();
        const c = t.collect(b, q, 1);
        await waitFor(c, 1, soon, 'the delayed message after every process restarted');
        assertEqual(text(c.got[0]!), 'kept by the broker', 'body');
      });

      test('a short delay is never stuck behind a long one', async (t) => {
        const b = await t.broker();
        const q = t.queue();
        await b.declareQueue(q);
        await b.publish(q, msg('tomorrow'), { delayMs: 86_400_000 });
        await b.publish(q, msg('in an hour'), { delayMs: 3_600_000 });
        await b.publish(q, msg('soon'), { delayMs: 50 });
        const c = t.collect(b, q, 3);
        await waitFor(c, 1, 50 + soon, 'the short delay');
        assertEqual(text(c.got[0]!), 'soon', 'first delivered');
        await quiet();
        assertEqual(c.got.length, 1, 'long delays delivered early');
      });

      test('a days-long delay is held by the broker and not delivered early', async (t) => {
        const b = await t.broker();
        const q = t.queue();
        await b.declareQueue(q);
        const threeDays = 3 * 86_400_000;
        await b.publish(q, msg('in three days'), { delayMs: threeDays });
        const c = t.collect(b, q, 1);
        await quiet();
        assertEqual(c.got.length, 0, 'delivered early');
        assertEqual((await b.stats(q)).delayed, 1, 'counted as delayed');
        if (env.fakeTime === true) {
          await env.sleep(threeDays - 60_000);
          assertEqual(c.got.length, 0, 'delivered a minute early');
          await waitFor(c, 1, 120_000, 'delivery after three days');
        }
      });

      test('nack with delayMs delivers again after the delay, not before', async (t) => {
        const b = await t.broker();
        const q = t.queue();
        await b.declareQueue(q);
        await b.publish(q, msg('retry me'));
        const c = t.collect(b, q, 1);
        await waitFor(c, 1, soon, 'first');
        const delay = Math.max(500, env.slackMs * 2);
        await c.got[0]!.nack({ requeue: true, delayMs: delay });
        await env.sleep(delay / 2);
        assertEqual(c.got.length, 1, 'redelivered before the delay');
        const s = await b.stats(q);
        assertEqual(s.inFlight, 0, 'a delayed retry in the in-flight count');
        await waitFor(c, 2, delay + soon, 'redelivery after the delay');
      });
    });

    api.describe('prefetch is real back-pressure', () => {
      test('a consumer never holds more than prefetch unsettled deliveries; the rest stay for others', async (t) => {
        const a = await t.broker();
        const b = await t.broker();
        const q = t.queue();
        await a.declareQueue(q);
        await a.publishBatch(q, Array.from({ length: 10 }, (_, i) => msg(`m${i}`)));
        const ca = t.collect(a, q, 3);
        await waitFor(ca, 3, soon, 'first consumer');
        await quiet();
        assertEqual(ca.got.length, 3, 'unsettled deliveries held with prefetch 3');
        const cb = t.collect(b, q, 10);
        await waitFor(cb, 7, soon, 'the rest, by a second consumer');
        await quiet();
        assertEqual(ca.got.length, 3, 'first consumer after the second drained');
      });

      test('settling a delivery frees its slot', async (t) => {
        const b = await t.broker();
        const q = t.queue();
        await b.declareQueue(q);
        await b.publishBatch(q, Array.from({ length: 5 }, (_, i) => msg(`m${i}`)));
        const c = t.collect(b, q, 2);
        await waitFor(c, 2, soon, 'first two');
        await c.got[0]!.ack();
        await waitFor(c, 3, soon, 'third after an ack');
        await c.got[1]!.nack({ requeue: false, reason: 'x' });
        await waitFor(c, 4, soon, 'fourth after a nack');
        await quiet();
        assertEqual(c.got.length, 4, 'held after two settles with prefetch 2');
      });

      test('stopping a consumer gives back what it claimed but had not handed out', async (t) => {
        const a = await t.broker();
        const q = t.queue();
        await a.declareQueue(q);
        await a.publishBatch(q, Array.from({ length: 10 }, (_, i) => msg(`m${i}`)));
        const ca = t.collect(a, q, 5);
        await waitFor(ca, 5, soon, 'first consumer');
        await ca.stop();
        for (const d of ca.got) await d.ack();
        const b = await t.broker();
        const cb = t.collect(b, q, 10);
        await waitFor(cb, 5, soon, 'the other five, well before the visibility timeout');
        await quiet();
        assertEqual(ca.got.length + cb.got.length, 10, 'every message delivered once');
      });
    });

    api.describe('dead letters', () => {
      test('nack without requeue dead-letters the message with its reason', async (t) => {
        const b = await t.broker();
        const q = t.queue();
        await b.declareQueue(q);
        const m = msg('poison', { task: 'x' });
        await b.publish(q, m);
        const c = t.collect(b, q, 1);
        await waitFor(c, 1, soon, 'delivery');
        await c.got[0]!.nack({ requeue: false, reason: 'ERR_TASK_UNKNOWN: no task x' });
        await quiet();
        const dead = await b.deadLetters.list(q);
        assertEqual(dead.length, 1, 'dead letters');
        assertEqual(dead[0]!.reason, 'ERR_TASK_UNKNOWN: no task x', 'reason');
        assertEqual(text({ body: dead[0]!.body } as Delivery), 'poison', 'body');
        assertEqual(dead[0]!.headers['task'], 'x', 'headers');
        assertEqual(c.got.length, 1, 'a dead-lettered message delivered again');
      });

      test('redrive moves dead letters back to the queue and they are delivered again', async (t) => {
        const b = await t.broker();
        const q = t.queue();
        await b.declareQueue(q);
        await b.publishBatch(q, [msg('a'), msg('b'), msg('c')]);
        const c = t.collect(b, q, 3);
        await waitFor(c, 3, soon, 'deliveries');
        for (const d of c.got) await d.nack({ requeue: false, reason: 'failed' });
        await quiet();
        const dead = await b.deadLetters.list(q);
        assertEqual(dead.length, 3, 'dead before redrive');
        const first = dead.find((d) => text({ body: d.body } as Delivery) === 'a')!;
        assertEqual(await b.deadLetters.redrive(q, [first.id]), 1, 'redrive by id');
        await waitFor(c, 4, soon, 'the redriven message');
        assertEqual(text(c.got[3]!), 'a', 'redriven body');
        assertEqual(await b.deadLetters.redrive(q), 2, 'redrive the rest');
        await waitFor(c, 5, soon, 'the rest');
        assertEqual(await b.deadLetters.purge(q), 0, 'nothing left to purge');
      });

      test('dead letters can be purged', async (t) => {
        const b = await t.broker();
        const q = t.queue();
        await b.declareQueue(q);
        await b.publishBatch(q, [msg('a'), msg('b')]);
        const c = t.collect(b, q, 2);
        await waitFor(c, 2, soon, 'deliveries');
        for (const d of c.got) await d.nack({ requeue: false, reason: 'bad' });
        await quiet();
        assertEqual(await b.deadLetters.purge(q), 2, 'purged');
        assertEqual((await b.deadLetters.list(q)).length, 0, 'left after purge');
        assertEqual((await b.stats(q)).dead, 0, 'stats.dead after purge');
      });
    });

    api.describe('priorities', () => {
      test('higher priority first (9 most urgent), FIFO within a level — or a refusal', async (t) => {
        const b = await t.broker();
        const q = t.queue();
        await b.declareQueue(q, { maxPriority: 9 });
        if (b.capabilities.priorities === 0) {
          await rejectsWith(b.publish(q, msg('p'), { priority: 5 }), 'ERR_UNSUPPORTED', 'priority on a broker without priorities');
          return;
        }
        await b.publish(q, msg('low-1'), { priority: 0 });
        await b.publish(q, msg('high-1'), { priority: 9 });
        await b.publish(q, msg('mid'), { priority: 5 });
        await b.publish(q, msg('high-2'), { priority: 9 });
        await b.publish(q, msg('low-2'));
        await quiet();
        const c = t.collect(b, q, 1);
        const order: string[] = [];
        for (let i = 0; i < 5; i++) {
          await waitFor(c, i + 1, soon, `delivery ${i + 1}`);
          order.push(text(c.got[i]!));
          await c.got[i]!.ack();
        }
        assertEqual(order, ['high-1', 'high-2', 'mid', 'low-1', 'low-2'], 'delivery order');
      });
    });

    api.describe('dedup never eats retries', () => {
      test('publishes of one task id with fresh message ids are all delivered, immediate or delayed', async (t) => {
        const b = await t.broker();
        const q = t.queue();
        await b.declareQueue(q);
        const taskId = newId();
        await b.publish(q, msg('run 1', { id: taskId, retries: 0 }));
        await env.sleep(Math.min(1000, env.slackMs + 100));
        await b.publish(q, msg('retry 1', { id: taskId, retries: 1 }));
        await b.publish(q, msg('retry 2', { id: taskId, retries: 2 }), { delayMs: 100 });
        const c = t.collect(b, q, 3);
        await waitFor(c, 3, soon + 100, 'every publish of the task');
        assertEqual(c.got.map(text).sort(), ['retry 1', 'retry 2', 'run 1'], 'bodies');
      });
    });

    api.describe('broadcast', () => {
      test('subscribers receive broadcasts until they unsubscribe — or broadcast is absent', async (t) => {
        const a = await t.broker();
        const b = await t.broker();
        if (!a.capabilities.broadcast) {
          assertEqual(a.broadcast, undefined, 'broadcast of a broker without the capability');
          return;
        }
        const channel = `bc-${newId()}`;
        const got: string[] = [];
        const off = await b.broadcast!.subscribe(channel, (body) => got.push(dec.decode(body)));
        await a.broadcast!.publish(channel, enc.encode('hello'));
        for (let waited = 0; got.length < 1 && waited < soon; waited += 10) await env.sleep(10);
        assertEqual(got, ['hello'], 'received');
        await off();
        await a.broadcast!.publish(channel, enc.encode('after'));
        await quiet();
        assertEqual(got, ['hello'], 'received after unsubscribe');
      });
    });

    api.describe('transactional publish', () => {
      test('a publish inside a transaction exists only once it commits, rolled back it never does — or ERR_UNSUPPORTED', async (t) => {
        const b = await t.broker();
        const q = t.queue();
        await b.declareQueue(q);
        if (b.capabilities.transactionalPublish !== true) {
          const client: TransactionClient = { query: () => Promise.reject(new Error('a statement ran on the transaction')) };
          await rejectsWith(b.publish(q, msg('tx'), { transaction: client }), 'ERR_UNSUPPORTED', 'publish with a transaction');
          await rejectsWith(b.publishBatch(q, [msg('tx')], { transaction: client }), 'ERR_UNSUPPORTED', 'publishBatch with a transaction');
          assertEqual((await b.stats(q)).ready, 0, 'messages stored by the refused publishes');
          return;
        }
        if (env.beginTransaction === undefined) fail('the broker declares transactionalPublish: the suite env needs beginTransaction()');
        const c = t.collect(b, q, 5);
        const rolled = await env.beginTransaction();
        try {
          await b.publish(q, msg('rolled back'), { transaction: rolled.client });
        } finally {
          await rolled.rollback();
        }
        const tx = await env.beginTransaction();
        try {
          await b.publishBatch(q, [msg('committed 1'), msg('committed 2')], { transaction: tx.client });
          await quiet();
          assertEqual(c.got.length, 0, 'deliveries before the commit');
          assertEqual((await b.stats(q)).ready, 0, 'ready messages before the commit');
        } catch (err) {
          await tx.rollback();
          throw err;
        }
        await tx.commit();
        await waitFor(c, 2, soon, 'deliveries after the commit');
        await quiet();
        assertEqual(c.got.map(text), ['committed 1', 'committed 2'], 'delivered: the committed messages, once each');
      });
    });

    workerSuite(api, name, env);
  });
}

/** Per-test resources: unique queue names, guarded brokers and collectors, all cleaned up. */
class TestKit {
  private readonly brokers: GuardedBroker[] = [];
  private readonly collectors: Collector[] = [];
  private readonly queues: string[] = [];

  constructor(private readonly env: BrokerSuiteEnv) {}

  queue(): string {
    const q = `conf-${newId().slice(0, 8)}`;
    this.queues.push(q);
    return q;
  }

  async broker(): Promise<GuardedBroker> {
    const raw = await this.env.create();
    const b = guardBroker(raw, this.env.clock === undefined ? {} : { clock: this.env.clock });
    this.brokers.push(b);
    await b.connect();
    return b;
  }

  collect(broker: GuardedBroker, queue: string, prefetch: number): Collector {
    const c = new Collector(broker, queue, prefetch);
    this.collectors.push(c);
    return c;
  }

  async dispose(): Promise<void> {
    await Promise.allSettled(this.collectors.map((c) => c.stop()));
    await Promise.allSettled(this.brokers.map((b) => b.close()));
    if (this.env.cleanup !== undefined) await this.env.cleanup(this.queues);
  }
}
