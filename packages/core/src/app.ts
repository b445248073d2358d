import { hostname } from 'node:os';
import type { Broker, HeaderValue, OutgoingMessage, PublishOptions, TransactionClient } from './broker.js';
import { AsyncResult, type ResultSource } from './async-result.js';
import { CLOSE_GRACE_MS, settleWithin, systemClock, type Clock } from './clock.js';
import { CeleriacError, ErrorCode, serializeError } from './errors.js';
import { endSpan, formatTraceparent, startPublishSpan, tracingActive } from './tracing.js';
import { Emitter, type EventName, type Listener } from './events.js';
import { guardBroker, type GuardedBroker } from './guard.js';
import { newId } from './ids.js';
import { silentLogger, type Logger } from './logger.js';
import { createMemoryResultBackend } from './memory-backend.js';
import { isEmpty, type Embed, type TaskMessage } from './message.js';
import { CELERY_PROTOCOL, celeriacCodec, celeriacProtocol, type Codec, type Protocol } from './protocol.js';
import { Signature, type PartialSignature } from './canvas.js';
import { Beat, type BeatOptions } from './beat.js';
import { resolveBroker, resolveResultBackend } from './resolve.js';
import { Schedules } from './schedules.js';
import { TaskState, type ResultBackend, type ResultMeta } from './result-backend.js';
import type { RetryOptions } from './retry.js';
import { DEFAULT_MAX_DECODED_BYTES, serializerFor, type Serializer, type SerializerName } from './serializer.js';
import { Worker, type CloseOptions, type WorkerOptions } from './worker.js';

/** Per-task options; each also settable per call where it makes sense. */
export interface TaskOptions extends RetryOptions {
  /** Queue for this task. @default routes, then the app's default queue */
  queue?: string;
  /** 0–9, 9 the most urgent. */
  priority?: number;
  /** Soft time limit: aborts `currentTask().signal` and fails the run with ERR_TIME_LIMIT. */
  timeLimitMs?: number;
  /**
   * Hard time limit: on a `pool: 'threads'` worker the task's thread is terminated and the run fails
   * with ERR_TIME_LIMIT. The default async pool cannot stop a running handler, so there it acts as a
   * soft limit (and the worker logs a warning at start).
   */
  hardTimeLimitMs?: number;
  /** Run at most this many times per second / minute across all workers, e.g. '100/s', '10/m'. */
  rateLimit?: string;
  /** Store no state for this task. `get()` on it never resolves. @default false */
  ignoreResult?: boolean;
  /** @default the app's serializer */
  serializer?: SerializerName;
  /** Compress bodies with gzip. @default the app's */
  compression?: 'gzip' | 'none';
  /**
   * The handler takes keyword arguments (Celery's kwargs): it is called as `(...args, kwargs)`, the
   * message's kwargs object last — `{}` when the caller sent none — and its type is the handler's last
   * parameter. Send them with `applyAsync(args, { kwargs })` or `sig.withKwargs(kwargs)`. Without this
   * option a message with non-empty kwargs is dead-lettered with ERR_TASK_SIGNATURE (FAILURE stored,
   * `task:failed`), never run with them dropped. Per task only (not in `taskDefaults`).
   * @default false
   */
  kwargs?: boolean;
}

/** Keyword arguments: a plain object of named values, the second element of a message body. */
export type Kwargs = Record<string, unknown>;

/**
 * Per-call options of `applyAsync`. `K` is the type of the keyword arguments the task takes: `never`
 * (the default) for a task without `kwargs: true`, so passing `kwargs` to it does not compile;
 * `app.sendTask` takes any plain object.
 */
export interface ApplyOptions<K extends object = never> {
  /** Hold the task in the broker for this long before it can run. */
  countdownMs?: number;
  /** Run at (or after) this time. */
  eta?: Date | number;
  /** Not run after this many ms from now; its result is REVOKED. */
  expiresMs?: number;
  priority?: number;
  queue?: string;
  taskId?: string;
  headers?: Record<string, HeaderValue>;
  timeLimitMs?: number;
  /** Canvas links (set by chain/group/chord). */
  embed?: Embed;
  parentId?: string;
  rootId?: string;
  group?: string;
  /**
   * Keyword arguments: a plain object (TypeError otherwise). A task registered in this app without
   * `kwargs: true` refuses non-empty ones with a TypeError; a worker whose task does not take them
   * dead-letters the message with ERR_TASK_SIGNATURE.
   */
  kwargs?: K;
  /**
   * Enqueue inside this database transaction (DESIGN.md §10): a client inside `BEGIN` — anything with
   * `query(text, values): Promise<{ rows }>`, such as a node-postgres client. The task exists only if
   * the transaction commits; after a rollback it never runs. `task:sent` does not fire for such a
   * send (core cannot see the commit). Refused with ERR_UNSUPPORTED unless the broker's
   * `capabilities.transactionalPublish` is true (PostgreSQL).
   */
  transaction?: TransactionClient;
}

