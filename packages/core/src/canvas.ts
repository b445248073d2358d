import type { ApplyOptions, App, Kwargs } from './app.js';
import { AsyncResult, unwrap } from './async-result.js';
import { CeleriacError, ErrorCode, type SerializedError } from './errors.js';
import { newId } from './ids.js';
import { isEmpty, type Embed, type SignatureData, type TaskMessage } from './message.js';
import { TaskState, type ResultBackend, type ResultMeta } from './result-backend.js';

/** Options a signature carries in a message link: JSON-safe, a subset of `ApplyOptions`. */
export interface LinkOptions {
  taskId?: string;
  queue?: string;
  priority?: number;
  countdownMs?: number;
  expiresMs?: number;
  timeLimitMs?: number;
  /** Set on a chord callback: how many members the group has. */
  chordSize?: number;
}

const NO_KWARGS: Readonly<Kwargs> = Object.freeze({});

/**
 * A described call: task name, arguments, keyword arguments and options. `immutable` signatures ignore
 * the parent's result; mutable ones get it prepended to their positional arguments when used as a chain
 * step or callback (their kwargs stay as they are). `K` is the type of the kwargs the task takes:
 * `never` for a task registered without `kwargs: true`; any plain object for a signature made by name.
 */
export class Signature<R = unknown, K extends object = Kwargs> {
  /** @internal phantom field carrying the result type */
  declare readonly __result?: R;

  constructor(
    readonly app: App,
    readonly task: string,
    readonly args: readonly unknown[],
    readonly options: LinkOptions = {},
    readonly immutable = false,
    readonly links: { callbacks?: Signature[]; errbacks?: Signature[] } = {},
    /** Keyword arguments (Celery's `kwargs`), sent with every message made from this signature. */
    readonly kwargs: Readonly<Kwargs> = NO_KWARGS,
  ) {}

  /** A copy with more options. */
  set(options: LinkOptions): Signature<R, K> {
    return new Signature<R, K>(this.app, this.task, this.args, { ...this.options, ...options }, this.immutable, this.links, this.kwargs);
  }

  /**
   * A copy with these keyword arguments (they replace any it had). A plain object (TypeError
   * otherwise); for a task registered in this app without `kwargs: true`, non-empty kwargs are a
   * TypeError (and do not compile).
   */
  withKwargs(kwargs: K): Signature<R, K> {
    const kw: unknown = kwargs;
    if (kw === null || typeof kw !== 'object' || Array.isArray(kw)) {
      throw new TypeError(`signature of ${this.task}: kwargs must be a plain object of named arguments`);
    }
    const known = this.app.tasks.get(this.task);
    if (known !== undefined && known.options.kwargs !== true && !isEmpty(kw)) {
      throw new TypeError(`task ${this.task} takes no keyword arguments: register it with { kwargs: true } and take them as the handler's last parameter`);
    }
    return new Signature<R, K>(this.app, this.task, this.args, this.options, this.immutable, this.links, { ...(kw as Kwargs) });
  }

  /** Run `callback` with this task's result when it succeeds (Celery's `link`). */
  link(callback: Step): Signature<R, K> {
    return new Signature<R, K>(
      this.app, this.task, this.args, this.options, this.immutable,
      { ...this.links, callbacks: [...(this.links.callbacks ?? []), callback as Signature] },
      this.kwargs,
    );
  }

  /** Run `errback` with `(taskId, error)` prepended when this task finally fails (Celery's `link_error`). */
  linkError(errback: Step): Signature<R, K> {
    return new Signature<R, K>(
      this.app, this.task, this.args, this.options, this.immutable,
      { ...this.links, errbacks: [...(this.links.errbacks ?? []), errback as Signature] },
      this.kwargs,
    );
  }

  /** Send it (with its kwargs). */
  applyAsync(opts: ApplyOptions = {}): Promise<AsyncResult<R>> {
    const embed: Embed = {};
    if (this.links.callbacks !== undefined) embed.callbacks = this.links.callbacks.map(toData);
    if (this.links.errbacks !== undefined) embed.errbacks = this.links.errbacks.map(toData);
    return this.app.sendTask<R>(this.task, this.args, { ...linkToApply(this.options), ...kwargsOf(this), embed, ...opts });
  }

  /** With a task id assigned (chains and groups need their ids up front). */
  withId(): Signature<R, K> {
    return this.options.taskId === undefined ? this.set({ taskId: newId() }) : this;
  }
}

