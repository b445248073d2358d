import amqp, { type Channel, type ChannelModel, type ConfirmChannel } from 'amqplib';
import { CeleriacError, ErrorCode, type BrokerEvent, type Clock, type Logger, type TimerHandle } from '@celeriac/core';
import { Publisher } from './publisher.js';

/** Admin channels used in parallel for declarations and queue checks (amqplib runs one RPC at a time per channel). */
const ADMIN_CHANNELS = 4;

export interface LinkOptions {
  url: string;
  connectTimeoutMs: number;
  reconnectMaxDelayMs: number;
  confirmWindow: number;
  clock: Clock;
  logger: Logger;
  /** Re-declare the topology; runs after every (re)connect before the link reports itself open. */
  setup: (link: Link) => Promise<void>;
}

type State = 'idle' | 'connecting' | 'open' | 'recovering' | 'closed';

interface Waiter {
  resolve: (conn: ChannelModel) => void;
  reject: (err: Error) => void;
}

/**
 * One AMQP connection with its confirm channel and a few admin channels, kept alive: when the
 * connection or the publish channel drops it reconnects with exponential backoff and jitter,
 * re-declares the topology (`setup`), resends unconfirmed publishes and reports `reconnected`.
 * Consumers hold their own channels and come back through `ready()`.
 */
export class Link {
  readonly publisher: Publisher;
  private state: State = 'idle';
  private conn: ChannelModel | undefined;
  private pubCh: ConfirmChannel | undefined;
  private admin: (Channel | undefined)[] = [];
  private adminOpening: (Promise<Channel> | undefined)[] = [];
  private adminNext = 0;
  private readonly waiters = new Set<Waiter>();
  private readonly listeners = new Set<(e: BrokerEvent) => void>();
  private retryTimer: TimerHandle | undefined;
  private retryWake: (() => void) | undefined;
  private running: Promise<void> | undefined;
  /** Bumped on every new connection; channels of an older generation are dead. */
  generation = 0;

  constructor(private readonly opts: LinkOptions) {
    this.publisher = new Publisher(opts.confirmWindow, opts.connectTimeoutMs, opts.clock);
  }

  get clock(): Clock {
    return this.opts.clock;
  }

  get isOpen(): boolean {
    return this.state === 'open';
  }

  get isClosed(): boolean {
    return this.state === 'closed';
  }

  onEvent(listener: (e: BrokerEvent) => void): () => void {
    this.listeners.add(listener);
    return () => {
      this.listeners.delete(listener);
    };
  }

  emit(e: BrokerEvent): void {
    for (const l of [...this.listeners]) {
      try {
        l(e);
      } catch (err) {
        this.opts.logger.warn('a broker event listener threw', { error: String(err) });
      }
    }
  }

  /** First connection: keeps trying for `connectTimeoutMs`, then fails with ERR_CONNECTION. */
  connect(signal?: AbortSignal): Promise<void> {
    if (this.state === 'closed') return Promise.reject(new CeleriacError(ErrorCode.CLOSED, 'broker is closed'));
    if (this.state === 'open') return Promise.resolve();
    const p = this.ready(this.opts.connectTimeoutMs, signal).then(() => undefined);
    return p;
  }

  /**
   * The open connection; connects first if nobody has yet. Waits up to `timeoutMs` while connecting or
   * recovering, then fails with a retryable ERR_CONNECTION.
   */
  ready(timeoutMs: number = this.opts.connectTimeoutMs, signal?: AbortSignal): Promise<ChannelModel> {
    if (this.state === 'closed') return Promise.reject(new CeleriacError(ErrorCode.CLOSED, 'broker is closed'));
    if (this.state === 'open' && this.conn !== undefined) return Promise.resolve(this.conn);
    if (this.state === 'idle') this.start(true);
    return new Promise<ChannelModel>((resolve, reject) => {
      let timer: TimerHandle | undefined;
      const cleanup = () => {
        if (timer !== undefined) this.opts.clock.clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        this.waiters.delete(w);
      };
      const w: Waiter = {
        resolve: (c) => {
          cleanup();
          resolve(c);
        },
        reject: (e) => {
          cleanup();
          reject(e);
        },
      };
      const onAbort = () => w.reject(new CeleriacError(ErrorCode.ABORTED, 'connect aborted', { cause: signal?.reason }));
      if (signal?.aborted === true) {
        onAbort();
        return;
      }
      signal?.addEventListener('abort', onAbort, { once: true });
      if (Number.isFinite(timeoutMs)) {
        timer = this.opts.clock.setTimeout(
          () =>
            w.reject(
              new CeleriacError(ErrorCode.CONNECTION, `no connection to RabbitMQ within ${timeoutMs} ms: ${errText(this.lastError)}`, {
                retryable: true,
                cause: this.lastError,
              }),
            ),
          timeoutMs,
        );
      }
      this.waiters.add(w);
    });
  }

