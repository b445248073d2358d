import { afterEach, describe, expect, it } from 'vitest';
import {
  CeleriacError,
  createApp,
  createMemoryBroker,
  createMemoryResultBackend,
  currentTask,
  MemoryServer,
  TaskFailedError,
  UnrecoverableError,
  type App,
  type AppOptions,
  type CeleriacEvents,
  type EventName,
} from '../src/index.js';
import { encodeTask } from '../src/message.js';
import { msgpackSerializer } from '../src/serializer.js';
import { createFakeClock, type FakeClock } from '../src/testing/index.js';

interface Env {
  clock: FakeClock;
  server: MemoryServer;
  app: App;
  backend: ReturnType<typeof createMemoryResultBackend>;
  events: <K extends EventName>(name: K) => CeleriacEvents[K][];
}

const apps: App[] = [];
afterEach(async () => {
  await Promise.all(apps.splice(0).map((a) => a.close()));
});

function setup(opts: Partial<AppOptions> = {}): Env {
  const clock = createFakeClock();
  const server = new MemoryServer({ clock, visibilityTimeoutMs: 30_000 });
  const backend = createMemoryResultBackend({ clock });
  const app = createApp({ broker: createMemoryBroker({ server }), resultBackend: backend, clock, ...opts });
  apps.push(app);
  const seen = new Map<EventName, unknown[]>();
  const events = <K extends EventName>(name: K): CeleriacEvents[K][] => {
    let list = seen.get(name);
    if (list === undefined) {
      list = [];
      seen.set(name, list);
      app.on(name, (e) => void list!.push(e));
    }
    return list as CeleriacEvents[K][];
  };
  return { clock, server, app, backend, events };
}

function gate(): { promise: Promise<void>; open: () => void } {
  let open!: () => void;
  const promise = new Promise<void>((r) => (open = r));
  return { promise, open };
}

