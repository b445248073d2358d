import type { Broker, OutgoingMessage } from './broker.js';
import type { Incoming } from './transport/adapter.js';
import type { FactoryContext } from './resolve.js';
import type { ResultBackend } from './result-backend.js';
import { decodeTask, encodeTask, type TaskMessage } from './message.js';
import type { Serializer } from './serializer.js';

/** Turns a task message into broker bytes and headers, and back. */
export interface Codec {
  /** Throws ERR_PAYLOAD_TOO_LARGE when the serialized body is over `maxDecodedBytes`. */
  encode(msg: TaskMessage, serializer: Serializer, gzip: boolean, maxDecodedBytes?: number): OutgoingMessage;
  /**
   * Throws ERR_CONTENT_TYPE (a content type outside `accept`, an unknown encoding),
   * ERR_PAYLOAD_TOO_LARGE (a body that decodes to more than `maxDecodedBytes`; inflating stops there)
   * or ERR_SERIALIZATION for what it cannot read.
   */
  decode(delivery: Pick<Incoming, 'body' | 'headers' | 'parsedBody'>, accept: ReadonlySet<string>, maxDecodedBytes?: number): TaskMessage;
}

/** celeriac's own wire format: Celery protocol v2 fields, only those that are set. */
export const celeriacCodec: Codec = { encode: encodeTask, decode: decodeTask };

/**
 * A wire protocol: its codec, its default queue, and optionally its own brokers and result backends
 * for some URLs (Celery's kombu-compatible Redis transport and `celery-task-meta-*` results).
 * Returning undefined from a resolver falls back to core's URL table.
 */
export interface Protocol {
  readonly name: string;
  readonly defaultQueue: string;
  readonly codec: Codec;
  resolveBroker?(url: string, context: FactoryContext): Promise<Broker | undefined> | Broker | undefined;
  resolveResultBackend?(url: string, context: FactoryContext): Promise<ResultBackend | undefined> | ResultBackend | undefined;
}

export const celeriacProtocol: Protocol = { name: 'celeriac', defaultQueue: 'default', codec: celeriacCodec };

/** Where `protocol: 'celery'` comes from: the package and its export. */
export const CELERY_PROTOCOL = { pkg: '@celeriac/celery', export: 'celeryProtocol' } as const;
