import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  CeleriacError,
  createApp,
  createMetrics,
  silentLogger,
  watchEvents,
  type App,
  type Broker,
  type GuardedBroker,
  type Logger,
  type MetricsCollector,
  type QueueStats,
  type ResultBackend,
} from '@celeriac/core';
import { Auth, ERR_INSECURE_BIND, isLoopbackHost, type BasicAuth } from './auth.js';
import { BASE_HEADERS, errorBody, HttpError, pageCsp, readBody, sendJson, sendText, statusOfError } from './http.js';
import { renderLogin, renderPage } from './page.js';
import { route, type Overview, type RouteContext } from './routes.js';
import { SseHub } from './sse.js';
import { DashboardState } from './state.js';

/** Stable codes of the errors `createDashboard` throws (besides core's, e.g. ERR_CONNECTION). */
export const DashboardErrorCode = {
  /** A bind beyond loopback without a token or basic auth, or credentials too weak to count. */
  INSECURE_BIND: ERR_INSECURE_BIND,
  /** The HTTP server could not listen (port in use, address not available). */
  LISTEN: 'ERR_LISTEN',
} as const;

export interface DashboardOptions {
  /** A broker URL (`redis://…`, `amqp://…`, `nats://…`) or a `Broker` instance (closed with the dashboard, as an app does). */
  broker: string | Broker;
  /** A result backend URL or instance, for looking up tasks the dashboard has not seen. @default none (memory brokers: a private memory backend) */
  resultBackend?: string | ResultBackend;
  /** TCP port; 0 picks a free one (read it from `url`). @default 5555 */
  port?: number;
  /** Address to bind. Anything but loopback is refused unless `token` or `basicAuth` is set. @default '127.0.0.1' */
  host?: string;
  /** Queues always shown (and reported in `/metrics`); others appear as events name them. @default ['default'] */
  queues?: readonly string[];
  /** Access token (at least 8 characters): `Authorization: Bearer <token>`, or the sign-in form for browsers. */
  token?: string;
  /** HTTP basic auth (password of at least 8 characters). Send it over TLS only (a reverse proxy). */
  basicAuth?: BasicAuth;
  /** Tasks kept in memory. @default 500 */
  maxTasks?: number;
  /** A worker not heard from for this long is shown as lost. @default 6_000 (3 missed heartbeats of 2 s) */
  offlineAfterMs?: number;
  /** How often open pages get fresh queue depths. @default 1_000 */
  statsIntervalMs?: number;
  /** Set `Secure` on the session cookie (when served over HTTPS through a proxy). @default false */
  secureCookie?: boolean;
  /** @default silent */
  logger?: Logger;
}

/** A running dashboard. */
export interface Dashboard {
  /** Where it listens, e.g. `http://127.0.0.1:5555/`. */
  readonly url: string;
  readonly port: number;
  /** Stop serving, end open event streams, unsubscribe and close the broker connection. Idempotent. */
  close(): Promise<void>;
}

const PUSH_MS = 150;
const PING_EVERY_MS = 15_000;
/** Task events refresh queue depths at most this often (besides the `statsIntervalMs` poll). */
const STATS_AFTER_EVENTS_MS = 300;

/**
 * Start the dashboard: connects to the broker, subscribes to every worker's events, and serves the
 * page, the JSON API, the live event stream and `/metrics` on node:http.
 *
 * Binds 127.0.0.1 by default and refuses (ERR_INSECURE_BIND) any other address unless `token` or
 * `basicAuth` is set; with either set, every route requires it. Without auth, requests must name a
 * loopback host (a defence against DNS rebinding).
 */
