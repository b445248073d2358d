import { Cron } from 'croner';
import type { ApplyOptions, Kwargs } from './app.js';
import type { Schedule } from './beat.js';
import type { Clock } from './clock.js';
import { CeleriacError, ErrorCode } from './errors.js';
import type { Logger } from './logger.js';
import type { ResultBackend, StoredSchedule, StoredScheduleList } from './result-backend.js';

/**
 * A runtime schedule (`app.schedules.upsert`): beat's {@link Schedule} plus a window and a run limit.
 * Stored in the result backend, so every beat of the fleet sees it and it survives restarts.
 */
export interface RuntimeSchedule extends Schedule {
  /**
   * No tick before this time (a `Date`, epoch ms, or an ISO 8601 string). With `everyMs` the ticks are
   * `startAt + k × everyMs`; with `cron`, the cron's times from `startAt` on.
   * @default none: `everyMs` ticks start `everyMs` after the upsert, cron ticks at the next cron time
   */
  startAt?: Date | number | string;
  /** No tick after this time (a `Date`, epoch ms, or an ISO 8601 string). @default none */
  endAt?: Date | number | string;
  /**
   * Ticks sent at most, in all. The run count is kept when the definition changes, so a changed limit
   * applies to the runs already made (lowering it below the count ends the schedule). @default none
   */
  limit?: number;
}

/** The options a tick is sent with (`taskId`, `countdownMs` and `eta` belong to the tick). */
export type ScheduleOptions = Omit<ApplyOptions<Kwargs>, 'taskId' | 'countdownMs' | 'eta'>;

/**
 * A runtime schedule as stored and listed: defaults filled in, times as epoch ms, object keys sorted.
 * Two upserts are "unchanged" when their normalized definitions are equal.
 */
export interface NormalizedSchedule {
  task: string;
  args: unknown[];
  cron?: string;
  /** Present with `cron` only; 'UTC' when none was given. Kept as written (no alias folding). */
  timezone?: string;
  everyMs?: number;
  /** Absent when empty. */
  options?: ScheduleOptions;
  catchUp: 'once' | 'all' | 'none';
  startAt?: number;
  endAt?: number;
  limit?: number;
}

/** One runtime schedule as `app.schedules.list()` returns it. Times are epoch ms. */
export interface ScheduleEntry {
  id: string;
  schedule: NormalizedSchedule;
  /** When the next tick is due; null when the schedule has finished (`limit` reached, past `endAt`). */
  nextRunAt: number | null;
  /** Ticks sent so far (claimed by a beat), across definition changes. */
  runCount: number;
  /** The time of the last tick sent, or null. */
  lastRunAt: number | null;
  createdAt: number;
  /** When the definition last changed (runs do not change it). */
  updatedAt: number;
}

/** What `upsert` did. */
export interface UpsertResult {
  /**
   * `created`: there was no schedule of this id. `changed`: the definition differed; the next run was
   * computed again from now, the run count kept. `unchanged`: the same normalized definition was stored
   * already; nothing was written, its next run and run count stand.
   */
  status: 'created' | 'changed' | 'unchanged';
  entry: ScheduleEntry;
}

/**
 * The record core writes into {@link StoredSchedule.data} (JSON). `v` is its format: a record of
 * another format is not read and never overwritten (list skips it, a beat ignores it, an upsert and a
 * get reject with ERR_SERIALIZATION; `remove` deletes it).
 */
export interface ScheduleRecord {
  v: 1;
  def: NormalizedSchedule;
  /** The next tick (epoch ms), or null when finished. Advanced only by a beat's claim or a changed definition. */
  next: number | null;
  /** Ticks claimed so far. */
  runs: number;
  last: number | null;
  created: number;
  updated: number;
}

/** The five operations of a result backend that has the `schedules` capability. */
export interface ScheduleStore {
  getSchedule(id: string): Promise<StoredSchedule | undefined>;
  listSchedules(): Promise<StoredScheduleList>;
  schedulesVersion(): Promise<number>;
  putSchedule(id: string, data: string, expectedRev: number): Promise<number>;
  deleteSchedule(id: string): Promise<boolean>;
}

