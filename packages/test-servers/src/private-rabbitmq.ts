import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { freePort, retryOnPortClash } from './ports.js';
import { managedServer, wipe, type PrivateServer } from './private-server.js';
import { isAnswering } from './servers.js';
import { startServerProcess, stopServerProcess, waitUntilReady, type ServerProcess } from './server-process.js';

const run = promisify(execFile);

/**
 * Directory holding `rabbitmq-server` and `rabbitmqctl`, or undefined to use PATH. Debian's /usr/sbin
 * wrappers `su` to the rabbitmq user, so the scripts they wrap are used directly when present:
 * `$CELERIAC_RABBITMQ_SBIN`, else /usr/lib/rabbitmq/bin if it has rabbitmq-server.
 */
export function rabbitMqSbinDir(): string | undefined {
  const fromEnv = process.env['CELERIAC_RABBITMQ_SBIN'];
  if (fromEnv !== undefined && fromEnv !== '') return fromEnv;
  return existsSync('/usr/lib/rabbitmq/bin/rabbitmq-server') ? '/usr/lib/rabbitmq/bin' : undefined;
}

/** The `rabbitmq-server` a private node runs (full path when `rabbitMqSbinDir` has one): for `requireBinary`. */
export function rabbitMqServerCommand(sbinDir = rabbitMqSbinDir()): string {
  return sbinDir === undefined ? 'rabbitmq-server' : join(sbinDir, 'rabbitmq-server');
}

/**
 * Everything that tells one RabbitMQ node apart from another on the same machine. A later local
 * cluster starts several nodes from specs that differ in name, ports and root and share `cookie`.
 */
export interface RabbitMqNodeSpec {
  /** `name@localhost`. */
  nodeName: string;
  /** AMQP port (loopback only). */
  port: number;
  /** Erlang distribution port (loopback only): how nodes of a cluster and rabbitmqctl reach this node. */
  distPort: number;
  /** Folder of this node's files: mnesia/ (data), log/, home/ (Erlang cookie), config files. */
  root: string;
  /** The Erlang cookie; nodes that are to cluster must share it. */
  cookie: string;
  /** More Erlang VM arguments, e.g. `['+S', '1:1', '+sbwt', 'none']` (one scheduler, no busy waiting). */
  erlArgs: readonly string[];
}

/** The data directory of a node (`RABBITMQ_MNESIA_BASE`). */
export function rabbitMqDataDir(spec: Pick<RabbitMqNodeSpec, 'root'>): string {
  return join(spec.root, 'mnesia');
}

/**
 * The environment `rabbitmq-server` and `rabbitmqctl` run with for `spec`: its own node name, ports,
 * data, logs, HOME (for the cookie), an empty plugin list (no management listener), its own config
 * file (the system one pins the AMQP listener to 5672) and env file (the system one pins the node
 * name), distribution and epmd on loopback only. With RUNNING_UNDER_SYSTEMD the start script execs
 * the Erlang VM, so the process a test holds is the node itself, not a shell.
 */
export function rabbitMqNodeEnv(spec: RabbitMqNodeSpec, base: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  const loopbackOnly = '-kernel inet_dist_use_interface {127,0,0,1}';
  return {
    ...base,
    HOME: join(spec.root, 'home'),
    RABBITMQ_NODENAME: spec.nodeName,
    RABBITMQ_NODE_IP_ADDRESS: '127.0.0.1',
    RABBITMQ_NODE_PORT: String(spec.port),
    RABBITMQ_DIST_PORT: String(spec.distPort),
    RABBITMQ_MNESIA_BASE: rabbitMqDataDir(spec),
    RABBITMQ_LOG_BASE: join(spec.root, 'log'),
    RABBITMQ_ENABLED_PLUGINS_FILE: join(spec.root, 'enabled_plugins'),
    RABBITMQ_CONFIG_FILE: join(spec.root, 'rabbitmq.conf'),
    RABBITMQ_ADVANCED_CONFIG_FILE: join(spec.root, 'advanced.config'),
    RABBITMQ_CONF_ENV_FILE: join(spec.root, 'rabbitmq-env.conf'),
    RABBITMQ_PID_FILE: join(spec.root, 'rabbitmq.pid'),
    RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS: [loopbackOnly, ...spec.erlArgs].join(' '),
    RABBITMQ_CTL_ERL_ARGS: loopbackOnly,
    ERL_EPMD_ADDRESS: '127.0.0.1',
    RUNNING_UNDER_SYSTEMD: 'true',
  };
}

