/**
 * The dashboard over a real Redis, started from URLs the way `celeriac dashboard` starts it: the
 * worker and the dashboard are separate apps that share only the server.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { Redis } from 'ioredis';
import { createApp, type App } from '@celeriac/core';
import { requireServer, serverUrl } from '@celeriac/test-servers';
import { createDashboard, type Dashboard, type DeadLetterView, type TaskView } from '../src/index.js';

const ok = await requireServer('redis');

describe.skipIf(!ok)('dashboard over Redis', () => {
  const prefix = `celeriac-test-dashboard-${randomUUID().slice(0, 8)}`;
  const url = new URL(serverUrl('redis'));
  url.searchParams.set('prefix', prefix);
  const brokerUrl = url.toString();
  const closers: (() => Promise<void>)[] = [];

  afterAll(async () => {
    for (const close of closers.reverse()) await close();
    const redis = new Redis(serverUrl('redis'));
    try {
      for (const pattern of [`{${prefix}:*`, `${prefix}:*`]) {
        let cursor = '0';
        do {
          const [next, keys] = await redis.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
          cursor = next;
          if (keys.length > 0) await redis.del(...keys);
        } while (cursor !== '0');
      }
    } finally {
      redis.disconnect();
    }
  });

  it('sees a worker in another app, looks up older tasks in the result backend, retries a dead letter', async () => {
    const worker: App = createApp({ broker: brokerUrl, resultBackend: brokerUrl });
    closers.push(() => worker.close());
    let failing = true;
    const add = worker.task('add', async (a: number, b: number) => a + b);
    const flaky = worker.task('flaky', async (n: number) => {
      if (failing) throw new Error(`flaky ${n}`);
      return n;
    });
    await worker.worker({ sendEvents: true, heartbeatMs: 500 }).start();
    const before = await add.delay(1, 1);
    expect(await before.get({ timeoutMs: 10_000 })).toBe(2);

    const dashboard: Dashboard = await createDashboard({ broker: brokerUrl, resultBackend: brokerUrl, port: 0 });
    closers.push(() => dashboard.close());
    const get = async <T>(path: string): Promise<{ status: number; body: T }> => {
      const r = await fetch(new URL(path, dashboard.url));
      return { status: r.status, body: (await r.json()) as T };
    };
    const post = async <T>(path: string, body: unknown = {}): Promise<T> => {
      const r = await fetch(new URL(path, dashboard.url), {
        method: 'POST',
        headers: { 'X-Celeriac-Csrf': '1', 'Content-Type': 'application/json' },
        body: JSON.stringify(body),
      });
      expect(r.status).toBe(200);
      return (await r.json()) as T;
    };
    const waitFor = <T>(fn: () => Promise<T>) => vi.waitFor(fn, { timeout: 10_000, interval: 50 });

    // Run before the dashboard started: only the result backend knows it.
    const old = await get<{ task: TaskView }>(`api/tasks/${before.id}`);
    expect(old.body.task).toMatchObject({ source: 'backend', state: 'SUCCESS', result: '2', name: 'add' });

    await waitFor(async () => {
      const s = await get<{ workers: { status: string }[] }>('api/state');
      expect(s.body.workers.map((w) => w.status)).toEqual(['online']);
    });
    const r = await flaky.delay(7);
    const dead = await waitFor(async () => {
      const list = await get<{ deadLetters: DeadLetterView[] }>('api/queues/default/dead-letters');
      const d = list.body.deadLetters.find((x) => x.taskId === r.id);
      expect(d).toBeDefined();
      return d!;
    });
    expect(dead).toMatchObject({ task: 'flaky', args: '[7]', reason: 'Error: flaky 7' });
    const t = await waitFor(async () => {
      const v = (await get<{ task: TaskView }>(`api/tasks/${r.id}`)).body.task;
      expect(v.deadLettered).not.toBeNull();
      return v;
    });
    expect(t.error?.stack).toContain('Error: flaky 7');

    failing = false;
    expect(await post(`api/tasks/${r.id}/retry`)).toEqual({ taskId: r.id, queue: 'default', redriven: 1 });
    // The stored FAILURE stays until the new run stores its result: wait for that run first.
    await waitFor(async () => {
      const v = (await get<{ task: TaskView }>(`api/tasks/${r.id}`)).body.task;
      expect(v).toMatchObject({ state: 'SUCCESS', result: '7', deadLettered: null, source: 'events' });
    });
    expect(await r.get({ timeoutMs: 10_000 })).toBe(7);
    const text = await (await fetch(new URL('metrics', dashboard.url))).text();
    expect(text).toContain('celeriac_tasks_total{task="flaky",state="dead_lettered"} 1');
    expect(text).toContain('celeriac_tasks_total{task="flaky",state="succeeded"} 1');
    expect(text).toContain('celeriac_queue_messages{queue="default",state="dead"} 0');
    expect(text).toContain('celeriac_workers_online 1');
  });
});