/**
 * A signature that still lacks its first argument: only usable as a chain step or a callback (it has
 * no `applyAsync`). At run time it is a `Signature`.
 */
export type PartialSignature<R = unknown, K extends object = Kwargs> = Omit<Signature<R, K>, 'applyAsync' | 'withKwargs'> & {
  /** A copy with these keyword arguments (see {@link Signature.withKwargs}). */
  withKwargs(kwargs: K): PartialSignature<R, K>;
  readonly __partial?: true;
};

/** Anything that can follow a step: a full or a partial signature. */
export type Step<R = unknown> = Signature<R> | PartialSignature<R>;

/** `{ kwargs }` for a signature that has some, else `{}`: spread into the options of a send. */
function kwargsOf(sig: { readonly kwargs: Readonly<Kwargs> }): { kwargs?: Kwargs } {
  return isEmpty(sig.kwargs) ? {} : { kwargs: sig.kwargs as Kwargs };
}

export function toData(sig: Signature): SignatureData {
  const d: SignatureData = { task: sig.task, args: [...sig.args], options: { ...sig.options } as Record<string, unknown> };
  if (!isEmpty(sig.kwargs)) d.kwargs = { ...sig.kwargs };
  if (sig.immutable) d.immutable = true;
  if (sig.links.callbacks !== undefined || sig.links.errbacks !== undefined) {
    d.options = {
      ...d.options,
      link: (sig.links.callbacks ?? []).map(toData),
      linkError: (sig.links.errbacks ?? []).map(toData),
    };
  }
  return d;
}

function linkToApply(o: LinkOptions | Record<string, unknown>): ApplyOptions {
  const out: ApplyOptions = {};
  const src = o as Record<string, unknown>;
  if (typeof src['taskId'] === 'string') out.taskId = src['taskId'];
  if (typeof src['queue'] === 'string') out.queue = src['queue'];
  if (typeof src['priority'] === 'number') out.priority = src['priority'];
  if (typeof src['countdownMs'] === 'number') out.countdownMs = src['countdownMs'];
  if (typeof src['expiresMs'] === 'number') out.expiresMs = src['expiresMs'];
  if (typeof src['timeLimitMs'] === 'number') out.timeLimitMs = src['timeLimitMs'];
  return out;
}

type ResultOf<S> = S extends { readonly __result?: infer R } ? R : never;
type LastOf<T extends readonly unknown[]> = T extends readonly [...unknown[], infer L] ? L : never;

/** `chain(a, b, c)`: each result becomes the first argument of the next (unless immutable). */
export class Chain<R> {
  constructor(readonly steps: readonly Signature[]) {
    if (steps.length === 0) throw new TypeError('chain needs at least one signature');
  }

  /** Send the first step; the rest travel in its message. Resolves to the last step's result handle. */
  async applyAsync(opts: ApplyOptions = {}): Promise<AsyncResult<R>> {
    const steps = this.steps.map((s) => s.withId());
    const [first, ...rest] = steps as [Signature, ...Signature[]];
    const last = steps[steps.length - 1]!;
    const embed: Embed = { chain: rest.reverse().map(toData) };
    if (first.links.callbacks !== undefined) embed.callbacks = first.links.callbacks.map(toData);
    if (first.links.errbacks !== undefined) embed.errbacks = first.links.errbacks.map(toData);
    await first.app.sendTask(first.task, first.args, { ...linkToApply(first.options), ...kwargsOf(first), ...opts, embed });
    return new AsyncResult<R>(last.options.taskId!, first.app);
  }
}

export function chain<S extends readonly [Signature, ...Step[]]>(...steps: S): Chain<ResultOf<LastOf<S>>> {
  return new Chain(steps as unknown as readonly Signature[]);
}

/** Results of a group, in member order. Restore one by id with `GroupResult.restore(app, id)`. */
export class GroupResult<R = unknown> {
  constructor(
    readonly id: string,
    readonly results: readonly AsyncResult<R>[],
  ) {}

  /** Every member's value, in order; rejects with the first failure (in member order). */
  async get(opts: { timeoutMs?: number; signal?: AbortSignal } = {}): Promise<R[]> {
    return Promise.all(this.results.map((r) => r.get(opts)));
  }