export type Route = { queue: string };

export interface AppOptions {
  /** A broker URL (`memory://`, `redis://…`, `amqp://…`, `nats://…`) or a `Broker` instance. */
  broker: string | Broker;
  /**
   * A result backend URL or instance. @default `memory://` when the broker is the memory broker;
   * otherwise none, and `get()` rejects with ERR_NO_RESULT_BACKEND.
   */
  resultBackend?: string | ResultBackend;
  /** @default 'json' */
  serializer?: SerializerName;
  /** Content types (or serializer names) a worker will decode. @default ['json', 'msgpack'] */
  accept?: readonly string[];
  /** @default 'none' */
  compression?: 'gzip' | 'none';
  /** @default 86_400_000 (one day) */
  resultExpiresMs?: number;
  /** Task name (glob with `*`) → queue, like Celery's task_routes. First match wins. */
  routes?: Record<string, Route>;
  /** @default 'default' */
  defaultQueue?: string;
  /** A delivery handed out more often than this without settling is dead-lettered. @default 10 */
  maxDeliveries?: number;
  /**
   * The most bytes a message body may decode (inflate) to. A worker stops inflating there and
   * dead-letters the message with ERR_PAYLOAD_TOO_LARGE; a producer refuses to send a body over it.
   * @default 67_108_864 (64 MiB)
   */
  maxDecodedBytes?: number;
  /** Defaults for every task's options (`kwargs` is per task, a TypeError here). */
  taskDefaults?: Omit<TaskOptions, 'kwargs'>;
  /**
   * The wire protocol. 'celery' reads and writes Celery 5's task protocol v2 exactly as Celery puts it
   * on the wire (package `@celeriac/celery`), on queue `celery` by default. @default 'celeriac'
   */
  protocol?: 'celeriac' | 'celery' | Protocol;
  /** @default silent */
  logger?: Logger;
  /** Time source (tests pass a fake clock). */
  clock?: Clock;
}

export type TaskHandler<A extends unknown[], R> = (...args: A) => R | Promise<R>;

type Tail<A extends unknown[]> = A extends [unknown, ...infer T] ? T : never;

/**
 * The task `app.task(name, handler, options)` returns: for `kwargs: true`, the positional arguments are
 * the handler's parameters but the last, which is the type of the kwargs.
 */
export type TaskFor<A extends unknown[], R, O> = O extends { kwargs: true }
  ? number extends A['length']
    ? Task<A, R, Kwargs> // a rest parameter: any arguments, any kwargs
    : Required<A> extends [...infer P, infer K extends object]
      ? Task<P, R, K>
      : never
  : Task<A, R>;

/** `kwargs: true` on a handler whose last parameter is not an object does not compile. */
type KwargsCheck<A extends unknown[], O> = O extends { kwargs: true }
  ? number extends A['length']
    ? unknown
    : Required<A> extends [...unknown[], object]
      ? unknown
      : { readonly __kwargsHandler: 'a kwargs: true handler takes the kwargs object as its last parameter' }
  : unknown;

/**
 * A registered task. Argument and result types are exact: `add.delay('x')` does not compile. `K` is the
 * type of its keyword arguments (`kwargs: true` tasks), `never` for a task that takes none.
 */
export interface Task<A extends unknown[], R, K extends object = never> {
  readonly name: string;
  readonly options: Readonly<TaskOptions>;
  readonly handler: [K] extends [never] ? TaskHandler<A, R> : TaskHandler<[...A, K], R>;
  /** Positional arguments only; a `kwargs: true` handler gets `{}` as its kwargs. */
  delay(...args: A): Promise<AsyncResult<R>>;
  /** `opts.kwargs` only for a `kwargs: true` task (typed from the handler's last parameter). */
  applyAsync(args: A, opts?: ApplyOptions<K>): Promise<AsyncResult<R>>;
  /** One round trip where the broker allows (`publishBatch`). */
  applyAsyncBulk(argsList: readonly A[], opts?: Omit<ApplyOptions<K>, 'taskId'>): Promise<AsyncResult<R>[]>;
  /** A signature of this call, for canvas (`chain`, `group`, `chord`) or links; `.withKwargs(kw)` adds kwargs. */
  s(...args: A): Signature<R, K>;
  /** A signature missing its first argument: a chain step or callback that receives the parent's result. */
  s(...args: Tail<A>): PartialSignature<R, K>;
  /** An errback signature: `(failedTaskId, error)` are prepended when it runs. */
  s(...args: Tail<Tail<A>>): PartialSignature<R, K>;
  /** An immutable signature: it ignores the parent's result. */
  si(...args: A): Signature<R, K>;
}

