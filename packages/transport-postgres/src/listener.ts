import { CeleriacError, ErrorCode, type Logger } from '@celeriac/core';
import type { Client, Notification } from 'pg';
import { quoteIdent } from './sql.js';

interface Channel {
  readonly handlers: Set<(payload: string) => void>;
  /** Resolves once the server LISTENs on this channel for this connection. */
  readonly ready: Promise<void>;
  resolve(): void;
  reject(err: unknown): void;
  settled: boolean;
}

/** A channel subscription: wait for `ready` before relying on notifications; `remove()` once done. */
export interface ListenHandle {
  /** Resolves once the server LISTENs on the channel for this connection (rejects with ERR_CLOSED on close). */
  readonly ready: Promise<void>;
  /** Stop calling the handler; idempotent. */
  remove(): void;
}

/** What the listener needs from its owner. */
export interface ListenerHost {
  /** A new, unconnected client for the dedicated connection. */
  newClient(): Client;
  /** Report a connection failure (once per outage is the owner's business). */
  report(err: unknown): void;
  /** Where handler failures are logged. */
  readonly logger: Logger;
}

const MIN_BACKOFF_MS = 100;
const MAX_BACKOFF_MS = 5_000;

/**
 * One dedicated connection for LISTEN, shared by every subscription of a broker or a result backend.
 *
 * - Channels are reference-counted: the LISTEN and UNLISTEN commands of one turn of the event loop go
 *   out as one query, and a channel is unlistened once its last handler is removed.
 * - The connection is opened on the first `listen` and re-opened after a failure, with backoff;
 *   every channel is listened again, then the `onReconnect` callbacks run. Notifications sent while
 *   it was down are lost: the callbacks are where owners catch up (re-claim, re-read).
 * - Not for a transaction-mode pooler (PgBouncer): LISTEN needs a session of its own.
 */
export class Listener {
  private client: Client | undefined;
  private readonly channels = new Map<string, Channel>();
  /** Channels the current connection LISTENs on (or has been asked to). */
  private readonly active = new Set<string>();
  private readonly reconnectHandlers = new Set<() => void>();
  private state: 'idle' | 'connecting' | 'up' | 'down' | 'closed' = 'idle';
  private wasUp = false;
  private backoffMs = MIN_BACKOFF_MS;
  private retryTimer: NodeJS.Timeout | undefined;
  private syncScheduled = false;
  private syncing: Promise<void> = Promise.resolve();

  constructor(private readonly host: ListenerHost) {}

  /** Call `handler` with the payload of every notification on `channel` until `remove()`. */
  listen(channel: string, handler: (payload: string) => void): ListenHandle {
    if (this.state === 'closed') {
      const ready = Promise.reject(new CeleriacError(ErrorCode.CLOSED, 'listener is closed'));
      ready.catch(() => undefined);
      return { ready, remove: () => undefined };
    }
    let entry = this.channels.get(channel);
    if (entry === undefined) {
      entry = newChannel();
      this.channels.set(channel, entry);
      this.schedule();
    }
    const e = entry;
    e.handlers.add(handler);
    let removed = false;
    return {
      ready: e.ready,
      remove: () => {
        if (removed) return;
        removed = true;
        e.handlers.delete(handler);
        if (e.handlers.size === 0 && this.channels.get(channel) === e) {
          this.channels.delete(channel);
          this.schedule();
        }
      },
    };
  }

  /** Run `fn` after every reconnect, once the channels are listened again. Returns the unregister function. */
  onReconnect(fn: () => void): () => void {
    this.reconnectHandlers.add(fn);
    return () => {
      this.reconnectHandlers.delete(fn);
    };
  }

  /** Channels with handlers (for tests and stats). */
  get size(): number {
    return this.channels.size;
  }

  /** @internal The channels the server has been asked to deliver on the current connection. */
  listening(): string[] {
    return [...this.active];
  }

  /** @internal The backend pid of the current connection (tests terminate it to simulate a failure). */
  async backendPid(): Promise<number | undefined> {
    const c = this.client;
    if (c === undefined || this.state !== 'up') return undefined;
    const { rows } = await c.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
    return rows[0]?.pid;
  }

  private schedule(): void {
    if (this.syncScheduled || this.state === 'closed') return;
    this.syncScheduled = true;
    setImmediate(() => {
      this.syncScheduled = false;
      this.syncing = this.syncing.then(() => this.sync());
    });
  }