/** The schedule operations of `backend`, or undefined when it does not declare and implement them all. */
export function scheduleStore(backend: ResultBackend | undefined): ScheduleStore | undefined {
  const b = backend;
  if (b?.capabilities.schedules !== true) return undefined;
  const { getSchedule, listSchedules, schedulesVersion, putSchedule, deleteSchedule } = b;
  if (getSchedule === undefined || listSchedules === undefined || schedulesVersion === undefined || putSchedule === undefined || deleteSchedule === undefined) {
    return undefined;
  }
  return {
    getSchedule: getSchedule.bind(b),
    listSchedules: listSchedules.bind(b),
    schedulesVersion: schedulesVersion.bind(b),
    putSchedule: putSchedule.bind(b),
    deleteSchedule: deleteSchedule.bind(b),
  };
}

const MAX_ID_CHARS = 200;
const FIELDS: ReadonlySet<string> = new Set(['task', 'args', 'cron', 'timezone', 'everyMs', 'options', 'catchUp', 'startAt', 'endAt', 'limit']);
const OPTION_FIELDS: ReadonlySet<string> = new Set([
  'expiresMs', 'priority', 'queue', 'headers', 'timeLimitMs', 'kwargs', 'embed', 'parentId', 'rootId', 'group',
]);
const TICK_FIELDS: ReadonlySet<string> = new Set(['taskId', 'countdownMs', 'eta']);

/** @throws TypeError for an id that is not a string of 1 to 200 characters. */
export function checkScheduleId(id: unknown): string {
  if (typeof id !== 'string' || id.length === 0 || id.length > MAX_ID_CHARS) {
    throw new TypeError(`a schedule id must be a string of 1 to ${MAX_ID_CHARS} characters, got ${describe(id)}`);
  }
  return id;
}

/**
 * Validate a runtime schedule and bring it to its normalized form.
 * @throws TypeError for a wrong type, an unknown field, a bad cron expression or a value JSON cannot
 *   hold; RangeError for an unknown time zone, `everyMs` not a whole number > 0, a bad time, `endAt`
 *   before `startAt`, `limit` not a whole number >= 1, or a cron expression with no future time.
 */