  private lastError: unknown;

  /** The live connection, for setup code running before the link reports itself open. */
  get connection(): ChannelModel | undefined {
    return this.conn;
  }

  private start(initial: boolean): void {
    if (this.running !== undefined || this.state === 'closed') return;
    this.state = initial ? 'connecting' : 'recovering';
    this.running = this.run(initial).finally(() => {
      this.running = undefined;
    });
  }

  private async run(initial: boolean): Promise<void> {
    const started = this.opts.clock.now();
    for (let attempt = 0; this.state !== 'closed'; attempt++) {
      let conn: ChannelModel | undefined;
      try {
        conn = await amqp.connect(this.opts.url, { clientProperties: { connection_name: 'celeriac' } });
        if (this.isClosed) {
          await conn.close().catch(() => undefined);
          return;
        }
        this.generation++;
        this.conn = conn;
        this.admin = [];
        this.adminOpening = [];
        const c = conn;
        c.on('error', (err: Error) => {
          this.lastError = err;
          this.opts.logger.warn('RabbitMQ connection error', { error: err.message });
        });
        c.on('close', () => this.onConnectionLost(c));
        c.on('blocked', (reason: string) => this.opts.logger.warn('RabbitMQ blocked the connection', { reason }));
        const pub = await this.openPublisher(c);
        await this.opts.setup(this);
        if (this.conn !== c || this.pubCh !== pub) throw new Error('connection lost during setup');
        this.state = 'open';
        // Resend what was unconfirmed only now that the topology is declared again.
        this.publisher.attach(pub);
        this.opts.logger.info(initial ? 'connected to RabbitMQ' : 'reconnected to RabbitMQ');
        for (const w of [...this.waiters]) w.resolve(c);
        if (!initial) this.emit({ type: 'reconnected' });
        return;
      } catch (err) {
        this.lastError = err;
        if (conn !== undefined && this.conn === conn) {
          this.conn = undefined;
          this.pubCh = undefined;
          await conn.close().catch(() => undefined);
        }
        if (this.isClosed) return;
        if (initial && this.opts.clock.now() - started >= this.opts.connectTimeoutMs) {
          // Give up the first connection; a later call may try again.
          this.state = 'idle';
          const e = new CeleriacError(ErrorCode.CONNECTION, `cannot connect to RabbitMQ: ${errText(err)}`, { cause: err, retryable: true });
          for (const w of [...this.waiters]) w.reject(e);
          return;
        }
        this.opts.logger.warn('RabbitMQ connection attempt failed', { attempt, error: errText(err) });
        await this.pause(this.backoffMs(attempt));
      }
    }
  }

  private backoffMs(attempt: number): number {
    const base = Math.min(this.opts.reconnectMaxDelayMs, 100 * 2 ** Math.min(attempt, 20));
    return Math.round(base * (0.8 + Math.random() * 0.4));
  }

  private pause(ms: number): Promise<void> {
    return new Promise((resolve) => {
      this.retryWake = resolve;
      this.retryTimer = this.opts.clock.setTimeout(() => {
        this.retryTimer = undefined;
        this.retryWake = undefined;
        resolve();
      }, ms);
    });
  }

  private async openPublisher(conn: ChannelModel): Promise<ConfirmChannel> {
    const ch = await conn.createConfirmChannel();
    ch.on('error', (err: Error) => {
      this.lastError = err;
      this.opts.logger.warn('RabbitMQ publish channel error', { error: err.message });
    });
    ch.on('close', () => {
      this.publisher.detach(ch);
      if (this.pubCh !== ch) return;
      this.pubCh = undefined;
      // Channels close just before their connection does; look again once that has been reported.
      queueMicrotask(() => {
        if (this.conn === conn && this.state === 'open') this.restartOnSameConnection(conn);
      });
    });
    this.pubCh = ch;
    return ch;
  }

