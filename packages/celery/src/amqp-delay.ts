import type { Channel } from 'amqplib';

/**
 * Delays in RabbitMQ without a plugin, which Python consumers see as ordinary messages once due.
 *
 * A delay of d ms is written in binary as the first LEVELS words of the routing key
 * (`b31.b30.….b0.<queue>`). Level k is a topic exchange that sends the message into a queue whose
 * fixed `x-message-ttl` is 2^k ms when bit k is 1, or on to level k-1 at once when it is 0. The
 * level queue dead-letters expired messages to level k-1 with the routing key unchanged, and after
 * level 0 the `out` exchange routes by the queue name at the end of the key. Every queue holds
 * messages of one TTL, so expiry is in order and nothing waits behind a longer delay. The
 * message lands in its queue — `celery` included — by the default route a Python worker consumes.
 */
export const LEVELS = 32;

/** The longest delay the levels can express (about 49.7 days); longer ones are capped. */
export const MAX_DELAY_MS = 2 ** LEVELS - 1;

export class DelayTopology {
  constructor(readonly prefix: string) {}

  exchange(level: number): string {
    return `${this.prefix}.${level}`;
  }
  queue(level: number): string {
    return `${this.prefix}.${level}`;
  }
  get out(): string {
    return `${this.prefix}.out`;
  }
  /** Where a delayed publish starts. */
  get entry(): string {
    return this.exchange(LEVELS - 1);
  }

  /** `b31.….b0.<queue>` for a delay (rounded up to whole ms, capped at {@link MAX_DELAY_MS}). */
  routingKey(queue: string, delayMs: number): string {
    const d = Math.min(MAX_DELAY_MS, Math.max(0, Math.ceil(delayMs)));
    return `${d.toString(2).padStart(LEVELS, '0').split('').join('.')}.${queue}`;
  }

  /** The binding pattern that takes messages of `queue` from `out`. */
  outPattern(queue: string): string {
    return `${'*.'.repeat(LEVELS)}${queue}`;
  }

  /** Declare every level (idempotent; all declarations in flight at once on one channel). */
  async declare(ch: Channel): Promise<void> {
    const ops: Promise<unknown>[] = [ch.assertExchange(this.out, 'topic', { durable: true })];
    for (let k = 0; k < LEVELS; k++) {
      ops.push(ch.assertExchange(this.exchange(k), 'topic', { durable: true }));
      ops.push(
        ch.assertQueue(this.queue(k), {
          durable: true,
          arguments: { 'x-message-ttl': 2 ** k, 'x-dead-letter-exchange': k === 0 ? this.out : this.exchange(k - 1) },
        }),
      );
    }
    await Promise.all(ops);
    const binds: Promise<unknown>[] = [];
    for (let k = 0; k < LEVELS; k++) {
      const lead = '*.'.repeat(LEVELS - 1 - k);
      binds.push(ch.bindQueue(this.queue(k), this.exchange(k), `${lead}1.#`));
      binds.push(ch.bindExchange(k === 0 ? this.out : this.exchange(k - 1), this.exchange(k), `${lead}0.#`));
    }
    await Promise.all(binds);
  }

  /** Route `queue`'s due messages to it. */
  async bind(ch: Channel, queue: string): Promise<void> {
    if (/[*#]/.test(queue)) throw new TypeError(`queue name "${queue}" has * or #, which delayed delivery cannot route`);
    await ch.bindQueue(queue, this.out, this.outPattern(queue));
  }

  /** Messages waiting in any level. */
  async waiting(ch: Channel): Promise<number> {
    const counts = await Promise.all(Array.from({ length: LEVELS }, (_, k) => ch.checkQueue(this.queue(k))));
    return counts.reduce((n, c) => n + c.messageCount, 0);
  }
}
