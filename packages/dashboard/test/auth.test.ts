import { randomBytes } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { createMemoryBroker, isCeleriacError } from '@celeriac/core';
import { createDashboard, DashboardErrorCode, runDashboardCli } from '../src/index.js';
import { readEvents, startCluster, type Cluster } from './helpers.js';

const clusters: Cluster[] = [];
afterEach(async () => {
  await Promise.all(clusters.splice(0).map((c) => c.close()));
});

const ROUTES = ['/', '/api/state', '/api/events', '/api/tasks', '/api/queues/default/dead-letters', '/api/schedules', '/metrics'];

async function refusal(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (err) {
    return err;
  }
  throw new Error('expected a refusal');
}

describe('binding and authentication', () => {
  it.each(['0.0.0.0', '::', '192.0.2.10', 'example.com'])('refuses to bind %s without a token or basic auth', async (host) => {
    const broker = createMemoryBroker();
    const err = await refusal(createDashboard({ broker, host, port: 0 }));
    expect(isCeleriacError(err, DashboardErrorCode.INSECURE_BIND)).toBe(true);
    expect((err as Error).message).toContain(`refusing to bind ${host} without authentication`);
    await broker.close();
  });

  it('lets a wider bind through once credentials are set (192.0.2.10 is not ours, so listening then fails)', async () => {
    const err = await refusal(createDashboard({ broker: createMemoryBroker(), host: '192.0.2.10', port: 0, token: randomBytes(16).toString('hex') }));
    expect(isCeleriacError(err, DashboardErrorCode.LISTEN)).toBe(true);
  });

  it('refuses credentials too weak to count', async () => {
    for (const opts of [{ token: 'short' }, { basicAuth: { user: 'ops', password: 'pw' } }, { basicAuth: { user: 'a:b', password: 'long enough pw' } }]) {
      const err = await refusal(createDashboard({ broker: createMemoryBroker(), host: '0.0.0.0', port: 0, ...opts }));
      expect(isCeleriacError(err, DashboardErrorCode.INSECURE_BIND)).toBe(true);
    }
  });

  it('with a token, every route needs it: Bearer header, or the sign-in form and its cookie', async () => {
    const token = randomBytes(16).toString('hex');
    const c = await startCluster({ token });
    clusters.push(c);
    for (const path of ROUTES) {
      const res = await fetch(c.url(path));
      expect(res.status, path).toBe(401);
      await res.body?.cancel();
      const wrong = await fetch(c.url(path), { headers: { Authorization: `Bearer ${token}x` } });
      expect(wrong.status, path).toBe(401);
      await wrong.body?.cancel();
    }
    const post = await c.post('/api/queues/default/purge', {}, { 'X-Celeriac-Csrf': '1' });
    expect(post.status).toBe(401);
    const bearer = { Authorization: `Bearer ${token}` };
    expect((await c.getJson('/api/state', bearer)).status).toBe(200);
    expect((await c.post('/api/queues/default/purge', {}, { ...bearer, 'X-Celeriac-Csrf': '1' })).body).toEqual({ queue: 'default', purged: 0 });
    // Removing a schedule needs the credentials too, and then the CSRF header.
    await c.app.schedules.upsert('nightly', { task: 'n', cron: '0 3 * * *' });
    expect((await c.post('/api/schedules/nightly/remove', {}, { 'X-Celeriac-Csrf': '1' })).status).toBe(401);
    expect((await c.post('/api/schedules/nightly/remove', {}, bearer)).status).toBe(403);
    expect(await c.app.schedules.get('nightly')).toBeDefined();
    expect((await c.post('/api/schedules/nightly/remove', {}, { ...bearer, 'X-Celeriac-Csrf': '1' })).body).toEqual({ id: 'nightly', removed: true });

    // A browser without credentials gets the sign-in form.
    const page = await fetch(c.dashboard.url, { headers: { Accept: 'text/html' } });
    expect(page.status).toBe(401);
    expect(await page.text()).toContain('Access token');
    const bad = await fetch(c.url('/login'), { method: 'POST', body: new URLSearchParams({ token: 'nope' }), redirect: 'manual' });
    expect(bad.status).toBe(401);
    expect(await bad.text()).toContain('That token is not valid.');
    const good = await fetch(c.url('/login'), { method: 'POST', body: new URLSearchParams({ token }), redirect: 'manual' });
    expect(good.status).toBe(303);
    const setCookie = good.headers.get('set-cookie')!;
    expect(setCookie).toMatch(new RegExp(`^celeriac_dashboard_${c.dashboard.port}=[^;]+; Path=/; HttpOnly; SameSite=Strict$`));
    expect(setCookie).not.toContain(token);
    const cookie = { Cookie: setCookie.split(';')[0]! };
    expect((await fetch(c.dashboard.url, { headers: cookie })).status).toBe(200);
    expect((await c.getJson('/api/state', cookie)).status).toBe(200);
    const metrics = await fetch(c.url('/metrics'), { headers: cookie });
    expect(await metrics.text()).toContain('celeriac_workers_online 0');
    const events = await readEvents(await fetch(c.url('/api/events'), { headers: cookie }), (e) => e === 'snapshot');
    expect(events[0]!.event).toBe('snapshot');
    // A cookie is not a CSRF token: POSTs still need the header.
    expect((await c.post('/api/queues/default/purge', {}, cookie)).status).toBe(403);
  });

  it('with basic auth, the browser is asked for it, and only the right pair passes', async () => {
    const c = await startCluster({ basicAuth: { user: 'ops', password: 'correct horse' } });
    clusters.push(c);
    const basic = (u: string, p: string) => ({ Authorization: `Basic ${Buffer.from(`${u}:${p}`).toString('base64')}` });
    for (const path of ROUTES) {
      const res = await fetch(c.url(path));
      expect(res.status, path).toBe(401);
      expect(res.headers.get('www-authenticate')).toContain('Basic realm="celeriac dashboard"');
      await res.body?.cancel();
    }
    expect((await c.getJson('/api/state', basic('ops', 'wrong horse'))).status).toBe(401);
    expect((await c.getJson('/api/state', basic('root', 'correct horse'))).status).toBe(401);
    expect((await c.getJson('/api/state', basic('ops', 'correct horse'))).status).toBe(200);
    expect((await fetch(c.dashboard.url, { headers: basic('ops', 'correct horse') })).status).toBe(200);
  });
});