export async function createDashboard(opts: DashboardOptions): Promise<Dashboard> {
  if (opts === null || typeof opts !== 'object' || opts.broker === undefined) {
    throw new TypeError('createDashboard needs { broker: URL or Broker }');
  }
  const host = opts.host ?? '127.0.0.1';
  const port = opts.port ?? 5555;
  if (!Number.isInteger(port) || port < 0 || port > 65_535) throw new RangeError(`port must be an integer from 0 to 65535, got ${String(port)}`);
  const statsIntervalMs = opts.statsIntervalMs ?? 1_000;
  if (!Number.isFinite(statsIntervalMs) || statsIntervalMs < 100) throw new RangeError('statsIntervalMs must be a number >= 100');
  if (opts.queues !== undefined && (!Array.isArray(opts.queues) || opts.queues.some((q) => typeof q !== 'string' || q === ''))) {
    throw new TypeError('queues must be an array of non-empty queue names');
  }
  const auth = new Auth({ token: opts.token, basicAuth: opts.basicAuth }, port);
  if (!auth.enabled && !isLoopbackHost(host)) {
    throw new CeleriacError(
      ERR_INSECURE_BIND,
      `refusing to bind ${host} without authentication: anyone who can reach it could purge queues and revoke tasks. ` +
        'Set a token (--token) or basic auth, or bind 127.0.0.1 and use an SSH tunnel or an authenticating proxy',
    );
  }
  const state = new DashboardState({
    ...(opts.queues === undefined ? {} : { queues: opts.queues }),
    ...(opts.maxTasks === undefined ? {} : { maxTasks: opts.maxTasks }),
    ...(opts.offlineAfterMs === undefined ? {} : { offlineAfterMs: opts.offlineAfterMs }),
  });
  const logger = opts.logger ?? silentLogger;
  const app = createApp({
    broker: opts.broker,
    ...(opts.resultBackend === undefined ? {} : { resultBackend: opts.resultBackend }),
    logger,
  });
  const d = new DashboardServer(app, state, auth, logger, statsIntervalMs, opts.secureCookie ?? false, opts.maxTasks ?? 500, opts.offlineAfterMs ?? 6_000);
  try {
    await d.start(host, port);
  } catch (err) {
    await d.close();
    throw err;
  }
  return d;
}

class DashboardServer implements Dashboard, RouteContext {
  readonly hub = new SseHub();
  readonly metrics: MetricsCollector;
  private brokerValue: GuardedBroker | undefined;
  private server: Server | undefined;
  private unwatch: (() => Promise<void>) | undefined;
  private readonly stats = new Map<string, { stats: QueueStats; error: string | null }>();
  private refreshing: Promise<void> | undefined;
  private pushTimer: NodeJS.Timeout | undefined;
  private statsTimer: NodeJS.Timeout | undefined;
  private lastPing = Date.now();
  private depthsStale = false;
  private lastStatsAt = 0;
  private closing: Promise<void> | undefined;
  private urlValue = '';
  private portValue = 0;
  private allowedHosts = new Set<string>();

  constructor(
    readonly app: App,
    readonly state: DashboardState,
    private readonly auth: Auth,
    private readonly logger: Logger,
    private readonly statsIntervalMs: number,
    private readonly secureCookie: boolean,
    readonly maxTasks: number,
    offlineAfterMs: number,
  ) {
    // The state's queue list is live: queues discovered from events show up in /metrics too.
    this.metrics = createMetrics(app, { queues: state.queues, offlineAfterMs });
  }

  get url(): string {
    return this.urlValue;
  }

  get port(): number {
    return this.portValue;
  }

  get broker(): GuardedBroker {
    if (this.brokerValue === undefined) throw new CeleriacError('ERR_CLOSED', 'the dashboard is not connected');
    return this.brokerValue;
  }

  now(): number {
    return Date.now();
  }

  async start(host: string, port: number): Promise<void> {
    this.brokerValue = await this.app.getBroker();
    const broadcast = this.brokerValue.broadcast;
    if (broadcast !== undefined) {
      this.unwatch = await watchEvents(broadcast, (e) => {
        this.state.apply(e, this.now());
        this.metrics.observe(e);
        // A task moving on changes depths (in flight, dead): refresh them with the push.
        if (e.type.startsWith('task:')) this.depthsStale = true;
        this.schedulePush();
      });
    }
    await this.refreshStats();
    const server = createServer((req, res) => void this.handle(req, res));
    this.server = server;
    server.keepAliveTimeout = 5_000;
    server.headersTimeout = 10_000;
    server.requestTimeout = 30_000;
    await new Promise<void>((resolve, reject) => {
      const onError = (err: NodeJS.ErrnoException) => {
        reject(new CeleriacError(DashboardErrorCode.LISTEN, `cannot listen on ${host}:${port}: ${err.code ?? err.message}`, { cause: err }));
      };
      server.once('error', onError);
      server.listen(port, host, () => {
        server.off('error', onError);
        resolve();
      });
    });
    server.on('error', (err) => this.logger.error('dashboard server error', { error: String(err) }));
    const addr = server.address() as AddressInfo;
    this.portValue = addr.port;
    this.auth.bindPort(addr.port);
    const shown = host.includes(':') && !host.startsWith('[') ? `[${host}]` : host;
    this.urlValue = `http://${shown}:${addr.port}/`;
    for (const h of [shown, 'localhost', '127.0.0.1', '[::1]']) this.allowedHosts.add(`${h}:${addr.port}`.toLowerCase());
    this.armStats();
  }