/** A registered task with its types erased, as the worker sees it. */
export interface AnyTask {
  readonly name: string;
  readonly options: Readonly<TaskOptions>;
  readonly handler: (...args: never[]) => unknown;
  /** `rateLimit` parsed once at registration. */
  readonly rate?: { readonly limit: number; readonly windowMs: number };
}

const RATE_UNITS: Readonly<Record<string, number>> = { s: 1000, m: 60_000, h: 3_600_000 };

function parseRate(rateLimit: string | undefined): AnyTask['rate'] {
  if (rateLimit === undefined) return undefined;
  const [n, unit] = rateLimit.split('/') as [string, string];
  return { limit: Number(n), windowMs: RATE_UNITS[unit]! };
}

const CONTROL_CHANNEL = 'celeriac.control';

export interface ControlMessage {
  type: 'revoke';
  taskId: string;
}

function compileRoutes(routes: Record<string, Route> | undefined): ((name: string) => string | undefined) | undefined {
  if (routes === undefined) return undefined;
  const compiled = Object.entries(routes).map(([pattern, route]) => {
    const re = new RegExp(`^${pattern.split('*').map((p) => p.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('.*')}$`);
    return [re, route.queue] as const;
  });
  return (name) => compiled.find(([re]) => re.test(name))?.[1];
}

/**
 * An app: the task registry, the producer side and the factory of workers. Create it with `createApp`.
 * Connections open on first use and close with `close()`.
 */
export class App implements ResultSource {
  readonly clock: Clock;
  readonly logger: Logger;
  readonly events: Emitter;
  readonly defaultQueue: string;
  readonly resultExpiresMs: number;
  readonly maxDeliveries: number;
  readonly maxDecodedBytes: number;
  readonly accept: ReadonlySet<string>;
  readonly serializer: Serializer;
  readonly hostname = hostname();
  readonly tasks = new Map<string, AnyTask>();
  /**
   * Runtime schedules: `upsert`, `remove`, `get` and `list` periodic tasks stored in the result
   * backend, which every running beat picks up (DESIGN.md §10). See {@link Schedules}.
   */
  readonly schedules: Schedules;
  private readonly opts: AppOptions;
  private readonly route: ((name: string) => string | undefined) | undefined;
  private readonly routed = new Map<string, string>();
  /** The wire protocol; 'celery' is loaded on first connect. */
  protocol: Protocol = celeriacProtocol;
  codec: Codec = celeriacCodec;
  private protocolPromise: Promise<Protocol> | undefined;
  private brokerPromise: Promise<GuardedBroker> | undefined;
  private brokerValue: GuardedBroker | undefined;
  private backendPromise: Promise<ResultBackend | undefined> | undefined;
  private backendValue: ResultBackend | undefined | null = null;
  private readonly declared = new Map<string, Promise<void>>();
  private readonly workers = new Set<Worker>();
  private readonly beats = new Set<Beat>();
  private closing: Promise<void> | undefined;

  constructor(opts: AppOptions) {
    if (opts === null || typeof opts !== 'object' || opts.broker === undefined) {
      throw new TypeError('createApp needs { broker: URL or Broker }');
    }
    this.opts = opts;
    this.clock = opts.clock ?? systemClock;
    this.logger = opts.logger ?? silentLogger;
    this.events = new Emitter(this.logger);
    const proto = opts.protocol;
    this.defaultQueue = opts.defaultQueue ?? (proto === 'celery' ? 'celery' : typeof proto === 'object' ? proto.defaultQueue : 'default');
    if (typeof proto === 'object') {
      this.protocol = proto;
      this.codec = proto.codec;
    }
    this.resultExpiresMs = opts.resultExpiresMs ?? 86_400_000;
    this.maxDeliveries = opts.maxDeliveries ?? 10;
    this.maxDecodedBytes = opts.maxDecodedBytes ?? DEFAULT_MAX_DECODED_BYTES;
    if (!Number.isInteger(this.maxDecodedBytes) || this.maxDecodedBytes < 1) {
      throw new RangeError(`maxDecodedBytes must be an integer >= 1, got ${String(opts.maxDecodedBytes)}`);
    }
    this.serializer = serializerFor(opts.serializer ?? 'json');
    this.accept = new Set((opts.accept ?? ['json', 'msgpack']).map((a) => serializerFor(a).contentType));
    this.route = compileRoutes(opts.routes);
    this.schedules = new Schedules(this);
  }

