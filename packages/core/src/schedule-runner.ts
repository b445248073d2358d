import type { App } from './app.js';
import type { TimerHandle } from './clock.js';
import type { StoredSchedule } from './result-backend.js';
import {
  decodeRecord,
  definitionKey,
  encodeRecord,
  ScheduleTiming,
  type ScheduleRecord,
  type ScheduleStore,
} from './schedules.js';

/** What a beat gives its {@link ScheduleRunner}. */
export interface RunnerOptions {
  /** How often the store's version is read (and the schedules listed when it changed). */
  syncMs: number;
  /** Names of the beat's static schedules: a runtime schedule of the same id is ignored (their tick ids would collide). */
  staticNames: ReadonlySet<string>;
  /** Called after a tick was published. */
  onSent(id: string, tickMs: number, taskId: string): void;
}

interface Slot {
  readonly id: string;
  rev: number;
  record: ScheduleRecord | undefined;
  timing: ScheduleTiming | undefined;
  defKey: string;
  timer: TimerHandle | undefined;
  /** Processing of this slot, one at a time. */
  chain: Promise<void>;
}

/** A timer longer than this is re-armed when it fires (Node's timers overflow at 2^31 - 1 ms). */
const MAX_TIMER_MS = 86_400_000;
/** Pause after a failed claim before the slot is tried again. */
const RETRY_MS = 1_000;

/**
 * The leader beat's side of runtime schedules: a local view of the store, kept in step by reading the
 * store's version every `syncMs` (and listing when it changed), a timer per schedule at its next run,
 * and the claim: the record advanced (next run, run count, last run) by one compare-and-set on its rev
 * before the tick is published. A claim that loses — another beat claimed it, the definition changed,
 * the schedule was removed — sends nothing and reloads the record. So a tick is sent at most once
 * fleet-wide, and a beat that restarts resumes from the stored next run without sending one again.
 * A beat killed between its claim and the publish loses that one tick (it is never sent twice).
 */
export class ScheduleRunner {
  private readonly slots = new Map<string, Slot>();
  private readonly warned = new Set<string>();
  private version = -1;
  private syncTimer: TimerHandle | undefined;
  private syncing: Promise<void> | undefined;
  private stopped = false;
  /** The slots' processing at the time of `stop()`. */
  private stoppedChains: Promise<void>[] = [];
  /** A tick more than this late counts as missed (catchUp decides); one less late is simply sent. */
  private readonly lateMs: number;

  constructor(
    private readonly app: App,
    private readonly store: ScheduleStore,
    private readonly opts: RunnerOptions,
  ) {
    this.lateMs = opts.syncMs + 1_000;
  }

  /** Load every schedule and arm its timer; then keep in step every `syncMs`. Never rejects. */
  async start(): Promise<void> {
    try {
      await this.sync(true);
    } catch (err) {
      this.app.logger.warn('beat could not list runtime schedules; trying again', { error: String(err) });
    }
    this.armSync();
  }

  /** Stop every timer. A claim in flight finishes (and its tick is sent: the claim is this beat's). */
  stop(): void {
    this.stopped = true;
    if (this.syncTimer !== undefined) this.app.clock.clearTimeout(this.syncTimer);
    this.syncTimer = undefined;
    for (const slot of this.slots.values()) this.disarm(slot);
    this.stoppedChains = [...this.slots.values()].map((s) => s.chain);
    this.slots.clear();
  }

  /**
   * Settles once the claims and sends under way are done (`Beat.close` waits for them, so no tick is
   * sent after it resolved). A listing under way is not waited for: once stopped, its result is dropped.
   */
  async idle(): Promise<void> {
    await Promise.all(this.stopped ? this.stoppedChains : [...this.slots.values()].map((s) => s.chain));
  }

  private armSync(): void {
    if (this.stopped) return;
    this.syncTimer = this.app.clock.setTimeout(() => {
      this.syncTimer = undefined;
      this.sync(false)
        .catch((err: unknown) => this.app.logger.warn('beat could not read runtime schedules', { error: String(err) }))
        .finally(() => this.armSync());
    }, this.opts.syncMs);
  }

  /** Read the version; list and reconcile when it changed (or when `force`). */
  private sync(force: boolean): Promise<void> {
    this.syncing ??= (async () => {
      try {
        if (!force && (await this.store.schedulesVersion()) === this.version) return;
        const listed = await this.store.listSchedules();
        if (this.stopped) return;
        const seen = new Set<string>();
        for (const s of listed.schedules) {
          seen.add(s.id);
          this.accept(s);
        }
        for (const [id, slot] of this.slots) {
          // A slot this beat wrote after the listing's version may be newer than the listing.
          if (!seen.has(id) && slot.rev <= listed.version) this.drop(slot);
        }
        this.version = Math.max(this.version, listed.version);
      } finally {
        this.syncing = undefined;
      }
    })();
    return this.syncing;
  }