  overview(): Overview {
    const now = this.now();
    return {
      broker: this.brokerValue?.name ?? '?',
      broadcast: this.brokerValue?.broadcast !== undefined,
      now,
      maxTasks: this.maxTasks,
      workers: this.state.workers(now),
      queues: this.state.queues.map((name) => {
        const s = this.stats.get(name);
        return {
          name,
          ready: s?.stats.ready ?? 0,
          delayed: s?.stats.delayed ?? 0,
          inFlight: s?.stats.inFlight ?? 0,
          dead: s?.stats.dead ?? 0,
          error: s?.error ?? null,
          ...this.state.rateSeries(name, now),
        };
      }),
    };
  }

  /** Read every queue's depths; concurrent callers share one refresh. */
  refreshStats(): Promise<void> {
    this.refreshing ??= (async () => {
      this.lastStatsAt = Date.now();
      this.depthsStale = false;
      try {
        const broker = this.brokerValue;
        if (broker === undefined) return;
        await Promise.all(
          [...this.state.queues].map(async (q) => {
            try {
              this.stats.set(q, { stats: await broker.stats(q), error: null });
            } catch (err) {
              const prev = this.stats.get(q)?.stats ?? { ready: 0, delayed: 0, inFlight: 0, dead: 0 };
              this.stats.set(q, { stats: prev, error: err instanceof Error ? err.message : String(err) });
            }
          }),
        );
      } finally {
        this.refreshing = undefined;
      }
    })();
    return this.refreshing;
  }

  pushSoon(): void {
    void this.refreshStats().then(() => {
      if (this.closing !== undefined) return;
      this.flushTasks();
      this.hub.send('overview', this.overview());
    });
  }

  private schedulePush(): void {
    if (this.pushTimer !== undefined || this.closing !== undefined) return;
    this.pushTimer = setTimeout(() => {
      this.pushTimer = undefined;
      this.flushTasks();
      const dirty = this.state.takeOverviewDirty();
      if (this.depthsStale && this.hub.size > 0) {
        if (Date.now() - this.lastStatsAt >= STATS_AFTER_EVENTS_MS) this.pushSoon();
        else this.schedulePush(); // try again shortly: depths stay at most this stale under load
      } else if (dirty) this.hub.send('overview', this.overview());
    }, PUSH_MS);
  }

  private flushTasks(): void {
    const tasks = this.state.takeChangedTasks();
    if (tasks.length > 0) this.hub.send('tasks', { tasks });
  }

  private armStats(): void {
    this.statsTimer = setTimeout(() => {
      void (async () => {
        if (this.hub.size > 0) {
          await this.refreshStats();
          if (this.closing !== undefined) return;
          this.hub.send('overview', this.overview());
          if (Date.now() - this.lastPing >= PING_EVERY_MS) {
            this.lastPing = Date.now();
            this.hub.ping();
          }
        }
        if (this.closing === undefined) this.armStats();
      })();
    }, this.statsIntervalMs);
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    try {
      await this.dispatch(req, res);
    } catch (err) {
      const status = statusOfError(err);
      if (status >= 500) this.logger.error('dashboard request failed', { url: req.url, error: String(err) });
      if (res.headersSent) {
        res.destroy();
        return;
      }
      sendJson(res, status, errorBody(err), err instanceof HttpError ? err.headers : {});
    }
  }

  private async dispatch(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (this.closing !== undefined) throw new HttpError(503, 'the dashboard is closing', { Connection: 'close' });
    // Without credentials, the only defence against DNS rebinding is the Host header: a page on
    // evil.example that resolves to 127.0.0.1 still sends Host: evil.example.
    if (!this.auth.enabled && !this.allowedHosts.has((req.headers.host ?? '').toLowerCase())) {
      throw new HttpError(403, 'this Host is not allowed: open the dashboard through 127.0.0.1 or localhost');
    }
    const url = new URL(req.url ?? '/', 'http://dashboard.invalid');
    let segments: string[];
    try {
      segments = url.pathname
        .split('/')
        .filter((s) => s !== '')
        .map((s) => decodeURIComponent(s));
    } catch {
      throw new HttpError(400, 'malformed path');
    }
    const method = req.method ?? 'GET';
    if (method === 'POST') this.checkCsrf(req, segments);

    if (segments.length === 1 && segments[0] === 'login' && this.auth.usesToken) {
      await this.login(req, res, method);
      return;
    }
    if (!this.auth.check(req)) {
      this.unauthorized(req, res, segments);
      return;
    }
    if (segments.length === 0) {
      if (method !== 'GET' && method !== 'HEAD') throw new HttpError(405, 'use GET', { Allow: 'GET' });
      const nonce = randomBytes(16).toString('base64');
      sendText(res, 200, 'text/html; charset=utf-8', renderPage(nonce), { 'Content-Security-Policy': pageCsp(nonce) });
      return;
    }
    await route(this, req, res, segments, url.searchParams, {});
  }