/** Create `spec.root`'s folders and files: data, log and home folders, the cookie, config and env files. */
export async function writeRabbitMqNodeFiles(spec: RabbitMqNodeSpec): Promise<void> {
  await Promise.all([mkdir(rabbitMqDataDir(spec), { recursive: true }), mkdir(join(spec.root, 'log'), { recursive: true })]);
  await mkdir(join(spec.root, 'home'), { recursive: true });
  // Erlang refuses a cookie file others can read.
  await writeFile(join(spec.root, 'home', '.erlang.cookie'), spec.cookie, { mode: 0o400 });
  await writeFile(join(spec.root, 'enabled_plugins'), '');
  await writeFile(join(spec.root, 'rabbitmq-env.conf'), '');
  await writeFile(join(spec.root, 'rabbitmq.conf'), `listeners.tcp.local = 127.0.0.1:${spec.port}\n`);
}

/** Options of `startPrivateRabbitMq`. */
export interface PrivateRabbitMqOptions {
  /** Directory holding `rabbitmq-server` and `rabbitmqctl`. @default rabbitMqSbinDir(), else PATH */
  sbinDir?: string;
  /** How long the node may take to boot. @default 60_000 (about 5 s on the project's machine) */
  startTimeoutMs?: number;
  /** The node's name. @default `celeriac-<AMQP port>@localhost` */
  nodeName?: string;
  /** The Erlang cookie (nodes that are to cluster share one). @default a random one */
  cookie?: string;
  /** More Erlang VM arguments (see `RabbitMqNodeSpec.erlArgs`). @default none */
  erlArgs?: readonly string[];
}

/** A private RabbitMQ node: its name, distribution port and cookie, and `rabbitmqctl` aimed at it. */
export interface PrivateRabbitMqServer extends PrivateServer {
  readonly nodeName: string;
  readonly distPort: number;
  readonly cookie: string;
  /** The folder of every file of the node (removed by `close`). */
  readonly root: string;
  /**
   * Run `rabbitmqctl -n <node> …args` with the node's environment (so its cookie) and resolve its
   * stdout; rejects when it exits non-zero or takes over `timeoutMs`. For what a test or a cluster
   * needs beyond start and stop: `join_cluster`, `stop_app`, `list_queues`, …
   * @default timeoutMs 70_000
   */
  ctl(args: readonly string[], opts?: { timeoutMs?: number }): Promise<string>;
}

/**
 * Start a private RabbitMQ node on free loopback ports with its own data, logs and Erlang cookie
 * (`rabbitMqNodeEnv`). Ready once its AMQP port answers and `rabbitmqctl -n <node> await_startup`
 * succeeds. `stop({ mode:
 * 'fast' })` is `rabbitmqctl stop` (SIGTERM if that fails), `'immediate'` is SIGKILL. The node
 * registers with the machine's epmd (port 4369, loopback), which Erlang starts if none runs.
 */
export function startPrivateRabbitMq(opts: PrivateRabbitMqOptions = {}): Promise<PrivateRabbitMqServer> {
  return retryOnPortClash(() => startOnce(opts));
}

async function startOnce(opts: PrivateRabbitMqOptions): Promise<PrivateRabbitMqServer> {
  const sbinDir = opts.sbinDir ?? rabbitMqSbinDir();
  const tool = (name: string): string => (sbinDir === undefined ? name : join(sbinDir, name));
  const root = await mkdtemp(join(tmpdir(), 'celeriac-rabbitmq-'));
  const port = await freePort();
  const spec: RabbitMqNodeSpec = {
    nodeName: opts.nodeName ?? `celeriac-${port}@localhost`,
    port,
    distPort: await freePort(),
    root,
    cookie: opts.cookie ?? randomBytes(20).toString('hex'),
    erlArgs: opts.erlArgs ?? [],
  };
  const dataDir = rabbitMqDataDir(spec);
  const env = rabbitMqNodeEnv(spec);
  const url = `amqp://guest:guest@127.0.0.1:${port}`;
  const ctl = async (args: readonly string[], o: { timeoutMs?: number } = {}): Promise<string> => {
    const { stdout } = await run(tool('rabbitmqctl'), ['-n', spec.nodeName, ...args], { env, timeout: o.timeoutMs ?? 70_000 });
    return stdout;
  };
  let proc: ServerProcess | undefined;
  try {
    await writeRabbitMqNodeFiles(spec);
  } catch (err) {
    await rm(root, { recursive: true, force: true });
    throw err;
  }
  return managedServer({
    fields: {
      kind: 'amqp',
      url,
      port,
      dataDir,
      nodeName: spec.nodeName,
      distPort: spec.distPort,
      cookie: spec.cookie,
      root,
      ctl,
    },
    root,
    running: () => proc?.alive() === true,
    up: async () => {
      if (proc?.alive() === true) return;
      const p = startServerProcess(tool('rabbitmq-server'), [], { env, cwd: root });
      proc = p;
      // The AMQP listener opens late in the boot: poll it (cheap), then let rabbitmqctl confirm the
      // node is fully started (each rabbitmqctl run starts an Erlang VM, about a second of CPU).
      await waitUntilReady(
        p,
        `rabbitmq node ${spec.nodeName}`,
        async () => {
          if (!(await isAnswering('amqp', 500, url))) return false;
          await ctl(['await_startup', '--timeout', '60']);
          return true;
        },
        { timeoutMs: opts.startTimeoutMs ?? 60_000, intervalMs: 250 },
      );
    },
    down: async (mode) => {
      const p = proc;
      if (p === undefined || !p.alive()) return;
      if (mode === 'immediate') {
        await stopServerProcess(p, 'SIGKILL');
        return;
      }
      await ctl(['stop']).catch(() => p.child.kill('SIGTERM'));
      await stopServerProcess(p, 'SIGTERM', 30_000);
    },
    // keepData false: a fresh mnesia directory (the node's cookie and config stay).
    wipe: () => wipe(dataDir),
  });
}

