import { connect } from 'node:net';

/** The brokers integration tests and benchmarks talk to (DESIGN.md §8). */
export type ServerKind = 'redis' | 'amqp' | 'nats';

const DEFAULTS: Readonly<Record<ServerKind, { env: string; url: string }>> = {
  redis: { env: 'REDIS_URL', url: 'redis://127.0.0.1:6379' },
  amqp: { env: 'AMQP_URL', url: 'amqp://guest:guest@127.0.0.1:5672' },
  nats: { env: 'NATS_URL', url: 'nats://127.0.0.1:4222' },
};

const DEFAULT_PORTS: Readonly<Record<ServerKind, number>> = { redis: 6379, amqp: 5672, nats: 4222 };

/** The server's URL: its environment variable, or the loopback default. */
export function serverUrl(kind: ServerKind): string {
  const d = DEFAULTS[kind];
  return process.env[d.env] ?? d.url;
}

/** True if something accepts TCP connections at the server's host and port within `timeoutMs`. */
export function isAnswering(kind: ServerKind, timeoutMs = 1000): Promise<boolean> {
  const u = new URL(serverUrl(kind));
  const port = u.port === '' ? DEFAULT_PORTS[kind] : Number(u.port);
  const host = u.hostname === '' ? '127.0.0.1' : u.hostname.replace(/^\[|\]$/g, '');
  return new Promise((resolve) => {
    const socket = connect({ host, port });
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

/**
 * Whether tests of `kind` should run. A missing server skips them with one clear line locally, and
 * fails under CI=true (where .ci/run must have started it).
 */
export async function requireServer(kind: ServerKind): Promise<boolean> {
  if (await isAnswering(kind)) return true;
  const line = `${kind} is not answering at ${redact(serverUrl(kind))}`;
  if (process.env['CI'] === 'true') throw new Error(`${line}; CI must start it (see DESIGN.md §8)`);
  process.stderr.write(`skipping ${kind} integration tests: ${line}\n`);
  return false;
}

function redact(url: string): string {
  return url.replace(/\/\/([^:/@]*):[^@/]*@/, '//$1:***@');
}
