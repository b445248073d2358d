import { describe, expect, it } from 'vitest';
import { benchHandler, Limiter, PlannedFailure, windowed, type BenchTask } from '../src/driver.js';

const tick = () => new Promise<void>((r) => setImmediate(r));

describe('windowed', () => {
  it('runs every index once with at most `width` calls in flight', async () => {
    let inFlight = 0;
    let peak = 0;
    const seen: number[] = [];
    await windowed(50, 7, async (i) => {
      inFlight++;
      peak = Math.max(peak, inFlight);
      await tick();
      seen.push(i);
      inFlight--;
    });
    expect(peak).toBe(7);
    expect(seen.sort((a, b) => a - b)).toEqual(Array.from({ length: 50 }, (_, i) => i));
  });

  it('rejects with the first failure and starts nothing after it', async () => {
    const started: number[] = [];
    await expect(
      windowed(100, 4, async (i) => {
        started.push(i);
        await tick();
        if (i === 5) throw new Error('boom 5');
      }),
    ).rejects.toThrow('boom 5');
    expect(started.length).toBeLessThan(100);
  });

  it('does nothing for n = 0', async () => {
    let calls = 0;
    await windowed(0, 10, () => {
      calls++;
      return Promise.resolve();
    });
    expect(calls).toBe(0);
  });
});

describe('Limiter', () => {
  it('never runs more than its limit and runs every job', async () => {
    const limiter = new Limiter(3);
    let running = 0;
    let peak = 0;
    let finished = 0;
    const all = Array.from(
      { length: 20 },
      () =>
        new Promise<void>((resolve) => {
          limiter.run(async () => {
            running++;
            peak = Math.max(peak, running);
            await tick();
            running--;
            finished++;
            resolve();
          });
        }),
    );
    await Promise.all(all);
    expect(peak).toBe(3);
    expect(finished).toBe(20);
  });

  it('keeps going after a job rejects', async () => {
    const limiter = new Limiter(1);
    const order: string[] = [];
    await new Promise<void>((resolve) => {
      limiter.run(() => {
        order.push('a');
        return Promise.reject(new Error('a failed'));
      });
      limiter.run(() => {
        order.push('b');
        resolve();
        return Promise.resolve();
      });
    });
    expect(order).toEqual(['a', 'b']);
  });
});

describe('benchHandler', () => {
  const task = (failOnce: boolean): BenchTask => ({ i: 1, t: 0, failOnce, pad: '' });

  it('reports every start and fails only the first run of a fail-once task', async () => {
    const starts: number[] = [];
    const probe = { started: (_t: BenchTask, attempt: number) => void starts.push(attempt) };
    await expect(benchHandler(task(true), 0, probe)).rejects.toBeInstanceOf(PlannedFailure);
    await expect(benchHandler(task(true), 1, probe)).resolves.toBeUndefined();
    await expect(benchHandler(task(false), 0, probe)).resolves.toBeUndefined();
    expect(starts).toEqual([0, 1, 0]);
  });
});