/** Options of `startPrivateRabbitMqCluster`. */
export interface PrivateRabbitMqClusterOptions {
  /** How many nodes. @default 3 */
  size?: number;
  /** Directory holding `rabbitmq-server` and `rabbitmqctl`. @default rabbitMqSbinDir(), else PATH */
  sbinDir?: string;
  /** How long each node may take to boot. @default 90_000 */
  startTimeoutMs?: number;
}

/** A local RabbitMQ cluster of private nodes. */
export interface PrivateRabbitMqCluster {
  readonly nodes: readonly PrivateRabbitMqServer[];
  /** Every node's AMQP URL. */
  readonly urls: readonly string[];
  /** Node names of the cluster's running members, as the first live node reports them. */
  runningNodes(): Promise<string[]>;
  /** Close every node and remove its files. Idempotent. */
  close(): Promise<void>;
}

/**
 * Start a cluster of `size` private RabbitMQ nodes on free loopback ports: distinct node names, AMQP and
 * distribution ports and data directories, one Erlang cookie, and `+S 1:1 +sbwt none` (one scheduler,
 * no busy waiting) so three Erlang VMs fit on two cores. The first node boots alone; each other one
 * boots, then `stop_app`, `join_cluster` the first, `start_app`. Ready once the first node reports every
 * node running. If anything fails, every node started is closed.
 */
export async function startPrivateRabbitMqCluster(opts: PrivateRabbitMqClusterOptions = {}): Promise<PrivateRabbitMqCluster> {
  const size = opts.size ?? 3;
  if (!Number.isInteger(size) || size < 1) throw new RangeError(`size must be a positive integer, got ${size}`);
  const cookie = randomBytes(20).toString('hex');
  const common: PrivateRabbitMqOptions = {
    cookie,
    erlArgs: ['+S', '1:1', '+sbwt', 'none', '+sbwtdcpu', 'none', '+sbwtdio', 'none'],
    startTimeoutMs: opts.startTimeoutMs ?? 90_000,
    ...(opts.sbinDir === undefined ? {} : { sbinDir: opts.sbinDir }),
  };
  const nodes: PrivateRabbitMqServer[] = [];
  const closeAll = (): Promise<void> => Promise.allSettled(nodes.map((n) => n.close())).then(() => undefined);
  const runningNodes = async (): Promise<string[]> => {
    for (const n of nodes) {
      if (!n.running()) continue;
      const out = await n.ctl(['cluster_status', '--formatter', 'json']);
      const status = JSON.parse(out) as { running_nodes?: string[] };
      return [...(status.running_nodes ?? [])].sort();
    }
    return [];
  };
  try {
    // The first node alone, then the others in parallel (each boots, then joins the first).
    nodes.push(await startPrivateRabbitMq(common));
    const first = nodes[0]!;
    const rest = await Promise.all(
      Array.from({ length: size - 1 }, async () => {
        const n = await startPrivateRabbitMq(common);
        nodes.push(n);
        await n.ctl(['stop_app']);
        await n.ctl(['join_cluster', first.nodeName]);
        await n.ctl(['start_app']);
        await n.ctl(['await_startup', '--timeout', '60']);
        return n;
      }),
    );
    const want = [first, ...rest].map((n) => n.nodeName).sort();
    const running = await runningNodes();
    if (running.join(',') !== want.join(',')) throw new Error(`cluster formed with ${running.join(', ')}, expected ${want.join(', ')}`);
  } catch (err) {
    await closeAll();
    throw err;
  }
  let closing: Promise<void> | undefined;
  return {
    nodes,
    urls: nodes.map((n) => n.url),
    runningNodes,
    close: () => {
      closing ??= closeAll();
      return closing;
    },
  };
}
