/**
 * The broker contract: bytes in, bytes out. Serialization, retries, settle-once, prefetch
 * accounting, lease renewal and events live once, in core. An outside transport implements this;
 * the transports of this repository build `consume` on the kit of `@celeriac/core/transport`, which
 * core recognises and uses directly (an outside transport's iterator is put on the same kit).
 */

/** A header value; every transport round-trips each of these types. */
export type HeaderValue = string | number | boolean | null | HeaderValue[];
export type Headers = Record<string, HeaderValue>;

/** A message as handed to `publish`. */
export interface OutgoingMessage {
  /** Unique per publish; the transport's dedup key where it has one. Core makes a fresh one per publish. */
  readonly id: string;
  readonly body: Uint8Array;
  readonly headers: Readonly<Headers>;
}

/**
 * A database client inside the caller's open transaction (DESIGN.md §10): anything with
 * `query(text, values)` resolving to `{ rows }` — a node-postgres `Client` or pooled client after
 * `BEGIN`, or a few-line adapter around an ORM's transaction (Knex, Prisma, Drizzle, …).
 */
export interface TransactionClient {
  /** Run one statement with `$1…$n` parameters. */
  query(text: string, values?: unknown[]): Promise<{ rows: unknown[] }>;
}

export interface PublishOptions {
  /** Hold the message in the broker for this long before it can be delivered. */
  delayMs?: number;
  /** 0–9, 9 the most urgent. Refused with ERR_UNSUPPORTED where `capabilities.priorities` is 0. */
  priority?: number;
  /**
   * Publish inside this transaction: the message exists only if it commits (and is invisible to
   * consumers until then); a rollback leaves nothing. The caller commits or rolls back. Refused with
   * ERR_UNSUPPORTED where `capabilities.transactionalPublish` is not true.
   */
  transaction?: TransactionClient;
}

export interface ConsumeOptions {
  /**
   * The most deliveries of this consumer that may be unsettled at once (yielded or buffered).
   * The rest stay in the broker for other consumers.
   */
  prefetch: number;
  /** Aborting ends the iteration; deliveries claimed but not yet yielded go back to the queue. */
  signal?: AbortSignal;
}

export interface NackOptions {
  /** false: dead-letter with `reason`. true: deliver again (after `delayMs` if given). */
  requeue: boolean;
  delayMs?: number;
  reason?: string;
}

export interface Delivery {
  /** The id the message was published with. */
  readonly id: string;
  readonly body: Uint8Array;
  readonly headers: Readonly<Headers>;
  /** How often the broker handed this message out, 1 on the first delivery (crash redeliveries included). */
  readonly deliveries: number;
  ack(): Promise<void>;
  nack(opts: NackOptions): Promise<void>;
  /** Renew the lease, so a long task is not delivered again while its worker is alive. */
  extend?(): Promise<void>;
}

export interface DeadLetter {
  readonly id: string;
  readonly queue: string;
  readonly body: Uint8Array;
  readonly headers: Readonly<Headers>;
  readonly reason: string;
  /** Epoch milliseconds at which the message was dead-lettered, where the broker knows it. */
  readonly deadAt: number | null;
}

export interface DeadLetterOptions {
  /** @default 100 */
  limit?: number;
}

export interface DeadLetters {
  list(queue: string, opts?: DeadLetterOptions): Promise<DeadLetter[]>;
  /** Move dead letters (all, or those with these ids) back to the queue; returns how many moved. */
  redrive(queue: string, ids?: readonly string[]): Promise<number>;
  purge(queue: string): Promise<number>;
}

export interface Broadcast {
  publish(channel: string, body: Uint8Array): Promise<void>;
  /** Resolves once subscribed; the returned function unsubscribes. */
  subscribe(channel: string, onMessage: (body: Uint8Array) => void): Promise<() => Promise<void>>;
}

export interface QueueStats {
  ready: number;
  delayed: number;
  inFlight: number;
  dead: number;
}

export interface QueueSpec {
  /** Highest priority the queue must accept; transports that fix queue arguments at creation read it. */
  maxPriority?: number;
}

/** Constant for the broker's lifetime. Read by core and by the conformance suite. */
export interface BrokerCapabilities {
  readonly delayedDelivery: 'native' | 'emulated';
  /** Number of priority levels, 0 = none (a `priority` is then refused). */
  readonly priorities: number;
  readonly deadLetter: 'native' | 'emulated';
  /** `Delivery.deliveries` counts every hand-out (false: only 1, or 2 for "redelivered"). */
  readonly redeliveryCount: boolean;
  readonly broadcast: boolean;
  readonly maxMessageBytes: number;
  /**
   * A publish can run inside the caller's database transaction (`transaction` in the publish
   * options), so the message exists only if that transaction commits. Absent means false.
   */
  readonly transactionalPublish?: boolean;
}

export interface Broker {
  readonly name: string;
  readonly capabilities: BrokerCapabilities;
  /**
   * How long an unsettled delivery of a dead consumer waits before it is delivered again.
   * Core renews the lease of every delivery it holds (`Delivery.extend`) well within it.
   */
  readonly visibilityTimeoutMs?: number | undefined;
  connect(opts?: { signal?: AbortSignal }): Promise<void>;
  /** Idempotent. Unsettled deliveries are given back to the broker (at once, or after the visibility timeout). */
  close(opts?: { drain?: boolean }): Promise<void>;
  declareQueue(queue: string, spec?: QueueSpec): Promise<void>;
  /** Resolves once the broker holds the message durably. */
  publish(queue: string, msg: OutgoingMessage, opts?: PublishOptions): Promise<void>;
  publishBatch?(queue: string, msgs: readonly OutgoingMessage[], opts?: PublishOptions): Promise<void>;
  consume(queue: string, opts: ConsumeOptions): AsyncIterable<Delivery>;
  purge(queue: string): Promise<number>;
  stats(queue: string): Promise<QueueStats>;
  readonly deadLetters: DeadLetters;
  readonly broadcast?: Broadcast | undefined;
}
