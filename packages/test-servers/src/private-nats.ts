import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { freePort, retryOnPortClash } from './ports.js';
import { managedServer, type PrivateServer } from './private-server.js';
import { startServerProcess, stopServerProcess, waitUntilReady, type ServerProcess } from './server-process.js';

/** Options of `startPrivateNats`. */
export interface PrivateNatsOptions {
  /** More `nats-server` arguments. */
  args?: readonly string[];
  /** @default 'nats-server' from PATH */
  command?: string;
  /** How long the server may take until its health check passes. @default 30_000 */
  startTimeoutMs?: number;
}

/** A private nats-server also offers its HTTP monitoring port; its server name is `celeriac-<port>`. */
export interface PrivateNatsServer extends PrivateServer {
  readonly monitorPort: number;
  readonly serverName: string;
}

async function getJson(monitorPort: number, path: string): Promise<{ ok: boolean; body: unknown }> {
  const res = await fetch(`http://127.0.0.1:${monitorPort}${path}`, { signal: AbortSignal.timeout(1_000) });
  return { ok: res.ok, body: await res.json() };
}

/** `/healthz?js-enabled-only=true` answers 200 `{"status":"ok"}` once JetStream is up. */
async function healthy(monitorPort: number): Promise<boolean> {
  const { ok, body } = await getJson(monitorPort, '/healthz?js-enabled-only=true');
  return ok && (body as { status?: unknown }).status === 'ok';
}

/**
 * Start a private nats-server with JetStream on free loopback ports and its own store directory:
 * `nats-server -a 127.0.0.1 -p P -js -sd <tmp> -m M --server_name celeriac-P`. Ready once the
 * monitoring port's health check (JetStream included) says ok. `stop({ mode: 'fast' })` is SIGTERM,
 * `'immediate'` is SIGKILL.
 */
export function startPrivateNats(opts: PrivateNatsOptions = {}): Promise<PrivateNatsServer> {
  return retryOnPortClash(() => startOnce(opts));
}

async function startOnce(opts: PrivateNatsOptions): Promise<PrivateNatsServer> {
  const dataDir = await mkdtemp(join(tmpdir(), 'celeriac-nats-'));
  const port = await freePort();
  const monitorPort = await freePort();
  const serverName = `celeriac-${port}`;
  const args = [
    '-a',
    '127.0.0.1',
    '-p',
    String(port),
    '-js',
    '-sd',
    dataDir,
    '-m',
    String(monitorPort),
    '--server_name',
    serverName,
    ...(opts.args ?? []),
  ];
  const command = opts.command ?? 'nats-server';
  let proc: ServerProcess | undefined;
  return managedServer({
    fields: { kind: 'nats', url: `nats://127.0.0.1:${port}`, port, monitorPort, serverName, dataDir },
    root: dataDir,
    running: () => proc?.alive() === true,
    up: async () => {
      if (proc?.alive() === true) return;
      const p = startServerProcess(command, args);
      proc = p;
      await waitUntilReady(p, `nats-server on port ${port}`, () => healthy(monitorPort), {
        timeoutMs: opts.startTimeoutMs ?? 30_000,
      });
    },
    down: async (mode) => {
      if (proc !== undefined) await stopServerProcess(proc, mode === 'immediate' ? 'SIGKILL' : 'SIGTERM');
    },
  });
}

/** A private JetStream cluster of nats-servers on loopback. */
export interface PrivateNatsCluster {
  readonly nodes: readonly PrivateNatsServer[];
  /** Every node's `127.0.0.1:port`, joined with commas: the `servers` a client is given. */
  readonly servers: string;
  /** Close every node (see `PrivateServer.close`). Idempotent. */
  close(): Promise<void>;
}

/** Options of `startPrivateNatsCluster`. */
export interface PrivateNatsClusterOptions {
  /** How many nodes. @default 3 */
  size?: number;
  /** The cluster's name. @default 'celeriac' */
  name?: string;
  /** More `nats-server` arguments for every node. */
  args?: readonly string[];
  /** How long the nodes may take to start and elect a JetStream meta leader. @default 30_000 */
  readyTimeoutMs?: number;
}

/**
 * Start a JetStream cluster of `size` private nats-servers that route to each other over free loopback
 * ports. All nodes start at once (JetStream in a cluster needs a quorum before any node is healthy);
 * on a port clash the whole cluster is started again on fresh ports. Ready once every node's `/jsz`
 * reports the same JetStream meta leader. If anything fails, every node started is closed.
 */
export function startPrivateNatsCluster(opts: PrivateNatsClusterOptions = {}): Promise<PrivateNatsCluster> {
  const size = opts.size ?? 3;
  if (!Number.isInteger(size) || size < 1) throw new RangeError(`size must be a positive integer, got ${size}`);
  const timeoutMs = opts.readyTimeoutMs ?? 30_000;
  return retryOnPortClash(async () => {
    const clusterPorts: number[] = [];
    for (let i = 0; i < size; i++) clusterPorts.push(await freePort());
    const routes = clusterPorts.map((p) => `nats://127.0.0.1:${p}`).join(',');
    const started = await Promise.allSettled(
      clusterPorts.map((p) =>
        startOnce({
          args: ['--cluster_name', opts.name ?? 'celeriac', '--cluster', `nats://127.0.0.1:${p}`, '--routes', routes, ...(opts.args ?? [])],
          startTimeoutMs: timeoutMs,
        }),
      ),
    );
    const nodes = started.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
    const closeAll = (): Promise<void> => Promise.allSettled(nodes.map((n) => n.close())).then(() => undefined);
    try {
      const failed = started.find((r) => r.status === 'rejected');
      if (failed !== undefined) throw failed.reason;
      await waitForMetaLeader(nodes, timeoutMs);
    } catch (err) {
      await closeAll();
      throw err;
    }
    let closing: Promise<void> | undefined;
    return {
      nodes,
      servers: nodes.map((n) => `127.0.0.1:${n.port}`).join(','),
      close: () => {
        closing ??= closeAll();
        return closing;
      },
    };
  });
}

async function waitForMetaLeader(nodes: readonly PrivateNatsServer[], timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const leaders = await Promise.all(
      nodes.map((n) =>
        getJson(n.monitorPort, '/jsz').then(
          ({ body }) => (body as { meta_cluster?: { leader?: unknown } }).meta_cluster?.leader,
          () => undefined,
        ),
      ),
    );
    const first = leaders[0];
    if (typeof first === 'string' && first !== '' && leaders.every((l) => l === first)) return;
    if (Date.now() > deadline) throw new Error(`no JetStream meta leader all nodes agree on within ${timeoutMs} ms: ${JSON.stringify(leaders)}`);
    await sleep(100);
  }
}
