import { describe, expect, it } from 'vitest';
import type { RemoteEvent } from '@celeriac/core';
import { DashboardState } from '../src/index.js';

const origin = { hostname: 'h1', pid: 42 };
const task = (taskId: string, extra: Record<string, unknown> = {}) => ({
  taskId,
  name: 'math.add',
  queue: 'default',
  retries: 0,
  deliveries: 1,
  workerId: 'w1',
  ...origin,
  ...extra,
});
const ev = (e: Record<string, unknown>, at = 0) => ({ at, ...e }) as unknown as RemoteEvent;

describe('DashboardState', () => {
  it('follows a task from received to success and keeps what a person needs to see', () => {
    const s = new DashboardState();
    s.apply(ev({ type: 'task:received', ...task('t1'), argsRepr: '[1,2]' }), 1_000);
    expect(s.task('t1')).toMatchObject({ state: 'RECEIVED', args: '[1,2]', receivedAt: 1_000, worker: 'h1:42' });
    s.apply(ev({ type: 'task:started', ...task('t1'), queueWaitMs: 12 }), 1_010);
    expect(s.task('t1')).toMatchObject({ state: 'STARTED', queueWaitMs: 12, startedAt: 1_010 });
    s.apply(ev({ type: 'task:progress', ...task('t1'), progress: { done: 5 } }), 1_020);
    expect(s.task('t1')).toMatchObject({ state: 'PROGRESS', progress: '{"done":5}' });
    s.apply(ev({ type: 'task:succeeded', ...task('t1'), result: 3, runtimeMs: 30 }), 1_040);
    expect(s.task('t1')).toMatchObject({ state: 'SUCCESS', result: '3', runtimeMs: 30, finishedAt: 1_040, error: null });
    expect(s.takeChangedTasks().map((t) => t.id)).toEqual(['t1']);
    expect(s.takeChangedTasks()).toEqual([]);
  });

  it('shows retries with the error, then a final failure that is dead-lettered, and a redrive', () => {
    const s = new DashboardState();
    const error = { name: 'Error', message: 'flaky', stack: 'Error: flaky\n    at x' };
    s.apply(ev({ type: 'task:received', ...task('t2'), argsRepr: '[]' }), 0);
    s.apply(ev({ type: 'task:retried', ...task('t2'), error, delayMs: 500 }), 10);
    expect(s.task('t2')).toMatchObject({ state: 'RETRY', retries: 1, retryAt: 510, error });
    s.apply(ev({ type: 'task:received', ...task('t2', { retries: 1 }), argsRepr: '[]' }), 600);
    s.apply(ev({ type: 'task:failed', ...task('t2', { retries: 1 }), error, runtimeMs: 4 }), 610);
    s.apply(ev({ type: 'task:dead-lettered', ...task('t2', { retries: 1 }), reason: 'Error: flaky' }), 610);
    expect(s.task('t2')).toMatchObject({ state: 'FAILURE', retries: 1, deadLettered: 'Error: flaky', runtimeMs: 4 });
    s.markRedriven('t2', 700);
    expect(s.task('t2')).toMatchObject({ state: 'PENDING', deadLettered: null });
    s.apply(ev({ type: 'task:received', ...task('t2', { retries: 1 }), argsRepr: '[]' }), 800);
    s.apply(ev({ type: 'task:succeeded', ...task('t2', { retries: 1 }), result: 'ok', runtimeMs: 1 }), 801);
    expect(s.task('t2')).toMatchObject({ state: 'SUCCESS', result: '"ok"', error: null, deadLettered: null });
  });

  it('records a revoke and a dead letter of an undecodable message', () => {
    const s = new DashboardState();
    s.apply(ev({ type: 'task:revoked', ...task('t3'), reason: 'expired' }), 5);
    expect(s.task('t3')).toMatchObject({ state: 'REVOKED', revokedReason: 'expired' });
    s.apply(ev({ type: 'task:dead-lettered', ...task('m9', { name: null }), reason: 'ERR_SERIALIZATION: bad body' }), 6);
    expect(s.task('m9')).toMatchObject({ state: 'FAILURE', name: null, deadLettered: 'ERR_SERIALIZATION: bad body' });
  });

  it('keeps only the most recently received tasks, and bounds the size of user data', () => {
    const s = new DashboardState({ maxTasks: 3 });
    for (let i = 0; i < 5; i++) s.apply(ev({ type: 'task:received', ...task(`t${i}`), argsRepr: '[]' }), i);
    expect(s.tasks().map((t) => t.id)).toEqual(['t4', 't3', 't2']);
    // Received again (a redelivery): back to the top, not evicted next.
    s.apply(ev({ type: 'task:received', ...task('t2'), argsRepr: '[]' }), 10);
    s.apply(ev({ type: 'task:received', ...task('t5'), argsRepr: '[]' }), 11);
    expect(s.tasks().map((t) => t.id)).toEqual(['t5', 't2', 't4']);
    s.apply(ev({ type: 'task:succeeded', ...task('t5'), result: 'x'.repeat(100_000), runtimeMs: 1 }), 12);
    expect(s.task('t5')!.result!.length).toBeLessThanOrEqual(2_000);
    s.apply(ev({ type: 'task:failed', ...task('t4'), error: { name: 'E', message: 'm', stack: 's'.repeat(100_000) }, runtimeMs: 1 }), 13);
    expect(s.task('t4')!.error!.stack!.length).toBeLessThanOrEqual(8_000);
  });

  it('shows a worker online while it heart-beats, lost after 3 missed 2 s heartbeats, offline after a clean stop', () => {
    const s = new DashboardState();
    const w = { workerId: 'w1', ...origin };
    s.apply(ev({ type: 'worker:ready', ...w, queues: ['default', 'mail'], concurrency: 4, prefetch: 16 }), 0);
    expect(s.workers(0)[0]).toMatchObject({ status: 'online', queues: ['default', 'mail'], concurrency: 4, active: 0 });
    expect(s.queues).toEqual(['default', 'mail']);
    s.apply(ev({ type: 'worker:heartbeat', ...w, active: 3, processed: 17, concurrency: 4 }), 2_000);
    expect(s.workers(2_000)[0]).toMatchObject({ status: 'online', active: 3, processed: 17 });
    expect(s.workersOnline(8_000)).toBe(1);
    expect(s.workers(8_001)[0]!.status).toBe('lost');
    expect(s.workersOnline(8_001)).toBe(0);
    s.apply(ev({ type: 'worker:heartbeat', ...w, active: 0, processed: 18, concurrency: 4 }), 9_000);
    expect(s.workers(9_000)[0]!.status).toBe('online');
    s.apply(ev({ type: 'worker:offline', ...w, givenBack: 0, abandoned: 0 }), 9_500);
    expect(s.workers(9_500)[0]).toMatchObject({ status: 'offline', active: 0 });
    // The sender's clock is not used: a worker whose clock is an hour behind is still online.
    s.apply(ev({ type: 'worker:ready', workerId: 'w2', hostname: 'h2', pid: 1, queues: ['default'], concurrency: 1, prefetch: 4 }, -3_600_000), 10_000);
    expect(s.workers(10_000).find((x) => x.id === 'w2')!.status).toBe('online');
  });

  it('counts tasks finished per queue and second over the last minute', () => {
    const s = new DashboardState();
    const done = (id: string, at: number, failed = false) =>
      s.apply(
        ev(failed ? { type: 'task:failed', ...task(id), error: { name: 'E', message: 'x' }, runtimeMs: 1 } : { type: 'task:succeeded', ...task(id), result: 1, runtimeMs: 1 }),
        at,
      );
    done('a', 100_000);
    done('b', 100_500);
    done('c', 101_200, true);
    done('d', 159_900);
    const r = s.rateSeries('default', 159_999);
    expect(r.processed).toHaveLength(60);
    expect(r.processed[0]).toBe(2); // second 100
    expect(r.processed[1]).toBe(1); // second 101
    expect(r.failed[1]).toBe(1);
    expect(r.processed[59]).toBe(1); // second 159, the current one
    expect(r.processed.reduce((a, b) => a + b, 0)).toBe(4);
    // A minute later the old seconds have left the window, even though their slots are reused.
    const later = s.rateSeries('default', 161_000);
    expect(later.processed.reduce((a, b) => a + b, 0)).toBe(1);
    expect(s.rateSeries('unknown', 0).processed.every((n) => n === 0)).toBe(true);
  });

  it('discovers queues from events, up to a limit', () => {
    const s = new DashboardState({ queues: ['default'], maxQueues: 2 });
    s.apply(ev({ type: 'task:received', ...task('x', { queue: 'mail' }), argsRepr: '[]' }), 0);
    s.apply(ev({ type: 'task:received', ...task('y', { queue: 'other' }), argsRepr: '[]' }), 0);
    expect(s.queues).toEqual(['default', 'mail']);
    expect(s.hasQueue('other')).toBe(false);
    expect(() => new DashboardState({ maxTasks: 0 })).toThrow(RangeError);
  });
});
