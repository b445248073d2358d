import { redact, SERVER_ENV, type ServerKind } from './servers.js';

/** What the harness found out about one server; `selectServer` decides from it alone. */
export interface SelectionInput {
  kind: ServerKind;
  /** The value of the server's variable (REDIS_URL, AMQP_URL, NATS_URL, POSTGRES_URL), if set. */
  envUrl: string | undefined;
  /** Whether the URL in use (the variable's, else the loopback default) accepts TCP connections. */
  answering: boolean;
  /** Whether a Docker engine answers (`docker info` exits 0). Only asked when it matters. */
  dockerEngine: boolean;
  /** CI=true: a server that cannot be had is a failure, not a skip. */
  ci: boolean;
}

/** What to do about one server: use a URL, start a container, skip its tests (with this line) or fail. */
export type Selection =
  | { action: 'use'; url: string; source: 'env' | 'loopback' }
  | { action: 'testcontainers'; kind: ServerKind }
  | { action: 'skip'; line: string }
  | { action: 'fail'; message: string };

/**
 * Where a server for integration tests comes from, in this order:
 * 1. its URL variable is set → that URL, if it answers. An explicit URL is never replaced by a
 *    container: if it does not answer, the tests skip (fail under CI);
 * 2. the loopback default answers → use it;
 * 3. a Docker engine is reachable → start one with testcontainers;
 * 4. otherwise skip with one clear line locally, fail under CI=true.
 * A pure function, so every branch is unit-tested without servers or Docker. Passwords in URLs are
 * never printed.
 */
export function selectServer(input: SelectionInput): Selection {
  const { kind, envUrl, answering, dockerEngine, ci } = input;
  const { env, url } = SERVER_ENV[kind];
  const miss = (line: string, hint: string): Selection =>
    ci ? { action: 'fail', message: `${line}; ${hint}` } : { action: 'skip', line: `skipping ${kind} integration tests: ${line}` };
  if (envUrl !== undefined && envUrl !== '') {
    if (answering) return { action: 'use', url: envUrl, source: 'env' };
    return miss(`${env}=${redact(envUrl)} is not answering`, `start that server or unset ${env}`);
  }
  if (answering) return { action: 'use', url, source: 'loopback' };
  if (dockerEngine) return { action: 'testcontainers', kind };
  return miss(
    `${kind} is not answering at ${redact(url)} and no Docker engine is reachable`,
    `CI must start it (see DESIGN.md §8) or provide Docker`,
  );
}
