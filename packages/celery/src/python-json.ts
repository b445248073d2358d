/**
 * JSON written the way Python's `json.dumps` writes it with its defaults (which kombu and Celery
 * use): `", "` and `": "` separators and `ensure_ascii` (every non-ASCII character as `\uXXXX`).
 * Any JSON reader reads it; writing it byte for byte like Celery keeps envelopes, bodies and
 * results identical to what a Python process would have written for the same values.
 */

function needsEscape(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x20 || c > 0x7e || c === 0x22 || c === 0x5c) return true;
  }
  return false;
}

/** A JSON string literal with Python's escapes (`\uXXXX` for control and non-ASCII characters). */
export function pyString(s: string): string {
  if (!needsEscape(s)) return `"${s}"`;
  let out = '"';
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 0x22) out += '\\"';
    else if (c === 0x5c) out += '\\\\';
    else if (c === 0x0a) out += '\\n';
    else if (c === 0x0d) out += '\\r';
    else if (c === 0x09) out += '\\t';
    else if (c === 0x08) out += '\\b';
    else if (c === 0x0c) out += '\\f';
    else if (c < 0x20 || c > 0x7e) out += `\\u${c.toString(16).padStart(4, '0')}`;
    else out += s[i];
  }
  return `${out}"`;
}

/** A number as Python's `repr` writes it: `1e-05`, `1e+16`; integers as digits. */
export function pyNumber(n: number): string {
  if (!Number.isFinite(n)) return 'null'; // as JSON.stringify: Python's NaN/Infinity are not JSON
  if (Number.isInteger(n)) {
    if (Math.abs(n) < 1e16) return Object.is(n, -0) ? '0' : String(n);
    return pyExponent(n.toExponential());
  }
  const abs = Math.abs(n);
  if (abs < 1e-4 || abs >= 1e16) return pyExponent(n.toExponential());
  return String(n);
}

function pyExponent(s: string): string {
  // JS "1e-5" / "1.5e+21" → Python "1e-05" / "1.5e+21"
  return s.replace(/e([+-])(\d)$/, 'e$10$2');
}

/** `json.dumps(value)` as Python writes it. Follows `JSON.stringify` for `toJSON` and `undefined`. */
export function pyJson(value: unknown): string {
  const out = write(value, false);
  if (out === undefined) throw new TypeError('value is not JSON-serializable');
  return out;
}

function write(value: unknown, inArray: boolean): string | undefined {
  if (value === null) return 'null';
  switch (typeof value) {
    case 'string':
      return pyString(value);
    case 'number':
      return pyNumber(value);
    case 'boolean':
      return value ? 'true' : 'false';
    case 'undefined':
    case 'function':
    case 'symbol':
      return inArray ? 'null' : undefined;
    case 'bigint':
      throw new TypeError('a BigInt is not JSON-serializable');
    default:
      break;
  }
  const obj = value as { toJSON?: () => unknown };
  if (typeof obj.toJSON === 'function') return write(obj.toJSON(), inArray);
  if (Array.isArray(value)) {
    if (value.length === 0) return '[]';
    let s = '[';
    for (let i = 0; i < value.length; i++) {
      if (i > 0) s += ', ';
      s += write(value[i], true);
    }
    return `${s}]`;
  }
  let s = '{';
  let first = true;
  for (const key of Object.keys(value)) {
    const v = write((value as Record<string, unknown>)[key], false);
    if (v === undefined) continue;
    s += `${first ? '' : ', '}${pyString(key)}: ${v}`;
    first = false;
  }
  return `${s}}`;
}
