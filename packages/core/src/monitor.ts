import type { Broadcast } from './broker.js';
import type { Clock, TimerHandle } from './clock.js';
import type { CeleriacEvents, EventName } from './events.js';
import type { Logger } from './logger.js';

/** The broadcast channel workers publish their events on. */
export const EVENTS_CHANNEL = 'celeriac.events';

/** An event as it crosses processes: its name, its payload and when it happened. */
export type RemoteEvent = {
  [K in EventName]: { type: K; at: number; hostname: string; pid: number } & CeleriacEvents[K];
}[EventName];

interface Envelope {
  v: 1;
  events: RemoteEvent[];
}

const enc = new TextEncoder();
const dec = new TextDecoder();

/**
 * Batches events and publishes them over the broker's broadcast: at most one message per
 * `flushMs`, or sooner when `maxBatch` events are waiting. Loss is possible (broadcast is
 * best-effort); nothing here can slow or break task processing.
 */
export class EventPublisher {
  private batch: RemoteEvent[] = [];
  private timer: TimerHandle | undefined;
  private closed = false;

  constructor(
    private readonly broadcast: Broadcast,
    private readonly clock: Clock,
    private readonly logger: Logger,
    private readonly origin: { hostname: string; pid: number },
    private readonly flushMs = 100,
    private readonly maxBatch = 500,
  ) {}

  push<K extends EventName>(type: K, payload: CeleriacEvents[K]): void {
    if (this.closed) return;
    this.batch.push({ type, at: this.clock.now(), ...this.origin, ...payload } as RemoteEvent);
    if (this.batch.length >= this.maxBatch) void this.flush();
    else this.timer ??= this.clock.setTimeout(() => void this.flush(), this.flushMs);
  }

  async flush(): Promise<void> {
    if (this.timer !== undefined) this.clock.clearTimeout(this.timer);
    this.timer = undefined;
    if (this.batch.length === 0) return;
    const events = this.batch;
    this.batch = [];
    try {
      await this.broadcast.publish(EVENTS_CHANNEL, enc.encode(JSON.stringify({ v: 1, events } satisfies Envelope)));
    } catch (err) {
      this.logger.warn('could not publish events', { error: String(err), dropped: events.length });
    }
  }

  /** Flush what is waiting and stop. */
  async close(): Promise<void> {
    await this.flush();
    this.closed = true;
  }
}

/** Receive every worker's events (a dashboard, a monitor, metrics in another process). */
export async function watchEvents(broadcast: Broadcast, onEvent: (event: RemoteEvent) => void): Promise<() => Promise<void>> {
  return broadcast.subscribe(EVENTS_CHANNEL, (body) => {
    let env: Envelope;
    try {
      env = JSON.parse(dec.decode(body)) as Envelope;
    } catch {
      return;
    }
    if (env.v !== 1 || !Array.isArray(env.events)) return;
    for (const e of env.events) {
      try {
        onEvent(e);
      } catch {
        // a watcher's failure is its own
      }
    }
  });
}
