import { describe, expect, it } from 'vitest';
import {
  createMemoryBroker,
  createMemoryResultBackend,
  MemoryResultBackend,
  MemoryServer,
  type StoredSchedule,
  type Broker,
  type ConsumeOptions,
  type Delivery,
  type OutgoingMessage,
  type PublishOptions,
  type QueueStats,
} from '../src/index.js';
import { brokerSuite, createFakeClock, resultBackendSuite, type FakeClock } from '../src/testing/index.js';
import { collectTests } from './helpers.js';

/** Delegates everything to a real memory broker; subclasses break one thing. */
class Wrapper implements Broker {
  readonly name = 'broken';
  constructor(protected readonly inner: Broker) {}
  get capabilities() {
    return this.inner.capabilities;
  }
  get visibilityTimeoutMs() {
    return this.inner.visibilityTimeoutMs;
  }
  get deadLetters() {
    return this.inner.deadLetters;
  }
  get broadcast() {
    return this.inner.broadcast;
  }
  connect() {
    return this.inner.connect();
  }
  close() {
    return this.inner.close();
  }
  declareQueue(q: string) {
    return this.inner.declareQueue(q);
  }
  publish(q: string, m: OutgoingMessage, o?: PublishOptions) {
    return this.inner.publish(q, m, o);
  }
  publishBatch(q: string, ms: readonly OutgoingMessage[], o?: PublishOptions) {
    return Promise.all(ms.map((m) => this.publish(q, m, o))).then(() => undefined);
  }
  consume(q: string, o: ConsumeOptions): AsyncIterable<Delivery> {
    return this.inner.consume(q, o);
  }
  purge(q: string) {
    return this.inner.purge(q);
  }
  stats(q: string): Promise<QueueStats> {
    return this.inner.stats(q);
  }
}

/** Bug 1: acks every delivery the moment it is received (Celery's ack-early, silently). */
class AcksOnReceipt extends Wrapper {
  override consume(q: string, o: ConsumeOptions): AsyncIterable<Delivery> {
    const source = this.inner.consume(q, o);
    return {
      async *[Symbol.asyncIterator]() {
        for await (const d of source) {
          await d.ack();
          yield { ...d, id: d.id, body: d.body, headers: d.headers, deliveries: d.deliveries, ack: () => Promise.resolve(), nack: () => Promise.resolve() };
        }
      },
    };
  }
}

/** Bug 2: holds delayed messages in process memory (a timer), not in the broker. */
class DelaysInMemory extends Wrapper {
  private readonly timers = new Set<ReturnType<FakeClock['setTimeout']>>();
  constructor(
    inner: Broker,
    private readonly clock: FakeClock,
  ) {
    super(inner);
  }
  override publish(q: string, m: OutgoingMessage, o?: PublishOptions) {
    const delayMs = o?.delayMs ?? 0;
    if (delayMs <= 0) return this.inner.publish(q, m, o);
    const h = this.clock.setTimeout(() => {
      this.timers.delete(h);
      void this.inner.publish(q, m, { ...o, delayMs: 0 });
    }, delayMs);
    this.timers.add(h);
    return Promise.resolve();
  }
  override close() {
    for (const h of this.timers) this.clock.clearTimeout(h);
    return this.inner.close();
  }
}

/** Bug 3: declares transactional publish but publishes at once, outside the caller's transaction. */
class IgnoresTransaction extends Wrapper {
  override get capabilities() {
    return { ...this.inner.capabilities, transactionalPublish: true };
  }
  override publish(q: string, m: OutgoingMessage, o?: PublishOptions) {
    const { transaction: _ignored, ...rest } = o ?? {};
    return this.inner.publish(q, m, rest);
  }
}

function suiteFor(make: (server: MemoryServer, clock: FakeClock) => Broker) {
  const clock = createFakeClock();
  const server = new MemoryServer({ clock, visibilityTimeoutMs: 1000 });
  return collectTests((api) =>
    brokerSuite(api, 'broken', {
      create: () => make(server, clock),
      sleep: (ms) => clock.advance(ms),
      visibilityTimeoutMs: 1000,
      slackMs: 0,
      clock,
      fakeTime: true,
      // A transaction that runs nothing: only a broker that ignores it could deliver before the commit.
      beginTransaction: () =>
        Promise.resolve({ client: { query: () => Promise.resolve({ rows: [] }) }, commit: () => Promise.resolve(), rollback: () => Promise.resolve() }),
    }),
  );
}

const P = 'broker conformance: broken';

