import type { Channel } from 'amqplib';
import type { Broadcast, TimerHandle } from '@celeriac/core';
import type { Link } from './link.js';

/** What broadcast needs from its broker. */
export interface BroadcastHost {
  readonly link: Link;
  readonly exchange: string;
  ensurePrefix(): Promise<void>;
}

const MAX_KEY_BYTES = 255;

function checkChannel(channel: string): void {
  if (typeof channel !== 'string' || channel.length === 0) throw new TypeError('channel must be a non-empty string');
  if (Buffer.byteLength(channel) > MAX_KEY_BYTES) throw new RangeError(`channel name is longer than ${MAX_KEY_BYTES} bytes`);
}

/**
 * One subscriber: an exclusive, auto-delete, server-named queue bound to the prefix's broadcast
 * exchange under the channel name. Re-created after a reconnect; what was broadcast while it was
 * away is not delivered (broadcast is fire-and-forget).
 */
class Subscription {
  private ch: Channel | undefined;
  private done = false;
  private timer: TimerHandle | undefined;
  private wake: (() => void) | undefined;
  private readonly loop: Promise<void>;
  private firstAttach: { resolve: () => void; reject: (e: unknown) => void } | undefined;
  readonly attached: Promise<void>;

  constructor(
    private readonly host: BroadcastHost,
    private readonly channel: string,
    private readonly onMessage: (body: Uint8Array) => void,
  ) {
    this.attached = new Promise((resolve, reject) => {
      this.firstAttach = { resolve, reject };
    });
    this.loop = this.run();
  }

  private async run(): Promise<void> {
    while (!this.done) {
      try {
        await this.host.ensurePrefix();
        const { ch } = await this.host.link.openChannel();
        const closed = new Promise<void>((resolve) => ch.on('close', () => resolve()));
        ch.on('error', () => undefined);
        this.ch = ch;
        const q = await ch.assertQueue('', { exclusive: true, autoDelete: true, durable: false });
        await ch.bindQueue(q.queue, this.host.exchange, this.channel);
        await ch.consume(
          q.queue,
          (m) => {
            if (m === null || this.done) return;
            try {
              this.onMessage(m.content);
            } catch {
              // a subscriber's failure is its own
            }
          },
          { noAck: true },
        );
        this.firstAttach?.resolve();
        this.firstAttach = undefined;
        if (this.done) ch.close().catch(() => undefined);
        await closed;
      } catch (err) {
        if (this.firstAttach !== undefined) {
          this.firstAttach.reject(err);
          this.firstAttach = undefined;
          this.done = true;
        }
        this.ch?.close().catch(() => undefined);
      }
      this.ch = undefined;
      if (!this.done) await this.pause(200);
    }
  }

  private pause(ms: number): Promise<void> {
    return new Promise((resolve) => {
      this.wake = resolve;
      this.timer = this.host.link.clock.setTimeout(() => {
        this.timer = undefined;
        this.wake = undefined;
        resolve();
      }, ms);
    });
  }

  async stop(): Promise<void> {
    this.done = true;
    if (this.timer !== undefined) this.host.link.clock.clearTimeout(this.timer);
    this.timer = undefined;
    this.wake?.();
    this.ch?.close().catch(() => undefined);
    await this.loop;
  }
}

/** Broadcast through one direct exchange per prefix; the routing key is the channel name. */
export class AmqpBroadcast implements Broadcast {
  private readonly subs = new Set<Subscription>();

  constructor(private readonly host: BroadcastHost) {}

  async publish(channel: string, body: Uint8Array): Promise<void> {
    checkChannel(channel);
    await this.host.ensurePrefix();
    await this.host.link.publisher.publish(this.host.exchange, channel, Buffer.from(body.buffer, body.byteOffset, body.byteLength), {
      persistent: false,
    });
  }

  async subscribe(channel: string, onMessage: (body: Uint8Array) => void): Promise<() => Promise<void>> {
    checkChannel(channel);
    const sub = new Subscription(this.host, channel, onMessage);
    this.subs.add(sub);
    try {
      await sub.attached;
    } catch (err) {
      this.subs.delete(sub);
      throw err;
    }
    let off: Promise<void> | undefined;
    return () => {
      off ??= sub.stop().finally(() => this.subs.delete(sub));
      return off;
    };
  }

  async close(): Promise<void> {
    await Promise.all([...this.subs].map((s) => s.stop()));
    this.subs.clear();
  }
}
