import { CeleriacError, ErrorCode, redactUrl } from '@celeriac/core';
import { connect, type NatsConnection, type NodeConnectionOptions } from '@nats-io/transport-node';

/** How to reach the NATS servers; shared by the broker and the result backend. */
export interface NatsConnectionOptions {
  /**
   * More seed servers of a cluster (`host:port`, comma-separated in a URL), besides the URL's host.
   * @default only the URL's host
   */
  servers?: string | readonly string[];
  /** @default the URL's user name, when it has a password */
  user?: string;
  /** @default the URL's password */
  pass?: string;
  /** An auth token. @default the URL's user name, when it has no password */
  token?: string;
  /** Connect with TLS. @default false */
  tls?: boolean;
  /** Timeout of a connection attempt and of every JetStream request, in ms. @default 10_000 */
  timeoutMs?: number;
  /** Connection name shown by the server's monitoring. @default 'celeriac' */
  connectionName?: string;
}

function listOf(v: string | readonly string[] | undefined): string[] {
  if (v === undefined) return [];
  return (typeof v === 'string' ? v.split(',') : [...v]).map((s) => s.trim()).filter((s) => s.length > 0);
}

/** The nats.js options for a `nats://` URL plus the transport's connection options. */
export function connectOptions(url: URL, opts: NatsConnectionOptions): NodeConnectionOptions {
  const host = url.hostname === '' ? '127.0.0.1' : url.hostname;
  const first = `${host.includes(':') && !host.startsWith('[') ? `[${host}]` : host}:${url.port === '' ? 4222 : url.port}`;
  const servers = [first, ...listOf(opts.servers)];
  const user = opts.user ?? (url.password !== '' ? decodeURIComponent(url.username) : undefined);
  const pass = opts.pass ?? (url.password !== '' ? decodeURIComponent(url.password) : undefined);
  const token = opts.token ?? (url.password === '' && url.username !== '' ? decodeURIComponent(url.username) : undefined);
  const o: NodeConnectionOptions = {
    servers,
    name: opts.connectionName ?? 'celeriac',
    timeout: opts.timeoutMs ?? 10_000,
    // Reconnect forever: consumers, subscriptions and deliveries are recovered by the transport.
    maxReconnectAttempts: -1,
    reconnectTimeWait: 250,
    pingInterval: 10_000,
    maxPingOut: 3,
    // An Error per request only to improve stack traces costs a lot at tens of thousands per second.
    noAsyncTraces: true,
  };
  if (user !== undefined) o.user = user;
  if (pass !== undefined) o.pass = pass;
  if (token !== undefined) o.token = token;
  if (opts.tls === true) o.tls = {};
  return o;
}

/** Connect, or fail with ERR_CONNECTION naming the (redacted) URL. */
export async function openConnection(url: URL, opts: NatsConnectionOptions): Promise<NatsConnection> {
  try {
    return await connect(connectOptions(url, opts));
  } catch (err) {
    throw new CeleriacError(ErrorCode.CONNECTION, `cannot connect to NATS at ${redactUrl(url.toString())}: ${errorText(err)}`, {
      cause: err,
    });
  }
}

export function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
