import { readScriptFiles } from '@celeriac/core/transport';
import type { Cluster, Redis } from 'ioredis';

/** A connection the broker runs scripts on: a single node or a cluster. */
export type RedisClient = Redis | Cluster;

type Arg = string | number | Buffer;
type ScriptFn<R> = (...args: Arg[]) => Promise<R>;

/** The scripts under `lua/`, with their number of keys (null: variable, given first on each call). */
const SCRIPTS = {
  publish: 14,
  claim: 17,
  ack: 2,
  'ack-result': null,
  extend: 1,
  nack: 16,
  purge: 12,
  stats: 13,
  'dead-list': 3,
  'dead-redrive': 13,
  'dead-purge': 3,
} as const;

export type ScriptName = keyof typeof SCRIPTS;

/** The scripts, read once per process; they ship in `lua/`, next to `dist/` and `src/`. */
function loadSources(): ReadonlyMap<ScriptName, string> {
  return readScriptFiles(new URL('../lua/', import.meta.url), Object.keys(SCRIPTS) as ScriptName[]);
}

function commandName(name: ScriptName): string {
  return `celeriac_${name.replace(/-/g, '_')}`;
}

/** Define every script on a connection (ioredis sends EVALSHA and falls back to EVAL on NOSCRIPT). */
export function defineScripts(client: RedisClient): void {
  for (const [name, lua] of loadSources()) {
    const keys = SCRIPTS[name];
    client.defineCommand(commandName(name), keys === null ? { lua } : { numberOfKeys: keys, lua });
  }
}

/** Typed access to the scripts defined on a connection. */
export interface Scripts {
  publish(keys: readonly string[], args: readonly Arg[]): Promise<number>;
  claim(keys: readonly string[], args: readonly Arg[]): Promise<(number | Buffer)[]>;
  ack(keys: readonly string[], args: readonly Arg[]): Promise<number[]>;
  ackResult(keys: readonly string[], args: readonly Arg[]): Promise<number[]>;
  extend(keys: readonly string[], args: readonly Arg[]): Promise<number[]>;
  nack(keys: readonly string[], args: readonly Arg[]): Promise<number[]>;
  purge(keys: readonly string[], args: readonly Arg[]): Promise<number>;
  stats(keys: readonly string[], args: readonly Arg[]): Promise<number[]>;
  deadList(keys: readonly string[], args: readonly Arg[]): Promise<(number | Buffer | null)[]>;
  deadRedrive(keys: readonly string[], args: readonly Arg[]): Promise<number>;
  deadPurge(keys: readonly string[], args: readonly Arg[]): Promise<number>;
}

export function scriptsOf(client: RedisClient): Scripts {
  const c = client as unknown as Record<string, ScriptFn<unknown>>;
  const call =
    <R>(name: ScriptName, buffers = false) =>
    (keys: readonly string[], args: readonly Arg[]): Promise<R> => {
      const fn = c[commandName(name) + (buffers ? 'Buffer' : '')];
      if (fn === undefined) throw new Error(`script ${name} is not defined on this connection`);
      return (SCRIPTS[name] === null ? fn.call(client, keys.length, ...keys, ...args) : fn.call(client, ...keys, ...args)) as Promise<R>;
    };
  return {
    publish: call('publish'),
    claim: call('claim', true),
    ack: call('ack'),
    ackResult: call('ack-result'),
    extend: call('extend'),
    nack: call('nack'),
    purge: call('purge'),
    stats: call('stats'),
    deadList: call('dead-list', true),
    deadRedrive: call('dead-redrive'),
    deadPurge: call('dead-purge'),
  };
}
