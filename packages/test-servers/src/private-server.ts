import { readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';

/** The kinds of private server a fault test can start. */
export type PrivateServerKind = 'redis' | 'nats' | 'amqp' | 'postgres';

/**
 * How a private server is stopped. `fast`: a clean shutdown (SIGTERM for redis and nats,
 * `rabbitmqctl stop`, `pg_ctl stop -m fast`): what the server acknowledged is on disk. `immediate`: a
 * crash (SIGKILL for redis, nats and RabbitMQ; `pg_ctl stop -m immediate` for PostgreSQL, which then
 * recovers from its WAL at the next start): what survives is what the server had made durable.
 */
export type StopMode = 'fast' | 'immediate';

/**
 * A server a test started for itself on free loopback ports, with its own data directory: never the
 * shared one (DESIGN.md §8). It is running when its `startPrivate…` function resolves.
 */
export interface PrivateServer {
  readonly kind: PrivateServerKind;
  /** The client URL (loopback, private port). */
  readonly url: string;
  readonly port: number;
  /** The server's data directory: kept by `stop`/`start`/`restart` unless told otherwise, removed by `close`. */
  readonly dataDir: string;
  /** True while the server process runs (started, and not stopped or crashed since). */
  running(): boolean;
  /**
   * Start it again on the same ports (nothing if it runs) and wait until it is ready. With
   * `keepData: false` a running server is stopped immediately and its data directory emptied first, so
   * it comes up as new. Rejects after `close()`.
   * @default keepData true
   */
  start(opts?: { keepData?: boolean }): Promise<void>;
  /** Stop the server process and wait for it to be gone, keeping the data directory. Nothing if it is stopped. @default mode 'fast' */
  stop(opts?: { mode?: StopMode }): Promise<void>;
  /** `stop({ mode })` then `start({ keepData })`. @default mode 'fast', keepData true */
  restart(opts?: { mode?: StopMode; keepData?: boolean }): Promise<void>;
  /**
   * Stop it for good (immediately: its data is thrown away) and remove every file it had. Idempotent:
   * a second call returns the same promise.
   */
  close(): Promise<void>;
}

/** Empty a directory, keeping the directory itself. */
export async function wipe(dir: string): Promise<void> {
  for (const entry of await readdir(dir)) await rm(join(dir, entry), { recursive: true, force: true });
}

/** What one kind of server supplies to `managedServer`. */
export interface ServerDriver<X extends object> {
  /** The server's fields: kind, url, port, dataDir and its own extras. */
  fields: Omit<PrivateServer, 'running' | 'start' | 'stop' | 'restart' | 'close'> & X;
  /** Removed by `close()`: the data directory, or the folder that holds it. */
  root: string;
  /** Start the server (nothing if it runs) and wait until it is ready. */
  up(): Promise<void>;
  /** Stop the server (nothing if it is stopped) and wait until it is gone. */
  down(mode: StopMode): Promise<void>;
  /** True while the server runs. */
  running(): boolean;
  /** Make sure nothing is left running after a first start that failed. @default down('immediate') */
  abort?(): Promise<void>;
  /** Empty the data before a start with keepData false. @default wipe(fields.dataDir) */
  wipe?(): Promise<void>;
}

/**
 * The lifecycle every private server shares (`PrivateServer`): start it now, then stop / start /
 * restart / close, keeping or wiping its data. When the first start fails, whatever it started is
 * stopped and `root` removed before the error is rethrown.
 */
export async function managedServer<X extends object>(d: ServerDriver<X>): Promise<PrivateServer & X> {
  try {
    await d.up();
  } catch (err) {
    await (d.abort ?? (() => d.down('immediate')))().catch(() => undefined);
    await rm(d.root, { recursive: true, force: true });
    throw err;
  }
  const emptyData = d.wipe ?? (() => wipe(d.fields.dataDir));
  let closing: Promise<void> | undefined;
  const start = async (o: { keepData?: boolean } = {}): Promise<void> => {
    if (closing !== undefined) throw new Error(`the private ${d.fields.kind} server on port ${d.fields.port} was closed`);
    if (o.keepData === false) {
      await d.down('immediate');
      await emptyData();
    }
    await d.up();
  };
  const stop = (o: { mode?: StopMode } = {}): Promise<void> => d.down(o.mode ?? 'fast');
  return {
    ...d.fields,
    running: () => d.running(),
    start,
    stop,
    restart: async (r = {}) => {
      await stop(r.mode === undefined ? {} : { mode: r.mode });
      await start(r.keepData === undefined ? {} : { keepData: r.keepData });
    },
    close: () => {
      closing ??= (async () => {
        await d.down('immediate');
        await rm(d.root, { recursive: true, force: true });
      })();
      return closing;
    },
  };
}