  /**
   * Register a task. The name must be unique in the app. With `{ kwargs: true }` the handler's last
   * parameter receives the keyword arguments (see {@link TaskOptions.kwargs}):
   * `app.task('mail.send', (to: string, kw: { subject: string }) => …, { kwargs: true })` gives a task
   * whose `delay(to)` and `applyAsync([to], { kwargs: { subject } })` are typed from the handler.
   */
  task<A extends unknown[], R, const O extends TaskOptions = TaskOptions>(
    name: string,
    handler: TaskHandler<A, R>,
    options?: O & KwargsCheck<A, O>,
  ): TaskFor<A, Awaited<R>, O>;
  task(name: string, handler: TaskHandler<unknown[], unknown>, options: TaskOptions = {}): Task<unknown[], unknown, Kwargs> {
    if (typeof name !== 'string' || name.length === 0) throw new TypeError('task name must be a non-empty string');
    if (typeof handler !== 'function') throw new TypeError(`task ${name}: handler must be a function`);
    if (this.tasks.has(name)) throw new TypeError(`task ${name} is already registered`);
    if (this.opts.taskDefaults !== undefined && 'kwargs' in this.opts.taskDefaults) {
      throw new TypeError('taskDefaults cannot set kwargs: it is a per-task option (the handler must take them)');
    }
    const merged: TaskOptions = { ...this.opts.taskDefaults, ...options };
    validateTaskOptions(name, merged);
    const takesKwargs = merged.kwargs === true;
    const task: Task<unknown[], unknown, Kwargs> = {
      name,
      options: merged,
      handler,
      delay: (...args: unknown[]) => this.send(name, args, {}, merged),
      applyAsync: (args: unknown[], opts: ApplyOptions<Kwargs> = {}) =>
        opts.kwargs !== undefined && !takesKwargs && !isEmpty(opts.kwargs) ? Promise.reject(noKwargs(name)) : this.send(name, args, opts, merged),
      applyAsyncBulk: (argsList: readonly unknown[][], opts: Omit<ApplyOptions<Kwargs>, 'taskId'> = {}) =>
        opts.kwargs !== undefined && !takesKwargs && !isEmpty(opts.kwargs) ? Promise.reject(noKwargs(name)) : this.sendBulk(name, argsList, opts, merged),
      s: (...args: unknown[]) => new Signature(this, name, args),
      si: (...args: unknown[]) => new Signature(this, name, args, {}, true),
    };
    const rate = parseRate(merged.rateLimit);
    this.tasks.set(name, (rate === undefined ? task : { ...task, rate }) as unknown as AnyTask);
    return task;
  }

  /**
   * Send a task by name: one another process (or language) defines. `options.kwargs` are sent as they
   * are; a worker whose task does not take them dead-letters the message with ERR_TASK_SIGNATURE.
   */
  sendTask<R = unknown>(name: string, args: readonly unknown[] = [], options: ApplyOptions<Kwargs> = {}): Promise<AsyncResult<R>> {
    const known = this.tasks.get(name);
    return this.send<R>(name, args, options, known?.options ?? {});
  }

  /** A handle on a task by id (Celery's `app.AsyncResult(id)`). */
  asyncResult<R = unknown>(taskId: string): AsyncResult<R> {
    return new AsyncResult<R>(taskId, this);
  }

  on<K extends EventName>(name: K, listener: Listener<K>): () => void {
    return this.events.on(name, listener);
  }

  /** Create a worker for this app's tasks. Call `start()` on it. */
  worker(opts: WorkerOptions = {}): Worker {
    const w = new Worker(this, opts);
    this.workers.add(w);
    return w;
  }

  /**
   * Create a periodic-task scheduler for this app: the static `schedules` given here, and the runtime
   * schedules of `app.schedules` when the result backend stores them. Call `start()` on it.
   */
  beat(opts: BeatOptions = {}): Beat {
    const b = new Beat(this, opts);
    this.beats.add(b);
    return b;
  }

