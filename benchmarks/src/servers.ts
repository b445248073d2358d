import { connect as tcpConnect } from 'node:net';
import { cpus, platform, release, totalmem } from 'node:os';
import { connect as amqpConnect } from 'amqplib';
import { connect as natsConnect } from '@nats-io/transport-node';
import { Redis } from 'ioredis';
import pg from 'pg';
import { natsConnectOptions } from './driver-raw-nats.js';
import type { MachineInfo, ServerKind } from './record.js';

// The same discovery as the test harness (test/src/servers.ts, DESIGN.md §8); copied because a
// published package must not import from the private test workspace.
const DEFAULTS: Readonly<Record<ServerKind, { env: string; url: string; port: number }>> = {
  redis: { env: 'REDIS_URL', url: 'redis://127.0.0.1:6379', port: 6379 },
  amqp: { env: 'AMQP_URL', url: 'amqp://guest:guest@127.0.0.1:5672', port: 5672 },
  nats: { env: 'NATS_URL', url: 'nats://127.0.0.1:4222', port: 4222 },
  postgres: { env: 'POSTGRES_URL', url: 'postgres://postgres@127.0.0.1:5432/test', port: 5432 },
};

/** The environment variable that names a server's URL. */
export function serverEnv(kind: ServerKind): string {
  return DEFAULTS[kind].env;
}

/** The server's URL: its environment variable (`REDIS_URL`, `AMQP_URL`, `NATS_URL`, `POSTGRES_URL`) or the loopback default. */
export function serverUrl(kind: ServerKind, env: NodeJS.ProcessEnv = process.env): string {
  const d = DEFAULTS[kind];
  const v = env[d.env];
  return v === undefined || v === '' ? d.url : v;
}

/** True if something accepts TCP connections at the server's host and port within `timeoutMs`. */
export function isAnswering(kind: ServerKind, timeoutMs = 1000, url = serverUrl(kind)): Promise<boolean> {
  const u = new URL(url);
  const port = u.port === '' ? DEFAULTS[kind].port : Number(u.port);
  const host = u.hostname === '' ? '127.0.0.1' : u.hostname.replace(/^\[|\]$/g, '');
  return new Promise((resolve) => {
    const socket = tcpConnect({ host, port });
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

/** `amqp://user:secret@host` → `amqp://user:***@host`, for printing. */
export function redact(url: string): string {
  return url.replace(/\/\/([^:/@]*):[^@/]*@/, '//$1:***@');
}

/** The server's version as it reports it, or undefined when it cannot be asked. */
export async function serverVersion(kind: ServerKind, url: string): Promise<string | undefined> {
  try {
    switch (kind) {
      case 'redis': {
        const r = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1, retryStrategy: () => null });
        r.on('error', () => undefined);
        try {
          await r.connect();
          const info = await r.info('server');
          const v = /redis_version:([^\r\n]+)/.exec(info)?.[1];
          return v === undefined ? undefined : `Redis ${v}`;
        } finally {
          r.disconnect();
        }
      }
      case 'amqp': {
        const m = await amqpConnect(url);
        try {
          const v = m.connection.serverProperties.version;
          return typeof v === 'string' ? `RabbitMQ ${v}` : undefined;
        } finally {
          await m.close().catch(() => undefined);
        }
      }
      case 'nats': {
        const nc = await natsConnect({ ...natsConnectOptions(url), reconnect: false });
        try {
          const v = nc.info?.version;
          return v === undefined ? undefined : `nats-server ${v}${nc.info?.jetstream === true ? ' (JetStream)' : ''}`;
        } finally {
          await nc.close().catch(() => undefined);
        }
      }
      case 'postgres': {
        const c = new pg.Client({ connectionString: url, connectionTimeoutMillis: 2_000 });
        c.on('error', () => undefined);
        await c.connect();
        try {
          const { rows } = await c.query<{ v: string }>("SELECT current_setting('server_version') AS v");
          return `PostgreSQL ${rows[0]?.v ?? '?'}`;
        } finally {
          await c.end().catch(() => undefined);
        }
      }
    }
  } catch {
    return undefined;
  }
}

/** What the report says about this machine. */
export function machineInfo(): MachineInfo {
  const list = cpus();
  return {
    cpuModel: list[0]?.model.trim() ?? 'unknown',
    cores: list.length,
    memoryMb: Math.round(totalmem() / (1024 * 1024)),
    os: `${platform()} ${release()}`,
  };
}
