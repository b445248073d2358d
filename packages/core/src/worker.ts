import { AsyncResource } from 'node:async_hooks';
import type { Delivery } from './broker.js';
import { SETTLED, type KitConsumer, type KitDelivery } from './transport/kit.js';
import type { AnyTask, App, ControlMessage } from './app.js';
import { CONTROL_CHANNEL } from './app.js';
import { CanvasRunner } from './canvas.js';
import { ThreadPool, ThreadTaskError } from './thread-pool.js';
import { EventPublisher } from './monitor.js';
import { context, contextFromTraceparent, endSpan, startReceiveSpan, startRunSpan, trace, tracingActive } from './tracing.js';
import { CLOSE_GRACE_MS, settleWithin, type TimerHandle } from './clock.js';
import { RetryRequest, taskStorage, type TaskContext } from './context.js';
import { CeleriacError, ErrorCode, isCeleriacError, serializeError, UnrecoverableError, type SerializedError } from './errors.js';
import type { TaskEventBase } from './events.js';
import type { GuardedBroker } from './guard.js';
import { newId, newMessageId } from './ids.js';
import { LinkedList } from './transport/linked-list.js';
import { isEmpty, type TaskMessage } from './message.js';
import { TaskState, type ResultBackend, type ResultMeta } from './result-backend.js';
import { backoffDelayMs, matchesAny } from './retry.js';

export interface WorkerOptions {
  /** @default [the app's default queue] */
  queues?: readonly string[];
  /** Handlers running at once. @default 8 */
  concurrency?: number;
  /**
   * Unacked deliveries held = concurrency × prefetchMultiplier. With several queues the budget is split
   * between them, so no queue starves another. @default 4 (Celery's default)
   */
  prefetchMultiplier?: number;
  /** 'late' acks after the handler settled and its result is stored; 'early' on receipt. @default 'late' */
  acks?: 'late' | 'early';
  /** Store STARTED when a handler starts. @default false (one write less per task) */
  trackStarted?: boolean;
  /** How often `worker:heartbeat` fires (and is broadcast). @default 2_000 (Celery's) */
  heartbeatMs?: number;
  /**
   * Publish this worker's task events over the broker's broadcast, for dashboards and monitors in
   * other processes (Celery's `-E`). Heartbeats, ready and offline are always published.
   * @default false
   */
  sendEvents?: boolean;
  /** Random source for retry jitter (tests). @default Math.random */
  random?: () => number;
  /**
   * 'async' runs handlers on the main thread (soft time limits only); 'threads' runs each in one of
   * `concurrency` worker threads that import `appModule`, so a hard time limit can terminate it.
   * @default 'async'
   */
  pool?: 'async' | 'threads';
  /** Path or file URL of the module exporting the app (as `app` or default), for `pool: 'threads'`. */
  appModule?: string;
}

export interface CloseOptions {
  /** How long running tasks may take to finish before they are aborted and given back. @default 30_000 */
  timeoutMs?: number;
}

export interface CloseReport {
  /** Prefetched deliveries that had not started, given back to the broker without counting a delivery. */
  givenBack: number;
  /**
   * Running tasks that did not finish within `timeoutMs` (aborted, and requeued where the broker
   * answered), plus prefetched deliveries that could not be given back in time: the broker delivers
   * them again after their lease.
   */
  abandoned: number;
}

/** A delivery being processed. Its AbortController is made only when someone needs the signal. */
class Running {
  /** Links of the worker's list of running tasks. */
  prev: Running | undefined;
  next: Running | undefined;
  taskId: string | null = null;
  abandoned = false;
  /** The handler slot was given back (the handler finished; settling may still be under way). */
  slotFreed = false;
  private ac: AbortController | undefined;

  constructor(
    readonly delivery: KitDelivery,
    readonly queue: string,
  ) {}

  get signal(): AbortSignal {
    return (this.ac ??= new AbortController()).signal;
  }
  get aborted(): boolean {
    return this.ac?.signal.aborted ?? false;
  }
  get reason(): unknown {
    return this.ac?.signal.reason;
  }
  abort(reason: Error): void {
    (this.ac ??= new AbortController()).abort(reason);
  }
}

/** What `currentTask()` returns; a class so a task allocates one object, not a bag of closures. */
class RunContext implements TaskContext {
  constructor(
    private readonly r: Running,
    private readonly msg: TaskMessage,
    private readonly base: TaskEventBase,
    private readonly backend: ResultBackend | undefined,
    private readonly app: App,
  ) {}
  get id(): string {
    return this.msg.id;
  }
  get name(): string {
    return this.msg.task;
  }
  get queue(): string {
    return this.base.queue;
  }
  get retries(): number {
    return this.msg.retries;
  }
  get deliveries(): number {
    return this.r.delivery.deliveries;
  }
  get headers(): TaskContext['headers'] {
    return this.r.delivery.headers;
  }
  get rootId(): string | null {
    return this.msg.rootId;
  }
  get parentId(): string | null {
    return this.msg.parentId;
  }
  get signal(): AbortSignal {
    return this.r.signal;
  }
  retry(o: { countdownMs?: number; error?: unknown } = {}): never {
    throw new RetryRequest(o.countdownMs, o.error);
  }
  async progress(value: unknown): Promise<void> {
    const msg = this.msg;
    if (this.backend !== undefined) {
      await this.backend.set(msg.id, { state: TaskState.PROGRESS, progress: value, name: msg.task, retries: msg.retries }, { ttlMs: this.app.resultExpiresMs });
    }
    if (this.app.events.has('task:progress')) this.app.events.emit('task:progress', { ...this.base, progress: value });
  }
}

