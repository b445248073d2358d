import { describe, expect, expectTypeOf, it } from 'vitest';
import { createApp, type AsyncResult } from '../src/index.js';

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
