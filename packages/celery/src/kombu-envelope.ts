import type { Headers, HeaderValue, OutgoingMessage } from '@celeriac/core';
import { pyJson } from './python-json.js';
import { fromKombuPriority, PROP, PROPERTY_KEYS } from './wire.js';

/** kombu's virtual-transport message as it sits in a Redis list (`Channel.prepare_message` + `_inplace_augment_message`). */
export interface KombuEnvelope {
  body: string;
  'content-encoding': string | null;
  'content-type': string | null;
  headers: Record<string, unknown>;
  properties: KombuProperties;
}

export interface KombuProperties {
  correlation_id?: string;
  reply_to?: string;
  delivery_mode?: number;
  expiration?: string;
  delivery_info: { exchange: string; routing_key: string; redelivered?: boolean; [k: string]: unknown };
  priority?: number;
  body_encoding?: string;
  delivery_tag?: string;
  [k: string]: unknown;
}

/**
 * Build the envelope kombu's Redis transport would have pushed for this message, with keys in
 * kombu's order. Header keys named in `PROP` become properties; the rest stay headers.
 */
export function buildEnvelope(msg: OutgoingMessage, exchange: string, routingKey: string, kombuPriority: number): KombuEnvelope {
  const headers: Record<string, unknown> = {};
  const h = msg.headers;
  for (const k in h) if (!PROPERTY_KEYS.has(k)) headers[k] = h[k];
  const props: KombuProperties = { delivery_info: { exchange, routing_key: routingKey } };
  const ordered: KombuProperties = {} as KombuProperties;
  // kombu's order: the producer's properties (correlation_id, reply_to, delivery_mode, expiration),
  // then delivery_info and priority (prepare_message), then body_encoding and delivery_tag.
  if (typeof h[PROP.correlationId] === 'string') ordered.correlation_id = h[PROP.correlationId] as string;
  if (typeof h[PROP.replyTo] === 'string') ordered.reply_to = h[PROP.replyTo] as string;
  if (typeof h[PROP.deliveryMode] === 'number') ordered.delivery_mode = h[PROP.deliveryMode] as number;
  if (typeof h[PROP.expiration] === 'string') ordered.expiration = h[PROP.expiration] as string;
  ordered.delivery_info = props.delivery_info;
  ordered.priority = kombuPriority;
  ordered.body_encoding = 'base64';
  ordered.delivery_tag = msg.id;
  const ct = h[PROP.contentType];
  const ce = h[PROP.contentEncoding];
  return {
    body: Buffer.from(msg.body.buffer, msg.body.byteOffset, msg.body.byteLength).toString('base64'),
    'content-encoding': typeof ce === 'string' ? ce : typeof ct === 'string' ? 'binary' : null,
    'content-type': typeof ct === 'string' ? ct : null,
    headers,
    properties: ordered,
  };
}

export function serializeEnvelope(env: KombuEnvelope): string {
  return pyJson(env);
}

/** What a delivery needs from an envelope. */
export interface ParsedEnvelope {
  readonly env: KombuEnvelope;
  readonly tag: string;
  readonly body: Uint8Array;
  readonly headers: Headers;
  readonly kombuPriority: number;
  readonly redelivered: boolean;
  readonly exchange: string;
  readonly routingKey: string;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

/**
 * Parse an envelope. Throws (TypeError) for JSON that is not a kombu message. The delivery's
 * headers are the message headers plus the properties under the `PROP` names, with the priority
 * converted to celeriac's scale.
 */
export function parseEnvelope(json: string): ParsedEnvelope {
  const env = JSON.parse(json) as unknown;
  if (!isObject(env) || !isObject(env['properties'])) throw new TypeError('not a kombu message: no properties');
  const props = env['properties'];
  const tag = props['delivery_tag'];
  if (typeof tag !== 'string' || tag === '') throw new TypeError('not a kombu message: no delivery_tag');
  const info = isObject(props['delivery_info']) ? props['delivery_info'] : {};
  if (!isObject(env['headers'])) env['headers'] = {};
  const rawBody = env['body'];
  let body: Uint8Array;
  if (typeof rawBody !== 'string') body = new Uint8Array(0);
  else if (props['body_encoding'] === 'base64') body = Buffer.from(rawBody, 'base64');
  else body = Buffer.from(rawBody, 'utf8');
  const headers: Headers = {};
  const envHeaders = env['headers'] as Record<string, unknown>;
  for (const k in envHeaders) headers[k] = envHeaders[k] as HeaderValue;
  if (typeof env['content-type'] === 'string') headers[PROP.contentType] = env['content-type'];
  if (typeof env['content-encoding'] === 'string') headers[PROP.contentEncoding] = env['content-encoding'];
  for (const k of [PROP.correlationId, PROP.replyTo, PROP.deliveryMode, PROP.expiration] as const) {
    const v = props[k];
    if (typeof v === 'string' || typeof v === 'number') headers[k] = v;
  }
  const pri = typeof props['priority'] === 'number' ? props['priority'] : 0;
  headers[PROP.priority] = fromKombuPriority(pri);
  return {
    env: env as unknown as KombuEnvelope,
    tag,
    body,
    headers,
    kombuPriority: pri,
    redelivered: info['redelivered'] === true || envHeaders['redelivered'] === true,
    exchange: typeof info['exchange'] === 'string' ? info['exchange'] : '',
    routingKey: typeof info['routing_key'] === 'string' ? info['routing_key'] : '',
  };
}

/** The envelope as kombu's `_do_restore_message` pushes it back: flagged as redelivered. */
export function markRedelivered(env: KombuEnvelope): KombuEnvelope {
  const copy: KombuEnvelope = { ...env, headers: { ...env.headers, redelivered: true }, properties: { ...env.properties } };
  copy.properties.delivery_info = { ...env.properties.delivery_info, redelivered: true };
  return copy;
}

/** `dumps([message, exchange, routing_key])`: the value kombu keeps in the `unacked` hash. */
export function unackedValue(envJson: string, exchange: string, routingKey: string): string {
  return `[${envJson}, ${pyJson(exchange)}, ${pyJson(routingKey)}]`;
}

/** Parse an `unacked` hash value. */
export function parseUnacked(value: string): { env: KombuEnvelope; exchange: string; routingKey: string } {
  const v = JSON.parse(value) as unknown;
  if (!Array.isArray(v) || !isObject(v[0])) throw new TypeError('not a kombu unacked entry');
  return { env: v[0] as unknown as KombuEnvelope, exchange: typeof v[1] === 'string' ? v[1] : '', routingKey: typeof v[2] === 'string' ? v[2] : '' };
}
