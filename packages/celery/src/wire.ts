import { deflateSync, gunzipSync, inflateSync } from 'node:zlib';
import { CeleriacError, DEFAULT_MAX_DECODED_BYTES, ErrorCode, inflateError } from '@celeriac/core';

/**
 * Names shared by the codec and the brokers of this package.
 *
 * The broker contract carries bytes and one flat header map. A Celery message has two maps: its
 * `headers` (the task protocol fields) and its transport `properties`. The codec writes the
 * properties into the same map under these names; this package's brokers lift them out again (into
 * kombu's `properties` and top-level keys on Redis, into AMQP properties on RabbitMQ) and put them
 * back on delivery.
 */
export const PROP = {
  contentType: 'content-type',
  contentEncoding: 'content-encoding',
  correlationId: 'correlation_id',
  replyTo: 'reply_to',
  deliveryMode: 'delivery_mode',
  /** celeriac's scale (0–9, 9 the most urgent); each broker maps it to its transport's scale. */
  priority: 'priority',
  /** Milliseconds, as a string, as Celery sets it from `expires`. */
  expiration: 'expiration',
} as const;

export const PROPERTY_KEYS: ReadonlySet<string> = new Set(Object.values(PROP));

/** Celery's `compression` header value for zlib (kombu registers zlib under `application/x-gzip`). */
export const ZLIB = 'application/x-gzip';

/** `content-encoding` kombu writes for each content type it registers. */
export function contentEncodingFor(contentType: string): string {
  return contentType === 'application/json' ? 'utf-8' : 'binary';
}

/** Compress as kombu's `compress(body, 'zlib')` does: a zlib stream, labelled `application/x-gzip`. */
export function zlibCompress(body: Uint8Array): Uint8Array {
  return deflateSync(body);
}

/**
 * Undo kombu's compression (zlib; a real gzip stream is accepted too), inflating at most `maxBytes`
 * (ERR_PAYLOAD_TOO_LARGE past it).
 */
export function decompressBody(body: Uint8Array, compression: string, maxBytes = DEFAULT_MAX_DECODED_BYTES): Uint8Array {
  if (compression === ZLIB || compression === 'zlib' || compression === 'gzip' || compression === 'application/gzip') {
    // kombu's "gzip" is zlib; a celeriac peer might send real gzip (1f 8b).
    const opts = { maxOutputLength: maxBytes };
    try {
      return body[0] === 0x1f && body[1] === 0x8b ? gunzipSync(body, opts) : inflateSync(body, opts);
    } catch (err) {
      throw inflateError(err, maxBytes);
    }
  }
  throw new CeleriacError(ErrorCode.CONTENT_TYPE, `compression "${compression}" is not supported (only zlib, as Celery's 'gzip'/'zlib')`);
}

/**
 * kombu's `content_encoding` is the body's charset ('utf-8' for text types, 'binary' otherwise);
 * anything else is refused, never guessed at.
 */
const CHARSETS: ReadonlySet<string> = new Set(['utf-8', 'utf8', 'binary', 'ascii', 'us-ascii']);

/** ERR_CONTENT_TYPE for a `content-encoding` that is not one of kombu's charsets. */
export function checkCharset(value: unknown): void {
  if (value === undefined || value === null || (typeof value === 'string' && CHARSETS.has(value.toLowerCase()))) return;
  throw new CeleriacError(ErrorCode.CONTENT_TYPE, `content encoding ${JSON.stringify(value)} is not supported (utf-8 or binary)`);
}

/** Epoch ms → Python's `datetime.isoformat()` of an aware UTC time: `2026-11-24T20:41:22.048000+00:00`. */
export function isoUtc(ms: number): string {
  const iso = new Date(ms).toISOString(); // 2026-11-24T20:41:22.048Z
  return `${iso.slice(0, 23)}000+00:00`;
}

/** Epoch ms → Celery's `date_done`: a naive UTC `isoformat()`, `2026-11-24T20:40:35.623000`. */
export function isoNaive(ms: number): string {
  return `${new Date(ms).toISOString().slice(0, 23)}000`;
}

const ISO = /^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d+))?)?(Z|[+-]\d{2}(?::?\d{2})?)?$/;

/**
 * An ISO-8601 time as Python writes it (`isoformat()`, up to microseconds, with or without an
 * offset) → epoch ms. Without an offset the time is UTC (protocol v2: "Always UTC"). Null when it
 * is not a time.
 */
export function parseIsoMs(value: unknown): number | null {
  if (typeof value === 'number') return Number.isFinite(value) ? value : null;
  if (typeof value !== 'string') return null;
  const m = ISO.exec(value.trim());
  if (m === null) return null;
  const [, y, mo, d, h, mi, s, frac, zone] = m;
  const ms = frac === undefined ? 0 : Number(`0.${frac}`) * 1000;
  let t = Date.UTC(Number(y), Number(mo) - 1, Number(d), Number(h), Number(mi), Number(s ?? 0)) + ms;
  if (zone !== undefined && zone !== 'Z') {
    const sign = zone[0] === '-' ? -1 : 1;
    const digits = zone.slice(1).replace(':', '');
    const offMin = Number(digits.slice(0, 2)) * 60 + Number(digits.slice(2) || 0);
    t -= sign * offMin * 60_000;
  }
  return Number.isFinite(t) ? Math.round(t * 1000) / 1000 : null;
}

/** kombu's Redis priority steps: one list per step, `PRIORITY_STEPS = [0, 3, 6, 9]`. */
export const KOMBU_PRIORITY_STEPS = [0, 3, 6, 9] as const;

/**
 * celeriac priority (9 the most urgent) → kombu's Redis priority (0 the most urgent, the lists
 * are consumed in the order of `PRIORITY_STEPS`).
 */
export function toKombuPriority(p: number): number {
  return 9 - Math.min(9, Math.max(0, Math.round(p)));
}

/** kombu's Redis priority → celeriac's. Values outside 0–9 are clamped, as kombu does. */
export function fromKombuPriority(p: number): number {
  return 9 - Math.min(9, Math.max(0, Math.round(p)));
}

/** The kombu step a priority falls into: `steps[bisect(steps, n) - 1]`. */
export function kombuStep(p: number): number {
  let step: number = KOMBU_PRIORITY_STEPS[0];
  for (const s of KOMBU_PRIORITY_STEPS) if (s <= p) step = s;
  return step;
}