export function normalizeSchedule(id: string, input: RuntimeSchedule, now: number): NormalizedSchedule {
  const where = `schedule ${JSON.stringify(id)}`;
  if (typeof input !== 'object' || input === null || Array.isArray(input)) throw new TypeError(`${where}: expected an object, got ${describe(input)}`);
  for (const k of Object.keys(input)) {
    if (!FIELDS.has(k)) throw new TypeError(`${where}: unknown field "${k}" (known: ${[...FIELDS].join(', ')})`);
  }
  const s = input as unknown as Record<string, unknown>;
  if (typeof s['task'] !== 'string' || s['task'] === '') throw new TypeError(`${where}: task must be a non-empty task name, got ${describe(s['task'])}`);
  const out: NormalizedSchedule = { task: s['task'], args: [], catchUp: 'once' };
  if (s['args'] !== undefined) {
    if (!Array.isArray(s['args'])) throw new TypeError(`${where}: args must be an array, got ${describe(s['args'])}`);
    out.args = canonical(s['args'], `${where}: args`) as unknown[];
  }
  const hasCron = s['cron'] !== undefined;
  if (hasCron === (s['everyMs'] !== undefined)) throw new TypeError(`${where}: give exactly one of cron and everyMs`);
  if (hasCron) {
    if (typeof s['cron'] !== 'string') throw new TypeError(`${where}: cron must be a string, got ${describe(s['cron'])}`);
    const timezone = s['timezone'] ?? 'UTC';
    if (typeof timezone !== 'string' || timezone === '') throw new TypeError(`${where}: timezone must be an IANA time zone name, got ${describe(timezone)}`);
    checkTimeZone(where, timezone);
    out.cron = s['cron'].trim().replace(/\s+/g, ' ');
    out.timezone = timezone;
    const cron = compileCron(where, out.cron, timezone);
    if (cron.nextRun(new Date(now)) === null) throw new RangeError(`${where}: the cron expression "${out.cron}" has no time after now`);
  } else {
    if (s['timezone'] !== undefined) throw new TypeError(`${where}: timezone applies to cron only, not to everyMs`);
    const every = s['everyMs'];
    if (typeof every !== 'number' || !Number.isSafeInteger(every) || every <= 0) {
      throw new RangeError(`${where}: everyMs must be a whole number of milliseconds > 0, got ${describe(every)}`);
    }
    out.everyMs = every;
  }
  if (s['options'] !== undefined) {
    const o = s['options'];
    if (typeof o !== 'object' || o === null || Array.isArray(o)) throw new TypeError(`${where}: options must be an object, got ${describe(o)}`);
    for (const k of Object.keys(o)) {
      if (TICK_FIELDS.has(k)) throw new TypeError(`${where}: options.${k} is not allowed: each tick has its own task id and time`);
      if (!OPTION_FIELDS.has(k)) throw new TypeError(`${where}: unknown option "${k}" (known: ${[...OPTION_FIELDS].join(', ')})`);
    }
    checkOptions(where, o as Record<string, unknown>);
    const opts = canonical(o, `${where}: options`) as ScheduleOptions;
    if (Object.keys(opts).length > 0) out.options = opts;
  }
  const catchUp = s['catchUp'] ?? 'once';
  if (catchUp !== 'once' && catchUp !== 'all' && catchUp !== 'none') throw new TypeError(`${where}: catchUp must be 'once', 'all' or 'none', got ${describe(catchUp)}`);
  out.catchUp = catchUp;
  const startAt = timeOf(where, 'startAt', s['startAt']);
  const endAt = timeOf(where, 'endAt', s['endAt']);
  if (startAt !== undefined) out.startAt = startAt;
  if (endAt !== undefined) out.endAt = endAt;
  if (startAt !== undefined && endAt !== undefined && endAt < startAt) throw new RangeError(`${where}: endAt is before startAt`);
  if (s['limit'] !== undefined) {
    const limit = s['limit'];
    if (typeof limit !== 'number' || !Number.isSafeInteger(limit) || limit < 1) throw new RangeError(`${where}: limit must be a whole number >= 1, got ${describe(limit)}`);
    out.limit = limit;
  }
  return canonical(out, where) as NormalizedSchedule;
}

function checkTimeZone(where: string, timezone: string): void {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: timezone });
  } catch (err) {
    throw new RangeError(`${where}: unknown time zone "${timezone}" (expected an IANA name such as "Europe/Stockholm")`, { cause: err });
  }
}

function compileCron(where: string, expr: string, timezone: string): Cron {
  try {
    return new Cron(expr, { paused: true, timezone });
  } catch (err) {
    throw new TypeError(`${where}: invalid cron expression "${expr}": ${(err as Error).message}`, { cause: err });
  }
}

function checkOptions(where: string, o: Record<string, unknown>): void {
  const p = o['priority'];
  if (p !== undefined && (typeof p !== 'number' || !Number.isInteger(p) || p < 0 || p > 9)) throw new RangeError(`${where}: options.priority must be an integer from 0 to 9`);
  for (const k of ['expiresMs', 'timeLimitMs']) {
    const v = o[k];
    if (v !== undefined && (typeof v !== 'number' || !Number.isFinite(v) || v < 0)) throw new RangeError(`${where}: options.${k} must be a finite number >= 0`);
  }
  for (const k of ['queue', 'parentId', 'rootId', 'group']) {
    const v = o[k];
    if (v !== undefined && (typeof v !== 'string' || v === '')) throw new TypeError(`${where}: options.${k} must be a non-empty string`);
  }
  for (const k of ['headers', 'kwargs', 'embed']) {
    const v = o[k];
    if (v !== undefined && (typeof v !== 'object' || v === null || Array.isArray(v))) throw new TypeError(`${where}: options.${k} must be an object`);
  }
}

function timeOf(where: string, name: string, v: unknown): number | undefined {
  if (v === undefined) return undefined;
  const ms = v instanceof Date ? v.getTime() : typeof v === 'number' ? v : typeof v === 'string' ? Date.parse(v) : Number.NaN;
  if (!Number.isFinite(ms)) throw new RangeError(`${where}: ${name} must be a Date, epoch milliseconds or an ISO 8601 time, got ${describe(v)}`);
  return Math.round(ms);
}

