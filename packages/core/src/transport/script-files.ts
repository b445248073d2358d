import { readFileSync } from 'node:fs';

const cache = new Map<string, ReadonlyMap<string, string>>();

/**
 * Read `<name>.lua` from `dir` for every name, once per process and directory. Transports ship their
 * server-side scripts as files (with a KEYS/ARGV header) next to `dist/`; this is how they load them.
 */
export function readScriptFiles<N extends string>(dir: URL, names: readonly N[]): ReadonlyMap<N, string> {
  let m = cache.get(dir.href);
  if (m === undefined) {
    const sources = new Map<string, string>();
    for (const name of names) sources.set(name, readFileSync(new URL(`${name}.lua`, dir), 'utf8'));
    m = sources;
    cache.set(dir.href, m);
  }
  return m as ReadonlyMap<N, string>;
}
