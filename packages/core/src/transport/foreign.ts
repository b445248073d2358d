import type { Broker, Delivery, NackOptions } from '../broker.js';
import { newMessageId } from '../ids.js';
import type { PullAdapter } from './adapter.js';

/**
 * A transport that implements only the public `Broker.consume` (an outside transport, or one not yet
 * moved onto the kit) as a pull adapter, so the kit enforces the prefetch bound, settle-once and the
 * rest for it too. Its deliveries are the kit's messages; a transport that still has a `takeSync`
 * (a buffer it fills itself) is drained without a promise per message.
 */
export class ForeignAdapter implements PullAdapter<Delivery> {
  /** The transport buffers (and may invalidate) its deliveries itself: no reading ahead of demand. */
  readonly onDemand = true;
  private readonly it: AsyncIterator<Delivery> & { takeSync?(): Delivery | undefined };

  constructor(
    private readonly broker: Broker,
    private readonly queue: string,
    source: AsyncIterable<Delivery>,
  ) {
    this.it = source[Symbol.asyncIterator]();
  }

  claim(max: number): Promise<readonly Delivery[] | null> {
    const take = this.it.takeSync;
    if (take !== undefined) {
      let d = take.call(this.it);
      if (d !== undefined) {
        const out = [d];
        while (out.length < max && (d = take.call(this.it)) !== undefined) out.push(d);
        return Promise.resolve(out);
      }
    }
    return this.it.next().then((r) => (r.done === true ? null : [r.value]));
  }

  ack(d: Delivery): Promise<void> {
    return d.ack();
  }

  nack(d: Delivery, opts: NackOptions): Promise<void> {
    return d.nack(opts);
  }

  extend(d: Delivery): Promise<void> {
    return d.extend?.() ?? Promise.resolve();
  }

  /**
   * Counted: the transport's own requeue. Uncounted (never handed out): a copy with a fresh message id,
   * then an ack of the original, so the give-back does not count as a delivery. A crash in between
   * duplicates, never loses.
   */
  async release(ds: readonly Delivery[], counted: boolean): Promise<void> {
    for (const d of ds) {
      if (counted) {
        await d.nack({ requeue: true });
        continue;
      }
      const priority = d.headers['priority'];
      const opts = typeof priority === 'number' && this.broker.capabilities.priorities > 0 ? { priority } : {};
      await this.broker.publish(this.queue, { id: newMessageId(), body: d.body, headers: d.headers }, opts);
      await d.ack();
    }
  }

  async stop(): Promise<void> {
    await this.it.return?.();
  }
}
