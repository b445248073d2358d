import {
  CeleriacError,
  checkDecodedSize,
  DEFAULT_MAX_DECODED_BYTES,
  ErrorCode,
  newId,
  serializerFor,
  type Codec,
  type Delivery,
  type Embed,
  type Headers,
  type HeaderValue,
  type OutgoingMessage,
  type Serializer,
  type SignatureData,
  type TaskMessage,
} from '@celeriac/core';
import { hostname } from 'node:os';
import { pyJson } from './python-json.js';
import { argsRepr, kwargsRepr } from './python-repr.js';
import { fromCelerySignature, toCelerySignature, type CelerySignature } from './signatures.js';
import { checkCharset, contentEncodingFor, decompressBody, isoUtc, parseIsoMs, PROP, PROPERTY_KEYS, ZLIB, zlibCompress } from './wire.js';

/**
 * Headers of protocol v2 the codec writes itself, in the order `celery/app/amqp.py::as_task_v2`
 * builds them. `shadow`, `group_index` and `ignore_result` are carried over from the decoded message
 * (they survive a retry); the rest are computed.
 */
const V2_HEADERS = [
  'lang', 'task', 'id', 'shadow', 'eta', 'expires', 'group', 'group_index', 'retries', 'timelimit',
  'root_id', 'parent_id', 'argsrepr', 'kwargsrepr', 'origin', 'ignore_result',
] as const;

/** Headers the decoder maps to `TaskMessage` fields; the rest (and `shadow`, …) land in `extra`. */
const MAPPED = new Set<string>([
  'lang', 'task', 'id', 'eta', 'expires', 'group', 'retries', 'timelimit', 'root_id', 'parent_id',
  'argsrepr', 'kwargsrepr', 'origin', 'traceparent', 'compression', 'redelivered', ...PROPERTY_KEYS,
]);

/** Carried in `extra`, written back in their protocol position. */
const CARRIED = new Set(['shadow', 'group_index', 'ignore_result']);

const defaultOrigin = `${process.pid}@${hostname()}`;

function sec(ms: number | null | undefined): number | null {
  return ms === null || ms === undefined ? null : ms / 1000;
}

function toCeleryEmbed(e: Embed): Record<string, unknown> {
  const list = (l: SignatureData[] | null | undefined) => (l === null || l === undefined || l.length === 0 ? null : l.map(toCelerySignature));
  return {
    callbacks: list(e.callbacks),
    errbacks: list(e.errbacks),
    chain: list(e.chain),
    chord: e.chord === null || e.chord === undefined ? null : toCelerySignature(e.chord),
  };
}

function fromCeleryEmbed(raw: unknown): Embed {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) return {};
  const r = raw as Record<string, unknown>;
  const list = (v: unknown) => (Array.isArray(v) ? v.map(fromCelerySignature) : null);
  const out: Embed = {};
  const callbacks = list(r['callbacks']);
  const errbacks = list(r['errbacks']);
  const chain = list(r['chain']);
  if (callbacks !== null) out.callbacks = callbacks;
  if (errbacks !== null) out.errbacks = errbacks;
  if (chain !== null) out.chain = chain;
  if (r['chord'] !== null && r['chord'] !== undefined) out.chord = fromCelerySignature(r['chord']);
  return out;
}

function encodeBody(value: unknown, serializer: Serializer): Uint8Array {
  // Celery's JSON is Python's json.dumps; write it the same way, byte for byte.
  return serializer.contentType === 'application/json' ? Buffer.from(pyJson(value), 'utf8') : serializer.encode(value);
}

/**
 * Encode a task as Celery 5 puts it on the wire (protocol v2): the full header set in Celery's
 * order, the body `[args, kwargs, embed]` with Celery signature dicts, and the message properties
 * (`correlation_id`, `reply_to`, `delivery_mode`, `priority`, `expiration`, content type and
 * encoding) under the names in {@link PROP}.
 */
export function encodeCeleryTask(msg: TaskMessage, serializer: Serializer, compress = false, maxDecodedBytes = DEFAULT_MAX_DECODED_BYTES): OutgoingMessage {
  const extra = msg.extra;
  const headers: Headers = {};
  const v2: Record<(typeof V2_HEADERS)[number], HeaderValue> = {
    lang: 'js',
    task: msg.task,
    id: msg.id,
    shadow: extra['shadow'] ?? null,
    eta: msg.eta === null ? null : isoUtc(msg.eta),
    expires: msg.expires === null ? null : isoUtc(msg.expires),
    group: msg.group,
    group_index: extra['group_index'] ?? null,
    retries: msg.retries,
    timelimit: [sec(msg.hardTimeLimitMs), sec(msg.timeLimitMs)],
    root_id: msg.rootId ?? msg.id,
    parent_id: msg.parentId,
    // The sender's own reprs survive a retry (a producer may have set them to hide secrets).
    argsrepr: msg.argsRepr ?? argsRepr(msg.args),
    kwargsrepr: msg.kwargsRepr ?? kwargsRepr(msg.kwargs),
    origin: msg.origin ?? defaultOrigin,
    ignore_result: extra['ignore_result'] ?? false,
  };
  for (const k of V2_HEADERS) headers[k] = v2[k];
  for (const k in extra) {
    if (!CARRIED.has(k) && !MAPPED.has(k) && !(k in headers)) headers[k] = extra[k]!;
  }
  if (msg.traceparent !== null) headers['traceparent'] = msg.traceparent;
  let body = encodeBody([msg.args, msg.kwargs, toCeleryEmbed(msg.embed)], serializer);
  checkDecodedSize(body.byteLength, maxDecodedBytes);
  if (compress) {
    body = zlibCompress(body);
    headers['compression'] = ZLIB;
  }
  headers[PROP.contentType] = serializer.contentType;
  headers[PROP.contentEncoding] = contentEncodingFor(serializer.contentType);
  headers[PROP.correlationId] = msg.id;
  const replyTo = extra[PROP.replyTo];
  headers[PROP.replyTo] = typeof replyTo === 'string' ? replyTo : '';
  headers[PROP.deliveryMode] = 2;
  if (msg.priority !== null) headers[PROP.priority] = msg.priority;
  if (msg.expires !== null) headers[PROP.expiration] = String(Math.max(0, Math.round(msg.expires - Date.now())));
  return { id: newId(), body, headers };
}

