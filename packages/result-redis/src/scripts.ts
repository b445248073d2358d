import { readScriptFiles } from '@celeriac/core/transport';
import type { Cluster, Redis } from 'ioredis';

export type RedisClient = Redis | Cluster;

/** Number of keys of each script; null: given per call (set-result takes one key per result). */
const SCRIPTS = {
  'set-result': null,
  incr: 1,
  'renew-lease': 1,
  'release-lease': 1,
  'take-tokens': 1,
  'put-schedule': 2,
  'delete-schedule': 2,
  'list-schedules': 2,
} as const;
type ScriptName = keyof typeof SCRIPTS;

/** The scripts, read once per process; they ship in `lua/`, next to `dist/` and `src/`. */
function loadSources(): ReadonlyMap<ScriptName, string> {
  return readScriptFiles(new URL('../lua/', import.meta.url), Object.keys(SCRIPTS) as ScriptName[]);
}

function commandName(name: ScriptName): string {
  return `celeriac_rb_${name.replace(/-/g, '_')}`;
}

export interface SetItem {
  key: string;
  json: string;
  ttlMs: number;
  /** PUBLISH it on the key's name (ready states, which `wait()` listens for). */
  announce: boolean;
}

export interface Scripts {
  /** Store results: each item its key, JSON, ttl and whether to announce it; returns 1 (stored) or 0 (SUCCESS kept) per item. */
  setResults(items: readonly SetItem[]): Promise<number[]>;
  incr(key: string, by: number, ttlMs: number): Promise<number>;
  renewLease(key: string, holder: string, ttlMs: number): Promise<number>;
  releaseLease(key: string, holder: string): Promise<number>;
  takeTokens(key: string, limit: number, windowMs: number): Promise<[number, number]>;
  /** Compare-and-set a schedule record: the new rev, or 0. */
  putSchedule(hash: string, version: string, id: string, expectedRev: number, data: string): Promise<number>;
  deleteSchedule(hash: string, version: string, id: string): Promise<number>;
  listSchedules(hash: string, version: string): Promise<[string, string[]]>;
}

/** Define the scripts on a connection (EVALSHA, EVAL on NOSCRIPT) and return typed callers. */
export function defineScripts(client: RedisClient): Scripts {
  for (const [name, lua] of loadSources()) {
    const keys = SCRIPTS[name];
    client.defineCommand(commandName(name), keys === null ? { lua } : { numberOfKeys: keys, lua });
  }
  const c = client as unknown as Record<string, (...args: (string | number)[]) => Promise<unknown>>;
  const call =
    <R>(name: ScriptName) =>
    (...args: (string | number)[]): Promise<R> =>
      c[commandName(name)]!.call(client, ...args) as Promise<R>;
  return {
    setResults: (items) => {
      const args: (string | number)[] = [items.length];
      const lines: string[] = [];
      for (const it of items) {
        args.push(it.key);
        lines.push(`${it.ttlMs}\t${it.announce ? 1 : 0}\t${it.json}`);
      }
      args.push(lines.join('\n'));
      return call<number[]>('set-result')(...args);
    },
    incr: call('incr'),
    renewLease: call('renew-lease'),
    releaseLease: call('release-lease'),
    takeTokens: call('take-tokens'),
    putSchedule: call('put-schedule'),
    deleteSchedule: call('delete-schedule'),
    listSchedules: call('list-schedules'),
  };
}
