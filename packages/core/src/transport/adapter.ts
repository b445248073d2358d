import type { Headers, NackOptions } from '../broker.js';

/**
 * One message as an adapter hands it to the kit: what the application sees of it, plus whatever the
 * adapter keeps to settle it (a lease token, a channel, a reply subject) in fields of its own.
 * Getters are fine: the kit reads each field only when asked.
 */
export interface Incoming {
  /** The id it was published with. */
  readonly id: string;
  readonly body: Uint8Array;
  readonly headers: Readonly<Headers>;
  /** How often the broker handed it out, 1 on the first delivery (crash redeliveries included). */
  readonly deliveries: number;
  /**
   * Optional: the body already parsed, where the transport's framing parses it together with its
   * headers — what `JSON.parse` returns for an `application/json` body without a content encoding.
   * Core then does not decode `body` again.
   */
  readonly parsedBody?: unknown;
}

/**
 * A result write that a result backend prepared (`ResultBackend.prepareSet`) for a transport on the same
 * server to perform together with an ack. `kind` names the operation, agreed between the two packages;
 * `keys` and `args` are its operands.
 */
export interface PreparedResultWrite {
  readonly kind: string;
  readonly keys: readonly string[];
  readonly args: readonly (string | number)[];
}

/** Where an adapter hands messages to the kit (push adapters get one in `start`). */
export interface Sink<M extends Incoming> {
  /** How many more messages the kit takes now: the prefetch bound less what it holds. */
  readonly credit: number;
  /**
   * Hand one message to the kit. With no credit left (or the consumer stopped) the kit refuses it and
   * gives it straight back through `release([m], false)`: the bound holds whatever an adapter offers.
   */
  push(m: M): void;
  /** A failure the adapter cannot return to a caller (its subscription broke): reported as a broker error. */
  fail(err: unknown): void;
  /**
   * Forget every message this consumer holds (buffered, or handed out and not settled) for which `stale`
   * is true: the server has taken them back already (a channel closed, a lease ran out). Their slots
   * free at once; a later settle of one is refused with ERR_STALE_DELIVERY; nothing is released.
   * Returns how many were dropped.
   */
  drop(stale: (m: M) => boolean): number;
}

/** What every adapter does: settle, renew, give back. Exactly one settle or release per message. */
export interface SettleAdapter<M extends Incoming> {
  /**
   * Acknowledge: the message is done. May return the kit's `SETTLED` when nothing is left to wait for
   * (the ack is queued for the transport's next write): core then spends no promise on it.
   */
  ack(m: M): Promise<void>;
  /** requeue (after `delayMs` if set), or dead-letter with `reason` when `requeue` is false. */
  nack(m: M, opts: NackOptions): Promise<void>;
  /**
   * Optional: perform `write`, then ack, in one step on the server. Only called when the adapter's
   * `resultWriteTarget` equals the result backend's `writeTarget`. The write happens even when the ack is
   * refused because the lease was lost (ERR_STALE_DELIVERY), exactly as a separate set then ack. A write
   * it cannot run (an unknown `kind`) is refused by throwing synchronously: the message stays held.
   */
  ackWithResult?(m: M, write: PreparedResultWrite): Promise<void>;
  /**
   * Where `ackWithResult` can write, such as `redis://127.0.0.1:6379/0`: core combines a result write
   * with the ack only when the result backend's `writeTarget` is the same string.
   */
  readonly resultWriteTarget?: string | undefined;
  /** Renew the lease of a message the application still holds (the kit calls it every third of the visibility timeout). */
  extend?(m: M): Promise<void>;
  /**
   * Give messages back to the queue without their holder settling them. `counted` false: they were
   * never handed to the application (a consumer stopping with a full buffer, a message over the bound)
   * and the give-back must not count as a delivery; true: the holder is going away (broker close),
   * counted as after a crash but at once.
   */
  release(ms: readonly M[], counted: boolean): Promise<void>;
  /** The consumer stopped: drop subscriptions, blocking connections and timers. */
  stop?(): void | Promise<void>;
}

/**
 * A pull transport (Redis, PostgreSQL, memory's model of a list): the kit asks for up to its credit,
 * one call at a time, and calls again once credit is left.
 */
export interface PullAdapter<M extends Incoming> extends SettleAdapter<M> {
  /**
   * Claim only when the consumer's buffer is empty and someone waits for a message, instead of
   * reading ahead up to the credit: for a source that buffers (and may invalidate) messages itself,
   * such as another transport's iterator. @default false
   */
  readonly onDemand?: boolean;
  /**
   * Claim up to `max` messages. When none is ready, wait (bounded, never a busy poll: a notification, a
   * blocking read, a timer for the next due message) and resolve `[]` to be asked again; resolve as soon
   * as `signal` aborts. `null` ends the consumer (the source has no more). A rejection is reported and
   * the kit asks again with backoff (100 ms doubling to 5 s).
   */
  claim(max: number, signal: AbortSignal): Promise<readonly M[] | null>;
}

/**
 * A push transport (RabbitMQ, NATS, the memory broker): it delivers through a `Sink` within the credit the
 * kit gives, and is told when credit grows again.
 */
export interface PushAdapter<M extends Incoming> extends SettleAdapter<M> {
  /** Start delivering to `sink` (called once). `prefetch` is the bound to ask the server for. */
  start(sink: Sink<M>, prefetch: number): void | Promise<void>;
  /** Credit grew from a settle or a release: deliver more if any was held back. */
  credit?(): void;
}

export type ConsumerAdapter<M extends Incoming> = PullAdapter<M> | PushAdapter<M>;
