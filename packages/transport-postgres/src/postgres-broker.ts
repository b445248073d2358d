import {
  CeleriacError,
  ErrorCode,
  silentLogger,
  type Broker,
  type BrokerCapabilities,
  type BrokerEvent,
  type BrokerEventSource,
  type ConsumeOptions,
  type DeadLetter,
  type DeadLetterOptions,
  type DeadLetters,
  type Delivery,
  type FactoryContext,
  type Logger,
  type OutgoingMessage,
  type QueueStats,
  type UrlOptions,
} from '@celeriac/core';
import { ConsumerKit } from '@celeriac/core/transport';
import type { ClientConfig } from 'pg';
import { PgBroadcast } from './broadcast.js';
import { PgAdapter } from './consumer.js';
import { Database, expiredRowsCleanup } from './database.js';
import { writeTargetOf } from './result-backend.js';
import { classifyError } from './errors.js';
import { resolveBrokerOptions, urlOptions, type PostgresBrokerOptions, type ResolvedBrokerOptions } from './options.js';
import { PgQueue, type PostgresPublishOptions } from './queue.js';
import { HotTableVacuum } from './vacuum.js';

/** Constructor options of {@link PostgresBroker}: where to connect, plus the broker options. */
export interface PostgresBrokerConfig extends PostgresBrokerOptions {
  /**
   * `postgres://[user[:password]@]host[:port]/database` (or `postgresql://`). libpq's `sslmode`,
   * `sslrootcert`, `sslcert`, `sslkey`, `application_name` and `options` parameters pass to the driver.
   * @default 'postgres://postgres@127.0.0.1:5432/postgres'
   */
  url?: string | URL;
  /** Extra `pg` client options for every connection the broker opens (TLS objects, …). */
  pg?: ClientConfig;
  /** @default silent */
  logger?: Logger;
}

/**
 * The PostgreSQL broker: queues are rows of `<prefix>.message`, claimed with `FOR UPDATE SKIP
 * LOCKED` under a lease and fenced by a claim token; delays, retries and dead letters live in the
 * database; claimers wait on LISTEN/NOTIFY. A publish can run inside the caller's transaction
 * (`capabilities.transactionalPublish`).
 *
 * Guarantees: at-least-once under a lease of `visibilityTimeoutMs` that core renews; a settle from a
 * holder whose lease was lost is refused with ERR_STALE_DELIVERY; a publish resolves once committed.
 * Not guaranteed: order across priorities or between messages that became claimable at the same
 * time in different transactions.
 *
 * Connections: one pool of `poolSize` (opened on demand) plus one LISTEN connection (opened on the
 * first claim or broadcast subscription).
 *
 * Consumption is the transport kit's (`@celeriac/core/transport`) over a small pull adapter
 * ({@link PgAdapter}) on the queue model ({@link PostgresBroker.queue}).
 */
export class PostgresBroker implements Broker, BrokerEventSource {
  readonly name = 'postgres';
  /** Native delays, 10 priorities, native dead letters, delivery counts, broadcast and transactional publish. */
  readonly capabilities: BrokerCapabilities;
  /** The lease of a claimed message (`visibilityTimeoutMs`). */
  readonly visibilityTimeoutMs: number;
  /** The options in force, defaults filled in. */
  readonly options: ResolvedBrokerOptions;
  /**
   * Server, user and database (`postgres://user@host:port/db`): with a PostgreSQL result backend whose
   * `writeTarget` is the same, a task's result and its ack are one statement.
   */
  readonly resultWriteTarget: string;
  /** Broadcast over NOTIFY (large bodies through the `broadcast` table). */
  readonly broadcast: PgBroadcast;
  private readonly db: Database;
  private readonly logger: Logger;
  private readonly queues = new Map<string, PgQueue>();
  /** Consumption: the prefetch bound, settle-once, held deliveries, lease renewal, give-back at close. */
  private readonly kit: ConsumerKit;
  private readonly vacuum: HotTableVacuum;
  private readonly listeners = new Set<(e: BrokerEvent) => void>();
  private closing: Promise<void> | undefined;

  constructor(config: PostgresBrokerConfig = {}) {
    const { url, pg, logger, ...opts } = config;
    this.options = resolveBrokerOptions(opts);
    this.logger = logger ?? silentLogger;
    this.visibilityTimeoutMs = this.options.visibilityTimeoutMs;
    this.capabilities = {
      delayedDelivery: 'native',
      priorities: 10,
      deadLetter: 'native',
      redeliveryCount: true,
      broadcast: true,
      maxMessageBytes: this.options.maxMessageBytes,
      transactionalPublish: true,
    };
    const where = new URL(url ?? 'postgres://postgres@127.0.0.1:5432/postgres');
    this.resultWriteTarget = writeTargetOf(where);
    this.db = new Database({
      url: where,
      schema: this.options.prefix,
      migrate: this.options.migrate,
      poolSize: this.options.poolSize,
      connectTimeoutMs: this.options.connectTimeoutMs,
      logger: this.logger,
      role: 'broker',
      pg,
      onError: (error) => this.emit({ type: 'error', error }),
      onReconnected: () => {
        // NOTIFYs sent while the LISTEN connection was down are lost: waiting claims look again.
        for (const q of this.queues.values()) q.wakeAll();
        this.emit({ type: 'reconnected' });
      },
    });
    this.broadcast = new PgBroadcast(this.db, this.options.maxMessageBytes, this.logger);
    this.vacuum = new HotTableVacuum(this.db, `${this.db.s}.message`, this.options.vacuumEveryRows, 2_000, this.logger);
    this.kit = new ConsumerKit({
      visibilityTimeoutMs: this.visibilityTimeoutMs,
      classify: classifyError,
      onError: (err) => this.db.report(err),
    });
  }