  /** How many members have finished (SUCCESS, FAILURE or REVOKED). */
  async completedCount(): Promise<number> {
    const states = await Promise.all(this.results.map((r) => r.state()));
    return states.filter((s) => s === TaskState.SUCCESS || s === TaskState.FAILURE || s === TaskState.REVOKED).length;
  }

  /** Rebuild a group's handle from its id (its member ids are kept in the result backend). */
  static async restore<R = unknown>(app: App, id: string): Promise<GroupResult<R> | undefined> {
    const backend = await app.getResultBackend();
    if (backend === undefined) throw new CeleriacError(ErrorCode.NO_RESULT_BACKEND, 'restoring a group needs a result backend');
    const meta = await backend.get(groupKey(id));
    if (meta?.children === undefined) return undefined;
    return new GroupResult<R>(id, meta.children.map((c) => app.asyncResult<R>(c)));
  }
}

export function groupKey(groupId: string): string {
  return `group:${groupId}`;
}

/** `group(a, b, c)`: run in parallel; results in order. */
export class Group<R> {
  constructor(readonly members: readonly Signature<R>[]) {}

  async applyAsync(opts: ApplyOptions & { chord?: SignatureData } = {}): Promise<GroupResult<R>> {
    const app = this.members[0]?.app;
    const groupId = opts.group ?? newId();
    if (app === undefined) return new GroupResult<R>(groupId, []);
    const members = this.members.map((m) => m.withId());
    const ids = members.map((m) => m.options.taskId!);
    const backend = await app.getResultBackend();
    if (backend !== undefined) {
      await backend.set(groupKey(groupId), { state: TaskState.SUCCESS, name: 'group', children: ids }, { ttlMs: app.resultExpiresMs });
    } else if (opts.chord !== undefined) {
      throw new CeleriacError(ErrorCode.NO_RESULT_BACKEND, 'a chord needs a result backend (its counter lives there)');
    }
    const { chord: chordLink, ...applyOpts } = opts;
    await Promise.all(
      members.map((m) => {
        const embed: Embed = {};
        if (chordLink !== undefined) embed.chord = chordLink;
        if (m.links.callbacks !== undefined) embed.callbacks = m.links.callbacks.map(toData);
        if (m.links.errbacks !== undefined) embed.errbacks = m.links.errbacks.map(toData);
        return app.sendTask(m.task, m.args, { ...linkToApply(m.options), ...kwargsOf(m), ...applyOpts, group: groupId, embed });
      }),
    );
    return new GroupResult<R>(groupId, ids.map((id) => app.asyncResult<R>(id)));
  }
}

export function group<R>(...members: readonly Signature<R>[] | [readonly Signature<R>[]]): Group<R> {
  const list = (members.length === 1 && Array.isArray(members[0]) ? members[0] : members) as readonly Signature<R>[];
  return new Group<R>(list);
}

/** `chord(group, callback)`: the callback gets every member's result, once, when all succeeded. */
export class Chord<R> {
  constructor(
    readonly header: Group<unknown>,
    readonly callback: Signature<R>,
  ) {}

  async applyAsync(opts: ApplyOptions = {}): Promise<AsyncResult<R>> {
    const cb = this.callback.withId().set({ chordSize: this.header.members.length });
    const app = cb.app;
    if (this.header.members.length === 0) {
      return app.sendTask<R>(cb.task, cb.immutable ? cb.args : [[], ...cb.args], { ...linkToApply(cb.options), ...kwargsOf(cb) });
    }
    await this.header.applyAsync({ ...opts, chord: toData(cb) });
    return new AsyncResult<R>(cb.options.taskId!, app);
  }
}

export function chord<R>(header: Group<unknown> | readonly Signature[], callback: Step<R>): Chord<R> {
  return new Chord<R>(header instanceof Group ? header : new Group(header), callback as Signature<R>);
}

/**
 * What a worker does after a task settles: chain steps, callbacks, chord counting, errbacks.
 * Runs before the delivery is acked, so a crash repeats it (at least once) rather than loses it.
 */
export class CanvasRunner {
  constructor(
    private readonly app: App,
    private readonly backend: ResultBackend | undefined,
  ) {}

  static hasLinks(e: Embed): boolean {
    return (
      (e.chain !== undefined && e.chain !== null && e.chain.length > 0) ||
      (e.callbacks !== undefined && e.callbacks !== null && e.callbacks.length > 0) ||
      (e.errbacks !== undefined && e.errbacks !== null && e.errbacks.length > 0) ||
      (e.chord !== undefined && e.chord !== null)
    );
  }

