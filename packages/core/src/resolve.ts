import type { Broker } from './broker.js';
import type { Clock } from './clock.js';
import { CeleriacError, ErrorCode } from './errors.js';
import { redactUrl, type Logger } from './logger.js';
import { createMemoryBroker } from './memory-broker.js';
import { createMemoryResultBackend } from './memory-backend.js';
import type { ResultBackend } from './result-backend.js';

/** Options parsed from a URL's query string: numbers and booleans are converted. */
export type UrlOptions = Record<string, string | number | boolean>;

/** What a transport package's factory receives. */
export interface FactoryContext {
  clock?: Clock;
  logger?: Logger;
}

/**
 * `<kind>://<user>@<host>:<port><path>` of a connection URL, with the scheme's defaults filled in: a
 * broker's `resultWriteTarget` and a result backend's `writeTarget` are compared as these strings, so
 * equal strings must mean one server, user and database (`redis://a:6379` and `redis://A:6379/0` agree).
 */
export function serverTarget(kind: string, url: URL, defaults: { port: number; path: string }): string {
  const path = url.pathname === '' || url.pathname === '/' ? defaults.path : url.pathname;
  return `${kind}://${url.username}@${url.hostname.toLowerCase()}:${url.port || defaults.port}${path}`;
}

/** The shape every transport package exports under the name listed in the table below. */
export type BrokerFactory = (url: URL, options: UrlOptions, context: FactoryContext) => Broker;
export type ResultBackendFactory = (url: URL, options: UrlOptions, context: FactoryContext) => ResultBackend;

export interface Entry {
  pkg: string;
  factory: string;
}

/** The one static table from URL scheme to package. No global registry. */
const BROKERS: Readonly<Record<string, Entry | 'memory'>> = {
  'memory:': 'memory',
  'redis:': { pkg: '@celeriac/transport-redis', factory: 'createRedisBroker' },
  'rediss:': { pkg: '@celeriac/transport-redis', factory: 'createRedisBroker' },
  'amqp:': { pkg: '@celeriac/transport-amqp', factory: 'createAmqpBroker' },
  'amqps:': { pkg: '@celeriac/transport-amqp', factory: 'createAmqpBroker' },
  'nats:': { pkg: '@celeriac/transport-nats', factory: 'createNatsBroker' },
  'postgres:': { pkg: '@celeriac/transport-postgres', factory: 'createPostgresBroker' },
  'postgresql:': { pkg: '@celeriac/transport-postgres', factory: 'createPostgresBroker' },
};

const BACKENDS: Readonly<Record<string, Entry | 'memory'>> = {
  'memory:': 'memory',
  'redis:': { pkg: '@celeriac/result-redis', factory: 'createRedisResultBackend' },
  'rediss:': { pkg: '@celeriac/result-redis', factory: 'createRedisResultBackend' },
  'nats:': { pkg: '@celeriac/transport-nats', factory: 'createNatsResultBackend' },
  'postgres:': { pkg: '@celeriac/transport-postgres', factory: 'createPostgresResultBackend' },
  'postgresql:': { pkg: '@celeriac/transport-postgres', factory: 'createPostgresResultBackend' },
};

export function parseUrl(url: string): URL {
  try {
    return new URL(url);
  } catch (err) {
    throw new CeleriacError(ErrorCode.INVALID_URL, `not a valid URL: ${redactUrl(url)}`, { cause: err });
  }
}

/** `?visibilityTimeoutMs=5000&prefix=app&tls=true` → `{ visibilityTimeoutMs: 5000, prefix: 'app', tls: true }`. */
export function parseUrlOptions(url: URL): UrlOptions {
  const out: UrlOptions = {};
  for (const [k, v] of url.searchParams) {
    if (v === 'true' || v === 'false') out[k] = v === 'true';
    else if (v !== '' && /^-?\d+(\.\d+)?$/.test(v)) out[k] = Number(v);
    else out[k] = v;
  }
  return out;
}

/** @internal exported for tests: resolve `url` through `table`. */
export async function loadFromTable<T>(table: Readonly<Record<string, Entry | 'memory'>>, kind: string, url: string): Promise<[T, URL, UrlOptions] | 'memory'> {
  const u = parseUrl(url);
  const entry = table[u.protocol];
  if (entry === undefined) {
    throw new CeleriacError(
      ErrorCode.INVALID_URL,
      `no ${kind} for scheme "${u.protocol}" (known: ${Object.keys(table).join(', ')})`,
    );
  }
  if (entry === 'memory') return 'memory';
  let mod: Record<string, unknown>;
  try {
    mod = (await import(entry.pkg)) as Record<string, unknown>;
  } catch (err) {
    const code = (err as { code?: unknown }).code;
    if (code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND') {
      throw new CeleriacError(
        ErrorCode.MODULE_MISSING,
        `the ${u.protocol} ${kind} needs the package ${entry.pkg}: npm install ${entry.pkg}`,
        { cause: err },
      );
    }
    throw err;
  }
  const factory = mod[entry.factory];
  if (typeof factory !== 'function') {
    throw new CeleriacError(ErrorCode.MODULE_MISSING, `${entry.pkg} does not export ${entry.factory}`);
  }
  return [factory as T, u, parseUrlOptions(u)];
}

/** Resolve a broker URL through the static table, importing the transport package on demand. */
export async function resolveBroker(url: string, context: FactoryContext = {}): Promise<Broker> {
  const r = await loadFromTable<BrokerFactory>(BROKERS, 'broker', url);
  if (r === 'memory') {
    const opts = parseUrlOptions(parseUrl(url));
    const vt = opts['visibilityTimeoutMs'];
    return createMemoryBroker({
      ...(context.clock === undefined ? {} : { clock: context.clock }),
      ...(typeof vt === 'number' ? { visibilityTimeoutMs: vt } : {}),
    });
  }
  const [factory, u, options] = r;
  return factory(u, options, context);
}

/** Resolve a result backend URL the same way. */
export async function resolveResultBackend(url: string, context: FactoryContext = {}): Promise<ResultBackend> {
  const r = await loadFromTable<ResultBackendFactory>(BACKENDS, 'result backend', url);
  if (r === 'memory') return createMemoryResultBackend(context.clock === undefined ? {} : { clock: context.clock });
  const [factory, u, options] = r;
  return factory(u, options, context);
}
