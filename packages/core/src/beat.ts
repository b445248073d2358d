import { Cron } from 'croner';
import type { App, ApplyOptions, Kwargs } from './app.js';
import type { TimerHandle } from './clock.js';
import { CeleriacError, ErrorCode } from './errors.js';
import { newId } from './ids.js';
import { TaskState, type ResultBackend } from './result-backend.js';
import { ScheduleRunner } from './schedule-runner.js';
import { scheduleStore, type ScheduleStore } from './schedules.js';

/** One periodic task: a cron expression (with a time zone) or a fixed interval. */
export interface Schedule {
  task: string;
  args?: unknown[];
  /** Five or six fields (seconds first when six), e.g. '0 9 * * 1-5'. */
  cron?: string;
  /** IANA zone for `cron`, e.g. 'Europe/Stockholm'. @default UTC */
  timezone?: string;
  /** Fixed interval instead of a cron expression. */
  everyMs?: number;
  /** How each tick is sent; `kwargs` for a task that takes them (`kwargs: true`, or one Python defines). */
  options?: Omit<ApplyOptions<Kwargs>, 'taskId' | 'countdownMs' | 'eta'>;
  /**
   * After downtime: 'once' sends the latest missed tick once, 'all' sends every missed tick, 'none'
   * skips them. @default 'once'
   */
  catchUp?: 'once' | 'all' | 'none';
}

export interface BeatOptions {
  /**
   * Static schedules, fixed for this beat's lifetime (usually the app module's). Runtime schedules
   * (`app.schedules`) are sent beside them whenever the result backend can store them; a runtime
   * schedule with the name of a static one is ignored by this beat (their tick ids would collide).
   * @default {}
   */
  schedules?: Record<string, Schedule>;
  /** How long the leader's lease lasts; a dead leader is replaced after at most this. @default 10_000 */
  leaseMs?: number;
  /** Identity of this beat process in the lease. @default a random id */
  holder?: string;
  /**
   * How often the leader reads the result backend's schedules version, listing the runtime schedules
   * when it changed: an upsert or a remove is picked up within this (a remove stops ticks at once,
   * since a tick is claimed in the store before it is sent). A tick more than `syncMs + 1000` ms late
   * counts as missed (`catchUp` decides). @default 1_000
   */
  syncMs?: number;
}

interface Compiled {
  name: string;
  schedule: Schedule;
  cron: Cron | undefined;
  timer: TimerHandle | undefined;
}

const LEADER = 'beat:leader';
const LAST_TTL_MS = 366 * 86_400_000;

/**
 * Sends periodic tasks. Several beat processes may run: one holds the leader lease and sends; each
 * tick gets a task id derived from (schedule, tick time) and a once-only counter in the result
 * backend, so a tick sent during a lease handover is not sent twice. Runtime schedules
 * (`app.schedules`) are claimed in the store before they are sent (see `ScheduleRunner`).
 */
export class Beat {
  readonly holder: string;
  private readonly leaseMs: number;
  private readonly compiled: Compiled[];
  private readonly syncMs: number;
  private backend: ResultBackend | undefined;
  private store: ScheduleStore | undefined;
  private runner: ScheduleRunner | undefined;
  private leaseTimer: TimerHandle | undefined;
  private leader = false;
  private started: Promise<void> | undefined;
  private closing: Promise<void> | undefined;
  /** Ticks this process sent (for tests and logs). */
  readonly sent: { schedule: string; tickMs: number; taskId: string }[] = [];

  constructor(
    private readonly app: App,
    opts: BeatOptions,
  ) {
    this.holder = opts.holder ?? newId();
    this.leaseMs = opts.leaseMs ?? 10_000;
    if (!Number.isFinite(this.leaseMs) || this.leaseMs < 30) throw new RangeError('leaseMs must be at least 30');
    this.syncMs = opts.syncMs ?? 1_000;
    if (!Number.isFinite(this.syncMs) || this.syncMs < 1) throw new RangeError(`syncMs must be a number >= 1, got ${String(opts.syncMs)}`);
    const schedules = opts.schedules ?? {};
    if (typeof schedules !== 'object' || schedules === null) throw new TypeError('schedules must be an object of name → schedule');
    this.compiled = Object.entries(schedules).map(([name, schedule]) => {
      if ((schedule.cron === undefined) === (schedule.everyMs === undefined)) {
        throw new TypeError(`schedule ${name}: give exactly one of cron and everyMs`);
      }
      if (schedule.everyMs !== undefined && (!Number.isFinite(schedule.everyMs) || schedule.everyMs <= 0)) {
        throw new RangeError(`schedule ${name}: everyMs must be > 0`);
      }
      let cron: Cron | undefined;
      if (schedule.cron !== undefined) {
        try {
          cron = new Cron(schedule.cron, { paused: true, timezone: schedule.timezone ?? 'Etc/UTC' });
        } catch (err) {
          throw new TypeError(`schedule ${name}: invalid cron expression "${schedule.cron}": ${(err as Error).message}`, { cause: err });
        }
      }
      return { name, schedule, cron, timer: undefined };
    });
  }

  get isLeader(): boolean {
    return this.leader;
  }

  start(): Promise<void> {
    this.started ??= (async () => {
      this.backend = await this.app.getResultBackend();
      const b = this.backend;
      if (b?.acquireLease === undefined || b.renewLease === undefined || b.incr === undefined) {
        throw new CeleriacError(ErrorCode.UNSUPPORTED, 'beat needs a result backend with leases and counters (memory, Redis, NATS KV)');
      }
      this.store = scheduleStore(b);
      if (this.store === undefined && this.compiled.length === 0) {
        throw new CeleriacError(ErrorCode.UNSUPPORTED, `beat has no static schedules, and the ${b.name} result backend cannot store runtime schedules`);
      }
      await this.app.getBroker();
      await this.tickLease();
    })();
    return this.started;
  }

