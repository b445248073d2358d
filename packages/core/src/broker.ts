/**
 * The broker contract: bytes in, bytes out. Serialization, retries, settle-once, prefetch
 * accounting, lease renewal and events live once, in core; a transport implements only this.
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

export interface PublishOptions {
  /** Hold the message in the broker for this long before it can be delivered. */
  delayMs?: number;
  /** 0–9, 9 the most urgent. Refused with ERR_UNSUPPORTED where `capabilities.priorities` is 0. */
  priority?: number;
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

/**
 * What a delivery's `ack()` may return when the ack is already done (queued for the transport's next
 * write, nothing left to wait for): one shared resolved promise, so core skips the `catch` and the
 * `await` it would spend on a fresh one. Every promise costs a hook call once `currentTask()`'s
 * AsyncLocalStorage is on, and a task's ack is on every task's path.
 */
export const SETTLED: Promise<void> = Promise.resolve();

/**
 * The iterator of a transport's `consume` may also have `takeSync`: a delivery it already holds,
 * handed out without a promise, or undefined when `next()` would have to wait. Core drains what is
 * buffered this way and awaits `next()` only when nothing is (three promises less per delivery).
 */
export interface DeliveryIterator extends AsyncIterator<Delivery> {
  takeSync?(): Delivery | undefined;
}

/**
 * The next delivery of `it` as core consumes: one the transport already holds, without a promise
 * (`takeSync`), else a promise of `next()`'s — undefined once the iteration is done.
 */
export function takeOrNext(it: DeliveryIterator): Delivery | Promise<Delivery | undefined> {
  return it.takeSync?.() ?? it.next().then((r) => (r.done === true ? undefined : r.value));
}

export interface Delivery {
  /** The id the message was published with. */
  readonly id: string;
  readonly body: Uint8Array;
  /**
   * Optional: the body already parsed, where the transport's own framing parses it together with its
   * headers — what `JSON.parse` returns for an `application/json` body without a content-encoding.
   * Core then does not decode `body` again; undefined means decode it.
   */
  readonly parsedBody?: unknown;
  readonly headers: Readonly<Headers>;
  /** How often the broker handed this message out, 1 on the first delivery (crash redeliveries included). */
  readonly deliveries: number;
  ack(): Promise<void>;
  nack(opts: NackOptions): Promise<void>;
  /** Renew the lease, so a long task is not delivered again while its worker is alive. */
  extend?(): Promise<void>;
  /**
   * Optional: perform `write` (prepared by the result backend), then ack, in one step on the server —
   * one round trip where storing and acking would take two. Only called when the broker's
   * `resultWriteTarget` equals the backend's `writeTarget`. The write happens even when the ack is
   * refused because the lease was lost (ERR_STALE_DELIVERY), exactly as a separate `set` then `ack`.
   */
  ackWithResult?(write: PreparedResultWrite): Promise<void>;
}

/**
 * A result write that a result backend prepared (`ResultBackend.prepareSet`) for a transport on the
 * same server to perform together with an ack. `kind` names the operation, agreed between the two
 * packages and documented where it is defined; `keys` and `args` are its operands.
 */
export interface PreparedResultWrite {
  readonly kind: string;
  readonly keys: readonly string[];
  readonly args: readonly (string | number)[];
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
  /**
   * Set when deliveries can store a result together with their ack (`Delivery.ackWithResult`): names
   * the server (and database) they can write to, such as `redis://127.0.0.1:6379/0`. Core combines the
   * two only when the result backend's `writeTarget` is the same string.
   */
  readonly resultWriteTarget?: string | undefined;
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