const TASK_EVENTS = [
  'task:received', 'task:started', 'task:progress', 'task:retried', 'task:succeeded',
  'task:failed', 'task:revoked', 'task:dead-lettered',
] as const;


/**
 * Consumes queues and runs handlers: at most `concurrency` at once and at most
 * `concurrency × prefetchMultiplier` unacked deliveries; ack-late by default; retries through the
 * broker's delayed delivery; poison messages and final failures dead-lettered with their reason.
 */
export class Worker {
  readonly id = newId();
  readonly queues: readonly string[];
  readonly concurrency: number;
  readonly prefetch: number;
  private readonly opts: WorkerOptions;
  private broker: GuardedBroker | undefined;
  private backend: ResultBackend | undefined;
  /** The broker can store a result with its ack on the backend's server (`Delivery.ackWithResult`). */
  private combine = false;
  private canvas!: CanvasRunner;
  private threads: ThreadPool | undefined;
  /** One kit consumer per queue; prefetched deliveries wait in their buffers until a handler slot frees. */
  private readonly consumers: KitConsumer[] = [];
  /** The consumer `fill` looks at first: queues take turns, so none starves another. */
  private turn = 0;
  private fillQueued = false;
  private readonly running = new LinkedList<Running>();
  /** Revoked task ids this worker knows of, with when it may forget them. */
  private readonly revoked = new Map<string, number>();
  /** True while `revoked` is complete: subscribed to revoke broadcasts, then listed the backend's set. */
  private revokedComplete = false;
  private unsubscribeControl: (() => Promise<void>) | undefined;
  private publisher: EventPublisher | undefined;
  private readonly unlisten: (() => void)[] = [];
  private heartbeat: TimerHandle | undefined;
  private idleWaiters: (() => void)[] = [];
  private processed = 0;
  private started: Promise<void> | undefined;
  private closing: Promise<CloseReport> | undefined;

  constructor(
    private readonly app: App,
    opts: WorkerOptions,
  ) {
    this.opts = opts;
    this.queues = [...(opts.queues ?? [app.defaultQueue])];
    if (this.queues.length === 0) throw new RangeError('worker needs at least one queue');
    this.concurrency = opts.concurrency ?? 8;
    const mult = opts.prefetchMultiplier ?? 4;
    if (!Number.isInteger(this.concurrency) || this.concurrency < 1) throw new RangeError('concurrency must be an integer >= 1');
    if (!Number.isInteger(mult) || mult < 1) throw new RangeError('prefetchMultiplier must be an integer >= 1');
    this.prefetch = this.concurrency * mult;
    if (opts.pool === 'threads' && opts.appModule === undefined) {
      throw new TypeError("pool: 'threads' needs appModule: the path of the module that exports the app");
    }
    if (this.prefetch < this.queues.length) {
      throw new RangeError(`concurrency × prefetchMultiplier (${this.prefetch}) must be at least the number of queues`);
    }
  }

  /** Unacked deliveries this worker holds now (running plus prefetched). */
  get held(): number {
    let buffered = 0;
    for (const c of this.consumers) buffered += c.buffered;
    return this.running.size + buffered;
  }

  /** Handlers running now (at most `concurrency`). */
  get active(): number {
    return this.handlers;
  }

  /** Handlers running: a slot is taken at dispatch and given back when the handler settles. */
  private handlers = 0;

  /** Connect, declare the queues and start consuming. Resolves once consuming. */
  start(): Promise<void> {
    if (this.closing !== undefined) return Promise.reject(new CeleriacError(ErrorCode.CLOSED, 'worker is closed'));
    this.started ??= this.doStart();
    return this.started;
  }

  private async doStart(): Promise<void> {
    const broker = await this.app.getBroker();
    this.broker = broker;
    this.backend = await this.app.getResultBackend();
    this.canvas = new CanvasRunner(this.app, this.backend);
    for (const t of this.app.tasks.values()) {
      if (t.options.rateLimit !== undefined && this.backend?.takeTokens === undefined) {
        throw new CeleriacError(ErrorCode.UNSUPPORTED, `task ${t.name} has a rateLimit, which needs a result backend with token buckets`);
      }
    }
    if (this.opts.pool === 'threads') {
      this.threads = new ThreadPool(this.opts.appModule!, this.concurrency, this.app.logger);
      await this.threads.start();
    } else if ([...this.app.tasks.values()].some((t) => t.options.hardTimeLimitMs !== undefined)) {
      this.app.logger.warn("hardTimeLimitMs acts as a soft limit on the async pool; use pool: 'threads' to enforce it");
    }
    for (const q of this.queues) await this.app.declare(broker, q);
    if (broker.broadcast !== undefined) {
      this.unsubscribeControl = await broker.broadcast.subscribe(CONTROL_CHANNEL, (body) => this.onControl(body));
      const pub = new EventPublisher(broker.broadcast, this.app.clock, this.app.logger, { hostname: this.app.hostname, pid: process.pid });
      this.publisher = pub;
      const mine = (e: { workerId?: string }) => e.workerId === this.id;
      for (const name of ['worker:ready', 'worker:heartbeat', 'worker:offline'] as const) {
        this.unlisten.push(this.app.events.on(name, (e) => void (mine(e) && pub.push(name, e as never))));
      }
      if (this.opts.sendEvents === true) {
        for (const name of TASK_EVENTS) this.unlisten.push(this.app.events.on(name, (e) => void (mine(e) && pub.push(name, e as never))));
      }
    }
    await this.loadRevoked();
    this.unlisten.push(this.app.events.on('broker:reconnected', () => void this.loadRevoked()));
    // Split the prefetch budget so the total never exceeds it and no queue starves another.
    const n = this.queues.length;
    this.queues.forEach((q, i) => {
      const share = Math.floor(this.prefetch / n) + (i < this.prefetch % n ? 1 : 0);
      const c = broker.consume(q, { prefetch: share });
      c.readAhead();
      this.consumers.push(c);
    });
    // Every consumer comes from one broker connection: where one can store results with its acks, all can.
    const target = this.consumers[0]?.resultWriteTarget;
    this.combine = target !== undefined && this.backend?.prepareSet !== undefined && this.backend.writeTarget === target;
    this.fill();
    this.armHeartbeat();
    this.app.events.emit('worker:ready', {
      ...this.workerBase(),
      queues: [...this.queues],
      concurrency: this.concurrency,
      prefetch: this.prefetch,
    });
  }

