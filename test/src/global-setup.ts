import { probeServer } from './acquire-server.js';
import { SERVER_ENV } from './server-selection.js';
import type { ServerKind } from './servers.js';
import { startContainer } from './testcontainers.js';

/**
 * Vitest global setup (`test.globalSetup: ['test/src/global-setup.ts']`): once per run, for each
 * server that is missing while a Docker engine is reachable, start it with testcontainers and export
 * its URL variable, so `requireServer`/`serverUrl` in every test file (forked after this runs) see it.
 * Containers stop in the teardown. Everything else is left to `requireServer` (skip locally, fail in CI).
 */
export async function setup(): Promise<() => Promise<void>> {
  const kinds: ServerKind[] = ['redis', 'amqp', 'nats'];
  const stops: (() => Promise<void>)[] = [];
  for (const kind of kinds) {
    const sel = await probeServer(kind).catch(() => undefined);
    if (sel?.action !== 'testcontainers') continue;
    const c = await startContainer(kind);
    process.env[SERVER_ENV[kind].env] = c.url;
    stops.push(c.stop);
  }
  return async () => {
    await Promise.all(stops.map((stop) => stop()));
  };
}