  /** @internal */
  forgetWorker(w: Worker): void {
    this.workers.delete(w);
  }

  /** The guarded broker, connected. */
  getBroker(): Promise<GuardedBroker> {
    if (this.brokerPromise === undefined) {
      if (this.closing !== undefined) return Promise.reject(new CeleriacError(ErrorCode.CLOSED, 'app is closed'));
      this.brokerPromise = (async () => {
        const proto = await this.loadProtocol();
        const ctx = { clock: this.clock, logger: this.logger };
        const raw =
          typeof this.opts.broker === 'string'
            ? ((await proto.resolveBroker?.(this.opts.broker, ctx)) ?? (await resolveBroker(this.opts.broker, ctx)))
            : this.opts.broker;
        const guarded = guardBroker(raw, {
          clock: this.clock,
          onConsumeError: (err, what) => this.logger.warn(`consuming failed (${what})`, { error: String(err) }),
        });
        guarded.onEvent((e) => {
          if (e.type === 'reconnected') this.events.emit('broker:reconnected', { broker: guarded.name });
          else this.events.emit('broker:error', { error: serializeForEvent(e.error) });
        });
        await guarded.connect();
        this.brokerValue = guarded;
        return guarded;
      })();
      this.brokerPromise.catch(() => {
        this.brokerPromise = undefined;
      });
    }
    return this.brokerPromise;
  }

  /** Load the protocol named in the options (once). */
  loadProtocol(): Promise<Protocol> {
    this.protocolPromise ??= (async () => {
      if (this.opts.protocol === 'celery') {
        let mod: Record<string, unknown>;
        try {
          mod = (await import(CELERY_PROTOCOL.pkg)) as Record<string, unknown>;
        } catch (err) {
          throw new CeleriacError(ErrorCode.MODULE_MISSING, `protocol 'celery' needs the package ${CELERY_PROTOCOL.pkg}: npm install ${CELERY_PROTOCOL.pkg}`, { cause: err });
        }
        const proto = mod[CELERY_PROTOCOL.export] as Protocol | undefined;
        if (proto?.codec === undefined) throw new CeleriacError(ErrorCode.MODULE_MISSING, `${CELERY_PROTOCOL.pkg} does not export ${CELERY_PROTOCOL.export}`);
        this.protocol = proto;
        this.codec = proto.codec;
      }
      return this.protocol;
    })();
    this.protocolPromise.catch(() => {
      this.protocolPromise = undefined;
    });
    return this.protocolPromise;
  }

  /** The result backend, or undefined when none is configured. */
  getResultBackend(): Promise<ResultBackend | undefined> {
    if (this.backendValue !== null) return Promise.resolve(this.backendValue);
    if (this.backendPromise === undefined) {
      this.backendPromise = (async () => {
        const rb = this.opts.resultBackend;
        let backend: ResultBackend | undefined;
        if (rb === undefined) {
          const isMemory =
            (typeof this.opts.broker === 'string' && this.opts.broker.startsWith('memory:')) ||
            (typeof this.opts.broker === 'object' && this.opts.broker.name === 'memory');
          backend = isMemory ? createMemoryResultBackend({ clock: this.clock }) : undefined;
        } else if (typeof rb === 'string') {
          const proto = await this.loadProtocol();
          const ctx = { clock: this.clock, logger: this.logger };
          backend = (await proto.resolveResultBackend?.(rb, ctx)) ?? (await resolveResultBackend(rb, ctx));
        } else backend = rb;
        this.backendValue = backend;
        return backend;
      })();
      this.backendPromise.catch(() => {
        this.backendPromise = undefined;
      });
    }
    return this.backendPromise;
  }

  /** The backend if it was already resolved (hot path without an await). */
  get resultBackendNow(): ResultBackend | undefined | null {
    return this.backendValue;
  }

  queueFor(name: string, opts: ApplyOptions<Kwargs>, taskOpts: TaskOptions): string {
    const q = opts.queue ?? taskOpts.queue;
    if (q !== undefined) return q;
    if (this.route === undefined) return this.defaultQueue;
    // Routes are fixed at creation: match each task name once.
    let routed = this.routed.get(name);
    if (routed === undefined) {
      routed = this.route(name) ?? this.defaultQueue;
      this.routed.set(name, routed);
    }
    return routed;
  }

