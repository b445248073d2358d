import type { Logger, UrlOptions } from '@celeriac/core';
import type { QueueType } from './topology.js';

/** Options of the RabbitMQ broker. Every one can also be set as a URL query parameter. */
export interface AmqpBrokerOptions {
  /**
   * Type of the work and dead-letter queues. `quorum`: replicated, poison counting through RabbitMQ's
   * own delivery count, no priorities on 3.10 (a `priority` is refused with ERR_UNSUPPORTED).
   * `classic`: priorities 0–9 (`x-max-priority` 9), lives on one node.
   * @default 'quorum'
   */
  queueType?: QueueType;
  /**
   * Type of the 32 delay level queues each work queue gets. `classic` is light (one Erlang process per
   * queue); `quorum` replicates delayed messages and dead-letters them at least once, at the cost of
   * 32 Raft groups per work queue.
   * @default 'classic'
   */
  delayQueueType?: QueueType;
  /** Namespace of every queue and exchange this transport creates. @default 'celeriac' */
  prefix?: string;
  /** Most publishes awaiting their confirm at once; more wait for a slot. @default 1000 */
  confirmWindow?: number;
  /**
   * How long a call waits for the (re)connection before it fails with a retryable ERR_CONNECTION,
   * and how long `connect()` keeps trying at first. Reconnecting itself goes on until `close()`.
   * @default 10_000
   */
  connectTimeoutMs?: number;
  /** Longest pause between reconnect attempts (exponential backoff with jitter from 100 ms). @default 5_000 */
  reconnectMaxDelayMs?: number;
  /**
   * Largest message (body plus headers) the guard lets through. RabbitMQ 3.10 accepts up to
   * `max_message_size` (128 MiB by default); large messages hurt every queue they pass through.
   * @default 16 MiB
   */
  maxMessageBytes?: number;
  /** Where diagnostics go. @default silent */
  logger?: Logger;
}

export interface ResolvedOptions {
  queueType: QueueType;
  delayQueueType: QueueType;
  prefix: string;
  confirmWindow: number;
  connectTimeoutMs: number;
  reconnectMaxDelayMs: number;
  maxMessageBytes: number;
}

/** Names of the query parameters this transport reads; the others go to amqplib (heartbeat, frameMax…). */
export const OWN_URL_OPTIONS: ReadonlySet<string> = new Set([
  'queueType',
  'delayQueueType',
  'prefix',
  'confirmWindow',
  'connectTimeoutMs',
  'reconnectMaxDelayMs',
  'maxMessageBytes',
  'visibilityTimeoutMs',
]);

function queueType(v: unknown, what: string): QueueType | undefined {
  if (v === undefined) return undefined;
  if (v === 'quorum' || v === 'classic') return v;
  throw new TypeError(`${what} must be "quorum" or "classic", got ${JSON.stringify(v)}`);
}

function positiveInt(v: unknown, what: string, min = 1): number | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min) {
    throw new RangeError(`${what} must be an integer >= ${min}, got ${JSON.stringify(v)}`);
  }
  return v;
}

/** Fill in defaults and check every option. */
export function resolveOptions(o: AmqpBrokerOptions): ResolvedOptions {
  const prefix = o.prefix ?? 'celeriac';
  if (typeof prefix !== 'string' || /[:\s]/.test(prefix)) {
    throw new TypeError(`prefix must be a string without ":" or spaces, got ${JSON.stringify(prefix)}`);
  }
  return {
    queueType: queueType(o.queueType, 'queueType') ?? 'quorum',
    delayQueueType: queueType(o.delayQueueType, 'delayQueueType') ?? 'classic',
    prefix,
    confirmWindow: positiveInt(o.confirmWindow, 'confirmWindow') ?? 1000,
    connectTimeoutMs: positiveInt(o.connectTimeoutMs, 'connectTimeoutMs') ?? 10_000,
    reconnectMaxDelayMs: positiveInt(o.reconnectMaxDelayMs, 'reconnectMaxDelayMs', 100) ?? 5_000,
    maxMessageBytes: positiveInt(o.maxMessageBytes, 'maxMessageBytes') ?? 16 * 1024 * 1024,
  };
}

/** Options from a URL's query (already typed by core's parser). */
export function optionsFromUrl(options: UrlOptions): AmqpBrokerOptions {
  const out: AmqpBrokerOptions = {};
  const str = (k: string): string | undefined => (options[k] === undefined ? undefined : String(options[k]));
  const num = (k: string): number | undefined => {
    const v = options[k];
    if (v === undefined) return undefined;
    if (typeof v !== 'number') throw new TypeError(`URL option ${k} must be a number, got ${JSON.stringify(v)}`);
    return v;
  };
  const qt = str('queueType');
  if (qt !== undefined) out.queueType = qt as QueueType;
  const dqt = str('delayQueueType');
  if (dqt !== undefined) out.delayQueueType = dqt as QueueType;
  const prefix = str('prefix');
  if (prefix !== undefined) out.prefix = prefix;
  const cw = num('confirmWindow');
  if (cw !== undefined) out.confirmWindow = cw;
  const ct = num('connectTimeoutMs');
  if (ct !== undefined) out.connectTimeoutMs = ct;
  const rd = num('reconnectMaxDelayMs');
  if (rd !== undefined) out.reconnectMaxDelayMs = rd;
  const mb = num('maxMessageBytes');
  if (mb !== undefined) out.maxMessageBytes = mb;
  if (options['visibilityTimeoutMs'] !== undefined) {
    throw new TypeError(
      'visibilityTimeoutMs does not apply to RabbitMQ: an unacked delivery returns when its channel closes ' +
        '(see consumer_timeout in the @celeriac/transport-amqp README)',
    );
  }
  return out;
}

/** The URL amqplib gets: without this transport's own query parameters. */
export function driverUrl(url: URL): string {
  const u = new URL(url.toString());
  for (const k of [...u.searchParams.keys()]) if (OWN_URL_OPTIONS.has(k)) u.searchParams.delete(k);
  return u.toString();
}
