import type { Headers, HeaderValue, OutgoingMessage } from './broker.js';
import type { Incoming } from './transport/adapter.js';
import { CeleriacError, ErrorCode } from './errors.js';
import { checkDecodedSize, compress, decompress, DEFAULT_MAX_DECODED_BYTES, GZIP, serializerFor, type Serializer } from './serializer.js';
import { newMessageId } from './ids.js';

/** A link to another task, carried in the message (callbacks, errbacks, chain, chord). */
export interface SignatureData {
  task: string;
  args: unknown[];
  kwargs?: Record<string, unknown>;
  options?: Record<string, unknown>;
  immutable?: boolean;
}

/** Canvas links, the third element of the body as in Celery's protocol v2. */
export interface Embed {
  callbacks?: SignatureData[] | null;
  errbacks?: SignatureData[] | null;
  chain?: SignatureData[] | null;
  chord?: SignatureData | null;
}

/** The decoded task message: Celery protocol v2 headers plus the body `[args, kwargs, embed]`. */
export interface TaskMessage {
  id: string;
  task: string;
  args: unknown[];
  kwargs: Record<string, unknown>;
  embed: Embed;
  retries: number;
  rootId: string | null;
  parentId: string | null;
  group: string | null;
  /** Epoch ms, or null. */
  eta: number | null;
  /** Epoch ms after which the task is not run, or null. */
  expires: number | null;
  /** Soft time limit in ms, or null. */
  timeLimitMs: number | null;
  /** Hard time limit in ms (threads pool), or null. */
  hardTimeLimitMs?: number | null;
  priority: number | null;
  origin: string | null;
  traceparent: string | null;
  /** Headers the caller added with `applyAsync({ headers })`. */
  extra: Record<string, HeaderValue>;
  /** Epoch ms of the publish (for queue-wait metrics), or null. */
  sentAt?: number | null;
  /**
   * Printable forms of `args` and `kwargs` as the sender made them (Celery's `argsrepr` and
   * `kwargsrepr` headers, which a producer may set to hide secrets), when the protocol carries them.
   * Events use them; a codec that writes such headers writes these back on a retry.
   */
  argsRepr?: string | null;
  kwargsRepr?: string | null;
}

const RESERVED = new Set([
  'id', 'task', 'lang', 'root_id', 'parent_id', 'group', 'retries', 'eta', 'expires', 'timelimit',
  'origin', 'priority', 'traceparent', 'content-type', 'content-encoding', 'sent_at',
]);

function iso(ms: number | null): string | null {
  return ms === null ? null : new Date(ms).toISOString();
}
function parseIso(value: HeaderValue | undefined): number | null {
  if (typeof value !== 'string') return typeof value === 'number' ? value : null;
  const ms = Date.parse(value);
  return Number.isNaN(ms) ? null : ms;
}
/** True for an object without enumerable keys (no allocation, unlike `Object.keys`). */
export function isEmpty(o: object): boolean {
  for (const _ in o) return false;
  return true;
}
function str(value: HeaderValue | undefined): string | null {
  return typeof value === 'string' ? value : null;
}

/**
 * Build the broker message for a task. A fresh message id per call (dedup never eats retries).
 * Refuses a body whose serialized (decoded) size is over `maxDecodedBytes` with ERR_PAYLOAD_TOO_LARGE:
 * no worker would decode it.
 */
export function encodeTask(msg: TaskMessage, serializer: Serializer, gzip = false, maxDecodedBytes = DEFAULT_MAX_DECODED_BYTES): OutgoingMessage {
  const headers: Headers = {};
  for (const k in msg.extra) if (!RESERVED.has(k)) headers[k] = msg.extra[k]!;
  // Only what is set: fewer headers are cheaper on every transport. Absent means null when decoded;
  // the Celery codec writes the full protocol v2 set (with `lang`, which nothing here reads).
  headers['task'] = msg.task;
  headers['id'] = msg.id;
  if (msg.rootId !== null && msg.rootId !== msg.id) headers['root_id'] = msg.rootId;
  if (msg.parentId !== null) headers['parent_id'] = msg.parentId;
  if (msg.group !== null) headers['group'] = msg.group;
  if (msg.retries !== 0) headers['retries'] = msg.retries;
  if (msg.eta !== null) headers['eta'] = iso(msg.eta);
  if (msg.expires !== null) headers['expires'] = iso(msg.expires);
  const hard = msg.hardTimeLimitMs ?? null;
  if (hard !== null || msg.timeLimitMs !== null) {
    // Celery's [hard, soft] in seconds.
    headers['timelimit'] = [hard === null ? null : hard / 1000, msg.timeLimitMs === null ? null : msg.timeLimitMs / 1000];
  }
  if (msg.origin !== null) headers['origin'] = msg.origin;
  if (msg.priority !== null) headers['priority'] = msg.priority;
  if (msg.traceparent !== null) headers['traceparent'] = msg.traceparent;
  if (msg.sentAt !== undefined && msg.sentAt !== null) headers['sent_at'] = msg.sentAt;
  headers['content-type'] = serializer.contentType;
  // Empty kwargs and embed are left off the end (`[args]`): smaller, and quicker to parse; a decoder
  // reads what is missing as empty.
  const parts: unknown[] = [msg.args, msg.kwargs, msg.embed];
  while (parts.length > 1 && isEmpty(parts[parts.length - 1] as object)) parts.pop();
  let body = serializer.encode(parts);
  checkDecodedSize(body.byteLength, maxDecodedBytes);
  if (gzip) {
    body = compress(body);
    headers['content-encoding'] = GZIP;
  }
  return { id: newMessageId(), body, headers };
}