/**
 * A deep copy with object keys sorted and `undefined` properties dropped, so equal definitions have
 * equal JSON. Anything JSON would change or lose (a Date, a Map, a function, NaN, a cycle) is refused.
 */
function canonical(value: unknown, where: string, depth = 0): unknown {
  if (depth > 64) throw new TypeError(`${where}: nested too deeply (or circular)`);
  if (value === null || typeof value === 'string' || typeof value === 'boolean') return value;
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw new TypeError(`${where}: ${value} cannot be stored (JSON has no NaN or Infinity)`);
    return value;
  }
  if (Array.isArray(value)) {
    const out: unknown[] = [];
    for (let i = 0; i < value.length; i++) {
      if (value[i] === undefined) throw new TypeError(`${where}: element ${i} is undefined (JSON would store null)`);
      out.push(canonical(value[i], where, depth + 1));
    }
    return out;
  }
  if (typeof value === 'object') {
    const proto = Object.getPrototypeOf(value) as unknown;
    if (proto !== Object.prototype && proto !== null) {
      throw new TypeError(`${where}: only plain objects, arrays, strings, numbers, booleans and null can be stored, got ${describe(value)}`);
    }
    const out: Record<string, unknown> = {};
    for (const k of Object.keys(value).sort()) {
      const v = (value as Record<string, unknown>)[k];
      if (v !== undefined) out[k] = canonical(v, where, depth + 1);
    }
    return out;
  }
  throw new TypeError(`${where}: a ${typeof value} cannot be stored`);
}

function describe(v: unknown): string {
  if (v === null || v === undefined) return String(v);
  if (v instanceof Date) return `Date(${String(v)})`;
  if (typeof v === 'object') return (Object.getPrototypeOf(v) as { constructor?: { name?: string } } | null)?.constructor?.name ?? 'object';
  if (typeof v === 'function' || typeof v === 'symbol' || typeof v === 'bigint') return `a ${typeof v}`;
  return JSON.stringify(v);
}

/** The definition's identity: equal strings mean an unchanged definition. */
export function definitionKey(def: NormalizedSchedule): string {
  return JSON.stringify(def);
}

/** The text stored for a record. */
export function encodeRecord(r: ScheduleRecord): string {
  return JSON.stringify(r);
}

/** @throws CeleriacError ERR_SERIALIZATION for data this version of core did not write. */
export function decodeRecord(id: string, data: string): ScheduleRecord {
  let r: Partial<ScheduleRecord>;
  try {
    r = JSON.parse(data) as Partial<ScheduleRecord>;
  } catch (err) {
    throw new CeleriacError(ErrorCode.SERIALIZATION, `stored schedule ${JSON.stringify(id)} is not valid JSON`, { cause: err });
  }
  if (r.v !== 1 || typeof r.def !== 'object' || r.def === null || typeof r.runs !== 'number' || typeof r.created !== 'number') {
    throw new CeleriacError(ErrorCode.SERIALIZATION, `stored schedule ${JSON.stringify(id)} has a format this version does not read`);
  }
  return r as ScheduleRecord;
}

/** A record as `list()` and `get()` return it. */
export function entryOf(id: string, r: ScheduleRecord): ScheduleEntry {
  return { id, schedule: r.def, nextRunAt: r.next, runCount: r.runs, lastRunAt: r.last, createdAt: r.created, updatedAt: r.updated };
}

/** Ticks further back than this are never listed one by one (catchUp 'all' sends at most this many). */
export const MAX_CATCH_UP = 10_000;

/**
 * The times of one normalized schedule. Time zones and daylight-saving changes are croner's: a time
 * that does not exist on a spring-forward day runs at the first time after the gap, and a time that
 * happens twice on a fall-back day runs once (the first).
 */
export class ScheduleTiming {
  private readonly cron: Cron | undefined;
  private readonly every: number | undefined;

  constructor(readonly def: NormalizedSchedule) {
    this.cron = def.cron === undefined ? undefined : new Cron(def.cron, { paused: true, timezone: def.timezone ?? 'UTC' });
    this.every = def.everyMs;
  }

