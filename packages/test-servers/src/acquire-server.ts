import { dockerEngineReachable } from './docker.js';
import { selectServer, type Selection } from './server-selection.js';
import { envUrl, isAnswering, serverUrl, type ServerKind } from './servers.js';
import { underCi } from './skip.js';
import { startContainer } from './testcontainers.js';

/** A server for integration tests, wherever it came from. */
export interface AcquiredServer {
  readonly kind: ServerKind;
  readonly url: string;
  readonly source: 'env' | 'loopback' | 'testcontainers';
  /** Stops the container, if one was started; nothing otherwise. */
  release(): Promise<void>;
}

/** Gather the facts `selectServer` needs; Docker is only asked when nothing answers and no URL is set. */
export async function probeServer(kind: ServerKind): Promise<Selection> {
  const url = envUrl(kind);
  const answering = await isAnswering(kind, 1_000, serverUrl(kind));
  const dockerEngine = !answering && url === undefined ? await dockerEngineReachable() : false;
  return selectServer({ kind, envUrl: url, answering, dockerEngine, ci: underCi() });
}

/**
 * Whether the integration tests of `kind` should run, in a test file (top-level await, then
 * `describe.skipIf(!ok)`): true when the server answers at `serverUrl(kind)`. A missing server skips
 * them with one clear line locally and throws under CI=true. Docker is not asked here: the global
 * setup already started a container for every missing server when an engine was reachable, and set
 * its URL variable.
 */
export async function requireServer(kind: ServerKind): Promise<boolean> {
  const sel = selectServer({ kind, envUrl: envUrl(kind), answering: await isAnswering(kind), dockerEngine: false, ci: underCi() });
  switch (sel.action) {
    case 'use':
      return true;
    case 'skip':
      process.stderr.write(`${sel.line}\n`);
      return false;
    case 'fail':
      throw new Error(sel.message);
    case 'testcontainers':
      throw new Error('unreachable: no Docker engine was assumed');
  }
}

/**
 * Find or start a server of `kind` (see `selectServer` for the order). Resolves undefined when the
 * tests should skip (the line is printed once); throws under CI=true when none can be had.
 */
export async function acquireServer(kind: ServerKind): Promise<AcquiredServer | undefined> {
  const sel = await probeServer(kind);
  switch (sel.action) {
    case 'use':
      return { kind, url: sel.url, source: sel.source, release: () => Promise.resolve() };
    case 'skip':
      process.stderr.write(`${sel.line}\n`);
      return undefined;
    case 'fail':
      throw new Error(sel.message);
    case 'testcontainers': {
      const c = await startContainer(kind);
      return { kind, url: c.url, source: 'testcontainers', release: c.stop };
    }
  }
}
