import { CeleriacError, ErrorCode, type ResultMeta } from '@celeriac/core';

/**
 * Results are stored as JSON with `state` as the first key, so the set script can tell a stored
 * SUCCESS from the first bytes without decoding. Values must be JSON-serializable: `undefined`
 * properties are dropped and a `Date` becomes its ISO string, as with `JSON.stringify`.
 */
export function encodeMeta(meta: ResultMeta): string {
  try {
    // The worker builds its results with `state` first already; only other objects are copied.
    const json = JSON.stringify(meta);
    return json.startsWith('{"state":') ? json : JSON.stringify(Object.assign({ state: meta.state }, meta));
  } catch (err) {
    throw new CeleriacError(ErrorCode.SERIALIZATION, `result is not JSON-serializable: ${String(err)}`, { cause: err });
  }
}

export function decodeMeta(json: string): ResultMeta {
  try {
    return JSON.parse(json) as ResultMeta;
  } catch (err) {
    throw new CeleriacError(ErrorCode.SERIALIZATION, `stored result is not valid JSON: ${String(err)}`, { cause: err });
  }
}

/** Milliseconds to a Redis PX argument: whole, at least 1; 0 means no expiry (non-finite ttl). */
export function ttlArg(ttlMs: number): number {
  if (!Number.isFinite(ttlMs)) return 0;
  return Math.max(1, Math.ceil(ttlMs));
}
