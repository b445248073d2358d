import { describe, expect, it } from 'vitest';
import { Coalescer } from '../src/transport/coalescer.js';

describe('Coalescer', () => {
  it('turns calls of one turn of the event loop into one batch, each caller getting its own result', async () => {
    const batches: number[][] = [];
    const c = new Coalescer<number, number>((items) => {
      batches.push(items);
      return Promise.resolve(items.map((x) => x * 10));
    }, 100);
    const results = await Promise.all([1, 2, 3].map((x) => c.add(x)));
    expect(results).toEqual([10, 20, 30]);
    expect(batches).toEqual([[1, 2, 3]]);
  });

  it('splits a turn into batches of at most maxBatch', async () => {
    const sizes: number[] = [];
    const c = new Coalescer<number, number>((items) => {
      sizes.push(items.length);
      return Promise.resolve(items);
    }, 2);
    await Promise.all([1, 2, 3, 4, 5].map((x) => c.add(x)));
    expect(sizes).toEqual([2, 2, 1]);
  });

  it('sends a batch as soon as eagerBatch calls wait, before the turn ends; the rest go at its end', async () => {
    const batches: number[][] = [];
    const c = new Coalescer<number, number>((items) => {
      batches.push(items);
      return Promise.resolve(items);
    }, 100, 3);
    const all = [1, 2, 3, 4, 5, 6, 7].map((x) => c.add(x));
    expect(batches).toEqual([[1, 2, 3], [4, 5, 6]]); // sent while the caller was still adding
    expect(await Promise.all(all)).toEqual([1, 2, 3, 4, 5, 6, 7]);
    expect(batches).toEqual([[1, 2, 3], [4, 5, 6], [7]]);
  });

  it('rejects every caller of a failed batch, and later batches still run', async () => {
    let fail = true;
    const c = new Coalescer<number, number>((items) => (fail ? Promise.reject(new Error('down')) : Promise.resolve(items)), 10);
    const failed = await Promise.allSettled([c.add(1), c.add(2)]);
    expect(failed.map((r) => r.status)).toEqual(['rejected', 'rejected']);
    fail = false;
    expect(await c.add(3)).toBe(3);
  });

  it('drain waits for queued and in-flight batches', async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const c = new Coalescer<number, number>(async (items) => {
      await gate;
      return items;
    }, 10);
    const p = c.add(1);
    let drained = false;
    const d = c.drain().then(() => (drained = true));
    await new Promise((r) => setImmediate(r));
    expect(drained).toBe(false);
    release();
    await d;
    expect(await p).toBe(1);
    expect(c.size).toBe(0);
  });
});