/** The content type of the JSON serializer, and of a message without one. */
const JSON_TYPE = 'application/json';

/**
 * Decode a delivery (its `parsedBody` when the transport parsed a JSON body already). Throws
 * ERR_CONTENT_TYPE for a type outside `accept` or a content encoding other than gzip,
 * ERR_PAYLOAD_TOO_LARGE for a body that decodes to more than `maxDecodedBytes` (inflating stops
 * there), and ERR_SERIALIZATION for a body or header set that is not a task message.
 */
export function decodeTask(
  delivery: Pick<Incoming, 'body' | 'headers' | 'parsedBody'>,
  accept: ReadonlySet<string>,
  maxDecodedBytes = DEFAULT_MAX_DECODED_BYTES,
): TaskMessage {
  const h = delivery.headers;
  const contentType = str(h['content-type']) ?? JSON_TYPE;
  if (!accept.has(contentType)) {
    throw new CeleriacError(ErrorCode.CONTENT_TYPE, `content type "${contentType}" is not in the accept list`);
  }
  const encoding = h['content-encoding'];
  if (encoding !== undefined && encoding !== GZIP) {
    throw new CeleriacError(ErrorCode.CONTENT_TYPE, `content encoding ${JSON.stringify(encoding)} is not supported (only gzip)`);
  }
  const task = str(h['task']);
  const id = str(h['id']);
  if (task === null || id === null) {
    throw new CeleriacError(ErrorCode.SERIALIZATION, 'message has no "task" or "id" header');
  }
  let decoded = contentType === JSON_TYPE && encoding === undefined ? delivery.parsedBody : undefined;
  if (decoded === undefined) {
    try {
      const raw = encoding === GZIP ? decompress(delivery.body, maxDecodedBytes) : delivery.body;
      checkDecodedSize(raw.byteLength, maxDecodedBytes);
      decoded = serializerFor(contentType).decode(raw);
    } catch (err) {
      if (err instanceof CeleriacError) throw err; // ERR_PAYLOAD_TOO_LARGE
      throw new CeleriacError(ErrorCode.SERIALIZATION, `undecodable body: ${(err as Error).message}`, { cause: err });
    }
  }
  if (!Array.isArray(decoded) || !Array.isArray(decoded[0])) {
    throw new CeleriacError(ErrorCode.SERIALIZATION, 'body is not [args, kwargs?, embed?]');
  }
  const [args, kwargs, embed] = decoded as [unknown[], unknown, unknown];
  if (kwargs !== undefined && kwargs !== null && (typeof kwargs !== 'object' || Array.isArray(kwargs))) {
    throw new CeleriacError(ErrorCode.SERIALIZATION, 'body is not [args, kwargs?, embed?]: kwargs is not an object');
  }
  const retries = h['retries'];
  const timelimit = h['timelimit'];
  const soft = Array.isArray(timelimit) && typeof timelimit[1] === 'number' ? timelimit[1] * 1000 : null;
  const hard = Array.isArray(timelimit) && typeof timelimit[0] === 'number' ? timelimit[0] * 1000 : null;
  const extra: Record<string, HeaderValue> = {};
  for (const k in h) if (!RESERVED.has(k)) extra[k] = h[k]!;
  return {
    id,
    task,
    args,
    kwargs: kwargs === undefined || kwargs === null ? {} : (kwargs as Record<string, unknown>),
    embed: embed !== null && typeof embed === 'object' ? (embed as Embed) : {},
    retries: typeof retries === 'number' ? retries : 0,
    rootId: str(h['root_id']) ?? id,
    parentId: str(h['parent_id']),
    group: str(h['group']),
    eta: parseIso(h['eta']),
    expires: parseIso(h['expires']),
    timeLimitMs: soft,
    hardTimeLimitMs: hard,
    priority: typeof h['priority'] === 'number' ? h['priority'] : null,
    origin: str(h['origin']),
    traceparent: str(h['traceparent']),
    extra,
    sentAt: typeof h['sent_at'] === 'number' ? h['sent_at'] : null,
  };
}
