import { accessSync, constants, readdirSync, realpathSync } from 'node:fs';
import { delimiter, dirname, join } from 'node:path';
import { skipOrFail } from './skip.js';

/** The full path of `command` (absolute, or found on PATH and executable), or undefined. */
export function findBinary(command: string): string | undefined {
  const candidates = command.includes('/')
    ? [command]
    : (process.env['PATH'] ?? '').split(delimiter).filter((d) => d !== '').map((d) => join(d, command));
  for (const c of candidates) {
    try {
      accessSync(c, constants.X_OK);
      return c;
    } catch {
      // not here
    }
  }
  return undefined;
}

/**
 * Whether tests that start a private server from `command` should run: a missing binary skips them
 * with one clear line locally and throws under CI=true.
 */
export function requireBinary(command: string): boolean {
  if (findBinary(command) !== undefined) return true;
  return skipOrFail('private-server tests', `${command} is not installed`, 'CI must provide it (see DESIGN.md §8)');
}

/**
 * The directory of PostgreSQL's server programs (`initdb`, `pg_ctl`, `postgres`, `createdb`), which
 * Debian keeps off PATH: `$CELERIAC_POSTGRES_BIN`, else the directory of `pg_ctl` on PATH (of its
 * target if it is a symlink), else the newest `/usr/lib/postgresql/<major>/bin` that has `pg_ctl`;
 * undefined when there is none.
 */
export function postgresBinDir(): string | undefined {
  const fromEnv = process.env['CELERIAC_POSTGRES_BIN'];
  if (fromEnv !== undefined && fromEnv !== '') return fromEnv;
  const onPath = findBinary('pg_ctl');
  // A symlink on PATH (/usr/local/bin/pg_ctl → /usr/lib/postgresql/15/bin/pg_ctl): the programs beside its target.
  if (onPath !== undefined) return dirname(realpathSync(onPath));
  let majors: string[];
  try {
    majors = readdirSync('/usr/lib/postgresql');
  } catch {
    return undefined;
  }
  const found = majors
    .filter((m) => /^\d+$/.test(m))
    .sort((a, b) => Number(b) - Number(a))
    .map((m) => `/usr/lib/postgresql/${m}/bin`)
    .find((dir) => findBinary(join(dir, 'pg_ctl')) !== undefined);
  return found;
}

/**
 * Whether tests that start a private PostgreSQL node should run: `initdb`, `pg_ctl` and `createdb`
 * must be found (`postgresBinDir`), and as root `runuser` too (PostgreSQL refuses to run as root).
 * A missing one skips with one clear line locally and throws under CI=true.
 */
export function requirePostgresBinaries(): boolean {
  const dir = postgresBinDir();
  const missing = dir === undefined ? ['initdb', 'pg_ctl', 'createdb'] : ['initdb', 'pg_ctl', 'createdb'].filter((t) => findBinary(join(dir, t)) === undefined);
  if (process.getuid?.() === 0 && findBinary('runuser') === undefined) missing.push('runuser');
  if (missing.length === 0) return true;
  return skipOrFail(
    'private PostgreSQL tests',
    `${missing.join(', ')} not found (PostgreSQL's server programs: /usr/lib/postgresql/<major>/bin, PATH or $CELERIAC_POSTGRES_BIN)`,
    'CI must install PostgreSQL (see DESIGN.md §8)',
  );
}