describe('worker loop', () => {
  it('runs plain (non-async) handlers: a returned value succeeds, a synchronous throw fails, with and without results', async () => {
    const { app, clock, events } = setup();
    const double = app.task('double', (n: number) => n * 2);
    const boom = app.task('boom', (): number => {
      throw new UnrecoverableError('sync boom');
    });
    const quiet = app.task('quiet', (n: number) => n + 1, { ignoreResult: true });
    const seen: string[] = [];
    const inside = app.task('inside', () => {
      seen.push(currentTask().name);
      return currentTask().retries;
    });
    const succeeded = events('task:succeeded');
    const failed = events('task:failed');
    await app.worker().start();
    const [a, b, c, d] = [await double.delay(21), await boom.delay(), await quiet.delay(1), await inside.delay()];
    await clock.flush();
    expect(await a.get({ timeoutMs: 10 })).toBe(42);
    await expect(b.get({ timeoutMs: 10 })).rejects.toMatchObject({ message: expect.stringContaining('sync boom') });
    expect(await c.state()).toBe('PENDING'); // ignoreResult: nothing stored, but it ran and was acked
    expect(await d.get({ timeoutMs: 10 })).toBe(0);
    expect(seen).toEqual(['inside']);
    expect(succeeded.map((e) => e.name).sort()).toEqual(['double', 'inside', 'quiet']);
    expect(failed.map((e) => e.name)).toEqual(['boom']);
    expect(await (await app.getBroker()).stats('default')).toMatchObject({ inFlight: 0, ready: 0 });
  });

  it('runs a task and stores its result', async () => {
    const { app, clock } = setup();
    const add = app.task('math.add', async (a: number, b: number) => a + b);
    await app.worker().start();
    const r = await add.delay(2, 3);
    await clock.flush();
    expect(await r.get({ timeoutMs: 1000 })).toBe(5);
    expect(await r.state()).toBe('SUCCESS');
  });

  it('holds at most concurrency handlers and concurrency × prefetchMultiplier unacked deliveries under load', async () => {
    const { app, clock, server } = setup();
    const gates: (() => void)[] = [];
    let running = 0;
    let maxRunning = 0;
    const slow = app.task('slow', async () => {
      running++;
      maxRunning = Math.max(maxRunning, running);
      const g = gate();
      gates.push(g.open);
      await g.promise;
      running--;
    });
    const w = app.worker({ concurrency: 4, prefetchMultiplier: 2 });
    await w.start();
    await slow.applyAsyncBulk(Array.from({ length: 100 }, () => [] as []));
    await clock.flush();
    let maxInFlight = 0;
    let done = 0;
    while (done < 100) {
      const s = server.stats('default');
      maxInFlight = Math.max(maxInFlight, s.inFlight);
      expect(s.inFlight + s.ready).toBe(100 - done);
      const open = gates.splice(0);
      if (open.length === 0) break;
      for (const o of open) o();
      done += open.length;
      await clock.flush();
    }
    expect(done).toBe(100);
    expect(maxRunning).toBe(4);
    expect(maxInFlight).toBe(8);
    expect(server.stats('default')).toEqual({ ready: 0, delayed: 0, inFlight: 0, dead: 0 });
  });

  it('serves several queues without one starving another', async () => {
    const { app, clock } = setup();
    const order: string[] = [];
    const a = app.task('a', async (i: number) => void order.push(`a${i}`), { queue: 'a' });
    const b = app.task('b', async (i: number) => void order.push(`b${i}`), { queue: 'b' });
    await a.applyAsyncBulk(Array.from({ length: 50 }, (_, i) => [i] as [number]));
    await b.applyAsyncBulk(Array.from({ length: 5 }, (_, i) => [i] as [number]));
    await app.worker({ queues: ['a', 'b'], concurrency: 1, prefetchMultiplier: 2 }).start();
    for (let i = 0; i < 20; i++) await clock.flush();
    expect(order).toHaveLength(55);
    const lastB = order.lastIndexOf('b4');
    expect(lastB).toBeLessThan(15); // b's five tasks interleave with a's, not after all fifty
  });

  it('retries with the configured exponential backoff through the broker, then dead-letters with the reason', async () => {
    const { app, clock, server, events } = setup();
    let runs = 0;
    const flaky = app.task(
      'flaky',
      async () => {
        runs++;
        throw new Error(`boom ${runs}`);
      },
      { maxRetries: 3, retryBackoffMs: 1000, retryJitter: false },
    );
    const retried = events('task:retried');
    const failed = events('task:failed');
    const dead = events('task:dead-lettered');
    await app.worker().start();
    const r = await flaky.delay();
    await clock.flush();
    expect(runs).toBe(1);
    for (const [delay, runsAfter] of [
      [1000, 2],
      [2000, 3],
      [4000, 4],
    ] as const) {
      // held in the broker (delayed), not in the worker: nothing is in flight while waiting
      expect(server.stats('default')).toMatchObject({ delayed: 1, inFlight: 0 });
      await clock.advance(delay - 1);
      expect(runs).toBe(runsAfter - 1);
      await clock.advance(1);
      expect(runs).toBe(runsAfter);
    }
    expect(retried.map((e) => e.delayMs)).toEqual([1000, 2000, 4000]);
    expect(retried.map((e) => e.retries)).toEqual([0, 1, 2]);
    expect(failed).toHaveLength(1);
    expect(failed[0]!.error.message).toBe('boom 4');
    expect(dead).toHaveLength(1);
    const letters = await (await app.getBroker()).deadLetters.list('default');
    expect(letters).toHaveLength(1);
    expect(letters[0]!.reason).toBe('Error: boom 4');
    const err = await r.get({ timeoutMs: 10 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TaskFailedError);
    expect(err).toMatchObject({ name: 'Error', message: 'boom 4' });
    await clock.advance(60_000);
    expect(runs).toBe(4);
  });

  it('caps a poison message by maxDeliveries without running it', async () => {
    const { app, clock, server, events } = setup({ maxDeliveries: 3 });
    let runs = 0;
    const t = app.task('t', async () => void runs++);
    const r = await t.delay();
    // Three hand-outs that never settle normally (a crashing consumer would do the same).
    const raw = createMemoryBroker({ server });
    for (let i = 0; i < 3; i++) {
      const it = raw.consume('default', { prefetch: 1 })[Symbol.asyncIterator]();
      const d = (await it.next()).value!;
      await d.nack({ requeue: true });
      await it.return!();
    }
    await raw.close();
    const dead = events('task:dead-lettered');
    await app.worker().start();
    await clock.flush();
    expect(runs).toBe(0);
    expect(dead[0]!.reason).toMatch(/ERR_POISON_MESSAGE: delivered 4 times/);
    await expect(r.get({ timeoutMs: 10 })).rejects.toMatchObject({ code: 'ERR_POISON_MESSAGE' });
    expect(server.stats('default').dead).toBe(1);
  });

  it('graceful close gives back prefetched deliveries that had not started, without counting a delivery', async () => {
    const { app, clock, server, events } = setup();
    const gates: (() => void)[] = [];
    const t = app.task('t', async () => {
      const g = gate();
      gates.push(g.open);
      await g.promise;
    });
    await t.applyAsyncBulk(Array.from({ length: 10 }, () => [] as []));
    const w = app.worker({ concurrency: 2, prefetchMultiplier: 4 });
    await w.start();
    await clock.flush();
    expect(gates).toHaveLength(2);
    expect(server.stats('default')).toMatchObject({ inFlight: 8, ready: 2 });
    const closing = w.close({ timeoutMs: 10_000 });
    await clock.flush();
    for (const g of gates) g();
    const report = await closing;
    expect(report).toEqual({ givenBack: 6, abandoned: 0 });
    expect(server.stats('default')).toMatchObject({ inFlight: 0, ready: 8 });
    // The next worker gets them as first deliveries.
    const received = events('task:received');
    gates.length = 0;
    await app.worker({ concurrency: 10 }).start();
    await clock.flush();
    expect(received).toHaveLength(8);
    expect(received.every((e) => e.deliveries === 1)).toBe(true);
    for (const g of gates) g();
    await clock.flush();
  });

  it('close aborts and requeues tasks still running after timeoutMs; close is idempotent', async () => {
    const { app, clock, server } = setup();
    let signal: AbortSignal | undefined;
    const hang = app.task('hang', () => {
      signal = currentTask().signal;
      return new Promise<void>(() => undefined);
    });
    await hang.delay();
    const w = app.worker();
    await w.start();
    await clock.flush();
    const first = w.close({ timeoutMs: 1000 });
    expect(w.close()).toBe(first);
    await clock.advance(1000);
    expect(await first).toEqual({ givenBack: 0, abandoned: 1 });
    expect(signal?.aborted).toBe(true);
    expect(server.stats('default')).toMatchObject({ ready: 1, inFlight: 0 });
  });

  it('a task whose worker dies mid-run is delivered again (ack-late)', async () => {
    const clock = createFakeClock();
    const server = new MemoryServer({ clock, visibilityTimeoutMs: 30_000 });
    const backend = createMemoryResultBackend({ clock });
    const runs: string[] = [];
    const make = (label: string, hang: boolean) => {
      const app = createApp({ broker: createMemoryBroker({ server }), resultBackend: backend, clock });
      apps.push(app);
      const t = app.task('job', async (x: number) => {
        runs.push(label);
        if (hang) await new Promise(() => undefined);
        return x * 2;
      });
      return { app, t };
    };
    const one = make('one', true);
    const r = await one.t.delay(21);
    await one.app.worker().start();
    await clock.flush();
    expect(runs).toEqual(['one']);
    await (await one.app.getBroker()).close(); // the process dies: its connection drops, nothing acked
    const two = make('two', false);
    await two.app.worker().start();
    await clock.flush();
    expect(runs).toEqual(['one', 'two']);
    expect(await r.get({ timeoutMs: 10 })).toBe(42);
    const closing = one.app.close(); // its hung handler is abandoned after the close timeout
    await clock.advance(30_000);
    await closing;
  });

  it('a throwing or rejecting listener changes nothing', async () => {
    const { app, clock } = setup();
    app.on('task:started', () => {
      throw new Error('listener bug');
    });
    app.on('task:succeeded', () => Promise.reject(new Error('async listener bug')));
    const add = app.task('add', async (a: number, b: number) => a + b);
    await app.worker().start();
    const rs = await Promise.all([add.delay(1, 2), add.delay(3, 4)]);
    await clock.flush();
    expect(await Promise.all(rs.map((r) => r.get({ timeoutMs: 10 })))).toEqual([3, 7]);
  });

  it('dead-letters an undecodable message with a clear reason and keeps working', async () => {
    const { app, clock, events } = setup();
    const ok = app.task('ok', async () => 'fine');
    const broker = await app.getBroker();
    await broker.declareQueue('default');
    await broker.publish('default', {
      id: 'm1',
      body: new TextEncoder().encode('{not json'),
      headers: { id: 'bad-1', task: 'ok', 'content-type': 'application/json' },
    });
    await broker.publish('default', { id: 'm2', body: new Uint8Array([1, 2, 3]), headers: { nothing: true } });
    const dead = events('task:dead-lettered');
    await app.worker().start();
    const r = await ok.delay();
    await clock.flush();
    expect(await r.get({ timeoutMs: 10 })).toBe('fine');
    // Both run at once (concurrency 50): either may be dead-lettered first.
    expect(dead.map((d) => d.reason).sort()).toEqual([
      expect.stringMatching(/^ERR_SERIALIZATION: message has no "task" or "id" header/),
      expect.stringMatching(/^ERR_SERIALIZATION: undecodable body/),
    ]);
    await expect(app.asyncResult('bad-1').get({ timeoutMs: 10 })).rejects.toMatchObject({ code: 'ERR_SERIALIZATION' });
    expect((await broker.deadLetters.list('default')).map((d) => d.id).sort()).toEqual(['m1', 'm2']);
  });

  it('dead-letters a content type outside accept, and an unknown task name, never running them', async () => {
    const { app, clock, events } = setup({ accept: ['json'] });
    let runs = 0;
    app.task('t', async () => void runs++);
    const broker = await app.getBroker();
    await broker.declareQueue('default');
    const msg = {
      id: 'mp-1', task: 't', args: [], kwargs: {}, embed: {}, retries: 0, rootId: null, parentId: null, group: null,
      eta: null, expires: null, timeLimitMs: null, priority: null, origin: null, traceparent: null, extra: {},
    };
    await broker.publish('default', encodeTask(msg, msgpackSerializer));
    const unknown = await app.sendTask('no.such.task', [1]);
    const dead = events('task:dead-lettered');
    await app.worker().start();
    await clock.flush();
    expect(runs).toBe(0);
    expect(dead.map((d) => d.reason)).toEqual([
      'ERR_CONTENT_TYPE: content type "application/x-msgpack" is not in the accept list',
      'ERR_TASK_UNKNOWN: no task named "no.such.task" is registered in this worker',
    ]);
    await expect(unknown.get({ timeoutMs: 10 })).rejects.toMatchObject({ code: 'ERR_TASK_UNKNOWN', name: 'CeleriacError' });
  });

  it('a soft time limit aborts the signal and fails the run with ERR_TIME_LIMIT', async () => {
    const { app, clock } = setup();
    let seen: AbortSignal | undefined;
    const t = app.task(
      'slow',
      async () => {
        seen = currentTask().signal;
        await new Promise(() => undefined);
      },
      { timeLimitMs: 1000 },
    );
    await app.worker().start();
    const r = await t.delay();
    await clock.advance(999);
    expect(seen?.aborted).toBe(false);
    await clock.advance(1);
    expect(seen?.aborted).toBe(true);
    await expect(r.get({ timeoutMs: 10 })).rejects.toMatchObject({ code: 'ERR_TIME_LIMIT' });
  });

  it('an expired task is REVOKED without running', async () => {
    const { app, clock, events } = setup();
    let runs = 0;
    const t = app.task('t', async () => void runs++);
    await app.worker().start();
    const r = await t.applyAsync([], { countdownMs: 2000, expiresMs: 1000 });
    const revoked = events('task:revoked');
    await clock.advance(2000);
    expect(runs).toBe(0);
    expect(await r.state()).toBe('REVOKED');
    expect(revoked[0]!.reason).toBe('expired');
    await expect(r.get({ timeoutMs: 10 })).rejects.toMatchObject({ code: 'ERR_REVOKED' });
  });

  it('a revoked task never runs; revoking a running task aborts its signal', async () => {
    const { app, clock } = setup();
    let runs = 0;
    let signal: AbortSignal | undefined;
    const t = app.task('t', async (wait: boolean) => {
      runs++;
      if (wait) {
        signal = currentTask().signal;
        await new Promise((_, reject) => signal!.addEventListener('abort', () => reject(signal!.reason as Error)));
      }
    });
    await app.worker().start();
    const later = await t.applyAsync([false], { countdownMs: 1000 });
    await later.revoke();
    await clock.advance(1000);
    expect(runs).toBe(0);
    expect(await later.state()).toBe('REVOKED');

    const running = await t.delay(true);
    await clock.flush();
    expect(runs).toBe(1);
    await running.revoke();
    await clock.flush();
    expect(signal?.aborted).toBe(true);
    expect(await running.state()).toBe('REVOKED');
  });

  it('ignoreResult stores nothing; progress is stored as PROGRESS with a task:progress event', async () => {
    const { app, clock, backend, events } = setup();
    const quiet = app.task('quiet', async () => 1, { ignoreResult: true });
    const steps = app.task('steps', async () => {
      await currentTask().progress({ done: 1, of: 2 });
      await new Promise((r) => setImmediate(r));
      return 'ok';
    });
    const progress = events('task:progress');
    const states: string[] = [];
    await app.worker().start();
    const q = await quiet.delay();
    const s = await steps.delay();
    const probe = backend.wait(s.id, { timeoutMs: 1000 });
    await clock.flush();
    states.push((await s.state()) ?? '');
    await probe;
    expect(await q.state()).toBe('PENDING');
    expect(progress.map((p) => p.progress)).toEqual([{ done: 1, of: 2 }]);
    expect(await s.get({ timeoutMs: 10 })).toBe('ok');
  });

  it('UnrecoverableError, retryOn and dontRetryOn decide what is retried', async () => {
    const { app, clock } = setup();
    class NetError extends Error {}
    const runs: Record<string, number> = {};
    const mk = (name: string, err: () => Error, opts: object) =>
      app.task(
        name,
        async () => {
          runs[name] = (runs[name] ?? 0) + 1;
          throw err();
        },
        { maxRetries: 2, retryBackoffMs: 10, retryJitter: false, ...opts },
      );
    const tasks = [
      mk('unrecoverable', () => new UnrecoverableError('stop'), {}),
      mk('retry-on-net', () => new NetError('net'), { retryOn: [NetError] }),
      mk('retry-on-other', () => new TypeError('type'), { retryOn: [NetError] }),
      mk('dont-retry', () => new TypeError('type'), { dontRetryOn: [TypeError] }),
    ];
    await app.worker().start();
    const rs = await Promise.all(tasks.map((t) => t.delay()));
    await clock.advance(1000);
    expect(runs).toEqual({ unrecoverable: 1, 'retry-on-net': 3, 'retry-on-other': 1, 'dont-retry': 1 });
    await expect(rs[0]!.get({ timeoutMs: 10 })).rejects.toMatchObject({ name: 'UnrecoverableError', code: 'ERR_UNRECOVERABLE' });
  });

  it('currentTask().retry() retries with its countdown and the context counts retries', async () => {
    const { app, clock } = setup();
    const seen: number[] = [];
    const t = app.task(
      'again',
      async () => {
        const ctx = currentTask();
        seen.push(ctx.retries);
        if (ctx.retries < 2) ctx.retry({ countdownMs: 500 });
        return ctx.retries;
      },
      { maxRetries: 5 },
    );
    await app.worker().start();
    const r = await t.delay();
    await clock.advance(499);
    expect(seen).toEqual([0]);
    await clock.advance(1);
    expect(seen).toEqual([0, 1]);
    await clock.advance(500);
    expect(await r.get({ timeoutMs: 10 })).toBe(2);
  });

  it('runs with msgpack and gzip, and routes tasks to queues', async () => {
    const { app, clock, server } = setup({ serializer: 'msgpack', compression: 'gzip', routes: { 'email.*': { queue: 'mail' } } });
    const send = app.task('email.send', async (to: string, n: { k: number[] }) => `${to}:${n.k.length}`);
    const r = await send.delay('ann@example.com', { k: [1, 2, 3] });
    expect(server.stats('mail').ready).toBe(1);
    const [d] = (await (await app.getBroker()).stats('mail')).ready === 1 ? [true] : [false];
    expect(d).toBe(true);
    await app.worker({ queues: ['mail'] }).start();
    await clock.flush();
    expect(await r.get({ timeoutMs: 10 })).toBe('ann@example.com:3');
  });

  it('sendTask, applyAsyncBulk, priority order and events carry what they describe', async () => {
    const { app, clock, events } = setup();
    const order: number[] = [];
    const t = app.task('p', async (i: number) => void order.push(i));
    await t.applyAsync([0], { priority: 0 });
    await t.applyAsync([9], { priority: 9 });
    await t.applyAsync([5], { priority: 5 });
    const bulk = await t.applyAsyncBulk([[100], [101]]);
    const named = await app.sendTask('p', [7]);
    const ok = events('task:succeeded');
    await app.worker({ concurrency: 1, prefetchMultiplier: 1 }).start();
    await clock.flush();
    expect(order).toEqual([9, 5, 0, 100, 101, 7]);
    expect(bulk).toHaveLength(2);
    expect(await named.state()).toBe('SUCCESS');
    expect(ok[0]).toMatchObject({ name: 'p', queue: 'default', retries: 0, deliveries: 1, runtimeMs: 0 });
    expect(typeof ok[0]!.taskId).toBe('string');
  });

  it('get() times out with ERR_TIMEOUT and leaves no listener; bad arguments fail at the call site', async () => {
    const { app, clock, backend } = setup();
    const t = app.task('never-run', async () => 1, { queue: 'nobody' });
    const r = await t.delay();
    const waiting = r.get({ timeoutMs: 1000 });
    const check = expect(waiting).rejects.toMatchObject({ code: 'ERR_TIMEOUT' });
    await clock.advance(1000);
    await check;
    expect(backend.listenerCount).toBe(0);
    await expect(t.applyAsync([], { countdownMs: -1 })).rejects.toBeInstanceOf(RangeError);
    await expect(t.applyAsync([], { priority: 12 })).rejects.toBeInstanceOf(RangeError);
    expect(() => app.task('never-run', async () => 1)).toThrow(TypeError);
    expect(() => app.worker({ concurrency: 0 })).toThrow(RangeError);
  });

  it('without a result backend, get() says how to configure one', async () => {
    const clock = createFakeClock();
    const inner = createMemoryBroker({ clock });
    const renamed = Object.assign(Object.create(inner) as typeof inner, { name: 'custom' });
    const app = createApp({ broker: renamed, clock });
    apps.push(app);
    const t = app.task('t', async () => 1);
    const r = await t.delay();
    const err = await r.get().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CeleriacError);
    expect(err).toMatchObject({ code: 'ERR_NO_RESULT_BACKEND' });
  });
});

