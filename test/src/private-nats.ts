import { mkdtemp } from 'node:fs/promises';
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

export interface PrivateNatsOptions {
  /** More `nats-server` arguments. */
  args?: readonly string[];
  /** @default 'nats-server' from PATH */
  command?: string;
}

/** A private server also offers its HTTP monitoring port. */
export interface PrivateNatsServer extends PrivateServer {
  readonly monitorPort: number;
}

/** `/healthz?js-enabled-only=true` answers 200 `{"status":"ok"}` once JetStream is up. */
async function healthy(monitorPort: number): Promise<boolean> {
  const res = await fetch(`http://127.0.0.1:${monitorPort}/healthz?js-enabled-only=true`, {
    signal: AbortSignal.timeout(1_000),
  });
  if (!res.ok) return false;
  const body = (await res.json()) as { status?: unknown };
  return body.status === 'ok';
}

/**
 * Start a private nats-server with JetStream on free loopback ports and its own store directory:
 * `nats-server -a 127.0.0.1 -p P -js -sd <tmp> -m M`. Ready once the monitoring port's health check
 * (JetStream included) says ok.
 */
export function startPrivateNats(opts: PrivateNatsOptions = {}): Promise<PrivateNatsServer> {
  return retryOnPortClash(() => startOnce(opts));
}

async function startOnce(opts: PrivateNatsOptions): Promise<PrivateNatsServer> {
  const dataDir = await mkdtemp(join(tmpdir(), 'celeriac-nats-'));
  const port = await freePort();
  const monitorPort = await freePort();
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
    `celeriac-${port}`,
    ...(opts.args ?? []),
  ];
  const command = opts.command ?? 'nats-server';
  let proc: ServerProcess | undefined;

  const up = async (): Promise<void> => {
    if (proc?.alive() === true) return;
    const p = startServerProcess(command, args);
    proc = p;
    await waitUntilReady(p, `nats-server on port ${port}`, () => healthy(monitorPort));
  };
  const down = async (o: { hard?: boolean } = {}): Promise<void> => {
    if (proc === undefined) return;
    await stopServerProcess(proc, o.hard === true ? 'SIGKILL' : 'SIGTERM');
  };
  return managedServer({
    fields: { kind: 'nats', url: `nats://127.0.0.1:${port}`, port, monitorPort, dataDir },
    root: dataDir,
    start: up,
    down: (hard) => down({ hard }),
  });
}