  /** Acquire or renew the lease; start or stop sending accordingly. */
  private async tickLease(): Promise<void> {
    if (this.closing !== undefined) return;
    const b = this.backend!;
    let held = false;
    try {
      held = this.leader
        ? await b.renewLease!(LEADER, this.holder, this.leaseMs)
        : await b.acquireLease!(LEADER, this.holder, this.leaseMs);
    } catch (err) {
      this.app.logger.warn('beat lease check failed', { error: String(err) });
    }
    if (this.closing !== undefined) return;
    if (held && !this.leader) {
      this.leader = true;
      this.app.logger.info('beat is now the leader', { holder: this.holder });
      for (const c of this.compiled) await this.arm(c);
      this.startRunner();
    } else if (!held && this.leader) {
      this.leader = false;
      this.app.logger.warn('beat lost the leader lease', { holder: this.holder });
      for (const c of this.compiled) this.disarm(c);
      this.runner?.stop();
      this.runner = undefined;
    }
    this.leaseTimer = this.app.clock.setTimeout(() => void this.tickLease(), Math.floor(this.leaseMs / 3));
  }

  /**
   * Start sending runtime schedules. Not awaited: listing many schedules must not hold up the lease
   * renewal (the runner logs its own failures and keeps trying every `syncMs`).
   */
  private startRunner(): void {
    if (this.store === undefined || this.closing !== undefined) return;
    const runner = new ScheduleRunner(this.app, this.store, {
      syncMs: this.syncMs,
      staticNames: new Set(this.compiled.map((c) => c.name)),
      onSent: (schedule, tickMs, taskId) => this.sent.push({ schedule, tickMs, taskId }),
    });
    this.runner = runner;
    void runner.start();
  }

  private next(c: Compiled, after: number): number | null {
    if (c.cron !== undefined) return c.cron.nextRun(new Date(after))?.getTime() ?? null;
    return after + c.schedule.everyMs!;
  }

  private lastKey(c: Compiled): string {
    return `beat:last:${c.name}`;
  }

  /** Schedule the next tick, catching up on ticks missed while no leader ran. */
  private async arm(c: Compiled): Promise<void> {
    const now = this.app.clock.now();
    const lastMeta = await this.backend!.get(this.lastKey(c));
    const last = typeof lastMeta?.progress === 'number' ? lastMeta.progress : undefined;
    if (last !== undefined) {
      const missed: number[] = [];
      for (let t = this.next(c, last); t !== null && t <= now && missed.length < 10_000; t = this.next(c, t)) missed.push(t);
      const mode = c.schedule.catchUp ?? 'once';
      const toSend = mode === 'all' ? missed : mode === 'once' ? missed.slice(-1) : [];
      for (const t of toSend) await this.send(c, t);
      if (missed.length > 0) await this.remember(c, missed[missed.length - 1]!);
    }
    this.schedule(c, Math.max(now, last ?? now));
  }

  private schedule(c: Compiled, from: number): void {
    const at = this.next(c, from);
    if (at === null || !this.leader) return;
    c.timer = this.app.clock.setTimeout(() => void this.fire(c, at), Math.max(0, at - this.app.clock.now()));
  }

  private disarm(c: Compiled): void {
    if (c.timer !== undefined) this.app.clock.clearTimeout(c.timer);
    c.timer = undefined;
  }

  private async fire(c: Compiled, tickMs: number): Promise<void> {
    c.timer = undefined;
    if (!this.leader || this.closing !== undefined) return;
    try {
      await this.send(c, tickMs);
      await this.remember(c, tickMs);
    } catch (err) {
      this.app.logger.error('beat could not send a tick', { schedule: c.name, error: String(err) });
    }
    this.schedule(c, tickMs);
  }

  private remember(c: Compiled, tickMs: number): Promise<void> {
    return this.backend!.set(this.lastKey(c), { state: TaskState.PROGRESS, progress: tickMs, name: c.name }, { ttlMs: LAST_TTL_MS });
  }

  /** Send one tick once: the counter makes a second sender (a handover) a no-op. */
  private async send(c: Compiled, tickMs: number): Promise<void> {
    const taskId = `beat-${c.name}-${tickMs}`;
    const first = (await this.backend!.incr!(`beat:tick:${c.name}:${tickMs}`, 1, { ttlMs: LAST_TTL_MS })) === 1;
    if (!first) return;
    await this.app.sendTask(c.schedule.task, c.schedule.args ?? [], { ...c.schedule.options, taskId });
    this.sent.push({ schedule: c.name, tickMs, taskId });
  }

  /**
   * Stop sending and release the lease so another beat takes over at once. Idempotent.
   * `{ release: false }` leaves the lease to expire, as a crashed process would.
   */
  close(opts: { release?: boolean } = {}): Promise<void> {
    this.closing ??= (async () => {
      await this.started?.catch(() => undefined);
      if (this.leaseTimer !== undefined) this.app.clock.clearTimeout(this.leaseTimer);
      for (const c of this.compiled) this.disarm(c);
      const runner = this.runner;
      this.runner = undefined;
      runner?.stop();
      await runner?.idle();
      if (this.leader && opts.release !== false) await this.backend?.releaseLease?.(LEADER, this.holder).catch(() => false);
      this.leader = false;
    })();
    return this.closing;
  }
}
