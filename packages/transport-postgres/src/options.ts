import { CeleriacError, ErrorCode, type UrlOptions } from '@celeriac/core';

/** Options the broker and the result backend share. In a URL they are query parameters with the same names. */
export interface PostgresCommonOptions {
  /**
   * The schema every table, sequence and notification channel lives in (quoted, so any name of at
   * most 63 bytes works, case-sensitively; not `pg_…`). @default 'celeriac'
   */
  prefix?: string;
  /**
   * Create and migrate the schema on first connect (under a transaction-scoped advisory lock, so
   * concurrent first connects are safe). `false` only checks that the schema has exactly the version
   * this code needs, for teams whose DBAs apply the SQL in the README. @default true
   */
  migrate?: boolean;
  /**
   * Size of the connection pool for statements (opened on demand; idle connections close after 10 s).
   * LISTEN runs on one more, dedicated connection. @default 4
   */
  poolSize?: number;
  /** How long to wait for a connection before a call rejects with ERR_CONNECTION. @default 10_000 */
  connectTimeoutMs?: number;
  /**
   * How often expired rows (results, counters, leases, revocations, token buckets, spilled broadcasts)
   * are deleted, in batches, by every client (concurrent cleaners skip each other's rows). 0 disables
   * the timer (call `cleanup()` yourself). @default 60_000
   */
  cleanupIntervalMs?: number;
}

/** Options of the PostgreSQL broker. */
export interface PostgresBrokerOptions extends PostgresCommonOptions {
  /**
   * How long a claimed message stays leased to its consumer without a renewal: how long a dead
   * worker's tasks wait before they are delivered again. @default 30_000
   */
  visibilityTimeoutMs?: number;
  /**
   * The longest a claim waits for a notification before it looks at the table again (a safety net:
   * publishes, requeues and delays coming due wake waiting claims by themselves). @default 5_000
   */
  pollIntervalMs?: number;
  /** Publishes refused above this size (headers + body). @default 16 MiB */
  maxMessageBytes?: number;
  /**
   * Run `VACUUM (SKIP_LOCKED)` on the message table once this many row versions died through this
   * broker's claims and settles (at most every 2 s), so the hot table stays small even where
   * autovacuum is slow or off. 0: leave it to autovacuum. @default 20_000
   */
  vacuumEveryRows?: number;
}

/** Options of the PostgreSQL result backend. */
export type PostgresResultBackendOptions = PostgresCommonOptions;

/** Broker options with every default filled in. */
export type ResolvedBrokerOptions = Required<PostgresBrokerOptions>;
/** Result backend options with every default filled in. */
export type ResolvedResultBackendOptions = Required<PostgresResultBackendOptions>;

const COMMON_DEFAULTS: Required<PostgresCommonOptions> = {
  prefix: 'celeriac',
  migrate: true,
  poolSize: 4,
  connectTimeoutMs: 10_000,
  cleanupIntervalMs: 60_000,
};

/** Defaults of {@link PostgresBrokerOptions}. */
export const DEFAULT_BROKER_OPTIONS: ResolvedBrokerOptions = {
  ...COMMON_DEFAULTS,
  visibilityTimeoutMs: 30_000,
  pollIntervalMs: 5_000,
  maxMessageBytes: 16 * 1024 * 1024,
  vacuumEveryRows: 20_000,
};

/** Defaults of {@link PostgresResultBackendOptions}. */
export const DEFAULT_RESULT_BACKEND_OPTIONS: ResolvedResultBackendOptions = { ...COMMON_DEFAULTS };

type Spec = { kind: 'int'; min: number; max: number } | { kind: 'schema' } | { kind: 'bool' };

const COMMON_SPECS: Readonly<Record<keyof PostgresCommonOptions, Spec>> = {
  prefix: { kind: 'schema' },
  migrate: { kind: 'bool' },
  poolSize: { kind: 'int', min: 1, max: 1000 },
  connectTimeoutMs: { kind: 'int', min: 1, max: 600_000 },
  cleanupIntervalMs: { kind: 'int', min: 0, max: 86_400_000 },
};

