import { gunzipSync, gzipSync } from 'node:zlib';
import { Packr } from 'msgpackr';
import { CeleriacError, ErrorCode } from './errors.js';

/** Turns values into bytes and back. Never deserializes anything executable. */
export interface Serializer {
  /** Short name used in options: 'json', 'msgpack'. */
  readonly name: string;
  /** The MIME type written to the `content-type` header. */
  readonly contentType: string;
  encode(value: unknown): Uint8Array;
  decode(bytes: Uint8Array): unknown;
}

const decoder = new TextDecoder('utf-8', { fatal: true });

export const jsonSerializer: Serializer = {
  name: 'json',
  contentType: 'application/json',
  // Buffer.from over TextEncoder: small bodies come from Node's buffer pool instead of an allocation each.
  encode: (value) => Buffer.from(JSON.stringify(value), 'utf8'),
  decode: (bytes) => JSON.parse(decoder.decode(bytes)) as unknown,
};

// Plain maps and arrays only: no records/structures shared between messages, so any msgpack peer can read it.
const packr = new Packr({ useRecords: false, moreTypes: false, mapsAsObjects: true, int64AsType: 'number' });

export const msgpackSerializer: Serializer = {
  name: 'msgpack',
  contentType: 'application/x-msgpack',
  encode: (value) => packr.pack(value),
  decode: (bytes) => packr.unpack(bytes) as unknown,
};

export const serializers: Readonly<Record<string, Serializer>> = {
  json: jsonSerializer,
  msgpack: msgpackSerializer,
};

export type SerializerName = 'json' | 'msgpack';

/** Names and content types to serializers: looked up once per message decoded. */
const byNameOrType: ReadonlyMap<string, Serializer> = new Map(
  Object.values(serializers).flatMap((s): [string, Serializer][] => [
    [s.name, s],
    [s.contentType, s],
  ]),
);

/** Resolve a name or content type to a serializer; ERR_CONTENT_TYPE when unknown. */
export function serializerFor(nameOrType: string): Serializer {
  const s = byNameOrType.get(nameOrType);
  if (s !== undefined) return s;
  throw new CeleriacError(ErrorCode.CONTENT_TYPE, `unknown serializer or content type "${nameOrType}"`);
}

export const GZIP = 'gzip';

/** What a body may decode (inflate) to unless the app says otherwise: 64 MiB. */
export const DEFAULT_MAX_DECODED_BYTES = 64 * 1024 * 1024;

export function compress(bytes: Uint8Array): Uint8Array {
  return gzipSync(bytes);
}

/**
 * Inflate a gzip body, stopping at `maxBytes` (a small body that inflates to gigabytes is refused
 * with ERR_PAYLOAD_TOO_LARGE once it reaches the bound, never inflated to the end).
 */
export function decompress(bytes: Uint8Array, maxBytes = DEFAULT_MAX_DECODED_BYTES): Uint8Array {
  try {
    return gunzipSync(bytes, { maxOutputLength: maxBytes });
  } catch (err) {
    throw inflateError(err, maxBytes);
  }
}

/** zlib's "over maxOutputLength" as ERR_PAYLOAD_TOO_LARGE; any other inflate failure passes through. */
export function inflateError(err: unknown, maxBytes: number): unknown {
  if (err instanceof RangeError && 'code' in err && err.code === 'ERR_BUFFER_TOO_LARGE') {
    return new CeleriacError(ErrorCode.PAYLOAD_TOO_LARGE, `body inflates to more than maxDecodedBytes (${maxBytes} bytes)`, { cause: err });
  }
  return err;
}

/** ERR_PAYLOAD_TOO_LARGE when a decoded body is over `maxBytes`. */
export function checkDecodedSize(size: number, maxBytes: number): void {
  if (size > maxBytes) {
    throw new CeleriacError(ErrorCode.PAYLOAD_TOO_LARGE, `body of ${size} bytes decoded is over maxDecodedBytes (${maxBytes} bytes)`);
  }
}
