import { mkdtemp } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { freePort, retryOnPortClash } from './ports.js';
import { managedServer, type PrivateServer } from './private-server.js';
import { startServerProcess, stopServerProcess, waitUntilReady, type ServerProcess } from './server-process.js';

/** Options of `startPrivateRedis`. */
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
 * (`+PONG`, `-LOADING …`, `:1`), or the value of a bulk string (`$-1`, a nil, stays as is). Rejects
 * when the connection fails or no reply comes within `timeoutMs`. No client library, so the harness
 * does not depend on the transport under test.
 */
export function redisCommand(port: number, command: readonly string[], timeoutMs = 1_000): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port });
    let buf = Buffer.alloc(0);
    const done = (err: Error | null, line?: string): void => {
      socket.destroy();
      if (err === null) resolve(line ?? '');
      else reject(err);
    };
    socket.setTimeout(timeoutMs, () => done(new Error(`redis on ${port} did not answer within ${timeoutMs} ms`)));
    socket.once('error', (err) => done(err));
    socket.on('data', (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      const end = buf.indexOf('\r\n');
      if (end < 0) return;
      const line = buf.subarray(0, end).toString('utf8');
      const len = line.startsWith('$') ? Number(line.slice(1)) : -1;
      if (len < 0) done(null, line);
      else if (buf.length >= end + 2 + len + 2) done(null, buf.subarray(end + 2, end + 2 + len).toString('utf8'));
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
 * answers PING with PONG (not while it is still loading its AOF). `stop({ mode: 'fast' })` is SIGTERM
 * (Redis fsyncs the AOF and exits), `'immediate'` is SIGKILL.
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
  return managedServer({
    fields: { kind: 'redis', url: `redis://127.0.0.1:${port}`, port, dataDir },
    root: dataDir,
    running: () => proc?.alive() === true,
    up: async () => {
      if (proc?.alive() === true) return;
      const p = startServerProcess(command, args);
      proc = p;
      await waitUntilReady(p, `redis-server on port ${port}`, async () => (await redisCommand(port, ['PING'])) === '+PONG');
    },
    down: async (mode) => {
      if (proc !== undefined) await stopServerProcess(proc, mode === 'immediate' ? 'SIGKILL' : 'SIGTERM');
    },
  });
}

/** A private Redis Cluster: its nodes and the URL of the first one (cluster clients discover the rest). */
export interface PrivateRedisCluster {
  readonly nodes: readonly PrivateServer[];
  /** The first node's URL. */
  readonly url: string;
  /** Close every node (see `PrivateServer.close`). Idempotent. */
  close(): Promise<void>;
}

/** Options of `startPrivateRedisCluster`. */
export interface PrivateRedisClusterOptions {
  /** How many masters (no replicas); the 16384 slots are split evenly between them. @default 3 */
  masters?: number;
  /** More `redis-server` arguments for every node. */
  args?: readonly string[];
  /** How long the cluster may take to agree on the slots. @default 30_000 */
  readyTimeoutMs?: number;
}

const SLOTS = 16_384;

/**
 * Start a private Redis Cluster of `masters` masters (no replicas) on free loopback ports: each node
 * runs with `--cluster-enabled yes`, gets its share of the slots and a distinct config epoch, meets the
 * first node, and the cluster is ready once every node reports `cluster_state:ok`. Plain RESP commands,
 * no redis-cli. If anything fails, every node started so far is closed.
 */
export async function startPrivateRedisCluster(opts: PrivateRedisClusterOptions = {}): Promise<PrivateRedisCluster> {
  const masters = opts.masters ?? 3;
  if (!Number.isInteger(masters) || masters < 1) throw new RangeError(`masters must be a positive integer, got ${masters}`);
  const nodes: PrivateServer[] = [];
  try {
    for (let i = 0; i < masters; i++) {
      nodes.push(
        await startPrivateRedis({ args: ['--cluster-enabled', 'yes', '--cluster-config-file', 'nodes.conf', ...(opts.args ?? [])] }),
      );
    }
    for (const [i, n] of nodes.entries()) {
      const from = Math.floor((i * SLOTS) / masters);
      const to = Math.floor(((i + 1) * SLOTS) / masters);
      const slots = Array.from({ length: to - from }, (_, k) => String(from + k));
      await expectOk(n.port, ['CLUSTER', 'ADDSLOTS', ...slots]);
      await expectOk(n.port, ['CLUSTER', 'SET-CONFIG-EPOCH', String(i + 1)]);
    }
    for (const n of nodes.slice(1)) await expectOk(nodes[0]!.port, ['CLUSTER', 'MEET', '127.0.0.1', String(n.port)]);
    const timeoutMs = opts.readyTimeoutMs ?? 30_000;
    const deadline = Date.now() + timeoutMs;
    for (const n of nodes) {
      for (;;) {
        const info = await redisCommand(n.port, ['CLUSTER', 'INFO']);
        if (info.includes('cluster_state:ok')) break;
        if (Date.now() > deadline) throw new Error(`redis cluster node ${n.port} is not ok after ${timeoutMs} ms: ${info}`);
        await sleep(25);
      }
    }
  } catch (err) {
    await Promise.allSettled(nodes.map((n) => n.close()));
    throw err;
  }
  let closing: Promise<void> | undefined;
  return {
    nodes,
    url: nodes[0]!.url,
    close: () => {
      closing ??= Promise.allSettled(nodes.map((n) => n.close())).then(() => undefined);
      return closing;
    },
  };
}

async function expectOk(port: number, command: readonly string[]): Promise<void> {
  const reply = await redisCommand(port, command, 5_000);
  if (reply !== '+OK') throw new Error(`redis ${port}: ${command.slice(0, 2).join(' ')} answered ${reply}`);
}