describe('the broker suite catches real bugs', () => {
  it('fails a broker that acks on receipt', async () => {
    const tests = suiteFor((server) => new AcksOnReceipt(createMemoryBroker({ server })));
    await expect(tests.get(`${P} > at least once > an unacked delivery of a consumer that dies is delivered again`)!()).rejects.toThrow(
      /redelivery after the holder died/,
    );
  });

  it('fails a broker that holds delays in process memory', async () => {
    const tests = suiteFor((server, clock) => new DelaysInMemory(createMemoryBroker({ server }), clock));
    await expect(
      tests.get(`${P} > delays live in the broker > a delayed message survives the restart of every publisher and consumer`)!(),
    ).rejects.toThrow(/after every process restarted/);
    await expect(tests.get(`${P} > delays live in the broker > a days-long delay is held by the broker and not delivered early`)!()).rejects.toThrow(
      /counted as delayed/,
    );
  });

  it('fails a broker that declares transactional publish and publishes outside the transaction', async () => {
    const tests = suiteFor((server) => new IgnoresTransaction(createMemoryBroker({ server })));
    await expect(
      tests.get(`${P} > transactional publish > a publish inside a transaction exists only once it commits, rolled back it never does — or ERR_UNSUPPORTED`)!(),
    ).rejects.toThrow(/deliveries before the commit/);
  });

  it('passes the same tests on the correct memory broker', async () => {
    const tests = suiteFor((server) => createMemoryBroker({ server }));
    await tests.get(`${P} > transactional publish > a publish inside a transaction exists only once it commits, rolled back it never does — or ERR_UNSUPPORTED`)!();
    await tests.get(`${P} > at least once > an unacked delivery of a consumer that dies is delivered again`)!();
    await tests.get(`${P} > delays live in the broker > a delayed message survives the restart of every publisher and consumer`)!();
  });
});

/**
 * Bug: a schedule store whose compare-and-set is a read, a wait and a write (what a plain GET then SET
 * against a server does) — two writers can both see the rev they expect and both write.
 */
class CheckThenSet extends MemoryResultBackend {
  private readonly records = new Map<string, StoredSchedule>();
  private readonly revs = { latest: 0 }; // an object: views made with Object.create share it
  override getSchedule(id: string) {
    return Promise.resolve(this.records.get(id));
  }
  override listSchedules() {
    return Promise.resolve({ version: this.revs.latest, schedules: [...this.records.values()] });
  }
  override schedulesVersion() {
    return Promise.resolve(this.revs.latest);
  }
  override async putSchedule(id: string, data: string, expectedRev: number) {
    const current = this.records.get(id)?.rev ?? 0;
    await new Promise<void>((r) => setImmediate(r)); // the round trip between the read and the write
    if (current !== expectedRev) return 0;
    const rev = ++this.revs.latest;
    this.records.set(id, { id, rev, data });
    return rev;
  }
  override deleteSchedule(id: string) {
    if (!this.records.delete(id)) return Promise.resolve(false);
    this.revs.latest++;
    return Promise.resolve(true);
  }
}

describe('the result-backend suite catches a schedule store that is not atomic', () => {
  const B = 'result backend conformance: broken';
  const tests = (backend: MemoryResultBackend) =>
    collectTests((api) =>
      resultBackendSuite(api, 'broken', {
        create: () => Object.assign(Object.create(backend) as MemoryResultBackend, { close: () => Promise.resolve() }),
        sleep: () => Promise.resolve(),
        slackMs: 0,
      }),
    );

  it('fails it on concurrent creates and on concurrent upserts through app.schedules', async () => {
    const t = tests(new CheckThenSet());
    await expect(t.get(`${B} > runtime schedules: of many clients creating one id at once one wins, and of many compare-and-sets on one rev one wins — or absent`)!()).rejects.toThrow(
      /writes that created the record: expected 1/,
    );
    await expect(
      t.get(`${B} > app.schedules on this backend: apps upserting one id at once leave one schedule, an unchanged upsert keeps its next run — or ERR_UNSUPPORTED`)!(),
    ).rejects.toThrow(/upserts that created it: expected 1/);
  });

  it('passes the same tests on the memory backend', async () => {
    const t = tests(createMemoryResultBackend());
    await t.get(`${B} > runtime schedules: of many clients creating one id at once one wins, and of many compare-and-sets on one rev one wins — or absent`)!();
    await t.get(`${B} > app.schedules on this backend: apps upserting one id at once leave one schedule, an unchanged upsert keeps its next run — or ERR_UNSUPPORTED`)!();
  });
});
