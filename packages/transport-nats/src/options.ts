import type { Logger, UrlOptions } from '@celeriac/core';
import type { NatsConnectionOptions } from './connection.js';

/** Where JetStream keeps a stream. */
export type NatsStorage = 'file' | 'memory';

/**
 * Options of the NATS JetStream broker. Every one can be given in the URL's query string under the
 * same name: `nats://127.0.0.1:4222?prefix=myapp&visibilityTimeoutMs=60000&maxAckPending=50000`.
 */
export interface NatsBrokerOptions extends NatsConnectionOptions {
  /**
   * Namespace of every stream, consumer and subject: streams `<prefix>_tasks`, `<prefix>_delayed`,
   * `<prefix>_dead`, subjects `<prefix>.tasks.<queue>` and so on. A–Z, a–z, 0–9, `_`, `-`.
   * @default 'celeriac'
   */
  prefix?: string;
  /**
   * The work consumers' `AckWait`: how long an unacked delivery of a dead worker waits before it is
   * delivered again. Core renews the lease of every delivery it holds (`working()`) every third of it.
   * The consumer is shared by every worker of the queue, so give every worker the same value: the last
   * one to declare the queue sets it.
   * @default 30_000
   */
  visibilityTimeoutMs?: number;
  /** Storage of the streams this broker creates. @default 'file' */
  storage?: NatsStorage;
  /** Replicas of the streams this broker creates (1, 3 or 5 on a cluster). @default 1 */
  replicas?: number;
  /**
   * `MaxAckPending` of each queue's consumer: the most deliveries of that queue unacked at once across
   * EVERY worker together (a fleet-wide cap, not a worker's bound — each worker's own bound is its
   * prefetch). Raise it when workers × prefetch exceeds it, or workers sit idle while messages wait.
   * @default 20_000
   */
  maxAckPending?: number;
  /** `Nats-Msg-Id` duplicate window of the task stream. @default 120_000 */
  duplicateWindowMs?: number;
  /** How long dead letters are kept (0: until purged or redriven). @default 0 */
  deadLetterMaxAgeMs?: number;
  /**
   * Priority levels: 0 for none (a `priority` is then refused with ERR_UNSUPPORTED), or 2–10 levels,
   * each a subject and consumer of its own, polled most urgent first. Priorities 0–9 are spread over the
   * levels (9 is the most urgent).
   * @default 0
   */
  priorities?: number;
  /**
   * Largest payload (body plus headers) accepted at publish. The server's `max_payload` (1 MiB by default)
   * must leave room for the envelope, so this is 16 KiB below it.
   * @default 1_032_192
   */
  maxMessageBytes?: number;
  /** How long the server holds a pull request open, in ms. @default 10_000 */
  pullExpiresMs?: number;
  /** Diagnostics (connection trouble, mover failures). @default silent */
  logger?: Logger;
}

function num(o: UrlOptions, key: string): number | undefined {
  const v = o[key];
  if (v === undefined) return undefined;
  if (typeof v !== 'number' || !Number.isFinite(v)) throw new RangeError(`${key} must be a number, got ${JSON.stringify(v)}`);
  return v;
}
function str(o: UrlOptions, key: string): string | undefined {
  const v = o[key];
  return v === undefined ? undefined : String(v);
}

/** The broker options a URL's query string sets. Unknown keys are refused, so a typo is not ignored. */
export function brokerOptionsFromUrl(o: UrlOptions): NatsBrokerOptions {
  const known = new Set([
    'prefix', 'visibilityTimeoutMs', 'storage', 'replicas', 'maxAckPending', 'duplicateWindowMs', 'deadLetterMaxAgeMs',
    'priorities', 'maxMessageBytes', 'pullExpiresMs', 'servers', 'user', 'pass', 'token', 'tls', 'timeoutMs', 'connectionName',
    'resultsMaxAgeMs',
  ]);
  for (const k of Object.keys(o)) if (!known.has(k)) throw new RangeError(`unknown NATS option "${k}" in the URL`);
  const out: NatsBrokerOptions = {};
  const set = <K extends keyof NatsBrokerOptions>(k: K, v: NatsBrokerOptions[K] | undefined) => {
    if (v !== undefined) out[k] = v;
  };
  set('prefix', str(o, 'prefix'));
  set('visibilityTimeoutMs', num(o, 'visibilityTimeoutMs'));
  const storage = str(o, 'storage');
  if (storage !== undefined && storage !== 'file' && storage !== 'memory') {
    throw new RangeError(`storage must be "file" or "memory", got ${JSON.stringify(storage)}`);
  }
  set('storage', storage);
  set('replicas', num(o, 'replicas'));
  set('maxAckPending', num(o, 'maxAckPending'));
  set('duplicateWindowMs', num(o, 'duplicateWindowMs'));
  set('deadLetterMaxAgeMs', num(o, 'deadLetterMaxAgeMs'));
  set('priorities', num(o, 'priorities'));
  set('maxMessageBytes', num(o, 'maxMessageBytes'));
  set('pullExpiresMs', num(o, 'pullExpiresMs'));
  setConnection(o, out);
  return out;
}

/** Connection options from a URL's query string (shared by broker and result backend). */
export function setConnection(o: UrlOptions, out: NatsConnectionOptions): void {
  const servers = str(o, 'servers');
  if (servers !== undefined) out.servers = servers;
  const user = str(o, 'user');
  if (user !== undefined) out.user = user;
  const pass = str(o, 'pass');
  if (pass !== undefined) out.pass = pass;
  const token = str(o, 'token');
  if (token !== undefined) out.token = token;
  if (o['tls'] !== undefined) out.tls = o['tls'] === true;
  const timeoutMs = num(o, 'timeoutMs');
  if (timeoutMs !== undefined) out.timeoutMs = timeoutMs;
  const name = str(o, 'connectionName');
  if (name !== undefined) out.connectionName = name;
}

export function positiveInt(name: string, v: number, min = 1): number {
  if (!Number.isInteger(v) || v < min) throw new RangeError(`${name} must be an integer >= ${min}, got ${v}`);
  return v;
}
