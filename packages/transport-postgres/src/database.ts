import { CeleriacError, ErrorCode, type Logger } from '@celeriac/core';
import { Client, Pool, type ClientConfig, type PoolClient, type QueryResultRow } from 'pg';
import { classifyError } from './errors.js';
import { Listener } from './listener.js';
import { connectionString } from './options.js';
import { ensureSchema } from './schema.js';
import { quoteIdent } from './sql.js';

/** Anything that runs a statement with `$n` parameters: a `pg` Client or Pool, or an adapter (Knex). */
export interface SqlClient {
  /** Run one statement with `$1…$n` parameters. */
  query(text: string, values?: unknown[]): Promise<{ rows: unknown[] }>;
}

/** How a {@link Database} connects. */
export interface DatabaseConfig {
  /** The server; celeriac's query parameters are removed before the driver sees it. */
  url: URL;
  /** The schema (the `prefix` option). */
  schema: string;
  /** Migrate on connect, or only check the version. */
  migrate: boolean;
  /** Connections of the statement pool. */
  poolSize: number;
  /** How long to wait for a connection. */
  connectTimeoutMs: number;
  /** Where connection problems are logged (never with credentials). */
  logger: Logger;
  /** Shown in `pg_stat_activity.application_name` unless the URL sets one: `celeriac:<role>`. */
  role: string;
  /** Extra `pg` client options for every connection (TLS, …). */
  pg?: ClientConfig | undefined;
  /** Called once per outage when a connection fails. */
  onError(err: Error): void;
  /** Called after the LISTEN connection came back (notifications sent meanwhile are lost). */
  onReconnected(): void;
}

/** Rows deleted per statement by `cleanup`, so no cleanup holds locks for long. */
const CLEANUP_BATCH = 1000;

/**
 * The connections of a broker or result backend: a pool for statements and one dedicated LISTEN
 * connection (opened on the first subscription). Connecting checks (or migrates) the schema once.
 * Every statement's failure goes through {@link classifyError}.
 */
export class Database {
  /** Statements run here (`poolSize` connections, opened on demand). */
  readonly pool: Pool;
  /** The dedicated LISTEN connection. */
  readonly listener: Listener;
  /** The schema, as configured. */
  readonly schema: string;
  /** The schema, quoted for SQL. */
  readonly s: string;
  private readonly clientConfig: ClientConfig;
  private connecting: Promise<void> | undefined;
  private connected = false;
  private closed = false;
  private reportedOutage = false;
  private cleanupTimer: NodeJS.Timeout | undefined;
  private cleaning: Promise<number> | undefined;

  constructor(private readonly config: DatabaseConfig) {
    this.schema = config.schema;
    this.s = quoteIdent(config.schema);
    this.clientConfig = {
      ...config.pg,
      connectionString: connectionString(config.url),
      connectionTimeoutMillis: config.connectTimeoutMs,
      keepAlive: true,
      keepAliveInitialDelayMillis: 10_000,
      fallback_application_name: `celeriac:${config.role}`,
    };
    this.pool = new Pool({ ...this.clientConfig, max: config.poolSize, idleTimeoutMillis: 10_000, allowExitOnIdle: false });
    // An idle pooled connection that fails is dropped by the pool; the next statement opens another.
    this.pool.on('error', (err) => this.report(err));
    this.listener = new Listener({
      newClient: () => new Client(this.clientConfig),
      report: (err) => this.report(err),
      logger: config.logger,
    });
    this.listener.onReconnect(() => {
      this.reportedOutage = false;
      config.onReconnected();
    });
  }

  /** Log a connection problem; the owner's `onError` hears of it once per outage. */
  report(err: unknown): void {
    if (this.closed) return;
    this.config.logger.warn('postgres connection error', { error: String(err) });
    if (this.reportedOutage) return;
    this.reportedOutage = true;
    this.config.onError(classifyError(err));
  }

  /** Open a connection and check (or migrate) the schema. Idempotent; a failed attempt can be retried. */
  connect(signal?: AbortSignal): Promise<void> {
    if (this.closed) return Promise.reject(new CeleriacError(ErrorCode.CLOSED, 'closed'));
    this.connecting ??= this.doConnect(signal).catch((err: unknown) => {
      this.connecting = undefined;
      throw classifyError(err, 'connect');
    });
    return this.connecting;
  }