describe('rate limits and revocation across workers', () => {
  it('a rate limit of 50/s across two workers holds over every window, delaying the rest in the broker', async () => {
    const clock = createFakeClock();
    const server = new MemoryServer({ clock });
    const backend = createMemoryResultBackend({ clock });
    const starts: number[] = [];
    const make = () => {
      const app = createApp({ broker: createMemoryBroker({ server }), resultBackend: backend, clock, maxDeliveries: 3 });
      apps.push(app);
      const t = app.task('limited', async () => void starts.push(clock.now()), { rateLimit: '50/s' });
      return { app, t };
    };
    const one = make();
    const two = make();
    await one.app.worker({ concurrency: 8 }).start();
    await two.app.worker({ concurrency: 8 }).start();
    await one.t.applyAsyncBulk(Array.from({ length: 300 }, () => [] as []));
    for (let i = 0; i < 100 && starts.length < 300; i++) await clock.advance(100);
    expect(starts).toHaveLength(300); // none lost, none dead-lettered as poison by the waiting
    expect(server.stats('default').dead).toBe(0);
    starts.sort((a, b) => a - b);
    const burst = 50;
    for (const from of starts) {
      for (const windowMs of [100, 1000, 3000]) {
        const n = starts.filter((t) => t >= from && t < from + windowMs).length;
        expect(n).toBeLessThanOrEqual(Math.ceil((50 * windowMs) / 1000) + burst);
      }
    }
    const seconds = (starts[starts.length - 1]! - starts[0]!) / 1000;
    expect(seconds).toBeGreaterThanOrEqual((300 - burst) / 50 - 1);
  });

  it('a revoke reaches a worker started after it', async () => {
    const { app, clock } = setup();
    let runs = 0;
    const t = app.task('t', async () => void runs++);
    const r = await t.delay();
    await r.revoke();
    await app.worker().start();
    await clock.flush();
    expect(runs).toBe(0);
    expect(await r.state()).toBe('REVOKED');
  });
});
