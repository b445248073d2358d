import { afterEach, describe, expect, it, vi } from 'vitest';
import { currentTask, type TaskState } from '@celeriac/core';
import type { DeadLetterView, Overview, SchedulesView, TaskView } from '../src/index.js';
import { createMemoryBroker } from '@celeriac/core';
import { createDashboard } from '../src/index.js';
import { rawRequest, readEvents, startCluster, type Cluster } from './helpers.js';

const clusters: Cluster[] = [];
afterEach(async () => {
  await Promise.all(clusters.splice(0).map((c) => c.close()));
});
async function cluster(...args: Parameters<typeof startCluster>): Promise<Cluster> {
  const c = await startCluster(...args);
  clusters.push(c);
  return c;
}

type State = Overview & { tasks: TaskView[] };
const waitFor = <T>(fn: () => Promise<T>) => vi.waitFor(fn, { timeout: 5_000, interval: 25 });

async function taskState(c: Cluster, id: string): Promise<TaskView> {
  const r = await c.getJson<{ task: TaskView }>(`/api/tasks/${id}`);
  expect(r.status).toBe(200);
  return r.body.task;
}
async function waitForTask(c: Cluster, id: string, state: string, extra: (t: TaskView) => boolean = (t) => t.source === 'events'): Promise<TaskView> {
  return waitFor(async () => {
    const t = await taskState(c, id);
    expect(t.state).toBe(state);
    expect(extra(t)).toBe(true);
    return t;
  });
}
async function queue(c: Cluster, name: string) {
  const r = await c.getJson<{ queues: Overview['queues'] }>('/api/queues');
  return r.body.queues.find((q) => q.name === name)!;
}

