import type { RedisClient } from './scripts.js';

interface Entry {
  readonly listeners: Set<(message: string) => void>;
  /** Resolves once the server confirmed the subscription this entry relies on. */
  readonly subscribed: Promise<void>;
  resolve(): void;
  reject(err: unknown): void;
  settled: boolean;
}

/**
 * Channel subscriptions on one shared subscriber connection, reference-counted per channel. The
 * SUBSCRIBE and UNSUBSCRIBE commands of one turn of the event loop go out as one command each, and a
 * channel is unsubscribed as soon as its last listener is gone, so settled waits leave nothing behind.
 */
export class Subscriptions {
  private readonly entries = new Map<string, Entry>();
  /** Channels the server has been asked to deliver (the last command sent for them was SUBSCRIBE). */
  private readonly active = new Map<string, Promise<void>>();
  private scheduled = false;

  constructor(private readonly client: RedisClient) {
    client.on('message', (channel: string, message: string) => this.dispatch(channel, message));
  }

  /** Hand a message to the channel's listeners (from the server, or a re-read after a reconnect). */
  dispatch(channel: string, message: string): void {
    const e = this.entries.get(channel);
    if (e === undefined) return;
    for (const fn of [...e.listeners]) fn(message);
  }

  /** Listen on `channel`; resolves once subscribed. Remove with the returned function. */
  add(channel: string, listener: (message: string) => void): { subscribed: Promise<void>; remove: () => void } {
    let e = this.entries.get(channel);
    if (e === undefined) {
      let resolve!: () => void;
      let reject!: (err: unknown) => void;
      const subscribed = new Promise<void>((res, rej) => {
        resolve = res;
        reject = rej;
      });
      subscribed.catch(() => undefined);
      const entry: Entry = {
        listeners: new Set(),
        subscribed,
        resolve: () => {
          entry.settled = true;
          resolve();
        },
        reject: (err) => {
          entry.settled = true;
          reject(err);
        },
        settled: false,
      };
      e = entry;
      this.entries.set(channel, e);
      this.schedule();
    }
    const entry = e;
    entry.listeners.add(listener);
    return {
      subscribed: entry.subscribed,
      remove: () => {
        entry.listeners.delete(listener);
        if (entry.listeners.size === 0 && this.entries.get(channel) === entry) {
          this.entries.delete(channel);
          this.schedule();
        }
      },
    };
  }

  /** Channels with listeners. */
  get size(): number {
    return this.entries.size;
  }

  channels(): string[] {
    return [...this.entries.keys()];
  }

  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => this.flush());
  }

  /** Bring the server's subscriptions in line with the listeners. */
  private flush(): void {
    this.scheduled = false;
    const toUnsubscribe: string[] = [];
    for (const channel of this.active.keys()) if (!this.entries.has(channel)) toUnsubscribe.push(channel);
    for (const channel of toUnsubscribe) this.active.delete(channel);
    const toSubscribe: string[] = [];
    for (const [channel, e] of this.entries) {
      const existing = this.active.get(channel);
      if (existing === undefined) toSubscribe.push(channel);
      else if (!e.settled) existing.then(e.resolve, e.reject);
    }
    if (toUnsubscribe.length > 0) this.client.unsubscribe(...toUnsubscribe).catch(() => undefined);
    if (toSubscribe.length === 0) return;
    const p = this.client.subscribe(...toSubscribe).then(() => undefined);
    p.catch(() => undefined);
    for (const channel of toSubscribe) {
      this.active.set(channel, p);
      const e = this.entries.get(channel)!;
      p.then(e.resolve, (err: unknown) => {
        // Let a later listener try again.
        if (this.active.get(channel) === p) this.active.delete(channel);
        e.reject(err);
      });
    }
  }

  /** Reject every waiter's subscription (close). */
  clear(err: unknown): void {
    for (const e of this.entries.values()) if (!e.settled) e.reject(err);
    this.entries.clear();
    this.active.clear();
  }
}
