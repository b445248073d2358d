import { request } from 'node:http';
import { createApp, createMemoryBroker, createMemoryResultBackend, MemoryServer, type App, type MemoryResultBackend } from '@celeriac/core';
import { createDashboard, type Dashboard, type DashboardOptions } from '../src/index.js';

/** A worker app and a dashboard sharing one memory server and result backend: two "processes". */
export interface Cluster {
  server: MemoryServer;
  backend: MemoryResultBackend;
  app: App;
  dashboard: Dashboard;
  url(path: string): string;
  getJson<T = Record<string, unknown>>(path: string, headers?: Record<string, string>): Promise<{ status: number; body: T }>;
  post<T = Record<string, unknown>>(path: string, body?: unknown, headers?: Record<string, string>): Promise<{ status: number; body: T }>;
  close(): Promise<void>;
}

export async function startCluster(opts: Partial<DashboardOptions> = {}): Promise<Cluster> {
  const server = new MemoryServer();
  const backend = createMemoryResultBackend();
  const app = createApp({ broker: createMemoryBroker({ server }), resultBackend: backend });
  const dashboard = await createDashboard({ broker: createMemoryBroker({ server }), resultBackend: backend, port: 0, ...opts });
  const url = (path: string) => new URL(path, dashboard.url).toString();
  return {
    server,
    backend,
    app,
    dashboard,
    url,
    async getJson<T>(path: string, headers: Record<string, string> = {}) {
      const r = await fetch(url(path), { headers });
      return { status: r.status, body: (await r.json()) as T };
    },
    async post<T>(path: string, body: unknown = {}, headers: Record<string, string> = { 'X-Celeriac-Csrf': '1' }) {
      const r = await fetch(url(path), {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', ...headers },
        body: JSON.stringify(body),
      });
      return { status: r.status, body: (await r.json()) as T };
    },
    async close() {
      await dashboard.close();
      await app.close();
      await backend.close();
      server.stopTimers();
    },
  };
}

/** A raw HTTP request (fetch will not let a test forge the Host header). */
export function rawRequest(
  url: string,
  opts: { method?: string; headers?: Record<string, string>; body?: string } = {},
): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: opts.method ?? 'GET', headers: opts.headers ?? {} }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(opts.body);
  });
}

/** Read Server-Sent Events from a fetch response until `until` returns true for one of them. */
export async function readEvents(
  res: Response,
  until: (event: string, data: unknown) => boolean,
): Promise<{ event: string; data: unknown }[]> {
  const seen: { event: string; data: unknown }[] = [];
  const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
  let buf = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`event stream ended; saw ${seen.map((s) => s.event).join(', ')}`);
    buf += value;
    let i: number;
    while ((i = buf.indexOf('\n\n')) >= 0) {
      const frame = buf.slice(0, i);
      buf = buf.slice(i + 2);
      let event = 'message';
      let data = '';
      for (const line of frame.split('\n')) {
        if (line.startsWith('event: ')) event = line.slice(7);
        else if (line.startsWith('data: ')) data += line.slice(6);
      }
      if (data === '') continue;
      const parsed: unknown = JSON.parse(data);
      seen.push({ event, data: parsed });
      if (until(event, parsed)) {
        await reader.cancel();
        return seen;
      }
    }
  }
}