  private async doConnect(signal: AbortSignal | undefined): Promise<void> {
    signal?.throwIfAborted();
    const client: PoolClient = await this.pool.connect();
    let broken: Error | undefined;
    try {
      await ensureSchema(client, this.schema, this.config.migrate);
    } catch (err) {
      if (!(err instanceof CeleriacError)) broken = err as Error;
      throw err;
    } finally {
      client.release(broken);
    }
    signal?.throwIfAborted();
    this.connected = true;
  }

  /** Throws unless connected and open. */
  check(): void {
    if (this.closed) throw new CeleriacError(ErrorCode.CLOSED, 'closed');
    if (!this.connected) throw new CeleriacError(ErrorCode.CONNECTION, 'not connected; call connect() first');
  }

  /** True once `connect` resolved, until `close`. */
  get isConnected(): boolean {
    return this.connected && !this.closed;
  }

  /** Run a statement on the pool; failures are classified (a lost connection is a retryable ERR_CONNECTION). */
  async query<R extends QueryResultRow = Record<string, unknown>>(text: string, values?: unknown[]): Promise<R[]> {
    try {
      const r = await this.pool.query<R>(text, values);
      this.reportedOutage = false;
      return r.rows;
    } catch (err) {
      throw classifyError(err);
    }
  }

  /**
   * Run `fn` inside BEGIN … on one pooled connection: COMMIT when it resolves `commit: true`, else
   * ROLLBACK; a failure rolls back and is classified (a connection that failed is not reused).
   */
  async transaction<T>(fn: (query: <R extends QueryResultRow>(text: string, values?: unknown[]) => Promise<R[]>) => Promise<{ commit: boolean; value: T }>): Promise<T> {
    let client: PoolClient;
    try {
      client = await this.pool.connect();
    } catch (err) {
      throw classifyError(err);
    }
    let broken: Error | undefined;
    try {
      await client.query('BEGIN');
      const { commit, value } = await fn(async (text, values) => (await client.query(text, values)).rows);
      await client.query(commit ? 'COMMIT' : 'ROLLBACK');
      this.reportedOutage = false;
      return value;
    } catch (err) {
      await client.query('ROLLBACK').catch((e: unknown) => {
        broken = e as Error;
      });
      throw classifyError(err);
    } finally {
      client.release(broken);
    }
  }

  /**
   * Delete expired rows with `statements` (each deletes at most {@link CLEANUP_BATCH} rows and returns
   * them), each repeated until it deletes fewer. Returns how many rows went. Concurrent cleaners skip
   * each other's rows (`FOR UPDATE SKIP LOCKED` in the statements).
   */
  cleanup(statements: readonly string[]): Promise<number> {
    this.cleaning ??= (async () => {
      let total = 0;
      try {
        for (const sql of statements) {
          for (;;) {
            const rows = await this.query(sql, [CLEANUP_BATCH]);
            total += rows.length;
            if (rows.length < CLEANUP_BATCH || this.closed) break;
          }
        }
        return total;
      } finally {
        this.cleaning = undefined;
      }
    })();
    return this.cleaning;
  }

  /** Run `cleanup(statements)` every `intervalMs` (with jitter) until close; failures are logged. */
  startCleanup(statements: readonly string[], intervalMs: number): void {
    if (intervalMs <= 0 || this.cleanupTimer !== undefined || this.closed) return;
    const tick = () => {
      this.cleanupTimer = setTimeout(() => {
        this.cleanup(statements).then(
          () => tick(),
          (err: unknown) => {
            this.config.logger.warn('postgres cleanup failed', { error: String(err) });
            tick();
          },
        );
      }, intervalMs * (0.75 + Math.random() * 0.5));
      // Cleanup alone never keeps a process alive.
      this.cleanupTimer.unref();
    };
    tick();
  }

  /** Idempotent: stops the cleanup timer, closes the LISTEN connection and the pool. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.cleanupTimer !== undefined) clearTimeout(this.cleanupTimer);
    await this.connecting?.catch(() => undefined);
    await this.cleaning?.catch(() => undefined);
    await this.listener.close();
    await this.pool.end().catch(() => undefined);
  }
}

/**
 * The statement that deletes up to `$1` rows of `table` whose `expires_at` passed (and that match
 * `extra`, an `AND …` condition), skipping rows other cleaners hold, returning one row per deletion.
 */
export function expiredRowsCleanup(s: string, table: string, extra = ''): string {
  return `DELETE FROM ${s}.${table} t USING (
  SELECT ctid FROM ${s}.${table} WHERE expires_at < now()${extra} ORDER BY expires_at LIMIT $1 FOR UPDATE SKIP LOCKED
) gone WHERE t.ctid = gone.ctid RETURNING 1`;
}
