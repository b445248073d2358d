import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';

/** Options of `startTcpProxy`. */
export interface TcpProxyOptions {
  /** Where the proxy listens (loopback). @default a free port */
  port?: number;
}

/**
 * A loopback TCP proxy in front of a server, for fault tests that cut the network rather than stop
 * the server: every connection to `port` is piped to the target.
 */
export interface TcpProxy {
  /** The port clients connect to (on 127.0.0.1). */
  readonly port: number;
  /** How many client connections are open through the proxy now. */
  connections(): number;
  /** Drop every open connection at once, both sides, like a network failure. New ones still pass. */
  cut(): void;
  /** From now on, close every new connection as soon as it is accepted (a server that is unreachable). */
  refuse(): void;
  /** Let new connections through again after `refuse()`. */
  resume(): void;
  /** `url` with host and port replaced by the proxy's (`amqp://u:p@host:5672/vh` → `amqp://u:p@127.0.0.1:<port>/vh`). */
  urlFor(url: string): string;
  /** Cut every connection and stop listening. Idempotent: a second call returns the same promise. */
  close(): Promise<void>;
}

/** `url` with its host replaced by 127.0.0.1 and its port by `port`; user, path and query are kept. */
export function viaPort(url: string, port: number): string {
  const u = new URL(url);
  u.hostname = '127.0.0.1';
  u.port = String(port);
  return u.toString();
}

/**
 * Start a TCP proxy on 127.0.0.1 to `targetHost:targetPort`. Each accepted connection opens one to
 * the target; when either side closes or fails, both are destroyed. Resolves once it listens.
 */
export async function startTcpProxy(targetHost: string, targetPort: number, opts: TcpProxyOptions = {}): Promise<TcpProxy> {
  const pairs = new Set<{ client: Socket; upstream: Socket }>();
  let refusing = false;
  const server: Server = createServer((client) => {
    if (refusing) {
      client.destroy();
      return;
    }
    const upstream = connect({ host: targetHost, port: targetPort });
    const pair = { client, upstream };
    pairs.add(pair);
    const drop = (): void => {
      client.destroy();
      upstream.destroy();
      pairs.delete(pair);
    };
    client.on('error', drop);
    upstream.on('error', drop);
    client.on('close', drop);
    upstream.on('close', drop);
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  const cut = (): void => {
    for (const { client, upstream } of [...pairs]) {
      client.destroy();
      upstream.destroy();
    }
    pairs.clear();
  };
  let closing: Promise<void> | undefined;
  return {
    port,
    connections: () => pairs.size,
    cut,
    refuse: () => {
      refusing = true;
    },
    resume: () => {
      refusing = false;
    },
    urlFor: (url) => viaPort(url, port),
    close: () => {
      closing ??= new Promise<void>((resolve) => {
        refusing = true;
        cut();
        server.close(() => resolve());
      });
      return closing;
    },
  };
}