  private workerBase(): { workerId: string; hostname: string; pid: number } {
    return { workerId: this.id, hostname: this.app.hostname, pid: process.pid };
  }

  private armHeartbeat(): void {
    const every = this.opts.heartbeatMs ?? 2_000;
    if (every <= 0) return;
    this.heartbeat = this.app.clock.setTimeout(() => {
      this.app.events.emit('worker:heartbeat', {
        ...this.workerBase(),
        active: this.handlers,
        processed: this.processed,
        concurrency: this.concurrency,
      });
      this.armHeartbeat();
    }, every);
  }

  /**
   * List the backend's revocation set after subscribing to revoke broadcasts: from then on the local
   * set is complete and no task needs a backend round trip. Done again after a reconnect, since
   * broadcasts sent while disconnected are lost; until it completes, tasks are checked one by one.
   */
  private async loadRevoked(): Promise<void> {
    this.revokedComplete = false;
    const backend = this.backend;
    if (backend?.listRevoked === undefined || this.unsubscribeControl === undefined) return;
    try {
      const ids = await backend.listRevoked();
      const until = this.app.clock.now() + this.app.resultExpiresMs;
      for (const id of ids) this.revoked.set(id, until);
      this.revokedComplete = true;
    } catch (err) {
      this.app.logger.warn('could not list revoked tasks; checking each task instead', { error: String(err) });
    }
  }

  private onControl(body: Uint8Array): void {
    let msg: ControlMessage;
    try {
      msg = JSON.parse(new TextDecoder().decode(body)) as ControlMessage;
    } catch {
      return;
    }
    if (msg.type !== 'revoke' || typeof msg.taskId !== 'string') return;
    const now = this.app.clock.now();
    this.revoked.set(msg.taskId, now + this.app.resultExpiresMs);
    if (this.revoked.size % 1024 === 0) for (const [id, until] of this.revoked) if (until <= now) this.revoked.delete(id);
    for (const r of this.running) {
      if (r.taskId === msg.taskId) r.abort(new CeleriacError(ErrorCode.REVOKED, `task ${msg.taskId} was revoked`));
    }
  }

  /**
   * Run buffered deliveries while handler slots are free, taking from the queues in turn; when none is
   * buffered, ask each consumer to call back once one arrives. No promise per delivery: the consumers'
   * buffers are the prefetch, and a slot freed takes the next one synchronously.
   */
  private fill(): void {
    const cs = this.consumers;
    const n = cs.length;
    while (this.handlers < this.concurrency && this.closing === undefined) {
      let d: KitDelivery | undefined;
      for (let i = 0; i < n && d === undefined; i++) {
        const c = cs[this.turn]!;
        this.turn = this.turn + 1 === n ? 0 : this.turn + 1;
        d = c.takeSync();
      }
      if (d === undefined) {
        for (const c of cs) c.whenReady(this.wake);
        return;
      }
      this.run(d, d.queue);
    }
  }

  /**
   * A consumer has a delivery again: fill in a microtask of the worker's own async context, not on the
   * stack (and in the context) of whoever made it ready — a producer's publish, on the memory broker.
   */
  private readonly wake = AsyncResource.bind(() => {
    if (this.fillQueued) return;
    this.fillQueued = true;
    queueMicrotask(this.fillSoon);
  });

  private readonly fillSoon = (): void => {
    this.fillQueued = false;
    this.fill();
  };

  private run(d: KitDelivery, queue: string): void {
    const r = new Running(d, queue);
    this.running.add(r);
    this.handlers++;
    // At most one `then` per task: every promise costs a hook call once `currentTask()`'s AsyncLocalStorage
    // is on. `process` returns undefined when the run finishes itself (the common path, `executeFast`).
    let p: Promise<unknown> | undefined;
    try {
      p = this.process(r);
    } catch (err) {
      p = Promise.reject(err as Error);
    }
    if (p !== undefined) this.finishWhen(r, p);
  }

  /** Finish the run once `p` settles (at once when there is nothing to wait for). */
  private finishWhen(r: Running, p: Promise<unknown> | undefined): void {
    if (p === undefined) {
      this.finishRun(r);
      return;
    }
    p.then(
      () => this.finishRun(r),
      (err: unknown) => this.failRun(r, err),
    );
  }

