import { dockerEngineReachable } from './docker.js';
import { selectServer, SERVER_ENV, type Selection } from './server-selection.js';
import { isAnswering, type ServerKind } from './servers.js';
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
  const envUrl = process.env[SERVER_ENV[kind].env];
  const answering = await isAnswering(kind);
  const askDocker = !answering && (envUrl === undefined || envUrl === '');
  const dockerEngine = askDocker ? await dockerEngineReachable() : false;
  return selectServer({ kind, envUrl, answering, dockerEngine, ci: process.env['CI'] === 'true' });
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
