import type { Headers, NackOptions } from '@celeriac/core';
import { decodeHeaderFrame, type Incoming, type PreparedResultWrite, type PullAdapter } from '@celeriac/core/transport';
import { CeleriacError, ErrorCode } from '@celeriac/core';
import { unpackClaimed } from './codec.js';
import { NackMode, type QueueHandle } from './queue.js';
import type { RedisClient } from './scripts.js';

/** The result write this transport runs with an ack: result-redis's (see lua/ack-result.lua). */
export const RESULT_WRITE_KIND = 'redis-set-result';

/** What a consumer needs from its broker. */
export interface ConsumerHost {
  readonly claimBatch: number;
  readonly blockTimeoutMs: number;
  /** Where `ackWithResult` writes (undefined on a cluster: a task's result may live on another node). */
  readonly resultWriteTarget: string | undefined;
  /** A new connection for blocking waits (a blocked connection cannot run other commands). */
  createBlockingClient(): RedisClient;
  /** Report a problem no caller can be told of (the consumer carries on). */
  report(err: unknown): void;
}

/** One claimed message. Its active member (with the claim's token) fences every settle. */
export class RedisMessage implements Incoming {
  readonly headers: Headers;
  readonly body: Uint8Array;

  constructor(
    readonly member: string,
    readonly id: string,
    readonly deliveries: number,
    payload: Buffer,
  ) {
    const { headers, body } = decodeHeaderFrame(payload);
    this.headers = headers;
    this.body = body;
  }
}

/** Longest a timer for a delayed message or lease waits before re-checking (setTimeout caps at ~24.8 days). */
const MAX_TIMER_MS = 3_600_000;
/** A blocking wait that has not answered this long after its server-side timeout is abandoned. */
const BLOCK_WATCHDOG_MS = 5_000;

/**
 * One queue's consumer as a pull adapter on the kit. A claim runs lua/claim.lua (promote due delays,
 * recover expired leases, claim up to `claimBatch`); when it comes back short, the next one first waits
 * for the queue's marker (BZPOPMIN on a connection of its own, bounded by `blockTimeoutMs`) or for a
 * timer at the earliest delayed message or lease the script reported — no busy poll.
 */
export class RedisAdapter implements PullAdapter<RedisMessage> {
  readonly resultWriteTarget: string | undefined;
  private blocker: RedisClient | undefined;
  /** The last claim came back short: the queue was drained, so wait before claiming again. */
  private drained = false;
  private nextDueMs = -1;

  constructor(
    private readonly host: ConsumerHost,
    private readonly queue: QueueHandle,
  ) {
    this.resultWriteTarget = host.resultWriteTarget;
  }

  async claim(max: number, signal: AbortSignal): Promise<readonly RedisMessage[]> {
    if (this.drained) {
      await this.waitReady(signal);
      if (signal.aborted) return [];
    }
    const want = Math.min(max, this.host.claimBatch);
    const reply = await this.queue.claim(want);
    this.nextDueMs = reply[1] as number;
    const out: RedisMessage[] = [];
    const token = reply[0] as number;
    for (const { priority, deliveries, id, payload } of unpackClaimed(reply[2] as Buffer)) {
      const member = `${token}|${priority}|${deliveries}|${id}`;
      try {
        out.push(new RedisMessage(member, id, deliveries, payload));
      } catch (err) {
        // A payload this layout cannot read: dead-letter it rather than hand it out or lose it.
        const reason = `ERR_SERIALIZATION: undecodable stored message: ${err instanceof Error ? err.message : String(err)}`;
        this.queue.nack(member, NackMode.DEAD, reason).catch((e: unknown) => this.host.report(e));
      }
    }
    this.drained = out.length < want;
    return out;
  }

  /** Until the queue's marker is set, the next due time passes, `blockTimeoutMs` runs out or `signal` aborts. */
  private waitReady(signal: AbortSignal): Promise<void> {
    if (signal.aborted) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const client = (this.blocker ??= this.host.createBlockingClient());
      const timer = this.nextDueMs >= 0 ? setTimeout(done, Math.min(MAX_TIMER_MS, this.nextDueMs + 2)) : undefined;
      // The connection did not answer a bounded wait: replace it, so a wedged socket cannot hold the consumer.
      const watchdog = setTimeout(() => {
        if (this.blocker === client) this.dropBlocker();
        done();
      }, this.host.blockTimeoutMs + BLOCK_WATCHDOG_MS);
      const onAbort = () => {
        this.dropBlocker(); // ends a blocked BZPOPMIN at once
        done();
      };
      signal.addEventListener('abort', onAbort, { once: true });
      function done(): void {
        clearTimeout(watchdog);
        clearTimeout(timer);
        signal.removeEventListener('abort', onAbort);
        resolve();
      }
      client.bzpopmin(this.queue.keys.marker, this.host.blockTimeoutMs / 1000).then(done, (err: unknown) => {
        if (signal.aborted) return done();
        this.host.report(err);
        if (this.blocker === client) this.dropBlocker();
        // Do not spin on a failing connection; claims carry on meanwhile.
        setTimeout(done, 500).unref();
      });
    });
  }

  private dropBlocker(): void {
    const b = this.blocker;
    this.blocker = undefined;
    b?.disconnect();
  }

  // ack is on every task's path: a plain promise chain, no extra async frame.
  ack(m: RedisMessage): Promise<void> {
    return this.queue.ack(m.member);
  }

  ackWithResult(m: RedisMessage, write: PreparedResultWrite): Promise<void> {
    if (write.kind !== RESULT_WRITE_KIND || write.keys.length !== 1 || write.args.length !== 3) {
      // Thrown, not rejected: the kit then keeps the delivery held (see SettleAdapter.ackWithResult).
      throw new CeleriacError(ErrorCode.UNSUPPORTED, `the Redis broker cannot run a "${write.kind}" result write`);
    }
    return this.queue.ackWithResult(m.member, write);
  }

  nack(m: RedisMessage, opts: NackOptions): Promise<void> {
    if (!opts.requeue) return this.queue.nack(m.member, NackMode.DEAD, opts.reason ?? 'rejected');
    const delay = opts.delayMs === undefined ? 0 : Math.ceil(opts.delayMs);
    return delay > 0 ? this.queue.nack(m.member, NackMode.DELAY, delay) : this.queue.nack(m.member, NackMode.REQUEUE);
  }

  extend(m: RedisMessage): Promise<void> {
    return this.queue.extend(m.member);
  }

  /** Counted: as after a crash, at once. Uncounted (never handed out): the delivery count is taken back. */
  release(ms: readonly RedisMessage[], counted: boolean): Promise<void> {
    const mode = counted ? NackMode.REQUEUE : NackMode.UNCLAIM;
    return Promise.all(ms.map((m) => this.queue.nack(m.member, mode).catch(ignoreStale))).then(() => undefined);
  }

  stop(): void {
    this.dropBlocker();
  }
}

/** A give-back of a message whose lease ran out meanwhile: it is back in the queue already. */
function ignoreStale(err: unknown): void {
  if (!(err instanceof CeleriacError && err.code === ErrorCode.STALE_DELIVERY)) throw err;
}
