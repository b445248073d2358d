/**
 * Printable, bounded forms of user data (task arguments, results, progress). The dashboard keeps
 * text, never the values: a huge result cannot grow its memory past `maxChars` per field, and what
 * is shown is exactly what is stored.
 */
export function repr(value: unknown, maxChars = 2_000): string {
  let s: string;
  if (value === undefined) s = 'undefined';
  else if (typeof value === 'string') s = JSON.stringify(value);
  else {
    try {
      s = JSON.stringify(value, (_k, v: unknown) => (typeof v === 'bigint' ? `${v.toString()}n` : v)) ?? String(value);
    } catch {
      s = Object.prototype.toString.call(value);
    }
  }
  return clip(s, maxChars);
}

/** `s` cut to at most `maxChars` characters, marked with an ellipsis when cut. */
export function clip(s: string, maxChars: number): string {
  return s.length > maxChars ? `${s.slice(0, Math.max(0, maxChars - 1))}…` : s;
}
