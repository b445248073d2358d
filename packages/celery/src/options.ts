import { CeleriacError, ErrorCode, type UrlOptions } from '@celeriac/core';

type Kind = 'string' | 'int' | 'bool';

/**
 * Validate URL query options against a table of names and kinds; an unknown name is an error,
 * never silently ignored.
 */
export function parseOptions<T extends object>(what: string, input: UrlOptions | T, kinds: Readonly<Record<string, Kind>>): Partial<T> {
  const out: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(input)) {
    if (value === undefined) continue;
    const kind = kinds[name];
    if (kind === undefined) {
      throw new CeleriacError(ErrorCode.INVALID_URL, `unknown ${what} option "${name}" (known: ${Object.keys(kinds).join(', ')})`);
    }
    if (kind === 'int' && (typeof value !== 'number' || !Number.isInteger(value) || value < 0)) {
      throw new RangeError(`${what} option ${name} must be an integer >= 0, got ${String(value)}`);
    }
    if (kind === 'bool' && typeof value !== 'boolean') throw new TypeError(`${what} option ${name} must be true or false, got ${String(value)}`);
    out[name] = kind === 'string' ? String(value) : value;
  }
  return out as Partial<T>;
}

/** A `redis://` URL without the query string (ioredis reads host, port, credentials and db from it). */
export function connectionUrl(url: URL): string {
  const u = new URL(url.href);
  u.search = '';
  u.hash = '';
  return u.href;
}
