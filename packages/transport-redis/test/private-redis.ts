import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** A free loopback port (bound and released; good enough for a test server started right after). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr !== null ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

function answers(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host: '127.0.0.1', port });
    s.setTimeout(500, () => {
      s.destroy();
      resolve(false);
    });
    s.once('connect', () => s.write('PING\r\n'));
    s.once('data', (d) => {
      s.destroy();
      resolve(d.toString().startsWith('+PONG'));
    });
    s.once('error', () => resolve(false));
  });
}

/**
 * A redis-server of our own on a free loopback port with its own data directory, for tests that
 * stop or restart the server (never the shared one).
 */
export class PrivateRedis {
  private child: ChildProcess | undefined;
  readonly dir = mkdtempSync(join(tmpdir(), 'celeriac-redis-'));

  private constructor(
    readonly port: number,
    private readonly appendOnly: boolean,
    private readonly extraArgs: readonly string[],
  ) {}

  static async start(opts: { appendOnly?: boolean; args?: readonly string[] } = {}): Promise<PrivateRedis> {
    const r = new PrivateRedis(await freePort(), opts.appendOnly ?? false, opts.args ?? []);
    await r.up();
    return r;
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  /** Start (again) on the same port and data directory: an AOF server comes back with its data. */
  async up(): Promise<void> {
    const child = spawn(
      'redis-server',
      [
        '--bind', '127.0.0.1', '--port', String(this.port), '--dir', this.dir, '--save', '',
        '--appendonly', this.appendOnly ? 'yes' : 'no', '--appendfsync', 'always', '--daemonize', 'no',
        '--loglevel', 'warning', ...this.extraArgs,
      ],
      { stdio: 'ignore' },
    );
    this.child = child;
    for (let i = 0; i < 200; i++) {
      if (child.exitCode !== null) throw new Error(`redis-server exited with ${child.exitCode}`);
      if (await answers(this.port)) return;
      await new Promise((r) => setTimeout(r, 25));
    }
    throw new Error('redis-server did not answer within 5 s');
  }

  /** kill -9: no shutdown, no save. */
  async crash(): Promise<void> {
    const child = this.child;
    if (child === undefined || child.exitCode !== null) return;
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGKILL');
    await exited;
    this.child = undefined;
  }

  async stop(): Promise<void> {
    await this.crash();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** A private Redis Cluster of three masters (no replicas) on free loopback ports. */
export class PrivateCluster {
  private constructor(readonly nodes: readonly PrivateRedis[]) {}

  static async start(): Promise<PrivateCluster> {
    const nodes: PrivateRedis[] = [];
    try {
      for (let i = 0; i < 3; i++) {
        nodes.push(await PrivateRedis.start({ args: ['--cluster-enabled', 'yes', '--cluster-config-file', 'nodes.conf'] }));
      }
      await run('redis-cli', ['--cluster', 'create', ...nodes.map((n) => `127.0.0.1:${n.port}`), '--cluster-replicas', '0', '--cluster-yes']);
      for (const n of nodes) {
        for (let i = 0; ; i++) {
          const info = await run('redis-cli', ['-p', String(n.port), 'cluster', 'info']);
          if (info.includes('cluster_state:ok')) break;
          if (i > 200) throw new Error(`cluster node ${n.port} is not ok: ${info}`);
          await new Promise((r) => setTimeout(r, 25));
        }
      }
      return new PrivateCluster(nodes);
    } catch (err) {
      await Promise.allSettled(nodes.map((n) => n.stop()));
      throw err;
    }
  }

  get url(): string {
    return this.nodes[0]!.url;
  }

  async stop(): Promise<void> {
    await Promise.allSettled(this.nodes.map((n) => n.stop()));
  }
}

function run(cmd: string, args: readonly string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    child.once('error', reject);
    child.once('exit', (code) => (code === 0 ? resolve(out) : reject(new Error(`${cmd} ${args.join(' ')} exited ${String(code)}: ${out}`))));
  });
}
