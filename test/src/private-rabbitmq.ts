import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
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

const run = promisify(execFile);

export interface PrivateRabbitMqOptions {
  /**
   * Directory holding `rabbitmq-server` and `rabbitmqctl`. Debian's /usr/sbin wrappers `su` to the
   * rabbitmq user, so the scripts they wrap are used directly when present.
   * @default $CELERIAC_RABBITMQ_SBIN, else /usr/lib/rabbitmq/bin if it exists, else PATH
   */
  sbinDir?: string;
  /** How long the node may take to boot. @default 60_000 (about 5 s on the project's machine) */
  startTimeoutMs?: number;
}

/** A private node also has a node name and an Erlang distribution port. */
export interface PrivateRabbitMqServer extends PrivateServer {
  readonly nodeName: string;
  readonly distPort: number;
}

function sbin(opts: PrivateRabbitMqOptions): (tool: string) => string {
  const dir =
    opts.sbinDir ??
    process.env['CELERIAC_RABBITMQ_SBIN'] ??
    (existsSync('/usr/lib/rabbitmq/bin/rabbitmq-server') ? '/usr/lib/rabbitmq/bin' : undefined);
  return (tool) => (dir === undefined ? tool : join(dir, tool));
}

/**
 * Start a private RabbitMQ node on free loopback ports with its own data, logs and Erlang cookie:
 * `RABBITMQ_NODENAME`, `RABBITMQ_NODE_PORT`, `RABBITMQ_DIST_PORT`, `RABBITMQ_MNESIA_BASE`,
 * `RABBITMQ_LOG_BASE`, an empty `RABBITMQ_ENABLED_PLUGINS_FILE` (no management listener), its own
 * config file (the system one pins the AMQP listener to 5672) and env file (the system one pins the
 * node name). Ready once `rabbitmqctl -n <node> await_startup` succeeds; `down()` is
 * `rabbitmqctl -n <node> stop`. The node registers with the machine's epmd (port 4369), which Erlang
 * starts if none runs.
 */
export function startPrivateRabbitMq(opts: PrivateRabbitMqOptions = {}): Promise<PrivateRabbitMqServer> {
  return retryOnPortClash(() => startOnce(opts));
}

async function startOnce(opts: PrivateRabbitMqOptions): Promise<PrivateRabbitMqServer> {
  const tool = sbin(opts);
  const root = await mkdtemp(join(tmpdir(), 'celeriac-rabbitmq-'));
  const dataDir = join(root, 'mnesia');
  const port = await freePort();
  const distPort = await freePort();
  const nodeName = `celeriac-${port}@localhost`;
  await Promise.all([mkdir(dataDir), mkdir(join(root, 'log')), mkdir(join(root, 'home'))]);
  await writeFile(join(root, 'enabled_plugins'), '');
  await writeFile(join(root, 'rabbitmq-env.conf'), '');
  await writeFile(join(root, 'rabbitmq.conf'), `listeners.tcp.local = 127.0.0.1:${port}\n`);
  const loopbackOnly = '-kernel inet_dist_use_interface {127,0,0,1}';
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    HOME: join(root, 'home'), // its own Erlang cookie, shared by its rabbitmqctl calls
    RABBITMQ_NODENAME: nodeName,
    RABBITMQ_NODE_IP_ADDRESS: '127.0.0.1',
    RABBITMQ_NODE_PORT: String(port),
    RABBITMQ_DIST_PORT: String(distPort),
    RABBITMQ_MNESIA_BASE: dataDir,
    RABBITMQ_LOG_BASE: join(root, 'log'),
    RABBITMQ_ENABLED_PLUGINS_FILE: join(root, 'enabled_plugins'),
    RABBITMQ_CONFIG_FILE: join(root, 'rabbitmq.conf'),
    RABBITMQ_ADVANCED_CONFIG_FILE: join(root, 'advanced.config'),
    RABBITMQ_CONF_ENV_FILE: join(root, 'rabbitmq-env.conf'),
    RABBITMQ_PID_FILE: join(root, 'rabbitmq.pid'),
    RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS: loopbackOnly,
    RABBITMQ_CTL_ERL_ARGS: loopbackOnly,
    ERL_EPMD_ADDRESS: '127.0.0.1',
    // The start script then execs the Erlang VM: the process we hold is the node, not a shell.
    RUNNING_UNDER_SYSTEMD: 'true',
  };
  const ctl = (...args: string[]) => run(tool('rabbitmqctl'), ['-n', nodeName, ...args], { env, timeout: 70_000 });
  let proc: ServerProcess | undefined;

  const up = async (): Promise<void> => {
    if (proc?.alive() === true) return;
    const p = startServerProcess(tool('rabbitmq-server'), [], { env, cwd: root });
    proc = p;
    // await_startup fails at once while the node has not registered with epmd yet: poll it.
    await waitUntilReady(
      p,
      `rabbitmq node ${nodeName}`,
      async () => {
        await ctl('await_startup', '--timeout', '60');
        return true;
      },
      { timeoutMs: opts.startTimeoutMs ?? 60_000, intervalMs: 250 },
    );
  };
  const down = async (o: { hard?: boolean } = {}): Promise<void> => {
    const p = proc;
    if (p === undefined || !p.alive()) return;
    if (o.hard === true) {
      await stopServerProcess(p, 'SIGKILL');
      return;
    }
    await ctl('stop').catch(() => p.child.kill('SIGTERM'));
    await stopServerProcess(p, 'SIGTERM', 30_000);
  };
  return managedServer({
    fields: { kind: 'amqp', url: `amqp://guest:guest@127.0.0.1:${port}`, port, distPort, nodeName, dataDir },
    root: root,
    start: up,
    down: (hard) => down({ hard }),
    abort: async () => {
      if (proc !== undefined) await stopServerProcess(proc, 'SIGKILL');
    },
  });
}
