import type { SerializedError } from './errors.js';
import type { Logger } from './logger.js';

/** Fields every task event carries. */
export interface TaskEventBase {
  taskId: string;
  name: string;
  queue: string;
  retries: number;
  /** How often the broker handed the message out; 0 for events raised by producers. */
  deliveries: number;
  /** Id of the worker that raised it, absent for producer events. */
  workerId?: string;
}

export interface WorkerEventBase {
  workerId: string;
  hostname: string;
  pid: number;
}

/** Every lifecycle event, named as in DESIGN.md §2 (Celery's signals). */
export interface CeleriacEvents {
  'task:sent': TaskEventBase & { delayMs: number };
  /**
   * `argsRepr`, `kwargsRepr`: printable forms of the positional and keyword arguments — JSON, cut at 200
   * characters; in Celery-protocol mode the message's `argsrepr`/`kwargsrepr` headers (Python reprs).
   */
  'task:received': TaskEventBase & { argsRepr: string; kwargsRepr: string };
  /** `queueWaitMs`: from publish (or ETA) to handler start, when the message says when it was sent. */
  'task:started': TaskEventBase & { queueWaitMs: number | null };
  'task:progress': TaskEventBase & { progress: unknown };
  'task:retried': TaskEventBase & { error: SerializedError; delayMs: number };
  'task:succeeded': TaskEventBase & { runtimeMs: number; result: unknown };
  'task:failed': TaskEventBase & { error: SerializedError; runtimeMs: number };
  'task:revoked': TaskEventBase & { reason: 'revoked' | 'expired' | 'terminated' };
  'task:dead-lettered': Omit<TaskEventBase, 'name'> & { name: string | null; reason: string };
  'worker:ready': WorkerEventBase & { queues: string[]; concurrency: number; prefetch: number };
  'worker:heartbeat': WorkerEventBase & { active: number; processed: number; concurrency: number };
  'worker:offline': WorkerEventBase & { givenBack: number; abandoned: number };
  'broker:error': { error: SerializedError };
  'broker:reconnected': { broker: string };
}

export type EventName = keyof CeleriacEvents;
export type Listener<K extends EventName> = (event: CeleriacEvents[K]) => void | Promise<void>;

/**
 * A small typed emitter. A listener that throws (or rejects) is logged and changes nothing else.
 */
export class Emitter {
  private readonly listeners = new Map<EventName, Set<Listener<EventName>>>();

  constructor(private readonly logger: Logger) {}

  on<K extends EventName>(name: K, listener: Listener<K>): () => void {
    let set = this.listeners.get(name);
    if (set === undefined) {
      set = new Set();
      this.listeners.set(name, set);
    }
    const l = listener as Listener<EventName>;
    set.add(l);
    return () => {
      set.delete(l);
    };
  }

  /** Cheap check so the hot path builds no event object nobody listens to. */
  has(name: EventName): boolean {
    const set = this.listeners.get(name);
    return set !== undefined && set.size > 0;
  }

  emit<K extends EventName>(name: K, event: CeleriacEvents[K]): void {
    const set = this.listeners.get(name);
    if (set === undefined) return;
    for (const l of set) {
      try {
        const r = (l as Listener<K>)(event);
        if (r !== undefined && typeof (r as Promise<void>).then === 'function') {
          (r as Promise<void>).then(undefined, (err: unknown) => this.report(name, err));
        }
      } catch (err) {
        this.report(name, err);
      }
    }
  }

  private report(name: EventName, err: unknown): void {
    try {
      this.logger.error(`listener for ${name} threw`, { error: err instanceof Error ? err.message : String(err) });
    } catch {
      // a broken logger must not break the worker either
    }
  }
}
