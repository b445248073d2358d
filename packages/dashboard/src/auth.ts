import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { CeleriacError } from '@celeriac/core';

/** Credentials for HTTP basic auth. */
export interface BasicAuth {
  user: string;
  password: string;
}

export interface AuthOptions {
  token?: string | undefined;
  basicAuth?: BasicAuth | undefined;
}

/** Thrown by `createDashboard` for a bind that would expose it without credentials, and for bad credentials options. */
export const ERR_INSECURE_BIND = 'ERR_INSECURE_BIND';

const LOOPBACK_HOSTS = new Set(['127.0.0.1', 'localhost', '::1', '[::1]']);

/** True for a host that only this machine can reach. */
export function isLoopbackHost(host: string): boolean {
  return LOOPBACK_HOSTS.has(host.toLowerCase()) || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}

/** Compare secrets in constant time (hashing first makes the lengths equal). */
function same(a: string, b: string): boolean {
  const ha = createHash('sha256').update(a, 'utf8').digest();
  const hb = createHash('sha256').update(b, 'utf8').digest();
  return timingSafeEqual(ha, hb);
}

/**
 * Who may use the dashboard. With neither a token nor basic auth every request on loopback is
 * allowed (and `createDashboard` refuses any other bind). With a token: `Authorization: Bearer T`,
 * or the session cookie the login form sets. With basic auth: the browser's own prompt. With both,
 * either is enough.
 */
export class Auth {
  readonly enabled: boolean;
  private cookieNameValue: string;
  private readonly token: string | undefined;
  private readonly basic: BasicAuth | undefined;
  private readonly session: string | undefined;

  constructor(opts: AuthOptions, port: number) {
    if (opts.token !== undefined && (typeof opts.token !== 'string' || opts.token.length < 8)) {
      throw new CeleriacError(ERR_INSECURE_BIND, 'token must be a string of at least 8 characters');
    }
    if (opts.basicAuth !== undefined) {
      const { user, password } = opts.basicAuth;
      if (typeof user !== 'string' || user === '' || user.includes(':') || typeof password !== 'string' || password.length < 8) {
        throw new CeleriacError(ERR_INSECURE_BIND, 'basicAuth needs a user (non-empty, without ":") and a password of at least 8 characters');
      }
    }
    this.token = opts.token;
    this.basic = opts.basicAuth;
    this.enabled = this.token !== undefined || this.basic !== undefined;
    // Cookies are not scoped by port: name it after the port so two dashboards on one host don't clash.
    this.cookieNameValue = `celeriac_dashboard_${port}`;
    this.session =
      this.token === undefined ? undefined : createHmac('sha256', this.token).update('celeriac-dashboard-session').digest('base64url');
  }

  /** The session cookie's name: cookies are not scoped by port, so it carries the port. */
  get cookieName(): string {
    return this.cookieNameValue;
  }

  /** Name the cookie after the port actually bound (when port 0 was asked for). */
  bindPort(port: number): void {
    this.cookieNameValue = `celeriac_dashboard_${port}`;
  }

  get usesToken(): boolean {
    return this.token !== undefined;
  }

  get usesBasic(): boolean {
    return this.basic !== undefined;
  }

  /** Whether the request carries valid credentials (always true when auth is off). */
  check(req: IncomingMessage): boolean {
    if (!this.enabled) return true;
    const header = req.headers.authorization;
    if (header !== undefined) {
      const [scheme, value = ''] = splitOnce(header.trim(), ' ');
      if (this.token !== undefined && scheme.toLowerCase() === 'bearer' && same(value.trim(), this.token)) return true;
      if (this.basic !== undefined && scheme.toLowerCase() === 'basic') {
        const decoded = Buffer.from(value.trim(), 'base64').toString('utf8');
        const [user, password = ''] = splitOnce(decoded, ':');
        // Evaluate both comparisons: no early exit that tells which half was wrong.
        const okUser = same(user, this.basic.user);
        const okPassword = same(password, this.basic.password);
        if (okUser && okPassword) return true;
      }
    }
    if (this.session !== undefined) {
      const cookie = readCookie(req.headers.cookie, this.cookieName);
      if (cookie !== undefined && same(cookie, this.session)) return true;
    }
    return false;
  }

  /** Whether `token` is the configured token (login form). */
  checkToken(token: string): boolean {
    return this.token !== undefined && same(token, this.token);
  }

  /** The `Set-Cookie` value for a browser that logged in with the token. */
  sessionCookie(secure: boolean): string {
    if (this.session === undefined) throw new Error('no token configured');
    return `${this.cookieName}=${this.session}; Path=/; HttpOnly; SameSite=Strict${secure ? '; Secure' : ''}`;
  }
}

function splitOnce(s: string, sep: string): [string, string | undefined] {
  const i = s.indexOf(sep);
  return i < 0 ? [s, undefined] : [s.slice(0, i), s.slice(i + sep.length)];
}

function readCookie(header: string | undefined, name: string): string | undefined {
  if (header === undefined) return undefined;
  for (const part of header.split(';')) {
    const [k, v] = splitOnce(part.trim(), '=');
    if (k === name && v !== undefined) return v;
  }
  return undefined;
}
