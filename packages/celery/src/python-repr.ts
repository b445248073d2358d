/**
 * Python's `repr` of JSON-like values, for the `argsrepr` and `kwargsrepr` headers that Celery's
 * monitoring tools (Flower, `celery events`) display. Celery truncates them with `saferepr` at
 * 1024 characters; so do we.
 */

export const REPR_MAX = 1024;

function reprString(s: string): string {
  // Python prefers single quotes, and switches to double quotes when the text has ' but no ".
  const quote = s.includes("'") && !s.includes('"') ? '"' : "'";
  let out = quote;
  for (const ch of s) {
    const c = ch.codePointAt(0)!;
    if (ch === quote || ch === '\\') out += `\\${ch}`;
    else if (ch === '\n') out += '\\n';
    else if (ch === '\r') out += '\\r';
    else if (ch === '\t') out += '\\t';
    else if (c < 0x20 || c === 0x7f) out += `\\x${c.toString(16).padStart(2, '0')}`;
    else out += ch;
  }
  return out + quote;
}

function reprNumber(n: number): string {
  if (Number.isNaN(n)) return 'nan';
  if (!Number.isFinite(n)) return n > 0 ? 'inf' : '-inf';
  if (Number.isInteger(n)) return String(n);
  const abs = Math.abs(n);
  if (abs < 1e-4 || abs >= 1e16) return n.toExponential().replace(/e([+-])(\d)$/, 'e$10$2');
  return String(n);
}

/** `repr(value)` for JSON-like values (lists for arrays, dicts for objects). */
export function pyRepr(value: unknown): string {
  if (value === null || value === undefined) return 'None';
  switch (typeof value) {
    case 'string':
      return reprString(value);
    case 'number':
      return reprNumber(value);
    case 'boolean':
      return value ? 'True' : 'False';
    case 'bigint':
      return value.toString();
    case 'object':
      break;
    default:
      return reprString(String(value));
  }
  if (Array.isArray(value)) return `[${value.map(pyRepr).join(', ')}]`;
  if (value instanceof Date) return reprString(value.toISOString());
  const parts = Object.entries(value as Record<string, unknown>).map(([k, v]) => `${reprString(k)}: ${pyRepr(v)}`);
  return `{${parts.join(', ')}}`;
}

/** `saferepr(args)` of a task's positional arguments: a tuple, as Celery shows them. */
export function argsRepr(args: readonly unknown[]): string {
  const inner = args.map(pyRepr);
  return truncate(inner.length === 1 ? `(${inner[0]},)` : `(${inner.join(', ')})`);
}

/** `saferepr(kwargs)`. */
export function kwargsRepr(kwargs: Readonly<Record<string, unknown>>): string {
  return truncate(pyRepr(kwargs));
}

function truncate(s: string): string {
  return s.length > REPR_MAX ? `${s.slice(0, REPR_MAX - 3)}...` : s;
}