  /**
   * A failure outside the handler (the result backend or broker unreachable past its retries): give the
   * delivery back, or the guard would renew its lease forever and it would never run again.
   */
  private async failRun(r: Running, err: unknown): Promise<void> {
    try {
      this.app.logger.error('unexpected worker error; the delivery is requeued', { error: String(err) });
      this.app.events.emit('broker:error', { error: serializeError(err) });
      await this.settle(r.delivery.nack({ requeue: true, delayMs: 1_000 }));
    } finally {
      this.finishRun(r);
    }
  }

  private finishRun(r: Running): void {
    this.running.delete(r);
    this.processed++;
    if (!r.slotFreed) this.freeSlot(r);
    else if (this.running.size === 0) this.next();
  }

  /**
   * Give the handler slot back as soon as the handler settled: storing the result and acking go on
   * while the next handler runs, bounded by the prefetch (the delivery stays unacked until then).
   */
  private freeSlot(r: Running): void {
    if (r.slotFreed) return;
    r.slotFreed = true;
    this.handlers--;
    this.next();
  }

  private next(): void {
    this.fill();
    if (this.running.size === 0) {
      const ws = this.idleWaiters;
      this.idleWaiters = [];
      for (const w of ws) w();
    }
  }

  /**
   * Decode and check a delivery, then run it. Not `async`: the common path returns `execute`'s promise
   * as is; the checks that need a round trip go through `admit`.
   */
  private process(r: Running): Promise<unknown> | undefined {
    const d = r.delivery;
    let msg: TaskMessage;
    try {
      msg = this.app.codec.decode(d, this.app.accept, this.app.maxDecodedBytes);
    } catch (err) {
      const id = typeof d.headers['id'] === 'string' ? d.headers['id'] : null;
      return this.deadLetter(d, r.queue, null, err, id === null ? null : { id, task: stringOrNull(d.headers['task']) });
    }
    r.taskId = msg.id;
    const queue = r.queue;
    const base: TaskEventBase = {
      taskId: msg.id,
      name: msg.task,
      queue,
      retries: msg.retries,
      deliveries: d.deliveries,
      workerId: this.id,
    };
    const events = this.app.events;
    if (events.has('task:received')) {
      events.emit(
        'task:received',
        taskEvent(base, { argsRepr: msg.argsRepr ?? shortRepr(msg.args), kwargsRepr: msg.kwargsRepr ?? shortRepr(msg.kwargs) }),
      );
    }

    const task = this.app.tasks.get(msg.task);
    if (task === undefined) {
      const err = new CeleriacError(ErrorCode.TASK_UNKNOWN, `no task named "${msg.task}" is registered in this worker`);
      return this.deadLetter(d, queue, msg, err, null);
    }
    if (task.options.kwargs !== true && !isEmpty(msg.kwargs)) {
      const err = new CeleriacError(
        ErrorCode.TASK_SIGNATURE,
        `task "${msg.task}" takes no keyword arguments (it is not registered with kwargs: true), got ${Object.keys(msg.kwargs).join(', ')}`,
      );
      return this.deadLetter(d, queue, msg, err, null);
    }
    if (d.deliveries > this.app.maxDeliveries) {
      const err = new CeleriacError(
        ErrorCode.POISON_MESSAGE,
        `delivered ${d.deliveries} times without settling (maxDeliveries ${this.app.maxDeliveries})`,
      );
      return this.deadLetter(d, queue, msg, err, null);
    }
    if (msg.expires !== null && msg.expires <= this.app.clock.now()) return this.finishRevoked(d, msg, base, 'expired');
    if (this.revoked.size > 0 && this.revoked.has(msg.id)) return this.finishRevoked(d, msg, base, 'revoked');
    const early = this.opts.acks === 'early';
    const checkRevoked = !this.revokedComplete && this.backend?.isRevoked !== undefined;
    const rated = task.rate !== undefined && this.backend?.takeTokens !== undefined;
    if (!checkRevoked && !rated && !early && !tracingActive()) return this.executeFast(r, task, msg, base);
    return this.admit(r, task, msg, base, checkRevoked, rated, early);
  }

  /** The checks of `process` that need a round trip (revocation, rate limit), early acks and tracing. */
  private async admit(r: Running, task: AnyTask, msg: TaskMessage, base: TaskEventBase, checkRevoked: boolean, rated: boolean, early: boolean): Promise<unknown> {
    const d = r.delivery;
    const queue = r.queue;
    if (checkRevoked && (await this.backend!.isRevoked!(msg.id))) {
      await this.finishRevoked(d, msg, base, 'revoked');
      return;
    }
    if (rated) {
      const t = await this.backend!.takeTokens!(`rate:${task.name}`, task.rate!.limit, task.rate!.windowMs);
      if (!t.ok) {
        // Over the limit: wait in the broker, not in a prefetch slot, and without counting a delivery.
        await this.republish(d, queue, Math.max(1, t.retryInMs));
        return;
      }
    }
    if (early) await d.ack();
    if (!tracingActive()) {
      await this.execute(r, task, msg, base, early);
      return;
    }
    // receive (child of the publisher's span) → process (wraps the handler and its follow-ups)
    const parent = contextFromTraceparent(msg.traceparent);
    const receive = startReceiveSpan(queue, parent, d.deliveries);
    endSpan(receive);
    const runSpan = startRunSpan(msg.task, msg.id, queue, msg.retries, trace.setSpan(parent, receive));
    let error: SerializedError | undefined;
    try {
      error = await context.with(trace.setSpan(parent, runSpan), () => this.execute(r, task, msg, base, early));
    } finally {
      endSpan(runSpan, error);
    }
  }

