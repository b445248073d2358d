import { probeServer } from './acquire-server.js';
import { SERVER_ENV, SERVER_KINDS } from './servers.js';
import { startContainer } from './testcontainers.js';

/**
 * Vitest global setup (`test.globalSetup: ['packages/test-servers/src/global-setup.ts']`): once per
 * run, for each server (Redis, RabbitMQ, NATS, PostgreSQL) that is missing while a Docker engine is
 * reachable, start it with testcontainers and export its URL variable, so `requireServer`/`serverUrl`
 * in every test file (forked after this runs) see it. The returned teardown stops the containers.
 * Everything else is left to `requireServer` (skip locally, fail in CI).
 */
export async function setup(): Promise<() => Promise<void>> {
  const stops: (() => Promise<void>)[] = [];
  try {
    for (const kind of SERVER_KINDS) {
      const sel = await probeServer(kind).catch(() => undefined);
      if (sel?.action !== 'testcontainers') continue;
      const c = await startContainer(kind);
      process.env[SERVER_ENV[kind].env] = c.url;
      stops.push(c.stop);
    }
  } catch (err) {
    await Promise.allSettled(stops.map((stop) => stop()));
    throw err;
  }
  return async () => {
    await Promise.all(stops.map((stop) => stop()));
  };
}