describe('dashboard API on a memory broker shared with a worker', () => {
  it('shows workers, queues and tasks from remote events; /metrics counts match what ran', async () => {
    const c = await cluster();
    const add = c.app.task('add', async (a: number, b: number) => a + b);
    const bad = c.app.task('bad', async () => {
      throw new TypeError('no <good>');
    });
    const ran = new Map<string, number>();
    const count = (k: string) => ran.set(k, (ran.get(k) ?? 0) + 1);
    c.app.on('task:succeeded', (e) => void count(`${e.name} succeeded`));
    c.app.on('task:failed', (e) => void count(`${e.name} failed`));
    c.app.on('task:dead-lettered', (e) => void count(`${e.name} dead_lettered`));
    await c.app.worker({ sendEvents: true, concurrency: 3, queues: ['default', 'mail'] }).start();
    const results = await Promise.all([add.delay(1, 2), add.delay(3, 4), add.delay(5, 6)]);
    const failed = await bad.delay();
    await Promise.all(results.map((r) => r.get({ timeoutMs: 5_000 })));

    // Until the events arrive (batched every 100 ms) the look-up answers from the result backend.
    const t = await waitForTask(c, results[0]!.id, 'SUCCESS', (x) => x.source === 'events');
    expect(t).toMatchObject({ name: 'add', queue: 'default', args: '[1,2]', result: '3', source: 'events', retries: 0 });
    expect(t.runtimeMs).toBeGreaterThanOrEqual(0);
    const f = await waitForTask(c, failed.id, 'FAILURE', (x) => x.deadLettered !== null);
    expect(f.error).toMatchObject({ name: 'TypeError', message: 'no <good>' });
    expect(f.error!.stack).toContain('TypeError: no <good>');

    const state = (await c.getJson<State>('/api/state')).body;
    expect(state.broker).toBe('memory');
    expect(state.broadcast).toBe(true);
    expect(state.workers).toHaveLength(1);
    expect(state.workers[0]).toMatchObject({ status: 'online', concurrency: 3, queues: ['default', 'mail'] });
    expect(state.queues.map((x) => x.name)).toEqual(['default', 'mail']); // 'mail' learnt from the worker
    expect(state.tasks.map((x) => x.id).sort()).toEqual([...results.map((r) => r.id), failed.id].sort());
    const q = state.queues.find((x) => x.name === 'default')!;
    expect(q).toMatchObject({ ready: 0, inFlight: 0, dead: 1, error: null });
    expect(q.processed.reduce((a, b) => a + b, 0)).toBe(4);
    expect(q.failed.reduce((a, b) => a + b, 0)).toBe(1);
    const filtered = await c.getJson<{ tasks: TaskView[] }>('/api/tasks?state=SUCCESS&limit=2');
    expect(filtered.body.tasks).toHaveLength(2);
    expect(filtered.body.tasks.every((x) => x.state === 'SUCCESS')).toBe(true);

    const metrics = await fetch(c.url('/metrics'));
    expect(metrics.headers.get('content-type')).toContain('text/plain; version=0.0.4');
    const text = await metrics.text();
    expect([...ran.keys()].sort()).toEqual(['add succeeded', 'bad dead_lettered', 'bad failed']);
    for (const [k, n] of ran) {
      const [task, st] = k.split(' ');
      expect(text).toContain(`celeriac_tasks_total{task="${task}",state="${st}"} ${n}`);
    }
    expect(text).toContain('celeriac_queue_messages{queue="default",state="dead"} 1');
    expect(text).toContain('celeriac_workers_online 1');
    expect(text).toContain('celeriac_queue_messages{queue="mail",state="ready"} 0');
  });

  it('looks a task up in memory first, then in the result backend, and says when neither knows it', async () => {
    const c = await cluster();
    await c.backend.set('old-task', { state: 'SUCCESS' as TaskState, result: { total: 42 }, name: 'report', retries: 2, dateDone: 1_000 }, { ttlMs: 60_000 });
    const old = await taskState(c, 'old-task');
    expect(old).toMatchObject({ id: 'old-task', source: 'backend', state: 'SUCCESS', result: '{"total":42}', name: 'report', retries: 2 });
    const missing = await c.getJson<{ error: string }>('/api/tasks/nope');
    expect(missing.status).toBe(404);
    expect(missing.body.error).toContain('result backend knows nothing');
    expect((await c.getJson(`/api/tasks/${'x'.repeat(300)}`)).status).toBe(400);
  });

  it('retries one dead-lettered task by id, redrives by dead-letter id, and purges dead letters', async () => {
    const c = await cluster();
    let failing = true;
    const flaky = c.app.task('flaky', async (n: number) => {
      if (failing) throw new Error(`flaky ${n}`);
      return n * 10;
    });
    await c.app.worker({ sendEvents: true }).start();
    const a = await flaky.delay(1);
    const b = await flaky.delay(2);
    await waitForTask(c, a.id, 'FAILURE', (t) => t.deadLettered === 'Error: flaky 1');
    await waitForTask(c, b.id, 'FAILURE', (t) => t.deadLettered !== null);

    const dead = (await c.getJson<{ deadLetters: DeadLetterView[] }>('/api/queues/default/dead-letters')).body.deadLetters;
    expect(dead.map((d) => d.taskId).sort()).toEqual([a.id, b.id].sort());
    const deadB = dead.find((d) => d.taskId === b.id)!;
    expect(deadB).toMatchObject({ task: 'flaky', args: '[2]', reason: 'Error: flaky 2', retries: 0 });

    failing = false;
    const retried = await c.post(`/api/tasks/${a.id}/retry`);
    expect(retried).toEqual({ status: 200, body: { taskId: a.id, queue: 'default', redriven: 1 } });
    // The stored FAILURE stays until the new run stores its result: wait for that run first.
    await waitForTask(c, a.id, 'SUCCESS', (t) => t.result === '10' && t.deadLettered === null);
    expect(await a.get({ timeoutMs: 5_000 })).toBe(10);
    expect((await taskState(c, b.id)).deadLettered).not.toBeNull();
    expect((await queue(c, 'default')).dead).toBe(1);
    // Nothing left to retry for a.
    expect((await c.post(`/api/tasks/${a.id}/retry`)).status).toBe(404);

    const byDeadId = await c.post('/api/queues/default/dead-letters/redrive', { ids: [deadB.id] });
    expect(byDeadId.body).toEqual({ queue: 'default', redriven: 1 });
    await waitForTask(c, b.id, 'SUCCESS');
    expect(await b.get({ timeoutMs: 5_000 })).toBe(20);

    failing = true;
    const d = await flaky.delay(3);
    await waitForTask(c, d.id, 'FAILURE', (t) => t.deadLettered !== null);
    expect((await c.post('/api/queues/default/dead-letters/purge')).body).toEqual({ queue: 'default', purged: 1 });
    expect((await queue(c, 'default')).dead).toBe(0);
    expect((await c.post('/api/queues/default/dead-letters/redrive', { ids: 'all' })).status).toBe(400);
  });

  it('redrives a whole dead-letter queue', async () => {
    const c = await cluster();
    let failing = true;
    const job = c.app.task('job', async () => {
      if (failing) throw new Error('down');
      return 'up';
    });
    await c.app.worker({ sendEvents: true }).start();
    const rs = await Promise.all([job.delay(), job.delay(), job.delay()]);
    await waitFor(async () => expect((await queue(c, 'default')).dead).toBe(3));
    failing = false;
    expect((await c.post('/api/queues/default/dead-letters/redrive')).body).toEqual({ queue: 'default', redriven: 3 });
    for (const r of rs) await waitForTask(c, r.id, 'SUCCESS');
    expect(await Promise.all(rs.map((r) => r.get({ timeoutMs: 5_000 })))).toEqual(['up', 'up', 'up']);
  });

  it('purges a queue it knows, and refuses queues it does not', async () => {
    const c = await cluster({ queues: ['default', 'parked'] });
    const parked = c.app.task('parked.job', async () => 1, { queue: 'parked' });
    await Promise.all([parked.delay(), parked.delay(), parked.delay()]);
    expect((await queue(c, 'parked')).ready).toBe(3);
    expect((await c.post('/api/queues/parked/purge')).body).toEqual({ queue: 'parked', purged: 3 });
    expect((await queue(c, 'parked')).ready).toBe(0);
    const unknown = await c.post<{ error: string }>('/api/queues/typo/purge');
    expect(unknown.status).toBe(404);
    expect(unknown.body.error).toContain('unknown queue "typo"');
  });

  it('revokes a running task', async () => {
    const c = await cluster();
    let onStart = () => {};
    const started = new Promise<void>((resolve) => (onStart = resolve));
    const wait = c.app.task('wait', async () => {
      const signal = currentTask().signal;
      onStart();
      await new Promise((resolve) => signal.addEventListener('abort', resolve, { once: true }));
      throw signal.reason;
    });
    await c.app.worker({ sendEvents: true }).start();
    const r = await wait.delay();
    await started;
    await waitForTask(c, r.id, 'STARTED');
    expect((await c.post(`/api/tasks/${r.id}/revoke`)).body).toEqual({ revoked: r.id });
    await waitForTask(c, r.id, 'REVOKED', (t) => t.revokedReason === 'terminated');
    await expect(r.get({ timeoutMs: 5_000 })).rejects.toMatchObject({ code: 'ERR_REVOKED' });
  });

  it('streams a snapshot, then task changes, over Server-Sent Events', async () => {
    const c = await cluster();
    const add = c.app.task('add', async (a: number, b: number) => a + b);
    await c.app.worker({ sendEvents: true }).start();
    const ac = new AbortController();
    const res = await fetch(c.url('/api/events'), { signal: ac.signal });
    expect(res.headers.get('content-type')).toContain('text/event-stream');
    let id = '';
    const events = await readEvents(res, (event, data) => {
      if (event === 'snapshot') {
        void add.delay(20, 22).then((r) => (id = r.id));
        return false;
      }
      return event === 'tasks' && (data as { tasks: TaskView[] }).tasks.some((t) => t.id === id && t.state === 'SUCCESS' && t.result === '42');
    });
    ac.abort();
    expect(events[0]!.event).toBe('snapshot');
    expect(events[0]!.data).toMatchObject({ broker: 'memory', tasks: [] });
  });

  it('refuses cross-site POSTs, foreign Host headers and malformed requests', async () => {
    const c = await cluster({ queues: ['default'] });
    const purge = '/api/queues/default/purge';
    const noHeader = await c.post<{ error: string }>(purge, {}, {});
    expect(noHeader.status).toBe(403);
    expect(noHeader.body.error).toContain('X-Celeriac-Csrf');
    expect((await c.post(purge, {}, { 'X-Celeriac-Csrf': '1', Origin: 'http://evil.example' })).status).toBe(403);
    expect((await c.post(purge, {}, { 'X-Celeriac-Csrf': '1', Origin: 'null' })).status).toBe(403);
    expect((await c.post(purge, {}, { 'X-Celeriac-Csrf': '1', 'Sec-Fetch-Site': 'cross-site' })).status).toBe(403);
    const sameOrigin = await c.post(purge, {}, { 'X-Celeriac-Csrf': '1', Origin: new URL(c.dashboard.url).origin, 'Sec-Fetch-Site': 'same-origin' });
    expect(sameOrigin.status).toBe(200);

    // DNS rebinding: a page on evil.example resolving to 127.0.0.1 sends its own Host.
    const rebound = await rawRequest(c.url('/api/state'), { headers: { Host: `evil.example:${c.dashboard.port}` } });
    expect(rebound.status).toBe(403);
    expect((await rawRequest(c.url('/api/state'), { headers: { Host: `localhost:${c.dashboard.port}` } })).status).toBe(200);

    expect((await fetch(c.url(purge))).status).toBe(405);
    const notJson = await rawRequest(c.url(purge), { method: 'POST', headers: { 'X-Celeriac-Csrf': '1', 'Content-Type': 'text/plain' }, body: 'x' });
    expect(notJson.status).toBe(415);
    const big = await rawRequest(c.url(purge), {
      method: 'POST',
      headers: { 'X-Celeriac-Csrf': '1', 'Content-Type': 'application/json' },
      body: JSON.stringify({ pad: 'x'.repeat(70_000) }),
    });
    expect(big.status).toBe(413);
    expect((await fetch(c.url('/api/nothing'))).status).toBe(404);
    expect((await fetch(c.url('/api/tasks/%E0%A4%A'))).status).toBe(400);
  });

  it('lists the runtime schedules, and removes one by a POST behind the CSRF guard', async () => {
    const c = await cluster();
    const daily = await c.app.schedules.upsert('daily <b>', { task: 'report', args: [{ to: '<script>' }], cron: '0 9 * * *', timezone: 'Europe/Stockholm', limit: 5 });
    await c.app.schedules.upsert('ping', { task: 'ops.ping', everyMs: 30_000, endAt: Date.UTC(2030, 0, 1), catchUp: 'none' });
    const listed = await c.getJson<SchedulesView>('/api/schedules');
    expect(listed.status).toBe(200);
    expect(listed.body.supported).toBe(true);
    expect(listed.body.schedules).toEqual([
      expect.objectContaining({ id: 'daily <b>', task: 'report', args: '[{"to":"<script>"}]', timing: 'cron "0 9 * * *" Europe/Stockholm', limit: 5, runCount: 0, nextRunAt: daily.entry.nextRunAt }),
      expect.objectContaining({ id: 'ping', timing: 'every 30 s', catchUp: 'none', endAt: Date.UTC(2030, 0, 1), limit: null, lastRunAt: null }),
    ]);

    const path = `/api/schedules/${encodeURIComponent('daily <b>')}/remove`;
    const forged = await c.post<{ error: string }>(path, {}, {});
    expect(forged.status).toBe(403);
    expect(forged.body.error).toContain('X-Celeriac-Csrf');
    expect((await c.post(path, {}, { 'X-Celeriac-Csrf': '1', Origin: 'http://evil.example' })).status).toBe(403);
    expect((await fetch(c.url(path))).status).toBe(405);
    expect(await c.app.schedules.get('daily <b>')).toBeDefined(); // refused requests removed nothing
    expect(await c.post(path)).toEqual({ status: 200, body: { id: 'daily <b>', removed: true } });
    expect(await c.app.schedules.get('daily <b>')).toBeUndefined();
    expect((await c.post(path)).status).toBe(404);
    expect((await c.post(`/api/schedules/${'x'.repeat(201)}/remove`)).status).toBe(400);
    expect((await c.getJson<SchedulesView>('/api/schedules')).body.schedules.map((s) => s.id)).toEqual(['ping']);
  });

  it('says so when the result backend cannot store runtime schedules (GET), and answers 501 to a remove', async () => {
    const c = await cluster();
    const plain = Object.assign(Object.create(c.backend) as typeof c.backend, { capabilities: { ...c.backend.capabilities, schedules: false } });
    const d = await createDashboard({ broker: createMemoryBroker({ server: c.server }), resultBackend: plain, port: 0 });
    try {
      const r = await fetch(new URL('/api/schedules', d.url));
      expect(await r.json()).toEqual({ supported: false, reason: expect.stringContaining('cannot store runtime schedules'), schedules: [] });
      const post = await fetch(new URL('/api/schedules/x/remove', d.url), { method: 'POST', headers: { 'X-Celeriac-Csrf': '1', 'Content-Type': 'application/json' }, body: '{}' });
      expect(post.status).toBe(501);
    } finally {
      await d.close();
    }
  });

  it('serves a page that runs only its own script and cannot be framed', async () => {
    const c = await cluster();
    const res = await fetch(c.dashboard.url);
    expect(res.status).toBe(200);
    const csp = res.headers.get('content-security-policy')!;
    const nonce = /script-src 'nonce-([^']+)'/.exec(csp)![1]!;
    const html = await res.text();
    expect(html).toContain(`<script nonce="${nonce}">`);
    expect(csp).toContain("frame-ancestors 'none'");
    expect(csp).toContain("connect-src 'self'");
    expect(res.headers.get('x-content-type-options')).toBe('nosniff');
    expect(html).not.toMatch(/<(script|link)[^>]+(src|href)="https?:/);
    expect(html).not.toContain('innerHTML');
  });

  it('closes idempotently, ending open event streams', async () => {
    const c = await startCluster();
    const res = await fetch(c.url('/api/events'));
    const p = readEvents(res, () => false).catch((e: unknown) => e);
    const first = c.dashboard.close();
    expect(c.dashboard.close()).toBe(first);
    await first;
    expect(String(await p)).toMatch(/ended|terminated|aborted|closed/i);
    await c.close();
  });
});