  private async execute(r: Running, task: AnyTask, msg: TaskMessage, base: TaskEventBase, acked: boolean): Promise<SerializedError | undefined> {
    const d = r.delivery;
    const opts = task.options;
    const store = opts.ignoreResult !== true && this.backend !== undefined;
    const ttlMs = this.app.resultExpiresMs;
    const clock = this.app.clock;
    const events = this.app.events;
    if (store && this.opts.trackStarted === true) {
      await this.backend!.set(msg.id, { state: TaskState.STARTED, name: msg.task, retries: msg.retries }, { ttlMs });
    }
    if (events.has('task:started')) {
      const from = msg.sentAt === null || msg.sentAt === undefined ? null : Math.max(msg.sentAt, msg.eta ?? 0);
      events.emit('task:started', taskEvent(base, { queueWaitMs: from === null ? null : Math.max(0, clock.now() - from) }));
    }
    const started = clock.now();
    const hardMs = msg.hardTimeLimitMs ?? opts.hardTimeLimitMs ?? null;
    const softMs = msg.timeLimitMs ?? opts.timeLimitMs ?? null;
    // Without threads, a hard limit can only be enforced like a soft one.
    const limitMs = this.threads === undefined && hardMs !== null ? Math.min(hardMs, softMs ?? Infinity) : softMs;
    let limitTimer: TimerHandle | undefined;
    const ctx = new RunContext(r, msg, base, store ? this.backend : undefined, this.app);
    let result: unknown;
    let failure: unknown;
    let ok = false;
    try {
      const run =
        this.threads === undefined
          ? taskStorage.run(ctx, () => (task.handler as (...a: unknown[]) => unknown)(...callArgs(task, msg)))
          : this.threads.run(
              msg.task,
              callArgs(task, msg),
              {
                id: msg.id, name: msg.task, queue: base.queue, retries: msg.retries, deliveries: d.deliveries,
                headers: { ...d.headers }, rootId: msg.rootId, parentId: msg.parentId,
              },
              { hardLimitMs: hardMs, signal: r.signal, onProgress: (v) => ctx.progress(v) },
            );
      if (limitMs === null && !r.aborted) {
        result = await run;
      } else {
        // With a time limit, the run settles when the signal aborts even if the handler ignores it.
        const signal = r.signal;
        result = await new Promise<unknown>((resolve, reject) => {
          const onAbort = () => reject(signal.reason as Error);
          if (limitMs !== null) {
            limitTimer = clock.setTimeout(
              () => r.abort(new CeleriacError(ErrorCode.TIME_LIMIT, `task ${msg.task} exceeded its time limit of ${limitMs} ms`)),
              limitMs,
            );
          }
          if (signal.aborted) onAbort();
          else signal.addEventListener('abort', onAbort, { once: true });
          Promise.resolve(run).then(resolve, reject);
        });
      }
      ok = true;
    } catch (err) {
      failure = err;
    } finally {
      if (limitTimer !== undefined) clock.clearTimeout(limitTimer);
    }
    return this.afterRun(r, task, msg, base, acked, store, started, ok, result, failure);
  }

  /**
   * `execute` for the common case, without an async frame or an `await` of its own: no threads, no time
   * limit, no STARTED write, not aborted. A success whose ack is all that is left settles in
   * `succeeded`; everything else goes through `afterRun`. Every promise costs a hook call once
   * `currentTask()`'s AsyncLocalStorage is on, and `execute`'s async frame holds all of its locals:
   * this path makes one promise (the handler's `then`) and about 0.7 KB less garbage per task. It also
   * finishes the run itself, and returns undefined where the slower paths return what `run` waits for.
   */
  private executeFast(r: Running, task: AnyTask, msg: TaskMessage, base: TaskEventBase): Promise<SerializedError | undefined> | undefined {
    const opts = task.options;
    const store = opts.ignoreResult !== true && this.backend !== undefined;
    const limited = (msg.hardTimeLimitMs ?? opts.hardTimeLimitMs ?? msg.timeLimitMs ?? opts.timeLimitMs ?? null) !== null;
    if (this.threads !== undefined || limited || r.aborted || (store && this.opts.trackStarted === true)) {
      return this.execute(r, task, msg, base, false);
    }
    const clock = this.app.clock;
    const events = this.app.events;
    if (events.has('task:started')) {
      const from = msg.sentAt === null || msg.sentAt === undefined ? null : Math.max(msg.sentAt, msg.eta ?? 0);
      events.emit('task:started', taskEvent(base, { queueWaitMs: from === null ? null : Math.max(0, clock.now() - from) }));
    }
    const started = clock.now();
    const ctx = new RunContext(r, msg, base, store ? this.backend : undefined, this.app);
    let run: unknown;
    try {
      run =
        opts.kwargs === true
          ? taskStorage.run(ctx, task.handler as (...a: unknown[]) => unknown, ...msg.args, msg.kwargs)
          : taskStorage.run(ctx, task.handler as (...a: unknown[]) => unknown, ...msg.args);
    } catch (err) {
      return this.afterRun(r, task, msg, base, false, store, started, false, undefined, err);
    }
    // The run finishes from here: no second `then` in `run` (undefined tells it so).
    void Promise.resolve(run).then(
      (result) => {
        let settling: Promise<unknown> | undefined;
        try {
          settling = this.succeeded(r, task, msg, base, store, started, result);
        } catch (err) {
          settling = Promise.reject(err as Error);
        }
        this.finishWhen(r, settling);
      },
      (err: unknown) => this.finishWhen(r, this.afterRun(r, task, msg, base, false, store, started, false, undefined, err)),
    );
    return undefined;
  }

