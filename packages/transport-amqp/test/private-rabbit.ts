import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, connect, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** The server script that runs the node in the foreground (the /usr/sbin wrapper switches users). */
export const RABBITMQ_SERVER = '/usr/lib/rabbitmq/bin/rabbitmq-server';

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

function answering(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host: '127.0.0.1', port });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

/**
 * A private RabbitMQ node for fault tests: its own node name, free loopback ports, data and log
 * directories under a temp dir, no plugins. Never the shared server. `restart()` keeps the data.
 */
export class PrivateRabbit {
  private child: ChildProcess | undefined;
  private constructor(
    readonly dir: string,
    readonly port: number,
    private readonly distPort: number,
  ) {}

  get url(): string {
    return `amqp://guest:guest@127.0.0.1:${this.port}`;
  }

  static available(): boolean {
    return existsSync(RABBITMQ_SERVER);
  }

  static async start(): Promise<PrivateRabbit> {
    const dir = mkdtempSync(join(tmpdir(), 'celeriac-rabbit-'));
    const node = new PrivateRabbit(dir, await freePort(), await freePort());
    writeFileSync(join(dir, 'rabbitmq.conf'), `listeners.tcp.default = 127.0.0.1:${node.port}\nloopback_users = none\n`);
    writeFileSync(join(dir, 'enabled_plugins'), '[].\n');
    await node.boot();
    return node;
  }

  private async boot(): Promise<void> {
    const env = {
      ...process.env,
      HOME: this.dir,
      RABBITMQ_NODENAME: `celeriac-${this.port}@localhost`,
      RABBITMQ_NODE_IP_ADDRESS: '127.0.0.1',
      RABBITMQ_NODE_PORT: String(this.port),
      RABBITMQ_DIST_PORT: String(this.distPort),
      RABBITMQ_MNESIA_BASE: join(this.dir, 'mnesia'),
      RABBITMQ_LOG_BASE: join(this.dir, 'log'),
      RABBITMQ_CONFIG_FILE: join(this.dir, 'rabbitmq.conf'),
      RABBITMQ_ADVANCED_CONFIG_FILE: join(this.dir, 'advanced.config'),
      RABBITMQ_ENABLED_PLUGINS_FILE: join(this.dir, 'enabled_plugins'),
    };
    this.child = spawn(RABBITMQ_SERVER, [], { env, cwd: this.dir, stdio: 'ignore', detached: false });
    const child = this.child;
    for (let waited = 0; !(await answering(this.port)); waited += 100) {
      if (child.exitCode !== null) throw new Error(`private RabbitMQ exited with ${child.exitCode}; see ${this.dir}/log`);
      if (waited > 60_000) throw new Error('private RabbitMQ did not start within 60 s');
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  /** Graceful stop (SIGTERM), waiting for the process to exit. */
  async stop(): Promise<void> {
    const child = this.child;
    this.child = undefined;
    if (child === undefined || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    await exited;
    clearTimeout(timer);
  }

  async restart(): Promise<void> {
    await this.stop();
    await this.boot();
  }

  async destroy(): Promise<void> {
    await this.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }
}
