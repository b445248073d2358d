import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { chown, mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { postgresBinDir } from './binaries.js';
import { freePort, retryOnPortClash } from './ports.js';
import { managedServer, type PrivateServer, type StopMode } from './private-server.js';

const run = promisify(execFile);

/** Options of `startPrivatePostgres`. */
export interface PrivatePostgresOptions {
  /** The database created for the tests (owned by the superuser `postgres`). @default 'test' */
  database?: string;
  /** Where `initdb`, `pg_ctl` and `createdb` are. @default postgresBinDir() */
  binDir?: string;
  /**
   * Server settings, each passed as `-c name=value`, over the defaults for fast tests:
   * `fsync=off`, `full_page_writes=off`, `shared_buffers=16MB`. `synchronous_commit` stays on, so a
   * committed row survives `stop({ mode: 'immediate' })` (a crash of the server, not of the machine).
   */
  settings?: Readonly<Record<string, string | number>>;
  /** How long `pg_ctl start` and `stop` may wait. @default 60_000 */
  timeoutMs?: number;
}

/** A private PostgreSQL node: superuser `postgres` with trust auth, one database for the tests. */
export interface PrivatePostgresServer extends PrivateServer {
  /** The database in `url`. */
  readonly database: string;
  /** The superuser in `url` (no password: trust auth on 127.0.0.1 and the socket). */
  readonly user: 'postgres';
  /** The directory of the node's Unix socket (`-k`): `psql -h <socketDir> -p <port>`. */
  readonly socketDir: string;
  /** The folder of every file of the node (removed by `close`). */
  readonly root: string;
}

/** Quote `s` for /bin/sh: pg_ctl hands `-o` to a shell. */
function shellQuote(s: string): string {
  return `'${s.replaceAll("'", `'\\''`)}'`;
}

const runningAsRoot = (): boolean => process.getuid?.() === 0;

/**
 * Start a private PostgreSQL node for fault tests, never the shared server: `initdb` into a temporary
 * data directory (superuser `postgres`, trust auth, UTF8, C locale, no fsync), then
 * `pg_ctl start -w` listening on 127.0.0.1 on a free port with its Unix socket in the temporary folder
 * (`-k`), then `createdb` of `database`. PostgreSQL refuses to run as root: as root, `initdb` and
 * `pg_ctl` run through `runuser -u postgres --` and the folder is owned by the `postgres` user; not
 * as root, they run as the current user.
 *
 * `stop({ mode })` is `pg_ctl stop -m fast|immediate -w` (`immediate` is a crash: the next start
 * recovers from the WAL); `restart` keeps the data; `start({ keepData: false })` starts from a new
 * `initdb`; `close()` stops it immediately and removes the folder. The server is not a child of this
 * process (pg_ctl detaches it), so it is also sent SIGQUIT (immediate shutdown) if this process exits
 * while it runs.
 */
export function startPrivatePostgres(opts: PrivatePostgresOptions = {}): Promise<PrivatePostgresServer> {
  return retryOnPortClash(() => startOnce(opts));
}

async function postgresUser(): Promise<{ uid: number; gid: number }> {
  const id = async (flag: string): Promise<number> => Number((await run('id', [flag, 'postgres'])).stdout.trim());
  try {
    return { uid: await id('-u'), gid: await id('-g') };
  } catch (err) {
    throw new Error('running as root, a private PostgreSQL node needs the system user postgres (none found)', { cause: err });
  }
}

async function startOnce(opts: PrivatePostgresOptions): Promise<PrivatePostgresServer> {
  const binDir = opts.binDir ?? postgresBinDir();
  if (binDir === undefined) throw new Error('PostgreSQL server programs not found: install postgresql or set CELERIAC_POSTGRES_BIN');
  const bin = (tool: string): string => join(binDir, tool);
  const database = opts.database ?? 'test';
  const timeoutMs = opts.timeoutMs ?? 60_000;
  const asRoot = runningAsRoot();
  const owner = asRoot ? await postgresUser() : undefined;
  const root = await mkdtemp(join(tmpdir(), 'celeriac-postgres-'));
  if (owner !== undefined) await chown(root, owner.uid, owner.gid);
  const dataDir = join(root, 'data');
  const logFile = join(root, 'postgres.log');
  const port = await freePort();
  const settings: Record<string, string | number> = {
    fsync: 'off',
    full_page_writes: 'off',
    shared_buffers: '16MB',
    ...opts.settings,
  };
  const serverOptions = [
    '-h 127.0.0.1',
    `-p ${port}`,
    `-k ${shellQuote(root)}`,
    ...Object.entries(settings).map(([k, v]) => `-c ${shellQuote(`${k}=${String(v)}`)}`),
  ].join(' ');

  /** Run a PostgreSQL program as the postgres user (runuser when root); rejects with its output. */
  const runAsPostgres = async (tool: string, args: readonly string[]): Promise<void> => {
    const [command, argv] = asRoot ? ['runuser', ['-u', 'postgres', '--', bin(tool), ...args]] : [bin(tool), [...args]];
    try {
      await run(command, argv, { cwd: root, timeout: timeoutMs + 10_000 });
    } catch (err) {
      const e = err as { stdout?: string; stderr?: string; message?: string };
      const log = await readFile(logFile, 'utf8').then((t) => t.slice(-4_000), () => '');
      throw new Error(`${tool} ${args.join(' ')} failed: ${e.message ?? String(err)}\n${e.stdout ?? ''}${e.stderr ?? ''}\n${log}`, { cause: err });
    }
  };

  /** The postmaster's pid while one runs on this data directory (postmaster.pid, and the process is alive). */
  const postmasterPid = (): number | undefined => {
    let pid: number;
    try {
      pid = Number(readFileSync(join(dataDir, 'postmaster.pid'), 'utf8').split('\n')[0]);
    } catch {
      return undefined;
    }
    if (!Number.isInteger(pid) || pid <= 0) return undefined;
    try {
      process.kill(pid, 0);
      return pid;
    } catch {
      return undefined;
    }
  };
  const quitOnExit = (): void => {
    const pid = postmasterPid();
    if (pid !== undefined) process.kill(pid, 'SIGQUIT');
  };

  const up = async (): Promise<void> => {
    if (postmasterPid() !== undefined) return;
    const fresh = !existsSync(join(dataDir, 'PG_VERSION'));
    if (fresh) {
      await runAsPostgres('initdb', ['-D', dataDir, '-U', 'postgres', '--auth=trust', '-E', 'UTF8', '--no-locale', '--no-sync']);
    }
    process.off('exit', quitOnExit);
    process.once('exit', quitOnExit);
    const seconds = String(Math.ceil(timeoutMs / 1000));
    try {
      await runAsPostgres('pg_ctl', ['start', '-D', dataDir, '-l', logFile, '-w', '-t', seconds, '-o', serverOptions]);
    } catch (err) {
      if (postmasterPid() === undefined) process.off('exit', quitOnExit);
      throw err;
    }
    if (fresh && database !== 'postgres') {
      await run(bin('createdb'), ['-h', '127.0.0.1', '-p', String(port), '-U', 'postgres', database], { timeout: timeoutMs });
    }
  };
  const down = async (mode: StopMode): Promise<void> => {
    try {
      if (postmasterPid() === undefined) return;
      await runAsPostgres('pg_ctl', ['stop', '-D', dataDir, '-m', mode, '-w', '-t', String(Math.ceil(timeoutMs / 1000))]);
    } finally {
      if (postmasterPid() === undefined) process.off('exit', quitOnExit);
    }
  };

  return managedServer({
    fields: {
      kind: 'postgres',
      url: `postgres://postgres@127.0.0.1:${port}/${database}`,
      port,
      dataDir,
      database,
      user: 'postgres',
      socketDir: root,
      root,
    },
    root,
    running: () => postmasterPid() !== undefined,
    up,
    down,
  });
}