  /** A fast-path success: the ack (with the result where the broker stores both), then the event. */
  private succeeded(
    r: Running,
    task: AnyTask,
    msg: TaskMessage,
    base: TaskEventBase,
    store: boolean,
    started: number,
    result: unknown,
  ): Promise<SerializedError | undefined> | undefined {
    if (r.abandoned) return undefined; // shutdown gave the delivery back already
    if (CanvasRunner.hasLinks(msg.embed) || (store && !this.combine)) {
      return this.afterRun(r, task, msg, base, false, store, started, true, result, undefined);
    }
    const finished = this.app.clock.now();
    this.freeSlot(r);
    return this.ackSuccess(r.delivery, msg, base, store, false, finished, finished - started, result);
  }

  /**
   * The end of every success: the ack — with the result where broker and backend share a server
   * (`combined`), none when acked early — then `task:succeeded`. An ack that is already done
   * (`SETTLED`) is not waited for; a failed one is reported and the task still counts as succeeded.
   */
  private ackSuccess(
    d: KitDelivery,
    msg: TaskMessage,
    base: TaskEventBase,
    combined: boolean,
    acked: boolean,
    finished: number,
    runtimeMs: number,
    result: unknown,
  ): Promise<undefined> | undefined {
    const settling = combined
      ? d.ackWithResult!(this.backend!.prepareSet!(msg.id, successMeta(msg, result, finished), { ttlMs: this.app.resultExpiresMs }))
      : acked
        ? SETTLED
        : d.ack();
    if (settling === SETTLED) return this.emitSucceeded(base, runtimeMs, result);
    return settling.then(
      () => this.emitSucceeded(base, runtimeMs, result),
      (err: unknown) => {
        this.settleFailed(err);
        return this.emitSucceeded(base, runtimeMs, result);
      },
    );
  }

  /** `task:succeeded`, when anyone listens. A method, not a closure made per ack. */
  private emitSucceeded(base: TaskEventBase, runtimeMs: number, result: unknown): undefined {
    const events = this.app.events;
    if (events.has('task:succeeded')) events.emit('task:succeeded', taskEvent(base, { runtimeMs, result }));
    return undefined;
  }

  /** Everything after a handler ran (or failed to): the result, the ack or retry, the events. */
  private async afterRun(
    r: Running,
    task: AnyTask,
    msg: TaskMessage,
    base: TaskEventBase,
    acked: boolean,
    store: boolean,
    started: number,
    ok: boolean,
    result: unknown,
    failure: unknown,
  ): Promise<SerializedError | undefined> {
    if (r.abandoned) return undefined; // shutdown gave the delivery back already
    const d = r.delivery;
    const opts = task.options;
    const ttlMs = this.app.resultExpiresMs;
    const clock = this.app.clock;
    const events = this.app.events;
    const finished = clock.now();
    const runtimeMs = finished - started;
    this.freeSlot(r);

    if (ok) {
      const links = CanvasRunner.hasLinks(msg.embed);
      const combined = store && !acked && !links && this.combine;
      if (store && !combined) await this.backend!.set(msg.id, successMeta(msg, result, finished), { ttlMs });
      if (links) await this.canvas.onSuccess(msg, result);
      return this.ackSuccess(d, msg, base, combined, acked, finished, runtimeMs, result);
    }

    const reason = r.reason;
    if (isCeleriacError(reason, ErrorCode.REVOKED)) {
      // Revoked while running and the handler gave up: REVOKED, never a retry.
      if (store) await this.backend!.set(msg.id, { state: TaskState.REVOKED, name: msg.task, error: serializeError(reason), dateDone: finished }, { ttlMs });
      if (!acked) await this.settle(d.ack());
      if (events.has('task:revoked')) events.emit('task:revoked', taskEvent(base, { reason: 'terminated' as const }));
      return serializeError(reason);
    }

    const retry = this.retryDecision(task, msg, failure);
    const error = serializeError(retry.error);
    if (retry.retry) {
      const delayMs = retry.countdownMs ?? backoffDelayMs(msg.retries, opts, this.opts.random);
      const next: TaskMessage = { ...msg, retries: msg.retries + 1, eta: delayMs > 0 ? finished + delayMs : null, sentAt: finished };
      const queue = base.queue;
      const publishOpts: { delayMs?: number; priority?: number } = {};
      if (delayMs > 0) publishOpts.delayMs = delayMs;
      if (msg.priority !== null && this.broker!.capabilities.priorities > 0) publishOpts.priority = msg.priority;
      // Publish the retry first, then ack: a crash in between duplicates, never loses.
      await this.broker!.publish(queue, this.app.encode(next, opts), publishOpts);
      if (store) await this.backend!.set(msg.id, { state: TaskState.RETRY, error, name: msg.task, retries: msg.retries + 1 }, { ttlMs });
      if (!acked) await this.settle(d.ack());
      if (events.has('task:retried')) events.emit('task:retried', taskEvent(base, { error, delayMs }));
      return error;
    }
    if (store) {
      await this.backend!.set(msg.id, { state: TaskState.FAILURE, error, name: msg.task, retries: msg.retries, dateDone: finished }, { ttlMs });
    }
    if (CanvasRunner.hasLinks(msg.embed)) await this.canvas.onFailure(msg, error);
    const reasonText = `${error.code ?? error.name}: ${error.message}`;
    if (!acked) await this.settle(d.nack({ requeue: false, reason: reasonText }));
    events.emit('task:failed', taskEvent(base, { error, runtimeMs }));
    if (!acked && events.has('task:dead-lettered')) events.emit('task:dead-lettered', taskEvent(base, { reason: reasonText }));
    return error;
  }