  /**
   * Cross-site request forgery: a POST must carry our custom header (a cross-origin page can only
   * send it after a CORS preflight, which this server never grants), and, when the browser names the
   * origin, come from this one. The sign-in form is the one POST a plain HTML form makes.
   */
  private checkCsrf(req: IncomingMessage, segments: string[]): void {
    const origin = req.headers.origin;
    const host = req.headers.host;
    if (origin !== undefined && origin !== 'null') {
      let sameOrigin: boolean;
      try {
        sameOrigin = host !== undefined && new URL(origin).host.toLowerCase() === host.toLowerCase();
      } catch {
        sameOrigin = false;
      }
      if (!sameOrigin) throw new HttpError(403, 'cross-origin request refused');
    } else if (origin === 'null') throw new HttpError(403, 'cross-origin request refused');
    const site = req.headers['sec-fetch-site'];
    if (site !== undefined && site !== 'same-origin' && site !== 'none') throw new HttpError(403, 'cross-site request refused');
    const isLogin = segments.length === 1 && segments[0] === 'login';
    if (!isLogin && req.headers['x-celeriac-csrf'] !== '1') {
      throw new HttpError(403, 'missing X-Celeriac-Csrf: 1 header (required on every POST)');
    }
  }

  private async login(req: IncomingMessage, res: ServerResponse, method: string): Promise<void> {
    const nonce = randomBytes(16).toString('base64');
    const headers = { 'Content-Security-Policy': pageCsp(nonce) };
    if (method === 'GET' || method === 'HEAD') {
      sendText(res, 200, 'text/html; charset=utf-8', renderLogin(nonce, false), headers);
      return;
    }
    if (method !== 'POST') throw new HttpError(405, 'use GET or POST', { Allow: 'GET, POST' });
    const form = new URLSearchParams(await readBody(req, 4_096));
    if (this.auth.checkToken(form.get('token') ?? '')) {
      res.writeHead(303, { ...BASE_HEADERS, Location: './', 'Set-Cookie': this.auth.sessionCookie(this.secureCookie), 'Content-Length': 0 });
      res.end();
      return;
    }
    this.logger.warn('dashboard sign-in with a wrong token', { remote: req.socket.remoteAddress });
    sendText(res, 401, 'text/html; charset=utf-8', renderLogin(nonce, true), headers);
  }

  private unauthorized(req: IncomingMessage, res: ServerResponse, segments: string[]): void {
    const headers: Record<string, string> = {};
    if (this.auth.usesBasic) headers['WWW-Authenticate'] = 'Basic realm="celeriac dashboard", charset="UTF-8"';
    else headers['WWW-Authenticate'] = 'Bearer realm="celeriac dashboard"';
    const wantsPage = segments.length === 0 && (req.headers.accept ?? '').includes('text/html');
    if (wantsPage && this.auth.usesToken) {
      const nonce = randomBytes(16).toString('base64');
      sendText(res, 401, 'text/html; charset=utf-8', renderLogin(nonce, false), { ...headers, 'Content-Security-Policy': pageCsp(nonce) });
      return;
    }
    sendJson(res, 401, { error: 'authentication required' }, headers);
  }

  close(): Promise<void> {
    this.closing ??= (async () => {
      if (this.pushTimer !== undefined) clearTimeout(this.pushTimer);
      if (this.statsTimer !== undefined) clearTimeout(this.statsTimer);
      this.pushTimer = undefined;
      this.statsTimer = undefined;
      this.hub.closeAll();
      const server = this.server;
      if (server !== undefined) {
        const closed = new Promise<void>((resolve) => server.close(() => resolve()));
        server.closeAllConnections();
        await closed;
      }
      await this.unwatch?.().catch(() => undefined);
      await this.refreshing?.catch(() => undefined);
      await this.metrics.close().catch(() => undefined);
      await this.app.close();
    })();
    return this.closing;
  }
}
