import { connect } from 'node:net';

/** The servers integration tests talk to (DESIGN.md §8). */
export type ServerKind = 'redis' | 'amqp' | 'nats' | 'postgres';

/** Every server kind, in the order the global setup looks for them. */
export const SERVER_KINDS: readonly ServerKind[] = ['redis', 'amqp', 'nats', 'postgres'];

/** The environment variable, loopback default URL and default port of each server (DESIGN.md §8). */
export const SERVER_ENV: Readonly<Record<ServerKind, { env: string; url: string; port: number }>> = {
  redis: { env: 'REDIS_URL', url: 'redis://127.0.0.1:6379', port: 6379 },
  amqp: { env: 'AMQP_URL', url: 'amqp://guest:guest@127.0.0.1:5672', port: 5672 },
  nats: { env: 'NATS_URL', url: 'nats://127.0.0.1:4222', port: 4222 },
  postgres: { env: 'POSTGRES_URL', url: 'postgres://postgres@127.0.0.1:5432/test', port: 5432 },
};

/** The value of the server's variable, or undefined when it is unset or empty. */
export function envUrl(kind: ServerKind, env: NodeJS.ProcessEnv = process.env): string | undefined {
  const v = env[SERVER_ENV[kind].env];
  return v === undefined || v === '' ? undefined : v;
}

/** The server's URL: its environment variable (`REDIS_URL`, …; empty counts as unset), else the loopback default. */
export function serverUrl(kind: ServerKind, env: NodeJS.ProcessEnv = process.env): string {
  return envUrl(kind, env) ?? SERVER_ENV[kind].url;
}

/** True if something accepts TCP connections at `url`'s host and port (the kind's default port if none) within `timeoutMs`. */
export function isAnswering(kind: ServerKind, timeoutMs = 1_000, url = serverUrl(kind)): Promise<boolean> {
  const u = new URL(url);
  const port = u.port === '' ? SERVER_ENV[kind].port : Number(u.port);
  const host = u.hostname === '' ? '127.0.0.1' : u.hostname.replace(/^\[|\]$/g, '');
  return new Promise((resolve) => {
    const socket = connect({ host, port });
    const done = (ok: boolean): void => {
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