  private retryDecision(task: AnyTask, msg: TaskMessage, failure: unknown): { retry: boolean; error: unknown; countdownMs?: number } {
    const max = task.options.maxRetries ?? 0;
    if (failure instanceof RetryRequest) {
      const error = failure.error ?? new CeleriacError('ERR_RETRY', `task ${msg.task} asked for a retry`);
      if (msg.retries >= max) return { retry: false, error };
      return failure.countdownMs === undefined ? { retry: true, error } : { retry: true, error, countdownMs: failure.countdownMs };
    }
    if (failure instanceof UnrecoverableError || (failure instanceof ThreadTaskError && failure.name === 'UnrecoverableError')) {
      return { retry: false, error: failure };
    }
    if (msg.retries >= max) return { retry: false, error: failure };
    if (matchesAny(failure, task.options.dontRetryOn)) return { retry: false, error: failure };
    if (task.options.retryOn !== undefined && !matchesAny(failure, task.options.retryOn)) return { retry: false, error: failure };
    return { retry: true, error: failure };
  }

  private async finishRevoked(d: Delivery, msg: TaskMessage, base: TaskEventBase, why: 'expired' | 'revoked'): Promise<void> {
    const backend = this.backend;
    if (backend !== undefined && this.app.tasks.get(msg.task)?.options.ignoreResult !== true) {
      const error: SerializedError =
        why === 'expired'
          ? { name: 'CeleriacError', code: ErrorCode.EXPIRED, message: `task ${msg.id} expired before it could run` }
          : { name: 'CeleriacError', code: ErrorCode.REVOKED, message: `task ${msg.id} was revoked` };
      await backend.set(msg.id, { state: TaskState.REVOKED, name: msg.task, error, dateDone: this.app.clock.now() }, { ttlMs: this.app.resultExpiresMs });
    }
    if (CanvasRunner.hasLinks(msg.embed)) {
      const error = serializeError(new CeleriacError(why === 'expired' ? ErrorCode.EXPIRED : ErrorCode.REVOKED, `task ${msg.id} was ${why}`));
      await this.canvas.onFailure(msg, error);
    }
    await this.settle(d.ack());
    if (this.app.events.has('task:revoked')) this.app.events.emit('task:revoked', taskEvent(base, { reason: why }));
  }

  /** Dead-letter a message that cannot run; records FAILURE for its id when it has one. */
  private async deadLetter(
    d: Delivery,
    queue: string,
    msg: TaskMessage | null,
    err: unknown,
    fallback: { id: string; task: string | null } | null,
  ): Promise<void> {
    const error = serializeError(err);
    const reason = `${error.code ?? error.name}: ${error.message}`;
    const id = msg?.id ?? fallback?.id ?? null;
    const name = msg?.task ?? fallback?.task ?? null;
    if (id !== null && this.backend !== undefined) {
      await this.backend
        .set(id, { state: TaskState.FAILURE, error, ...(name === null ? {} : { name }), dateDone: this.app.clock.now() }, { ttlMs: this.app.resultExpiresMs })
        .catch((e: unknown) => this.app.logger.warn('could not store FAILURE', { id, error: String(e) }));
    }
    if (msg !== null && CanvasRunner.hasLinks(msg.embed)) {
      await this.canvas.onFailure(msg, error).catch((e: unknown) => this.app.logger.warn('canvas links failed', { id, error: String(e) }));
    }
    await this.settle(d.nack({ requeue: false, reason }));
    const base = { taskId: id ?? d.id, queue, retries: msg?.retries ?? 0, deliveries: d.deliveries, workerId: this.id };
    this.app.events.emit('task:dead-lettered', { ...base, name, reason });
    if (name !== null) this.app.events.emit('task:failed', { ...base, name, error, runtimeMs: 0 });
  }

  /** Settling can fail when the lease was lost (the broker redelivers); that is logged, not thrown. */
  private settle(p: Promise<void>): Promise<void> {
    return p.then(undefined, this.settleFailed);
  }

  private readonly settleFailed = (err: unknown): void => {
    this.app.logger.warn('could not settle a delivery', { error: String(err) });
    if (!isCeleriacError(err, ErrorCode.STALE_DELIVERY) && !isCeleriacError(err, ErrorCode.ALREADY_SETTLED)) {
      this.app.events.emit('broker:error', { error: serializeError(err) });
    }
  };