  /** Take a stored record into the view if it is newer than what the slot has. */
  private accept(s: StoredSchedule): void {
    if (this.stopped) return;
    if (this.opts.staticNames.has(s.id)) {
      this.warnOnce(`static:${s.id}`, 'runtime schedule ignored: this beat has a static schedule of the same name', s.id);
      return;
    }
    let slot = this.slots.get(s.id);
    if (slot !== undefined && slot.rev >= s.rev) return;
    if (slot === undefined) {
      slot = { id: s.id, rev: 0, record: undefined, timing: undefined, defKey: '', timer: undefined, chain: Promise.resolve() };
      this.slots.set(s.id, slot);
    }
    slot.rev = s.rev;
    try {
      const record = decodeRecord(s.id, s.data);
      const key = definitionKey(record.def);
      if (slot.timing === undefined || key !== slot.defKey) {
        slot.timing = new ScheduleTiming(record.def);
        slot.defKey = key;
      }
      slot.record = record;
    } catch (err) {
      slot.record = undefined;
      this.warnOnce(`bad:${s.id}:${s.rev}`, 'runtime schedule skipped: its record cannot be read', s.id, err);
    }
    this.arm(slot);
  }

  private drop(slot: Slot): void {
    this.disarm(slot);
    this.slots.delete(slot.id);
  }

  private disarm(slot: Slot): void {
    if (slot.timer !== undefined) this.app.clock.clearTimeout(slot.timer);
    slot.timer = undefined;
  }

  private arm(slot: Slot, delayMs?: number): void {
    this.disarm(slot);
    const next = slot.record?.next;
    if (this.stopped || next === null || next === undefined) return;
    const ms = delayMs ?? Math.min(MAX_TIMER_MS, Math.max(0, next - this.app.clock.now()));
    slot.timer = this.app.clock.setTimeout(() => {
      slot.timer = undefined;
      slot.chain = slot.chain
        .then(() => this.process(slot))
        .catch((err: unknown) => this.app.logger.error('beat failed on a runtime schedule', { schedule: slot.id, error: String(err) }));
    }, ms);
  }

  /** Claim and send what is due of one schedule, then arm its next timer. */
  private async process(slot: Slot): Promise<void> {
    if (this.stopped || this.slots.get(slot.id) !== slot) return;
    const record = slot.record;
    const timing = slot.timing;
    const now = this.app.clock.now();
    if (record === undefined || timing === undefined || record.next === null) return;
    if (record.next > now) {
      this.arm(slot);
      return;
    }
    const plan = timing.plan(record.next, record.runs, now, this.lateMs);
    const claimed: ScheduleRecord = { ...record, next: plan.next, runs: record.runs + plan.send.length, last: plan.send.at(-1) ?? record.last };
    let rev: number;
    try {
      rev = await this.store.putSchedule(slot.id, encodeRecord(claimed), slot.rev);
    } catch (err) {
      this.app.logger.error('beat could not claim a runtime schedule tick; trying again', { schedule: slot.id, error: String(err) });
      this.arm(slot, RETRY_MS);
      return;
    }
    if (rev === 0) {
      // Lost: another beat claimed it, or the schedule changed or was removed. Read what is there now.
      await this.reload(slot);
      return;
    }
    if (slot.rev < rev) {
      // (A listing may have brought a record newer than this claim in the meantime: keep that one.)
      slot.rev = rev;
      slot.record = claimed;
    }
    if (rev === this.version + 1) this.version = rev; // nothing else was written in between: no need to list
    for (const tickMs of plan.send) await this.send(slot.id, claimed, tickMs);
    if (this.slots.get(slot.id) === slot) this.arm(slot);
  }

  private async reload(slot: Slot): Promise<void> {
    let fresh: StoredSchedule | undefined;
    try {
      fresh = await this.store.getSchedule(slot.id);
    } catch (err) {
      this.app.logger.warn('beat could not read a runtime schedule', { schedule: slot.id, error: String(err) });
      this.arm(slot, RETRY_MS);
      return;
    }
    if (this.slots.get(slot.id) !== slot) return;
    if (fresh === undefined) this.drop(slot);
    else if (fresh.rev > slot.rev) this.accept(fresh);
    else this.arm(slot, RETRY_MS);
  }

  private async send(id: string, record: ScheduleRecord, tickMs: number): Promise<void> {
    const taskId = `beat-${id}-${tickMs}`;
    try {
      await this.app.sendTask(record.def.task, record.def.args, { ...record.def.options, taskId });
      this.opts.onSent(id, tickMs, taskId);
    } catch (err) {
      // The tick is claimed: it is lost rather than sent twice.
      this.app.logger.error('beat could not send a runtime schedule tick', { schedule: id, tickMs, error: String(err) });
    }
  }

  private warnOnce(key: string, message: string, id: string, err?: unknown): void {
    if (this.warned.has(key)) return;
    this.warned.add(key);
    this.app.logger.warn(message, err === undefined ? { schedule: id } : { schedule: id, error: String(err) });
  }
}