const BROKER_SPECS: Readonly<Record<keyof PostgresBrokerOptions, Spec>> = {
  ...COMMON_SPECS,
  visibilityTimeoutMs: { kind: 'int', min: 100, max: 2_147_483_647 },
  pollIntervalMs: { kind: 'int', min: 10, max: 600_000 },
  maxMessageBytes: { kind: 'int', min: 1, max: 512 * 1024 * 1024 },
  vacuumEveryRows: { kind: 'int', min: 0, max: 1_000_000_000 },
};

/**
 * libpq parameters a URL may carry for the driver (TLS and session settings): they stay in the
 * connection string and are not celeriac options.
 */
export const DRIVER_PARAMS: ReadonlySet<string> = new Set([
  'sslmode',
  'sslrootcert',
  'sslcert',
  'sslkey',
  'ssl',
  'application_name',
  'options',
]);

/** Validate broker options (from a URL's query string or code) and fill in defaults; unknown names are an error. */
export function resolveBrokerOptions(input: UrlOptions | PostgresBrokerOptions): ResolvedBrokerOptions {
  return resolve(input, BROKER_SPECS, DEFAULT_BROKER_OPTIONS, 'broker');
}

/** Validate result backend options and fill in defaults; unknown names are an error. */
export function resolveResultBackendOptions(input: UrlOptions | PostgresResultBackendOptions): ResolvedResultBackendOptions {
  return resolve(input, COMMON_SPECS, DEFAULT_RESULT_BACKEND_OPTIONS, 'result backend');
}

function resolve<T extends object>(input: object, specs: Readonly<Record<string, Spec>>, defaults: T, what: string): T {
  const out: Record<string, unknown> = { ...(defaults as Record<string, unknown>) };
  for (const [name, value] of Object.entries(input)) {
    if (value === undefined || DRIVER_PARAMS.has(name)) continue;
    const spec = specs[name];
    if (spec === undefined) {
      throw new CeleriacError(
        ErrorCode.INVALID_URL,
        `unknown PostgreSQL ${what} option "${name}" (known: ${[...Object.keys(specs), ...DRIVER_PARAMS].join(', ')})`,
      );
    }
    out[name] = check(name, spec, value);
  }
  return out as T;
}

function check(name: string, spec: Spec, value: unknown): unknown {
  switch (spec.kind) {
    case 'int':
      if (typeof value !== 'number' || !Number.isInteger(value) || value < spec.min || value > spec.max) {
        throw new RangeError(`${name} must be an integer from ${spec.min} to ${spec.max}, got ${String(value)}`);
      }
      return value;
    case 'bool':
      if (typeof value !== 'boolean') throw new TypeError(`${name} must be true or false, got ${String(value)}`);
      return value;
    case 'schema':
      return checkSchemaName(name, value);
  }
}

/** A schema name PostgreSQL keeps as written: non-empty, at most 63 bytes, no NUL, not `pg_…`. */
function checkSchemaName(name: string, value: unknown): string {
  if (typeof value !== 'string' && typeof value !== 'number') throw new TypeError(`${name} must be a string, got ${String(value)}`);
  const s = String(value);
  if (s === '') throw new TypeError(`${name} must not be empty`);
  if (s.includes('\0')) throw new TypeError(`${name} must not contain a NUL character`);
  // Longer identifiers are truncated by the server without an error: refuse them instead.
  if (Buffer.byteLength(s, 'utf8') > 63) throw new RangeError(`${name} must be at most 63 bytes (a PostgreSQL identifier), got "${s}"`);
  if (s.toLowerCase().startsWith('pg_')) throw new RangeError(`${name} must not start with "pg_" (reserved for system schemas), got "${s}"`);
  return s;
}

/**
 * The options a factory gets from a URL, with `prefix` as written (the URL parser turns "007" into
 * 7) and the driver's own parameters left out.
 */
export function urlOptions(url: URL, parsed: UrlOptions): UrlOptions {
  const out: UrlOptions = {};
  for (const [k, v] of Object.entries(parsed)) if (!DRIVER_PARAMS.has(k)) out[k] = v;
  const rawPrefix = url.searchParams.get('prefix');
  if (rawPrefix !== null) out['prefix'] = rawPrefix;
  return out;
}

/** The connection string for the driver: the URL without celeriac's parameters (credentials stay in it, and are never logged). */
export function connectionString(url: URL): string {
  const u = new URL(url.href);
  for (const k of [...u.searchParams.keys()]) if (!DRIVER_PARAMS.has(k)) u.searchParams.delete(k);
  u.hash = '';
  return u.href;
}