  /** Declare each queue once per app, before its first publish or consume. */
  declare(broker: GuardedBroker, queue: string): Promise<void> {
    let p = this.declared.get(queue);
    if (p === undefined) {
      p = broker.declareQueue(queue, { maxPriority: 9 });
      this.declared.set(queue, p);
      p.catch(() => this.declared.delete(queue));
    }
    return p;
  }

  /** Build a task message; exported for the worker's retries and give-backs. */
  buildMessage(
    name: string,
    args: readonly unknown[],
    opts: ApplyOptions<Kwargs>,
    taskOpts: TaskOptions,
  ): { msg: TaskMessage; delayMs: number; priority: number | undefined } {
    if (!Array.isArray(args)) throw new TypeError(`task ${name}: args must be an array`);
    const kwargs = opts.kwargs;
    if (kwargs !== undefined && (kwargs === null || typeof kwargs !== 'object' || Array.isArray(kwargs))) {
      throw new TypeError(`task ${name}: kwargs must be a plain object of named arguments, got ${Array.isArray(kwargs) ? 'an array' : String(kwargs)}`);
    }
    const now = this.clock.now();
    let delayMs = 0;
    let eta: number | null = null;
    if (opts.eta !== undefined) {
      eta = typeof opts.eta === 'number' ? opts.eta : opts.eta.getTime();
      if (!Number.isFinite(eta)) throw new RangeError(`task ${name}: eta is not a valid time`);
      delayMs = Math.max(0, eta - now);
    } else if (opts.countdownMs !== undefined) {
      if (!Number.isFinite(opts.countdownMs) || opts.countdownMs < 0) {
        throw new RangeError(`task ${name}: countdownMs must be a finite number >= 0`);
      }
      delayMs = opts.countdownMs;
      eta = delayMs > 0 ? now + delayMs : null;
    }
    if (opts.expiresMs !== undefined && (!Number.isFinite(opts.expiresMs) || opts.expiresMs < 0)) {
      throw new RangeError(`task ${name}: expiresMs must be a finite number >= 0`);
    }
    const priority = opts.priority ?? taskOpts.priority;
    const id = opts.taskId ?? newId();
    const msg: TaskMessage = {
      id,
      task: name,
      args: args as unknown[],
      kwargs: kwargs ?? {},
      embed: opts.embed ?? {},
      retries: 0,
      rootId: opts.rootId ?? id,
      parentId: opts.parentId ?? null,
      group: opts.group ?? null,
      eta,
      expires: opts.expiresMs === undefined ? null : now + opts.expiresMs,
      timeLimitMs: opts.timeLimitMs ?? taskOpts.timeLimitMs ?? null,
      hardTimeLimitMs: taskOpts.hardTimeLimitMs ?? null,
      priority: priority ?? null,
      origin: this.hostname,
      traceparent: null,
      extra: opts.headers ?? {},
      sentAt: now,
    };
    return { msg, delayMs, priority };
  }

  encode(msg: TaskMessage, taskOpts: TaskOptions): OutgoingMessage {
    const serializer = taskOpts.serializer === undefined ? this.serializer : serializerFor(taskOpts.serializer);
    const gzip = (taskOpts.compression ?? this.opts.compression ?? 'none') === 'gzip';
    return this.codec.encode(msg, serializer, gzip, this.maxDecodedBytes);
  }

  /**
   * Publish one task. When the broker is connected and the queue declared (every call after the
   * first), this is one `then` on the publish rather than an async function and its awaits.
   */
  private send<R>(name: string, args: readonly unknown[], opts: ApplyOptions<Kwargs>, taskOpts: TaskOptions): Promise<AsyncResult<R>> {
    let built: ReturnType<App['buildMessage']>;
    let queue: string;
    try {
      built = this.buildMessage(name, args, opts, taskOpts);
      queue = this.queueFor(name, opts, taskOpts);
      const broker = this.brokerValue;
      if (broker !== undefined && this.declared.has(queue) && !tracingActive()) {
        const { msg, delayMs } = built;
        return broker
          .publish(queue, this.encode(msg, taskOpts), publishOpts(delayMs, built.priority, opts.transaction))
          .then(() => this.sent<R>(msg, queue, delayMs, opts.transaction));
      }
    } catch (err) {
      return Promise.reject(err as Error);
    }
    return this.sendFirst(built, queue, taskOpts, opts.transaction);
  }

