import { CeleriacError, ErrorCode, type UrlOptions } from '@celeriac/core';

/** Options of the Redis broker. In a URL they are query parameters with the same names. */
export interface RedisBrokerOptions {
  /**
   * How long a claimed delivery stays leased to its consumer without a renewal. Core renews every
   * lease a third of the way through, so this is how long a dead worker's tasks wait before they are
   * delivered again. @default 30_000
   */
  visibilityTimeoutMs?: number;
  /** Namespace of every key (`{<prefix>:<queue>}:…`) and broadcast channel. @default 'celeriac' */
  prefix?: string;
  /**
   * How long one blocking wait for new messages lasts on the server before the consumer re-checks
   * for work nobody announced (a safety net: new, delayed and recovered messages wake consumers
   * anyway). An idle consumer sends two commands per period. @default 10_000
   */
  blockTimeoutMs?: number;
  /** The most deliveries one claim script hands out. @default 50 */
  claimBatch?: number;
  /** Publishes refused above this size (headers + body). @default 16 MiB */
  maxMessageBytes?: number;
  /**
   * Reconnect attempts a command waits through before it rejects with a retryable ERR_CONNECTION
   * (ioredis `maxRetriesPerRequest`). Consumers retry by themselves, whatever this is. @default 20
   */
  maxRetriesPerRequest?: number;
  /** Treat the URL as one seed node of a Redis Cluster. @default false */
  cluster?: boolean;
  /** How long to wait for a connection before connect() rejects. @default 10_000 */
  connectTimeoutMs?: number;
}

export type ResolvedRedisBrokerOptions = Required<RedisBrokerOptions>;

export const DEFAULT_OPTIONS: ResolvedRedisBrokerOptions = {
  visibilityTimeoutMs: 30_000,
  prefix: 'celeriac',
  blockTimeoutMs: 10_000,
  claimBatch: 50,
  maxMessageBytes: 16 * 1024 * 1024,
  maxRetriesPerRequest: 20,
  cluster: false,
  connectTimeoutMs: 10_000,
};

type Spec = { kind: 'int'; min: number; max: number } | { kind: 'string' } | { kind: 'bool' };

const SPECS: Readonly<Record<keyof RedisBrokerOptions, Spec>> = {
  visibilityTimeoutMs: { kind: 'int', min: 100, max: 2_147_483_647 },
  prefix: { kind: 'string' },
  blockTimeoutMs: { kind: 'int', min: 10, max: 600_000 },
  claimBatch: { kind: 'int', min: 1, max: 1000 },
  maxMessageBytes: { kind: 'int', min: 1, max: 512 * 1024 * 1024 },
  maxRetriesPerRequest: { kind: 'int', min: 0, max: 1_000_000 },
  cluster: { kind: 'bool' },
  connectTimeoutMs: { kind: 'int', min: 1, max: 600_000 },
};

/**
 * Validate options (from a URL's query string or code) and fill in defaults. Unknown names are an
 * error, so a misspelt option is never silently ignored.
 */
export function resolveOptions(input: UrlOptions | RedisBrokerOptions): ResolvedRedisBrokerOptions {
  const out: Record<string, unknown> = { ...DEFAULT_OPTIONS };
  for (const [name, value] of Object.entries(input)) {
    if (value === undefined) continue;
    const spec = SPECS[name as keyof RedisBrokerOptions] as Spec | undefined;
    if (spec === undefined) {
      throw new CeleriacError(
        ErrorCode.INVALID_URL,
        `unknown Redis broker option "${name}" (known: ${Object.keys(SPECS).join(', ')})`,
      );
    }
    out[name] = check(name, spec, value);
  }
  return out as ResolvedRedisBrokerOptions;
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
    case 'string':
      if (typeof value !== 'string' && typeof value !== 'number') {
        throw new TypeError(`${name} must be a string, got ${String(value)}`);
      }
      if (String(value) === '') throw new TypeError(`${name} must not be empty`);
      return String(value);
  }
}

/** The URL ioredis connects to: the caller's URL without our query parameters (ioredis would read them). */
export function connectionUrl(url: URL): string {
  const u = new URL(url.href);
  u.search = '';
  u.hash = '';
  return u.href;
}
