import { mkdtemp } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  freePort,
  retryOnPortClash,
  startServerProcess,
  stopServerProcess,
  waitUntilReady,
  type PrivateServer,
  managedServer,
  type ServerProcess,
} from './server-process.js';

export interface PrivateRedisOptions {
  /** Persist every write to an append-only file, so a restart keeps the data. @default false */
  appendonly?: boolean;
  /** How often the AOF is fsynced; 'always' survives a SIGKILL without losing acknowledged writes. @default 'always' */
  appendfsync?: 'always' | 'everysec' | 'no';
  /** More `redis-server` arguments, e.g. ['--maxmemory', '10mb']. */
  args?: readonly string[];
  /** @default 'redis-server' from PATH */
  command?: string;
}

/**
 * Send one command over RESP and return its reply as text: the status/error/integer line as sent
 * (`+PONG`, `-LOADING …`, `:1`), or the value of a bulk string (`$-1`, a nil, stays as is). No client
 * library, so the harness does not depend on the transport under test.
 */
export function redisCommand(port: number, command: readonly string[], timeoutMs = 1_000): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port });
    let buf = '';
    const done = (err: Error | null, line?: string): void => {
      socket.destroy();
      if (err === null) resolve(line ?? '');
      else reject(err);
    };
    socket.setTimeout(timeoutMs, () => done(new Error(`redis on ${port} did not answer within ${timeoutMs} ms`)));
    socket.once('error', (err) => done(err));
    socket.on('data', (chunk: Buffer) => {
      buf += chunk.toString('utf8');
      const end = buf.indexOf('\r\n');
      if (end < 0) return;
      const line = buf.slice(0, end);
      const len = line.startsWith('$') ? Number(line.slice(1)) : -1;
      if (len < 0) done(null, line);
      else if (Buffer.byteLength(buf) >= end + 2 + len + 2) done(null, buf.slice(end + 2, end + 2 + len));
    });
    socket.once('connect', () => {
      const parts = command.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join('');
      socket.write(`*${command.length}\r\n${parts}`);
    });
  });
}

/**
 * Start a private redis-server on a free loopback port with its own data directory:
 * `redis-server --port P --bind 127.0.0.1 --save "" --appendonly yes|no --dir <tmp>`. Ready once it
 * answers PING with PONG (not while it is still loading its AOF).
 */
export function startPrivateRedis(opts: PrivateRedisOptions = {}): Promise<PrivateServer> {
  return retryOnPortClash(() => startOnce(opts));
}

async function startOnce(opts: PrivateRedisOptions): Promise<PrivateServer> {
  const dataDir = await mkdtemp(join(tmpdir(), 'celeriac-redis-'));
  const port = await freePort();
  const args = [
    '--port',
    String(port),
    '--bind',
    '127.0.0.1',
    '--save',
    '',
    '--appendonly',
    opts.appendonly === true ? 'yes' : 'no',
    '--appendfsync',
    opts.appendfsync ?? 'always',
    '--dir',
    dataDir,
    '--daemonize',
    'no',
    '--logfile',
    '',
    ...(opts.args ?? []),
  ];
  const command = opts.command ?? 'redis-server';
  let proc: ServerProcess | undefined;

  const up = async (): Promise<void> => {
    if (proc?.alive() === true) return;
    const p = startServerProcess(command, args);
    proc = p;
    await waitUntilReady(p, `redis-server on port ${port}`, async () => (await redisCommand(port, ['PING'])) === '+PONG');
  };
  const down = async (o: { hard?: boolean } = {}): Promise<void> => {
    if (proc === undefined) return;
    // SIGTERM: redis fsyncs the AOF and exits; SIGKILL: a crash.
    await stopServerProcess(proc, o.hard === true ? 'SIGKILL' : 'SIGTERM');
  };
  return managedServer({
    fields: { kind: 'redis', url: `redis://127.0.0.1:${port}`, port, dataDir },
    root: dataDir,
    start: up,
    down: (hard) => down({ hard }),
  });
}