  /** The first tick strictly after `t` (and not before `startAt`), ignoring `endAt` and `limit`. */
  after(t: number): number | null {
    const start = this.def.startAt;
    if (this.every !== undefined) {
      if (start === undefined) return t + this.every;
      if (t < start) return start;
      return start + (Math.floor((t - start) / this.every) + 1) * this.every;
    }
    const from = start === undefined ? t : Math.max(t, start - 1);
    return this.cron!.nextRun(new Date(from))?.getTime() ?? null;
  }

  /**
   * The first tick of a schedule created (or changed) at `now`: `startAt` or the first `startAt + k ×
   * everyMs` not before now; `everyMs` after now without `startAt`; the next cron time after now.
   */
  first(now: number, runs: number): number | null {
    const start = this.def.startAt;
    const t = this.every !== undefined && start !== undefined ? this.after(now - 1) : this.after(now);
    return this.bound(t, runs);
  }

  /** `t`, or null when it is past `endAt` or `runs` reached `limit`. */
  bound(t: number | null, runs: number): number | null {
    if (t === null) return null;
    if (this.def.endAt !== undefined && t > this.def.endAt) return null;
    if (this.def.limit !== undefined && runs >= this.def.limit) return null;
    return t;
  }

  /**
   * What to do at `now` for a record whose next tick (`next`, not after now) is due: the ticks to send
   * and the next tick after them. One tick due and at most `lateMs` late is sent whatever `catchUp`
   * says; more ticks due, or one later than that, were missed (no beat led): `catchUp` decides — 'once'
   * the latest, 'all' every one (at most MAX_CATCH_UP, and no more than `limit` allows), 'none' none.
   */
  plan(next: number, runs: number, now: number, lateMs: number): { send: number[]; next: number | null } {
    const end = this.def.endAt ?? Number.POSITIVE_INFINITY;
    const room = this.def.limit === undefined ? Number.POSITIVE_INFINITY : Math.max(0, this.def.limit - runs);
    const upTo = Math.min(now, end);
    const due: number[] = [];
    let count = 0;
    let last = next;
    let following: number | null;
    if (this.every !== undefined) {
      count = next > upTo ? 0 : Math.floor((upTo - next) / this.every) + 1;
      last = next + Math.max(0, count - 1) * this.every;
      for (let i = 0; i < Math.min(count, MAX_CATCH_UP); i++) due.push(next + i * this.every);
      following = count === 0 ? next : last + this.every;
    } else {
      let t: number | null = next;
      while (t !== null && t <= upTo && count < MAX_CATCH_UP) {
        due.push(t);
        last = t;
        count++;
        t = this.after(t);
      }
      following = count === 0 ? next : this.after(Math.max(last, now));
    }
    let send: number[];
    if (count === 0) send = [];
    else if (count === 1 && now - next <= lateMs) send = [next];
    else if (this.def.catchUp === 'all') send = due;
    else if (this.def.catchUp === 'once') send = [last];
    else send = [];
    if (send.length > room) send = send.slice(0, room);
    return { send, next: this.bound(following, runs + send.length) };
  }
}

/** Where `Schedules` finds its backend, clock and logger (the app). */
export interface SchedulesHost {
  getResultBackend(): Promise<ResultBackend | undefined>;
  readonly clock: Clock;
  readonly logger: Logger;
}

/** Attempts of one upsert's compare-and-set before it gives up with ERR_CONFLICT. */
const MAX_ATTEMPTS = 100;

/**
 * `app.schedules`: runtime schedules kept in the result backend (DESIGN.md §10). Every beat of the
 * fleet picks a change up within its `syncMs`. Needs a result backend with the `schedules` capability
 * (memory, Redis, NATS KV); others are refused with ERR_UNSUPPORTED, and an app without a result
 * backend with ERR_NO_RESULT_BACKEND.
 *
 * Race-free by the store's compare-and-set: N processes upserting one id at once leave one schedule
 * (one of them reports `created`), and a beat claims a tick by advancing the record's next run and
 * run count in one compare-and-set before it sends it, so a tick is sent at most once fleet-wide.
 */