  async onSuccess(msg: TaskMessage, result: unknown): Promise<void> {
    const e = msg.embed;
    const follow = { parentId: msg.id, rootId: msg.rootId ?? msg.id };
    const chainSteps = e.chain ?? [];
    if (chainSteps.length > 0) {
      const next = chainSteps[chainSteps.length - 1]!;
      await this.send(next, result, { ...follow, embed: { chain: chainSteps.slice(0, -1) } });
    }
    for (const cb of e.callbacks ?? []) await this.send(cb, result, follow);
    if (e.chord !== undefined && e.chord !== null && msg.group !== null) await this.chordStep(msg.group, e.chord);
  }

  async onFailure(msg: TaskMessage, error: SerializedError): Promise<void> {
    const e = msg.embed;
    for (const eb of e.errbacks ?? []) {
      await this.sendWith(eb, eb.immutable === true ? eb.args : [msg.id, error, ...eb.args], { parentId: msg.id, rootId: msg.rootId ?? msg.id });
    }
    // The rest of a chain never runs; its results fail with the same error so waiting on them ends.
    for (const step of e.chain ?? []) await this.fail(step, error);
    if (e.chord !== undefined && e.chord !== null && msg.group !== null) {
      const marker = await this.backend?.incr?.(`chord:${msg.group}:fired`, 1, { ttlMs: this.app.resultExpiresMs });
      if (marker === 1) await this.fail(e.chord, { ...error, message: `chord member ${msg.id} failed: ${error.message}` });
    }
  }

  private async fail(sig: SignatureData, error: SerializedError): Promise<void> {
    const id = sig.options?.['taskId'];
    if (typeof id !== 'string' || this.backend === undefined) return;
    await this.backend.set(id, { state: TaskState.FAILURE, error, name: sig.task, dateDone: this.app.clock.now() }, { ttlMs: this.app.resultExpiresMs });
  }

  private send(sig: SignatureData, parentResult: unknown, extra: Partial<ApplyOptions>): Promise<unknown> {
    return this.sendWith(sig, sig.immutable === true ? sig.args : [parentResult, ...sig.args], extra);
  }

  private async sendWith(sig: SignatureData, args: readonly unknown[], extra: Partial<ApplyOptions>): Promise<unknown> {
    const opts = sig.options ?? {};
    const embed: Embed = { ...(extra.embed ?? {}) };
    if (Array.isArray(opts['link'])) embed.callbacks = opts['link'] as SignatureData[];
    if (Array.isArray(opts['linkError'])) embed.errbacks = opts['linkError'] as SignatureData[];
    // A step's kwargs travel on as they are (the parent's result goes to the positional arguments).
    const kwargs = sig.kwargs !== undefined && !isEmpty(sig.kwargs) ? { kwargs: sig.kwargs } : {};
    return this.app.sendTask(sig.task, args, { ...linkToApply(opts), ...extra, ...kwargs, embed });
  }

  /**
   * Count a finished member with the backend's atomic counter. When the count reaches the group's
   * size, the members' results are read; the callback is sent only if all succeeded, and only by
   * the one caller that wins the `fired` marker — so a redelivered member never fires it twice.
   */
  private async chordStep(groupId: string, cb: SignatureData): Promise<void> {
    const backend = this.backend;
    if (backend?.incr === undefined) throw new CeleriacError(ErrorCode.UNSUPPORTED, 'a chord needs a result backend with counters');
    const size = Number(cb.options?.['chordSize'] ?? 0);
    const ttlMs = this.app.resultExpiresMs;
    const n = await backend.incr(`chord:${groupId}`, 1, { ttlMs });
    if (n < size) return;
    const meta = await backend.get(groupKey(groupId));
    const ids = meta?.children ?? [];
    const metas = await Promise.all(ids.map((id) => backend.get(id)));
    if (!metas.every((m): m is ResultMeta => m?.state === TaskState.SUCCESS)) return;
    if ((await backend.incr(`chord:${groupId}:fired`, 1, { ttlMs })) !== 1) return;
    const results = metas.map((m, i) => unwrap(ids[i]!, m));
    try {
      await this.send(cb, results, {});
    } catch (err) {
      await backend.incr(`chord:${groupId}:fired`, -1, { ttlMs }); // let a redelivery try again
      throw err;
    }
  }
}