  /** The schema (the `prefix` option) every table lives in. */
  get schema(): string {
    return this.db.schema;
  }

  /** @internal The connections (tests and the result backend's tooling). */
  get database(): Database {
    return this.db;
  }

  /** `error` once per connection outage, `reconnected` when the LISTEN connection is back. Returns the unsubscribe function. */
  onEvent(listener: (event: BrokerEvent) => void): () => void {
    this.listeners.add(listener);
    return () => {
      this.listeners.delete(listener);
    };
  }

  private emit(event: BrokerEvent): void {
    if (this.closing !== undefined) return;
    for (const l of this.listeners) {
      try {
        l(event);
      } catch (err) {
        this.logger.warn('broker event listener threw', { error: String(err) });
      }
    }
  }

  /**
   * Open a connection and create or migrate the schema (`migrate=true`), or check its version
   * (`migrate=false`). Idempotent; a failed attempt can be retried.
   */
  async connect(opts?: { signal?: AbortSignal }): Promise<void> {
    if (this.closing !== undefined) throw new CeleriacError(ErrorCode.CLOSED, 'broker is closed');
    await this.db.connect(opts?.signal);
    this.db.startCleanup([expiredRowsCleanup(this.db.s, 'broadcast')], this.options.cleanupIntervalMs);
  }

  /**
   * The queue model of `name` (created on first use): what the transport kit's adapter calls to
   * claim, ack, nack, extend and release. Throws until `connect()` resolved.
   */
  queue(name: string): PgQueue {
    if (typeof name !== 'string' || name === '') throw new TypeError('queue must be a non-empty string');
    this.db.check();
    let q = this.queues.get(name);
    if (q === undefined) {
      q = new PgQueue({
        db: this.db,
        name,
        visibilityTimeoutMs: this.visibilityTimeoutMs,
        pollIntervalMs: this.options.pollIntervalMs,
        churned: (rows) => this.vacuum.churned(rows),
      });
      this.queues.set(name, q);
    }
    return q;
  }

  /** Queues need no declaration: a queue is the rows with its name. */
  declareQueue(queue: string): Promise<void> {
    try {
      this.queue(queue);
      return Promise.resolve();
    } catch (err) {
      return Promise.reject(err as Error);
    }
  }

  /**
   * Resolves once committed. Concurrent publishes to a queue share one INSERT; with
   * `opts.transaction` the insert runs on the caller's client and commits (or rolls back) with it.
   */
  publish(queue: string, msg: OutgoingMessage, opts?: PostgresPublishOptions): Promise<void> {
    try {
      return this.queue(queue).publish(msg, opts);
    } catch (err) {
      return Promise.reject(err as Error);
    }
  }

  /** One INSERT per 500 messages, in order; with `opts.transaction`, in the caller's transaction. */
  publishBatch(queue: string, msgs: readonly OutgoingMessage[], opts?: PostgresPublishOptions): Promise<void> {
    try {
      return this.queue(queue).publishBatch(msgs, opts);
    } catch (err) {
      return Promise.reject(err as Error);
    }
  }

  /**
   * Consume `queue` on the kit: at most `opts.prefetch` deliveries held, leases renewed every third
   * of `visibilityTimeoutMs`, claims waiting on LISTEN/NOTIFY when the queue is empty. Throws until
   * `connect()` resolved.
   */
  consume(queue: string, opts: ConsumeOptions): AsyncIterable<Delivery> {
    return this.kit.consume(queue, new PgAdapter(this.queue(queue), this.resultWriteTarget), opts);
  }

  /** Delete every ready and delayed message of `queue` (leased ones stay); returns how many. */
  purge(queue: string): Promise<number> {
    try {
      return this.queue(queue).purge();
    } catch (err) {
      return Promise.reject(err as Error);
    }
  }

  /** Ready (claimable now), delayed, in-flight (leased) and dead messages of `queue`. */
  stats(queue: string): Promise<QueueStats> {
    try {
      return this.queue(queue).stats();
    } catch (err) {
      return Promise.reject(err as Error);
    }
  }

  /** Dead letters of a queue: list the oldest, redrive (all or by message id) to the tail of their level, purge. */
  readonly deadLetters: DeadLetters = {
    list: async (queue: string, opts?: DeadLetterOptions): Promise<DeadLetter[]> => this.queue(queue).deadList(opts?.limit ?? 100),
    redrive: async (queue: string, ids?: readonly string[]): Promise<number> => this.queue(queue).deadRedrive(ids),
    purge: async (queue: string): Promise<number> => this.queue(queue).deadPurge(),
  };

  /**
   * Idempotent and returns the same promise. Consumers stop and give back what they buffered
   * (uncounted) and what the application still holds (counted, as after a crash but at once; bounded
   * by core's close grace), waiting claims resolve, coalesced calls settle, then the LISTEN connection
   * and the pool close.
   */
  close(): Promise<void> {
    this.closing ??= this.doClose();
    return this.closing;
  }

  private async doClose(): Promise<void> {
    await this.kit.close();
    const queues = [...this.queues.values()];
    for (const q of queues) q.close();
    await Promise.all(queues.map((q) => q.drain()));
    await this.vacuum.drain();
    await this.db.close();
  }
}

/**
 * The factory core's URL table calls for `postgres://` and `postgresql://` broker URLs. Query
 * parameters are {@link PostgresBrokerOptions} (plus libpq's TLS and session parameters); the rest of
 * the URL is the connection.
 */
export function createPostgresBroker(url: URL, options: UrlOptions, context: FactoryContext = {}): PostgresBroker {
  return new PostgresBroker({
    ...(resolveBrokerOptions(urlOptions(url, options)) as PostgresBrokerOptions),
    url,
    ...(context.logger === undefined ? {} : { logger: context.logger }),
  });
}
