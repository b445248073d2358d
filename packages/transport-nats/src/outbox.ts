/**
 * Coalesces writes to the connection.
 *
 * nats.js flushes its outbound buffer on the microtask after the first write, so writes made by
 * different tasks (each finishing in its own turn of the event loop) each become a socket write — at
 * tens of thousands of acks and publishes per second that is most of the CPU. The outbox defers every
 * write to one `setImmediate` per turn and performs them back to back, in order, so one turn's acks,
 * nacks and publishes leave in a single write. The added latency is one event-loop turn.
 */
export class Outbox {
  private queue: (() => void)[] = [];
  private scheduled: NodeJS.Immediate | undefined;

  /** Perform `write` in this turn's flush. */
  push(write: () => void): void {
    this.queue.push(write);
    this.scheduled ??= setImmediate(() => this.flush());
  }

  /** Perform every pending write now (also used before closing the connection). */
  flush(): void {
    if (this.scheduled !== undefined) clearImmediate(this.scheduled);
    this.scheduled = undefined;
    const q = this.queue;
    this.queue = [];
    for (const write of q) {
      try {
        write();
      } catch {
        // a write on a closed connection: the server redelivers after AckWait
      }
    }
  }
}
