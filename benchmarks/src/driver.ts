/**
 * The seam between the scenarios and the systems they measure. A scenario only talks to a `Driver`, so
 * celeriac, BullMQ and the raw clients run the very same task code, enqueue pattern and drain loop.
 */

/** The argument of every benchmark task: the same on every system. */
export interface BenchTask {
  /** Index in the run (also makes every message unique). */
  i: number;
  /** `performance.now()` of the producer just before it published (same process as the consumer). */
  t: number;
  /** Fail the first run, succeed on the retry. */
  failOnce: boolean;
  /** Padding to the row's payload size. */
  pad: string;
}

/** What the handler reports back to the scenario (latency samples). */
export interface Probe {
  /** Called when a handler starts, with the task and how many runs of it failed before. */
  started(task: BenchTask, attempt: number): void;
}

/** Thrown by the bench handler on a task's planned first failure. */
export class PlannedFailure extends Error {
  constructor() {
    super('planned failure (the retry scenario fails each task once)');
    this.name = 'PlannedFailure';
  }
}

/** A payload over the system's message size limit, refused before it was sent. */
export class PayloadRefused extends Error {
  constructor(bytes: number, limit: number) {
    super(`message of ${bytes} bytes is over the limit of ${limit} bytes`);
    this.name = 'PayloadRefused';
  }
}

/**
 * The task code every system runs: report the start, fail once when asked, otherwise do nothing.
 * `attempt` is 0 on the first run.
 */
export function benchHandler(task: BenchTask, attempt: number, probe: Probe): Promise<void> {
  probe.started(task, attempt);
  if (task.failOnce && attempt === 0) return Promise.reject(new PlannedFailure());
  return Promise.resolve();
}

export interface ConsumerHooks {
  /** The task code (wraps `benchHandler`). */
  handler: (task: BenchTask, attempt: number) => Promise<void>;
  /** Called once per task when the system has settled it (acked, result stored where applicable). */
  onDone: () => void;
  /** Called when the system gives up on a task or reports an error it cannot recover from. */
  onError: (err: unknown) => void;
}

/** One system on one transport. Created, opened, used once, closed. */
export interface Driver {
  /** Shown in the row's options (acks, prefetch, queue type, result backend, …). */
  readonly options: Record<string, string | number | boolean>;
  /** Whether the system can retry a failed task by itself (raw clients cannot). */
  readonly supportsRetry: boolean;
  /** Connect and declare; nothing is consumed yet. */
  open(): Promise<void>;
  /** Publish one task; resolves once the system says it is stored. */
  enqueue(task: BenchTask): Promise<void>;
  /** Publish many tasks in as few round trips as the system allows. */
  enqueueBulk(tasks: readonly BenchTask[]): Promise<void>;
  /** Start consuming with `concurrency` handlers at once. */
  startConsumer(concurrency: number, hooks: ConsumerHooks): Promise<void>;
  /** Stop consuming, delete every queue/key/stream it created, close connections. Idempotent. */
  close(): Promise<void>;
}

/**
 * Run `fn(i)` for i in [0, n) with at most `width` calls in flight; rejects on the first failure
 * (after the calls in flight have settled).
 */
export async function windowed(n: number, width: number, fn: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  let failed: { err: unknown } | undefined;
  const lane = async (): Promise<void> => {
    while (next < n && failed === undefined) {
      const i = next++;
      try {
        await fn(i);
      } catch (err) {
        failed ??= { err };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(width, n)) }, lane));
  if (failed !== undefined) throw failed.err;
}

/** Runs at most `limit` jobs at once, queueing the rest (the raw floors' worker concurrency). */
export class Limiter {
  private running = 0;
  private readonly waiting: (() => void)[] = [];
  private head = 0;

  constructor(private readonly limit: number) {}

  run(job: () => Promise<void>): void {
    if (this.running < this.limit) this.start(job);
    else this.waiting.push(() => this.start(job));
  }

  private start(job: () => Promise<void>): void {
    this.running++;
    const done = () => {
      this.running--;
      if (this.head < this.waiting.length) {
        const nextJob = this.waiting[this.head]!;
        this.waiting[this.head++] = undefined as unknown as () => void;
        if (this.head > 1024 && this.head * 2 > this.waiting.length) {
          this.waiting.splice(0, this.head);
          this.head = 0;
        }
        nextJob();
      }
    };
    job().then(done, done);
  }
}