  /** `send` before the broker is connected or the queue declared, or while tracing. */
  private async sendFirst<R>(
    built: ReturnType<App['buildMessage']>,
    queue: string,
    taskOpts: TaskOptions,
    transaction: TransactionClient | undefined,
  ): Promise<AsyncResult<R>> {
    const { msg, delayMs, priority } = built;
    const broker = this.brokerValue ?? (await this.getBroker());
    if (!this.declared.has(queue)) await this.declare(broker, queue);
    if (tracingActive()) {
      await this.publishTraced(broker, queue, msg, taskOpts, publishOpts(delayMs, priority, transaction));
    } else {
      await broker.publish(queue, this.encode(msg, taskOpts), publishOpts(delayMs, priority, transaction));
    }
    return this.sent<R>(msg, queue, delayMs, transaction);
  }

  /** `task:sent` fires for sends that exist now: not for one inside a transaction (it may roll back). */
  private sent<R>(msg: TaskMessage, queue: string, delayMs: number, transaction: TransactionClient | undefined): AsyncResult<R> {
    if (transaction === undefined && this.events.has('task:sent')) {
      this.events.emit('task:sent', { taskId: msg.id, name: msg.task, queue, retries: 0, deliveries: 0, delayMs });
    }
    return new AsyncResult<R>(msg.id, this);
  }

  /** Publish inside a PRODUCER span whose context travels in the message's `traceparent`. */
  private async publishTraced(
    broker: GuardedBroker,
    queue: string,
    msg: TaskMessage,
    taskOpts: TaskOptions,
    opts: PublishOptions,
  ): Promise<void> {
    const span = startPublishSpan(queue, msg.task, msg.id, broker.name);
    msg.traceparent = formatTraceparent(span);
    try {
      await broker.publish(queue, this.encode(msg, taskOpts), opts);
      endSpan(span);
    } catch (err) {
      endSpan(span, serializeError(err));
      throw err;
    }
  }

  private async sendBulk<R>(
    name: string,
    argsList: readonly (readonly unknown[])[],
    opts: Omit<ApplyOptions<Kwargs>, 'taskId'>,
    taskOpts: TaskOptions,
  ): Promise<AsyncResult<R>[]> {
    if (!Array.isArray(argsList)) throw new TypeError(`task ${name}: applyAsyncBulk needs an array of argument arrays`);
    const queue = this.queueFor(name, opts, taskOpts);
    const built = argsList.map((args) => this.buildMessage(name, args, opts, taskOpts));
    const broker = this.brokerValue ?? (await this.getBroker());
    if (!this.declared.has(queue)) await this.declare(broker, queue);
    const first = built[0];
    if (first === undefined) return [];
    const span = tracingActive() ? startPublishSpan(queue, name, first.msg.id, broker.name) : undefined;
    if (span !== undefined) {
      span.setAttribute('messaging.batch.message_count', built.length);
      const traceparent = formatTraceparent(span);
      for (const b of built) b.msg.traceparent = traceparent;
    }
    try {
      await broker.publishBatch(
        queue,
        built.map((b) => this.encode(b.msg, taskOpts)),
        publishOpts(first.delayMs, first.priority, opts.transaction),
      );
      if (span !== undefined) endSpan(span);
    } catch (err) {
      if (span !== undefined) endSpan(span, serializeError(err));
      throw err;
    }
    if (opts.transaction === undefined && this.events.has('task:sent')) {
      for (const b of built) {
        this.events.emit('task:sent', { taskId: b.msg.id, name, queue, retries: 0, deliveries: 0, delayMs: b.delayMs });
      }
    }
    return built.map((b) => new AsyncResult<R>(b.msg.id, this));
  }

  /** @internal ResultSource */
  async waitResult(taskId: string, opts: { timeoutMs: number; signal?: AbortSignal }): Promise<ResultMeta> {
    const backend = await this.requireBackend();
    return backend.wait(taskId, opts);
  }

  /** @internal ResultSource */
  async readResult(taskId: string): Promise<ResultMeta | undefined> {
    const backend = await this.requireBackend();
    return backend.get(taskId);
  }