describe('runDashboardCli', () => {
  const io = () => {
    const out: string[] = [];
    const err: string[] = [];
    return {
      out,
      err,
      io: { stdout: { write: (s: string) => out.push(s) }, stderr: { write: (s: string) => err.push(s) }, env: {} as Record<string, string> },
    };
  };

  it('serves until stopped, then exits 0', async () => {
    const { out, io: base } = io();
    const ac = new AbortController();
    let status = 0;
    const code = await runDashboardCli(['--broker', 'memory://', '--port', '0', '--queues', 'default,mail'], {
      ...base,
      signal: ac.signal,
      onListening: (d) => {
        void fetch(new URL('api/state', d.url))
          .then(async (r) => {
            status = r.status;
            const body = (await r.json()) as { queues: { name: string }[] };
            expect(body.queues.map((q) => q.name)).toEqual(['default', 'mail']);
          })
          .finally(() => ac.abort());
      },
    });
    expect(code).toBe(0);
    expect(status).toBe(200);
    expect(out.join('')).toMatch(/^celeriac dashboard on http:\/\/127\.0\.0\.1:\d+\/ \(broker memory:\/\/\)/);
  });

  it('reads the token from the environment and requires it', async () => {
    const { io: base } = io();
    const ac = new AbortController();
    const token = randomBytes(12).toString('hex');
    let statuses: number[] = [];
    const code = await runDashboardCli(['--port', '0'], {
      ...base,
      env: { CELERIAC_BROKER_URL: 'memory://', CELERIAC_DASHBOARD_TOKEN: token },
      signal: ac.signal,
      onListening: (d) => {
        void Promise.all([fetch(new URL('metrics', d.url)), fetch(new URL('metrics', d.url), { headers: { Authorization: `Bearer ${token}` } })])
          .then((rs) => (statuses = rs.map((r) => r.status)))
          .finally(() => ac.abort());
      },
    });
    expect(code).toBe(0);
    expect(statuses).toEqual([401, 200]);
  });

  it('exits 1 with one clear line for a wide bind without auth, 2 for usage errors', async () => {
    const a = io();
    expect(await runDashboardCli(['--broker', 'memory://', '--host', '0.0.0.0', '--port', '0'], a.io)).toBe(1);
    expect(a.err.join('')).toMatch(/^celeriac dashboard: refusing to bind 0\.0\.0\.0 without authentication.*\[ERR_INSECURE_BIND\]\n$/);
    const b = io();
    expect(await runDashboardCli([], b.io)).toBe(2);
    expect(b.err.join('')).toContain('--broker is required');
    const c = io();
    expect(await runDashboardCli(['--broker', 'memory://', '--port', 'eighty'], c.io)).toBe(2);
    expect(c.err.join('')).toContain('expected a port number');
    const d = io();
    expect(await runDashboardCli(['--broker', 'redis://u:secret@[bad'], d.io)).toBe(2);
    expect(d.err.join('')).not.toContain('secret');
    const e = io();
    expect(await runDashboardCli(['--help'], e.io)).toBe(0);
    expect(e.out.join('')).toContain('--result-backend <url>');
    const f = io();
    expect(await runDashboardCli(['--broker', 'memory://', '--basic-auth', 'nopassword'], f.io)).toBe(2);
  });
});