  /**
   * Put a delivery back without counting a delivery: publish a copy (fresh message id, same headers
   * and body, optionally delayed in the broker), then ack the original. A crash in between
   * duplicates, never loses.
   */
  private async republish(d: Delivery, queue: string, delayMs = 0): Promise<void> {
    const broker = this.broker!;
    const priority = d.headers['priority'];
    const opts: { priority?: number; delayMs?: number } = {};
    if (typeof priority === 'number' && broker.capabilities.priorities > 0) opts.priority = priority;
    if (delayMs > 0) opts.delayMs = delayMs;
    await broker.publish(queue, { id: newMessageId(), body: d.body, headers: d.headers }, opts);
    await d.ack();
  }

  /** Resolves when no handler is running (or after `timeoutMs`). */
  private waitIdle(timeoutMs: number): Promise<boolean> {
    if (this.running.size === 0) return Promise.resolve(true);
    return new Promise((resolve) => {
      const timer = this.app.clock.setTimeout(() => resolve(false), timeoutMs);
      this.idleWaiters.push(() => {
        this.app.clock.clearTimeout(timer);
        resolve(true);
      });
    });
  }

  /**
   * Graceful and idempotent: stop fetching, give back prefetched deliveries that had not started, let
   * running tasks finish within `timeoutMs`, then abort and requeue whatever is still running.
   *
   * Bounded even when the broker does not answer: stopping and giving back take at most 45% of
   * {@link CLOSE_GRACE_MS}, running tasks get `timeoutMs`, requeueing the rest and unsubscribing another
   * 45%; the promise resolves within `timeoutMs + CLOSE_GRACE_MS`. A delivery that could not be
   * given back or requeued in that time counts as `abandoned`: the broker delivers it again after its
   * lease (or when it sees the connection gone).
   */
  close(opts: CloseOptions = {}): Promise<CloseReport> {
    this.closing ??= this.doClose(opts.timeoutMs ?? 30_000);
    return this.closing;
  }

  private async doClose(timeoutMs: number): Promise<CloseReport> {
    const clock = this.app.clock;
    // Two phases of 45% each leave a tenth of the grace for timers firing late on a busy machine.
    const half = CLOSE_GRACE_MS * 0.45;
    const stopBy = clock.now() + half;
    const within = (p: Promise<unknown>, by: number) => settleWithin(p, by - clock.now(), clock);
    await within(this.started ?? Promise.resolve(), stopBy);
    if (this.heartbeat !== undefined) clock.clearTimeout(this.heartbeat);
    // Stop consuming: what the consumers prefetched and no handler started goes back, uncounted.
    let prefetched = 0;
    for (const c of this.consumers) prefetched += c.buffered;
    const stopping = Promise.all(this.consumers.map((c) => c.close()));
    let givenBack = 0;
    void stopping.then((counts) => {
      for (const n of counts) givenBack += n;
    });
    await within(stopping, stopBy);
    let abandoned = prefetched - givenBack;
    const idle = await this.waitIdle(timeoutMs);
    const doneBy = clock.now() + half;
    if (!idle) {
      const requeues: Promise<void>[] = [];
      for (const r of this.running) {
        r.abandoned = true;
        abandoned++;
        r.abort(new CeleriacError(ErrorCode.CLOSED, 'worker shut down before the task finished'));
        requeues.push(this.settle(r.delivery.nack({ requeue: true })));
      }
      await within(Promise.all(requeues), doneBy);
    }
    await within(this.unsubscribeControl?.().catch(() => undefined) ?? Promise.resolve(), doneBy);
    await within(this.threads?.close() ?? Promise.resolve(), doneBy);
    this.app.forgetWorker(this);
    const report: CloseReport = { givenBack, abandoned };
    this.app.events.emit('worker:offline', { ...this.workerBase(), ...report });
    for (const off of this.unlisten.splice(0)) off();
    await within(this.publisher?.close() ?? Promise.resolve(), doneBy);
    return report;
  }
}

/** The result a success stores. */
function successMeta(msg: TaskMessage, result: unknown, finished: number): ResultMeta {
  return { state: TaskState.SUCCESS, result, name: msg.task, retries: msg.retries, dateDone: finished };
}

/**
 * A task event: the fields of `base` copied one by one, then `extra`. Not `{ ...base, ...extra }`: V8 took
 * a slow path for that spread, about 5 µs per task on the worker's path (measured).
 */
function taskEvent<E extends object>(base: TaskEventBase, extra: E): TaskEventBase & E {
  const e: TaskEventBase = { taskId: base.taskId, name: base.name, queue: base.queue, retries: base.retries, deliveries: base.deliveries };
  if (base.workerId !== undefined) e.workerId = base.workerId;
  return Object.assign(e, extra);
}

/** What a handler is called with: the positional arguments, then the kwargs for a `kwargs: true` task. */
function callArgs(task: AnyTask, msg: TaskMessage): unknown[] {
  return task.options.kwargs === true ? [...msg.args, msg.kwargs] : msg.args;
}

/** A short printable form (JSON) of the arguments or keyword arguments (Celery's argsrepr), for events and dashboards. */
function shortRepr(value: unknown[] | Record<string, unknown>): string {
  let s: string;
  try {
    s = JSON.stringify(value) ?? 'null';
  } catch {
    s = '[unprintable]';
  }
  return s.length > 200 ? `${s.slice(0, 197)}...` : s;
}

function stringOrNull(v: unknown): string | null {
  return typeof v === 'string' ? v : null;
}

export type { ResultMeta };