  private restartOnSameConnection(conn: ChannelModel): void {
    this.emit({
      type: 'error',
      error: new CeleriacError(ErrorCode.CONNECTION, `RabbitMQ closed the publish channel: ${errText(this.lastError)}`, {
        cause: this.lastError,
        retryable: true,
      }),
    });
    // Simplest safe recovery: drop the connection and go through the full reconnect path.
    conn.close().catch(() => undefined);
  }

  private onConnectionLost(conn: ChannelModel): void {
    if (this.conn !== conn) return;
    this.conn = undefined;
    if (this.pubCh !== undefined) this.publisher.detach(this.pubCh);
    this.pubCh = undefined;
    this.admin = [];
    this.adminOpening = [];
    if (this.state === 'closed') return;
    const wasOpen = this.state === 'open';
    this.state = 'recovering';
    if (wasOpen) {
      this.emit({
        type: 'error',
        error: new CeleriacError(ErrorCode.CONNECTION, `lost the RabbitMQ connection: ${errText(this.lastError)}`, {
          cause: this.lastError,
          retryable: true,
        }),
      });
      this.start(false);
    }
  }

  /**
   * Run `fn` on one of the admin channels (opened on demand). A channel a server error closed is
   * replaced on the next call; the error is rethrown to the caller.
   */
  async withAdmin<T>(fn: (ch: Channel) => Promise<T>, conn?: ChannelModel): Promise<T> {
    const c = conn ?? (await this.ready());
    const i = this.adminNext++ % ADMIN_CHANNELS;
    const ch = await this.adminChannel(c, i);
    return fn(ch);
  }

  private async adminChannel(conn: ChannelModel, i: number): Promise<Channel> {
    const gen = this.generation;
    const have = this.admin[i];
    if (have !== undefined) return have;
    let opening = this.adminOpening[i];
    if (opening === undefined) {
      opening = conn.createChannel().then((ch) => {
        ch.on('error', (err: Error) => this.opts.logger.debug('RabbitMQ admin channel error', { error: err.message }));
        ch.on('close', () => {
          if (this.admin[i] === ch) this.admin[i] = undefined;
        });
        if (this.generation === gen) this.admin[i] = ch;
        return ch;
      });
      this.adminOpening[i] = opening;
      opening
        .finally(() => {
          if (this.adminOpening[i] === opening) this.adminOpening[i] = undefined;
        })
        .catch(() => undefined);
    }
    return opening;
  }

  /** Open a channel of the live connection for a consumer or subscriber. */
  async openChannel(): Promise<{ ch: Channel; generation: number }> {
    const conn = await this.ready(Infinity);
    const generation = this.generation;
    const ch = await conn.createChannel();
    return { ch, generation };
  }

  /** Idempotent; rejects every waiter and pending publish. */
  async close(drainMs: number): Promise<void> {
    if (this.state === 'closed') return;
    const err = new CeleriacError(ErrorCode.CLOSED, 'broker is closed');
    if (drainMs > 0 && this.state === 'open' && this.publisher.pendingCount > 0) {
      let timer: TimerHandle | undefined;
      await Promise.race([
        this.publisher.idle(),
        new Promise<void>((resolve) => {
          timer = this.opts.clock.setTimeout(resolve, drainMs);
        }),
      ]);
      if (timer !== undefined) this.opts.clock.clearTimeout(timer);
    }
    this.state = 'closed';
    if (this.retryTimer !== undefined) this.opts.clock.clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    this.retryWake?.();
    this.retryWake = undefined;
    for (const w of [...this.waiters]) w.reject(err);
    this.publisher.close(err);
    const conn = this.conn;
    this.conn = undefined;
    this.pubCh = undefined;
    if (conn !== undefined) {
      conn.removeAllListeners('close');
      conn.on('error', () => undefined);
      await conn.close().catch(() => undefined);
    }
    await this.running?.catch(() => undefined);
  }
}

export function errText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