  /** Bring the connection's LISTENs in line with the channels (connecting first when needed). */
  private async sync(): Promise<void> {
    if (this.state === 'idle') {
      this.connect();
      return; // connect() syncs once up
    }
    const client = this.client;
    if (this.state !== 'up' || client === undefined) return;
    const statements: string[] = [];
    const added: string[] = [];
    for (const channel of [...this.active]) {
      if (!this.channels.has(channel)) {
        statements.push(`UNLISTEN ${quoteIdent(channel)}`);
        this.active.delete(channel);
      }
    }
    for (const [channel, e] of this.channels) {
      if (this.active.has(channel)) {
        if (!e.settled) e.resolve();
      } else {
        statements.push(`LISTEN ${quoteIdent(channel)}`);
        added.push(channel);
        this.active.add(channel);
      }
    }
    if (statements.length === 0) return;
    try {
      await client.query(statements.join('; '));
    } catch (err) {
      // The connection failed (its 'error' handler reconnects and listens again); nothing to resolve.
      for (const channel of added) this.active.delete(channel);
      this.host.logger.debug('postgres LISTEN failed', { error: String(err) });
      return;
    }
    for (const channel of added) {
      const e = this.channels.get(channel);
      if (e !== undefined && !e.settled) e.resolve();
    }
  }

  private connect(): void {
    if (this.state === 'closed' || this.state === 'connecting' || this.state === 'up') return;
    this.state = 'connecting';
    const client = this.host.newClient();
    this.client = client;
    let failed = false;
    const onDown = (err: unknown) => {
      if (failed) return;
      failed = true;
      this.down(client, err);
    };
    client.on('error', onDown);
    client.on('end', () => onDown(new CeleriacError(ErrorCode.CONNECTION, 'the LISTEN connection ended')));
    client.on('notification', (n: Notification) => this.dispatch(n.channel, n.payload ?? ''));
    client.connect().then(
      () => {
        if (this.state !== 'connecting' || this.client !== client) return;
        this.state = 'up';
        this.backoffMs = MIN_BACKOFF_MS;
        this.active.clear();
        const reconnected = this.wasUp;
        this.wasUp = true;
        this.syncing = this.syncing.then(async () => {
          await this.sync();
          if (reconnected && this.state === 'up') for (const fn of [...this.reconnectHandlers]) this.safely(fn);
        });
      },
      (err: unknown) => onDown(err),
    );
  }

  private down(client: Client, err: unknown): void {
    if (this.client !== client || this.state === 'closed') return;
    this.client = undefined;
    this.active.clear();
    this.state = 'down';
    this.host.report(err);
    client.end().catch(() => undefined);
    const delay = this.backoffMs;
    this.backoffMs = Math.min(MAX_BACKOFF_MS, this.backoffMs * 2);
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      if (this.state === 'down') {
        this.state = 'idle';
        this.connect();
      }
    }, delay);
  }

  private dispatch(channel: string, payload: string): void {
    const e = this.channels.get(channel);
    if (e === undefined) return;
    for (const fn of [...e.handlers]) this.safely(() => fn(payload));
  }

  private safely(fn: () => void): void {
    try {
      fn();
    } catch (err) {
      this.host.logger.warn('postgres notification handler threw', { error: String(err) });
    }
  }

  /** Idempotent. Pending `ready` promises reject with ERR_CLOSED; the connection is closed. */
  async close(): Promise<void> {
    if (this.state === 'closed') return;
    this.state = 'closed';
    if (this.retryTimer !== undefined) clearTimeout(this.retryTimer);
    const err = new CeleriacError(ErrorCode.CLOSED, 'listener closed');
    for (const e of this.channels.values()) if (!e.settled) e.reject(err);
    this.channels.clear();
    this.active.clear();
    this.reconnectHandlers.clear();
    const client = this.client;
    this.client = undefined;
    await this.syncing.catch(() => undefined);
    if (client !== undefined) await client.end().catch(() => undefined);
  }
}

function newChannel(): Channel {
  let resolve!: () => void;
  let reject!: (err: unknown) => void;
  const ready = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  ready.catch(() => undefined);
  const c: Channel = {
    handlers: new Set(),
    ready,
    resolve: () => {
      c.settled = true;
      resolve();
    },
    reject: (err) => {
      c.settled = true;
      reject(err);
    },
    settled: false,
  };
  return c;
}
