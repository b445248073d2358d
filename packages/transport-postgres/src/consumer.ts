import type { NackOptions } from '@celeriac/core';
import type { PreparedResultWrite, PullAdapter } from '@celeriac/core/transport';
import type { PgMessage, PgQueue } from './queue.js';

/**
 * One queue's consumer as a pull adapter on the transport kit (`@celeriac/core/transport`). Each
 * primitive is one call of the queue model, which coalesces the calls of a turn of the event loop
 * into one statement:
 *
 * - `claim` leases up to `max` rows with `FOR UPDATE SKIP LOCKED`; when none is claimable it waits on
 *   LISTEN/NOTIFY — at most until the next delay comes due or lease expires, or `pollIntervalMs` — and
 *   resolves `[]` (never a busy poll). After the LISTEN connection came back, waiting claims are woken
 *   to catch up on notifications sent while it was down.
 * - `ack` deletes the row, `nack` requeues, delays or dead-letters it, `extend` moves its lease, all
 *   fenced by the claim's token (a holder whose lease was lost gets ERR_STALE_DELIVERY).
 * - `release` gives rows back at their old place; uncounted ones get their delivery count back.
 * - `ackWithResult` stores a task's result (the result backend's `prepareSet`) and deletes its row in
 *   one statement, when the result backend's `writeTarget` is this broker's `resultWriteTarget`.
 *
 * The prefetch bound, settle-once, lease renewal and give-back at close are the kit's.
 */
export class PgAdapter implements PullAdapter<PgMessage> {
  constructor(
    private readonly queue: PgQueue,
    /** Server, user and database: a result backend with the same `writeTarget` stores results with acks. */
    readonly resultWriteTarget: string,
  ) {}

  claim(max: number, signal: AbortSignal): Promise<readonly PgMessage[]> {
    return this.queue.claim(max, signal);
  }

  ack(m: PgMessage): Promise<void> {
    return this.queue.ack(m);
  }

  ackWithResult(m: PgMessage, write: PreparedResultWrite): Promise<void> {
    return this.queue.ackWithResult(m, write);
  }

  nack(m: PgMessage, opts: NackOptions): Promise<void> {
    return this.queue.nack(m, opts);
  }

  extend(m: PgMessage): Promise<void> {
    return this.queue.extend(m);
  }

  release(ms: readonly PgMessage[], counted: boolean): Promise<void> {
    return this.queue.release(ms, counted);
  }
}
