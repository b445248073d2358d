/**
 * Shared by transports and result backends: many calls in one tick become one batch call.
 */
interface Pending<T, R> {
  readonly item: T;
  readonly resolve: (r: R) => void;
  readonly reject: (err: unknown) => void;
}

/**
 * Coalesces calls made in the same tick (one burst of promise continuations) into one batch call: the acks of 50
 * handlers that finish together become one script call instead of 50 round trips. Each caller still
 * gets its own result (or the batch's error).
 */
export class Coalescer<T, R> {
  private pending: Pending<T, R>[] = [];
  private scheduled = false;
  private readonly inFlight = new Set<Promise<void>>();

  /**
   * @param maxBatch the most items in one batch call
   * @param eagerBatch send the batch as soon as this many items wait, without waiting for the end of the
   *   burst: the server works on it while the callers produce the rest (a pipeline instead of a
   *   lockstep of "encode everything, then wait"). @default maxBatch
   */
  constructor(
    private readonly run: (items: T[]) => Promise<R[]>,
    private readonly maxBatch: number,
    private readonly eagerBatch = maxBatch,
  ) {}

  add(item: T): Promise<R> {
    return new Promise<R>((resolve, reject) => {
      this.pending.push({ item, resolve, reject });
      if (this.pending.length >= this.eagerBatch) {
        this.send(); // the flush already scheduled takes whatever comes after
      } else if (!this.scheduled) {
        this.scheduled = true;
        // After the current burst of promise continuations: the acks of handlers that finished on
        // one reply all make it into the batch, and nothing waits for the next turn of the loop.
        process.nextTick(() => this.flush());
      }
    });
  }

  /** Calls made so far that have not settled. */
  get size(): number {
    return this.pending.length + this.inFlight.size;
  }

  private flush(): void {
    this.scheduled = false;
    this.send();
  }

  private send(): void {
    const all = this.pending;
    this.pending = [];
    for (let i = 0; i < all.length; i += this.maxBatch) {
      const chunk = all.slice(i, i + this.maxBatch);
      const p = this.runChunk(chunk);
      this.inFlight.add(p);
      void p.finally(() => this.inFlight.delete(p));
    }
  }

  private async runChunk(chunk: Pending<T, R>[]): Promise<void> {
    let results: R[];
    try {
      results = await this.run(chunk.map((p) => p.item));
    } catch (err) {
      for (const p of chunk) p.reject(err);
      return;
    }
    chunk.forEach((p, i) => p.resolve(results[i] as R));
  }

  /** Resolves once every call made before it has settled (flushing what is still queued). */
  async drain(): Promise<void> {
    while (this.pending.length > 0 || this.inFlight.size > 0) {
      if (this.pending.length > 0 && !this.scheduled) this.flush();
      if (this.pending.length > 0) await new Promise<void>((r) => setImmediate(r));
      else await Promise.allSettled([...this.inFlight]);
    }
  }
}