function str(v: HeaderValue | undefined): string | null {
  return typeof v === 'string' ? v : null;
}

/**
 * Decode a Celery protocol v2 message. Throws ERR_CONTENT_TYPE for a content type outside `accept`
 * (pickle is never read), an unknown compression or charset, ERR_PAYLOAD_TOO_LARGE for a body that
 * decodes to more than `maxDecodedBytes`, and ERR_SERIALIZATION for anything that is not a v2 task message.
 */
export function decodeCeleryTask(
  delivery: Pick<Delivery, 'body' | 'headers'>,
  accept: ReadonlySet<string>,
  maxDecodedBytes = DEFAULT_MAX_DECODED_BYTES,
): TaskMessage {
  const h = delivery.headers;
  const contentType = str(h[PROP.contentType]) ?? 'application/json';
  if (!accept.has(contentType)) {
    throw new CeleriacError(ErrorCode.CONTENT_TYPE, `content type "${contentType}" is not in the accept list`);
  }
  checkCharset(h[PROP.contentEncoding]);
  const task = str(h['task']);
  const id = str(h['id']) ?? str(h[PROP.correlationId]);
  if (task === null || id === null) {
    throw new CeleriacError(
      ErrorCode.SERIALIZATION,
      'message has no "task" or "id" header: not a Celery protocol v2 task message (protocol 1 is not supported)',
    );
  }
  let decoded: unknown;
  try {
    const compression = h['compression'];
    if (compression !== undefined && compression !== null && typeof compression !== 'string') {
      throw new CeleriacError(ErrorCode.CONTENT_TYPE, `compression ${JSON.stringify(compression)} is not supported`);
    }
    const raw = compression === undefined || compression === null ? delivery.body : decompressBody(delivery.body, compression, maxDecodedBytes);
    checkDecodedSize(raw.byteLength, maxDecodedBytes);
    decoded = serializerFor(contentType).decode(raw);
  } catch (err) {
    if (err instanceof CeleriacError && (err.code === ErrorCode.CONTENT_TYPE || err.code === ErrorCode.PAYLOAD_TOO_LARGE)) throw err;
    throw new CeleriacError(ErrorCode.SERIALIZATION, `undecodable body: ${(err as Error).message}`, { cause: err });
  }
  if (!Array.isArray(decoded) || !Array.isArray(decoded[0])) {
    throw new CeleriacError(ErrorCode.SERIALIZATION, 'body is not [args, kwargs, embed]');
  }
  const [args, kwargs, embedRaw] = decoded as [unknown[], unknown, unknown];
  if (kwargs !== undefined && kwargs !== null && (typeof kwargs !== 'object' || Array.isArray(kwargs))) {
    throw new CeleriacError(ErrorCode.SERIALIZATION, 'body is not [args, kwargs, embed]: kwargs is not an object');
  }
  const kw = kwargs === undefined || kwargs === null ? {} : (kwargs as Record<string, unknown>);
  let embed: Embed;
  try {
    embed = fromCeleryEmbed(embedRaw);
  } catch (err) {
    throw new CeleriacError(ErrorCode.SERIALIZATION, `bad canvas links: ${(err as Error).message}`, { cause: err });
  }
  const tl = h['timelimit'];
  const hard = Array.isArray(tl) && typeof tl[0] === 'number' ? tl[0] * 1000 : null;
  const soft = Array.isArray(tl) && typeof tl[1] === 'number' ? tl[1] * 1000 : null;
  const extra: Record<string, HeaderValue> = {};
  for (const k in h) if (!MAPPED.has(k) || CARRIED.has(k)) extra[k] = h[k]!;
  const reply = str(h[PROP.replyTo]);
  if (reply !== null && reply !== '') extra[PROP.replyTo] = reply;
  const retries = h['retries'];
  const priority = h[PROP.priority];
  return {
    id,
    task,
    args,
    kwargs: kw,
    embed,
    retries: typeof retries === 'number' ? retries : 0,
    rootId: str(h['root_id']) ?? id,
    parentId: str(h['parent_id']),
    group: str(h['group']),
    eta: parseIsoMs(h['eta']),
    expires: parseIsoMs(h['expires']),
    timeLimitMs: soft,
    hardTimeLimitMs: hard,
    priority: typeof priority === 'number' ? priority : null,
    origin: str(h['origin']),
    traceparent: str(h['traceparent']),
    extra,
    sentAt: null,
    // What Celery's monitors show (a Python producer may have set them); Python's repr when absent.
    argsRepr: str(h['argsrepr']) ?? argsRepr(args),
    kwargsRepr: str(h['kwargsrepr']) ?? kwargsRepr(kw),
  };
}

/** The Celery protocol v2 codec. */
export const celeryCodec: Codec = { encode: encodeCeleryTask, decode: decodeCeleryTask };

export type { CelerySignature };