  /**
   * Revoke: the id is kept in the backend's revocation set for the result TTL (workers started
   * later see it), the state becomes REVOKED unless it already succeeded, and running workers are
   * told over the broker's broadcast.
   */
  async revokeTask(taskId: string): Promise<void> {
    const backend = await this.getResultBackend();
    if (backend?.revoke !== undefined) await backend.revoke(taskId, this.resultExpiresMs);
    if (backend !== undefined) {
      const current = await backend.get(taskId);
      if (current === undefined || (current.state !== TaskState.SUCCESS && current.state !== TaskState.FAILURE)) {
        await backend.set(taskId, { state: TaskState.REVOKED, dateDone: this.clock.now() }, { ttlMs: this.resultExpiresMs });
      }
    }
    const broker = await this.getBroker();
    if (broker.broadcast !== undefined) {
      const msg: ControlMessage = { type: 'revoke', taskId };
      await broker.broadcast.publish(CONTROL_CHANNEL, new TextEncoder().encode(JSON.stringify(msg)));
    } else if (backend?.revoke === undefined) {
      throw new CeleriacError(ErrorCode.UNSUPPORTED, 'revoke needs a broker with broadcast or a result backend with revocations');
    }
  }

  private async requireBackend(): Promise<ResultBackend> {
    const backend = this.backendValue ?? (await this.getResultBackend());
    if (backend === undefined) {
      throw new CeleriacError(
        ErrorCode.NO_RESULT_BACKEND,
        'this app has no result backend: pass createApp({ resultBackend: "redis://…" }) to read results',
      );
    }
    return backend;
  }

  /**
   * Close every worker of this app (gracefully, `worker.close(opts)`), then the broker and result
   * backend. Idempotent. Bounded when a server does not answer: the workers within `timeoutMs +
   * CLOSE_GRACE_MS`, the connections within another `CLOSE_GRACE_MS`.
   */
  close(opts: CloseOptions = {}): Promise<void> {
    if (this.closing === undefined) {
      this.closing = (async () => {
        await Promise.allSettled([...this.beats].map((b) => b.close()));
        await Promise.allSettled([...this.workers].map((w) => w.close(opts)));
        const broker = this.brokerPromise === undefined ? undefined : this.brokerValue;
        const backend = this.backendPromise === undefined ? undefined : this.backendValue;
        // A connect still under way is not waited for past the grace either.
        const closing = Promise.allSettled([
          broker?.close() ?? this.brokerPromise?.then((b) => b.close()),
          backend?.close() ?? this.backendPromise?.then((b) => b?.close()),
        ]);
        if (!(await settleWithin(closing, CLOSE_GRACE_MS))) {
          this.logger.warn(`broker or result backend did not close within ${CLOSE_GRACE_MS} ms; left behind`);
        }
      })();
    }
    return this.closing;
  }
}

export { CONTROL_CHANNEL };

function publishOpts(delayMs: number, priority: number | undefined, transaction?: TransactionClient): PublishOptions {
  const o: PublishOptions = {};
  if (delayMs > 0) o.delayMs = delayMs;
  if (priority !== undefined) o.priority = priority;
  if (transaction !== undefined) o.transaction = transaction;
  return o;
}

function noKwargs(name: string): TypeError {
  return new TypeError(`task ${name} takes no keyword arguments: register it with { kwargs: true } and take them as the handler's last parameter`);
}

function serializeForEvent(err: unknown): { name: string; message: string } {
  return err instanceof Error ? { name: err.name, message: err.message } : { name: 'Error', message: String(err) };
}

function validateTaskOptions(name: string, o: TaskOptions): void {
  const nonNeg = (k: keyof TaskOptions) => {
    const v = o[k];
    if (v !== undefined && (typeof v !== 'number' || !Number.isFinite(v) || v < 0)) {
      throw new RangeError(`task ${name}: ${k} must be a finite number >= 0, got ${String(v)}`);
    }
  };
  nonNeg('maxRetries');
  nonNeg('retryBackoffMs');
  nonNeg('retryBackoffMaxMs');
  nonNeg('timeLimitMs');
  nonNeg('hardTimeLimitMs');
  if (o.priority !== undefined && (!Number.isInteger(o.priority) || o.priority < 0 || o.priority > 9)) {
    throw new RangeError(`task ${name}: priority must be an integer from 0 to 9`);
  }
  if (o.kwargs !== undefined && typeof o.kwargs !== 'boolean') throw new TypeError(`task ${name}: kwargs must be true or false`);
  if (o.rateLimit !== undefined && !/^\d+(\.\d+)?\/[smh]$/.test(o.rateLimit)) {
    throw new RangeError(`task ${name}: rateLimit must look like '100/s', '10/m' or '5/h'`);
  }
}

/** Create an app. Nothing connects until the first publish or `worker.start()`. */
export function createApp(opts: AppOptions): App {
  return new App(opts);
}
