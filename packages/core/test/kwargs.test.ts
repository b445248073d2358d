import { afterEach, describe, expect, it } from 'vitest';
import {
  chain,
  chord,
  createApp,
  createMemoryBroker,
  createMemoryResultBackend,
  currentTask,
  group,
  MemoryServer,
  Signature,
  type App,
  type AppOptions,
  type CeleriacEvents,
  type EventName,
  type TaskOptions,
} from '../src/index.js';
import { decodeTask } from '../src/message.js';
import { createFakeClock, type FakeClock } from '../src/testing/index.js';

interface Env {
  clock: FakeClock;
  app: App;
  events: <K extends EventName>(name: K) => CeleriacEvents[K][];
}

const apps: App[] = [];
afterEach(async () => {
  await Promise.all(apps.splice(0).map((a) => a.close()));
});

function setup(opts: Partial<AppOptions> = {}): Env {
  const clock = createFakeClock();
  const server = new MemoryServer({ clock, visibilityTimeoutMs: 30_000 });
  const app = createApp({ broker: createMemoryBroker({ server }), resultBackend: createMemoryResultBackend({ clock }), clock, ...opts });
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
  return { clock, app, events };
}

interface Mail {
  subject: string;
  cc?: string;
}

describe('keyword arguments', () => {
  it('a kwargs: true handler gets the kwargs object last; {} when none were sent', async () => {
    const { app, clock, events } = setup();
    const calls: unknown[][] = [];
    const send = app.task(
      'mail.send',
      (to: string, kw: Mail) => {
        calls.push([to, kw]);
        return `${to}|${kw.subject ?? '-'}|${kw.cc ?? '-'}`;
      },
      { kwargs: true },
    );
    const received = events('task:received');
    await app.worker().start();
    const a = await send.applyAsync(['ann'], { kwargs: { subject: 'hi', cc: 'bo' } });
    const b = await send.delay('cy');
    const c = await app.sendTask('mail.send', ['di'], { kwargs: { subject: 'by name' } });
    await clock.flush();
    expect(await a.get({ timeoutMs: 10 })).toBe('ann|hi|bo');
    expect(await b.get({ timeoutMs: 10 })).toBe('cy|-|-');
    expect(await c.get({ timeoutMs: 10 })).toBe('di|by name|-');
    expect(calls).toEqual([['ann', { subject: 'hi', cc: 'bo' }], ['cy', {}], ['di', { subject: 'by name' }]]);
    expect(received.map((e) => [e.argsRepr, e.kwargsRepr])).toEqual([
      ['["ann"]', '{"subject":"hi","cc":"bo"}'],
      ['["cy"]', '{}'],
      ['["di"]', '{"subject":"by name"}'],
    ]);
  });

  it('kwargs for a task without kwargs: true are dead-lettered with ERR_TASK_SIGNATURE, never run; FAILURE, task:failed', async () => {
    const { app, clock, events } = setup();
    let runs = 0;
    app.task('plain', (a: number) => {
      runs++;
      return a;
    });
    const dead = events('task:dead-lettered');
    const failed = events('task:failed');
    await app.worker().start();
    const r = await app.sendTask('plain', [1], { kwargs: { to: 'x', subject: 'y' } });
    const empty = await app.sendTask<number>('plain', [2], { kwargs: {} }); // empty kwargs are no kwargs
    await clock.flush();
    expect(runs).toBe(1);
    expect(await empty.get({ timeoutMs: 10 })).toBe(2);
    const reason = 'ERR_TASK_SIGNATURE: task "plain" takes no keyword arguments (it is not registered with kwargs: true), got to, subject';
    expect(dead.map((d) => [d.taskId, d.reason])).toEqual([[r.id, reason]]);
    expect(failed.map((f) => [f.taskId, f.error.code])).toEqual([[r.id, 'ERR_TASK_SIGNATURE']]);
    await expect(r.get({ timeoutMs: 10 })).rejects.toMatchObject({ code: 'ERR_TASK_SIGNATURE', name: 'CeleriacError' });
    expect(await r.state()).toBe('FAILURE');
    const letters = await (await app.getBroker()).deadLetters.list('default');
    expect(letters.map((l) => l.reason)).toEqual([reason]);
  });

  it('bad kwargs are refused at the call site', async () => {
    const { app } = setup();
    const plain = app.task('plain', (a: number) => a);
    const kw = app.task('kw', (a: number, o: { x: number }) => a + o.x, { kwargs: true });
    const noKwargs = { name: 'TypeError', message: expect.stringContaining('takes no keyword arguments') };
    // A cast stands for plain JavaScript callers; TypeScript refuses these (test/types.test.ts).
    const untyped = plain as unknown as { applyAsync(a: unknown[], o: object): Promise<unknown>; applyAsyncBulk(a: unknown[][], o: object): Promise<unknown> };
    await expect(untyped.applyAsync([1], { kwargs: { x: 1 } })).rejects.toMatchObject(noKwargs);
    await expect(untyped.applyAsyncBulk([[1]], { kwargs: { x: 1 } })).rejects.toMatchObject(noKwargs);
    expect(() => (plain.s(1) as unknown as Signature).withKwargs({ x: 1 })).toThrow(TypeError);
    for (const bad of [[1], 'x', null, 3]) {
      await expect(kw.applyAsync([1], { kwargs: bad as never })).rejects.toThrow(/kwargs must be a plain object/);
      expect(() => kw.s(1).withKwargs(bad as never)).toThrow(/kwargs must be a plain object/);
    }
    expect(() => app.task('flag', (a: number) => a, { kwargs: 'yes' } as unknown as TaskOptions)).toThrow(TypeError);
    const withDefaults = createApp({ broker: 'memory://', taskDefaults: { kwargs: true } as never });
    apps.push(withDefaults);
    expect(() => withDefaults.task('d', (o: object) => o)).toThrow(/per-task option/);
  });

  it('a retry keeps the kwargs', async () => {
    const { app, clock } = setup();
    const seen: unknown[] = [];
    const flaky = app.task(
      'flaky',
      (n: number, kw: { tag: string }) => {
        seen.push([n, kw, currentTask().retries]);
        if (currentTask().retries === 0) throw new Error('first run fails');
        return kw.tag;
      },
      { kwargs: true, maxRetries: 1, retryBackoffMs: 1000, retryJitter: false },
    );
    await app.worker().start();
    const r = await flaky.applyAsync([1], { kwargs: { tag: 't' } });
    await clock.flush();
    await clock.advance(1000);
    expect(await r.get({ timeoutMs: 10 })).toBe('t');
    expect(seen).toEqual([
      [1, { tag: 't' }, 0],
      [1, { tag: 't' }, 1],
    ]);
  });

  it('signatures carry kwargs: chain steps sent on by the worker, groups, chord callbacks, links and errbacks', async () => {
    const { app, clock } = setup();
    const calls: string[] = [];
    const fmt = app.task(
      'fmt',
      (value: unknown, kw: { prefix: string }) => {
        calls.push(`fmt(${JSON.stringify(value)}, ${kw.prefix})`);
        return `${kw.prefix}${JSON.stringify(value)}`;
      },
      { kwargs: true },
    );
    const add = app.task('add', (a: number, b: number) => a + b);
    const boom = app.task('boom', (): number => {
      throw new Error('boom');
    });
    const onError = app.task('on.error', (taskId: string, _e: unknown, kw: { note: string }) => calls.push(`errback(${taskId}, ${kw.note})`), {
      kwargs: true,
    });
    await app.worker().start();

    // A partial step: the parent's result is prepended to the positional arguments, the kwargs stay.
    const c = await chain(add.s(1, 2), fmt.s().withKwargs({ prefix: 'sum=' }), fmt.s().withKwargs({ prefix: 'again:' })).applyAsync();
    // The first step of a chain with kwargs of its own.
    const c2 = await chain(fmt.s(5).withKwargs({ prefix: 'first:' }), fmt.s().withKwargs({ prefix: 'then:' })).applyAsync();
    const g = await group(fmt.s(1).withKwargs({ prefix: 'a' }), fmt.s(2).withKwargs({ prefix: 'b' })).applyAsync();
    const ch = await chord([add.s(1, 1), add.s(2, 2)], fmt.s().withKwargs({ prefix: 'all=' })).applyAsync();
    const empty = await chord([], fmt.s().withKwargs({ prefix: 'none=' })).applyAsync();
    const linked = await add.s(3, 4).link(fmt.s().withKwargs({ prefix: 'linked=' })).applyAsync();
    const failing = await boom.s().linkError(onError.s().withKwargs({ note: 'seen' })).applyAsync();
    for (let i = 0; i < 10; i++) await clock.flush();

    expect(await c.get({ timeoutMs: 10 })).toBe('again:"sum=3"');
    expect(await c2.get({ timeoutMs: 10 })).toBe('then:"first:5"');
    expect(await g.get({ timeoutMs: 10 })).toEqual(['a1', 'b2']);
    expect(await ch.get({ timeoutMs: 10 })).toBe('all=[2,4]');
    expect(await empty.get({ timeoutMs: 10 })).toBe('none=[]');
    expect(await linked.get({ timeoutMs: 10 })).toBe(7);
    expect(calls).toContain('fmt(7, linked=)');
    await expect(failing.get({ timeoutMs: 10 })).rejects.toThrow('boom');
    expect(calls).toContain(`errback(${failing.id}, seen)`);
  });

  it('the celeriac wire format: kwargs are the body\'s second element, left off when empty; a non-object is refused', async () => {
    const { app } = setup();
    const accept = new Set(['application/json']);
    const withKw = app.encode(app.buildMessage('t', [1], { kwargs: { a: [1] } }, {}).msg, {});
    const without = app.encode(app.buildMessage('t', [1], {}, {}).msg, {});
    expect(new TextDecoder().decode(withKw.body)).toBe('[[1],{"a":[1]}]');
    expect(new TextDecoder().decode(without.body)).toBe('[[1]]');
    expect(decodeTask(withKw, accept).kwargs).toEqual({ a: [1] });
    expect(decodeTask(without, accept).kwargs).toEqual({});
    const body = new TextEncoder().encode('[[1],[2]]');
    expect(() => decodeTask({ body, headers: without.headers }, accept)).toThrow(expect.objectContaining({ code: 'ERR_SERIALIZATION' }));
  });
});