export class Schedules {
  constructor(private readonly host: SchedulesHost) {}

  private async store(): Promise<ScheduleStore> {
    const backend = await this.host.getResultBackend();
    if (backend === undefined) {
      throw new CeleriacError(ErrorCode.NO_RESULT_BACKEND, 'runtime schedules live in the result backend: pass createApp({ resultBackend: "redis://…" })');
    }
    const store = scheduleStore(backend);
    if (store === undefined) {
      throw new CeleriacError(ErrorCode.UNSUPPORTED, `the ${backend.name} result backend cannot store runtime schedules (memory, Redis and NATS KV can)`);
    }
    return store;
  }

  /**
   * Create the schedule `id`, or change it if its definition differs. An unchanged definition writes
   * nothing: its next run and run count stand (so every replica may upsert its schedules on boot). A
   * changed one takes its next run from now and keeps its run count.
   *
   * @throws (synchronously) TypeError or RangeError for a bad id or schedule — see {@link normalizeSchedule}.
   * @returns rejects with ERR_UNSUPPORTED / ERR_NO_RESULT_BACKEND as above, ERR_SERIALIZATION when
   *   the stored record has a format this version does not read (it is left alone: `remove` it to
   *   replace it), ERR_CONFLICT when 100 compare-and-sets in a row lost to other writers (retryable),
   *   or the backend's error.
   */
  upsert(id: string, schedule: RuntimeSchedule): Promise<UpsertResult> {
    checkScheduleId(id);
    const def = normalizeSchedule(id, schedule, this.host.clock.now());
    return this.doUpsert(id, def);
  }

  private async doUpsert(id: string, def: NormalizedSchedule): Promise<UpsertResult> {
    const store = await this.store();
    const key = definitionKey(def);
    const timing = new ScheduleTiming(def);
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      const current = await store.getSchedule(id);
      const now = this.host.clock.now();
      // A record this version cannot read (a newer core wrote it) is never overwritten: decodeRecord throws.
      const old = current === undefined ? undefined : decodeRecord(id, current.data);
      if (old !== undefined && definitionKey(old.def) === key) return { status: 'unchanged', entry: entryOf(id, old) };
      const runs = old?.runs ?? 0;
      const record: ScheduleRecord = {
        v: 1,
        def,
        next: timing.first(now, runs),
        runs,
        last: old?.last ?? null,
        created: old?.created ?? now,
        updated: now,
      };
      if ((await store.putSchedule(id, encodeRecord(record), current?.rev ?? 0)) > 0) {
        return { status: current === undefined ? 'created' : 'changed', entry: entryOf(id, record) };
      }
    }
    throw new CeleriacError(ErrorCode.CONFLICT, `schedule ${JSON.stringify(id)}: ${MAX_ATTEMPTS} writes in a row lost to other writers`, { retryable: true });
  }

  /**
   * Remove the schedule `id`; resolves true if there was one. A beat sends no tick of it after this
   * resolves (its claim of the next tick fails on the missing record).
   * @throws (synchronously) TypeError for a bad id.
   */
  remove(id: string): Promise<boolean> {
    checkScheduleId(id);
    return this.store().then((s) => s.deleteSchedule(id));
  }

  /** The schedule `id`, or undefined. @throws (synchronously) TypeError for a bad id. */
  get(id: string): Promise<ScheduleEntry | undefined> {
    checkScheduleId(id);
    return this.store()
      .then((s) => s.getSchedule(id))
      .then((stored) => (stored === undefined ? undefined : entryOf(id, decodeRecord(id, stored.data))));
  }

  /**
   * Every runtime schedule, sorted by id, with its next run and run count. A record this version cannot
   * read is left out (and logged as a warning).
   */
  async list(): Promise<ScheduleEntry[]> {
    const { schedules } = await (await this.store()).listSchedules();
    const out: ScheduleEntry[] = [];
    for (const s of schedules) {
      try {
        out.push(entryOf(s.id, decodeRecord(s.id, s.data)));
      } catch (err) {
        this.host.logger.warn('skipping a stored schedule this version cannot read', { id: s.id, error: String(err) });
      }
    }
    return out.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }
}
