import { describe, expect, expectTypeOf, it } from 'vitest';
import { chain, createApp, Signature, type AsyncResult, type Task, type TaskOptions } from '../src/index.js';

// `tsc -p tsconfig.test.json` (part of `npm test`) fails if an @ts-expect-error line stops being an error.
describe('task types are exact', () => {
  it('checks arguments and results at compile time', async () => {
    const app = createApp({ broker: 'memory://' });
    const add = app.task('math.add', async (a: number, b: number) => a + b);
    const greet = app.task('greet', (name: string) => `hi ${name}`);
    await app.worker().start();
    // @ts-expect-error a string is not a number
    const wrongType = () => add.delay('x', 2);
    // @ts-expect-error too few arguments
    const tooFew = () => add.delay(1);
    // @ts-expect-error applyAsync takes the arguments as a tuple
    const notTuple = () => add.applyAsync(1, 2);
    const r = await add.delay(2, 3);
    expectTypeOf(r).toEqualTypeOf<AsyncResult<number>>();
    const n: number = await r.get({ timeoutMs: 1000 });
    // @ts-expect-error the result is a number, not a string
    const s: string = await r.get({ timeoutMs: 1000 });
    const g = await greet.applyAsync(['ann']);
    expectTypeOf(g).toEqualTypeOf<AsyncResult<string>>();
    expect(n).toBe(5);
    expect(s).toBe(5);
    expect([wrongType, tooFew, notTuple].every((f) => typeof f === 'function')).toBe(true);
    await app.close();
  });
});

describe('keyword arguments are typed from the handler', () => {
  it('a kwargs: true task takes its positional arguments, and its kwargs typed from the last parameter', async () => {
    const app = createApp({ broker: 'memory://' });
    const send = app.task('mail.send', (to: string, kw: { subject: string; cc?: string }) => `${to}:${kw.subject}`, { kwargs: true });
    const plain = app.task('math.add', (a: number, b: number) => a + b);
    interface Opts {
      n: number;
    }
    const onlyKw = app.task('only.kw', (kw: Opts) => kw.n, { kwargs: true, maxRetries: 2 });
    expectTypeOf(send).toEqualTypeOf<Task<[to: string], string, { subject: string; cc?: string }>>();
    expectTypeOf(onlyKw).toEqualTypeOf<Task<[], number, Opts>>();
    // A TaskOptions variable keeps the plain typing.
    const opts: TaskOptions = { maxRetries: 1 };
    expectTypeOf(app.task('with.opts', (a: number) => a, opts)).toEqualTypeOf<Task<[a: number], number>>();
    await app.worker().start();

    const r = await send.applyAsync(['ann@example.com'], { kwargs: { subject: 'hi' }, countdownMs: 0 });
    expectTypeOf(r).toEqualTypeOf<AsyncResult<string>>();
    expect(await r.get({ timeoutMs: 1000 })).toBe('ann@example.com:hi');
    expect(await (await onlyKw.applyAsync([], { kwargs: { n: 7 } })).get({ timeoutMs: 1000 })).toBe(7);
    const bad = [
      // @ts-expect-error subject must be a string
      () => send.applyAsync(['a'], { kwargs: { subject: 1 } }),
      // @ts-expect-error subject is required
      () => send.applyAsync(['a'], { kwargs: { cc: 'x' } }),
      // @ts-expect-error the kwargs are not a positional argument
      () => send.delay('a', { subject: 'hi' }),
      // @ts-expect-error a task without kwargs: true takes no kwargs
      () => plain.applyAsync([1, 2], { kwargs: { x: 1 } }),
      // @ts-expect-error nor do its signatures
      () => plain.s(1, 2).withKwargs({ x: 1 }),
      // @ts-expect-error a signature's kwargs are typed too
      () => send.s('a').withKwargs({ subject: 2 }),
      // @ts-expect-error kwargs: true needs the handler's last parameter to be the kwargs object
      () => app.task('bad.kw', (a: number) => a, { kwargs: true }),
    ];
    expect(bad.every((f) => typeof f === 'function')).toBe(true);
    // Signatures carry typed kwargs; a partial one (a chain step) too.
    const step = send.s().withKwargs({ subject: 'chained' });
    const viaChain = await chain(app.task('who', () => 'bo@example.com').s(), step).applyAsync();
    expect(await viaChain.get({ timeoutMs: 1000 })).toBe('bo@example.com:chained');
    // A signature made by name takes any kwargs.
    expectTypeOf(new Signature(app, 'py.task', []).withKwargs({ any: 'thing' })).toEqualTypeOf<Signature<unknown>>();
    await app.close();
  });
});
