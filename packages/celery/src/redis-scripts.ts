import { readScriptFiles } from '@celeriac/core/transport';
import type { Redis } from 'ioredis';

type Arg = string | number;

/** The scripts under `lua/`, each with its number of keys (-1: the caller passes it). */
const SCRIPTS = {
  claim: -1,
  move: 4,
  park: 3,
  extend: 1,
  purge: -1,
  unlock: 1,
  redrive: 2,
  renew: 1,
  'set-result': 1,
} as const;

export type ScriptName = keyof typeof SCRIPTS;

/** The scripts, read once per process; they ship in `lua/`, next to `dist/` and `src/`. */
function loadSources(): ReadonlyMap<ScriptName, string> {
  return readScriptFiles(new URL('../lua/', import.meta.url), Object.keys(SCRIPTS) as ScriptName[]);
}

function commandName(name: ScriptName): string {
  return `celery_${name.replace(/-/g, '_')}`;
}

/** Typed calls of the scripts defined on one connection (EVALSHA, with EVAL on NOSCRIPT). */
export interface Scripts {
  claim(keys: readonly string[], args: readonly Arg[]): Promise<string[]>;
  move(keys: readonly string[], args: readonly Arg[]): Promise<number>;
  park(keys: readonly string[], args: readonly Arg[]): Promise<number>;
  extend(keys: readonly string[], args: readonly Arg[]): Promise<number>;
  purge(keys: readonly string[], args: readonly Arg[]): Promise<number>;
  unlock(keys: readonly string[], args: readonly Arg[]): Promise<number>;
  redrive(keys: readonly string[], args: readonly Arg[]): Promise<number>;
  renew(keys: readonly string[], args: readonly Arg[]): Promise<number>;
  setResult(keys: readonly string[], args: readonly Arg[]): Promise<number>;
}

type Dyn = Record<string, (...a: Arg[]) => Promise<unknown>>;

/** Define the scripts on a connection and return typed callers. */
export function defineScripts(client: Redis): Scripts {
  for (const [name, lua] of loadSources()) {
    const n = SCRIPTS[name];
    client.defineCommand(commandName(name), n < 0 ? { lua } : { numberOfKeys: n, lua });
  }
  const dyn = client as unknown as Dyn;
  const call = <R>(name: ScriptName) => (keys: readonly string[], args: readonly Arg[]): Promise<R> => {
    const fn = dyn[commandName(name)]!;
    const n = SCRIPTS[name];
    return (n < 0 ? fn.call(client, keys.length, ...keys, ...args) : fn.call(client, ...keys, ...args)) as Promise<R>;
  };
  return {
    claim: call('claim'),
    move: call('move'),
    park: call('park'),
    extend: call('extend'),
    purge: call('purge'),
    unlock: call('unlock'),
    redrive: call('redrive'),
    renew: call('renew'),
    setResult: call('set-result'),
  };
}
