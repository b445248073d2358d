import type { IncomingMessage, ServerResponse } from 'node:http';
import { ErrorCode, isCeleriacError, type App, type DeadLetter, type GuardedBroker, type MetricsCollector, type ScheduleEntry } from '@celeriac/core';
import { HttpError, readJsonObject, sendJson, sendText } from './http.js';
import { clip, repr } from './repr.js';
import { taskFromBackend, type DashboardState, type RateSeries, type TaskView, type WorkerView } from './state.js';
import type { SseHub } from './sse.js';

/** Depths and throughput of one queue, as the API and the page get them. */
export interface QueueView extends RateSeries {
  name: string;
  ready: number;
  delayed: number;
  inFlight: number;
  dead: number;
  /** Why `stats()` failed for this queue, if it did (the numbers are then the last known, or 0). */
  error: string | null;
}

/** Everything but the tasks: what the page re-renders every second. */
export interface Overview {
  broker: string;
  /** False when the broker has no broadcast: no worker or task events can be seen. */
  broadcast: boolean;
  now: number;
  maxTasks: number;
  workers: WorkerView[];
  queues: QueueView[];
}

export interface DeadLetterView {
  /** The dead letter's message id: what `redrive` takes. */
  id: string;
  taskId: string | null;
  task: string | null;
  args: string | null;
  retries: number | null;
  reason: string;
  deadAt: number | null;
}

/** A runtime schedule (`app.schedules`) as the API and the page get it. Times are epoch ms. */
export interface ScheduleView {
  id: string;
  task: string;
  /** The arguments as JSON text, cut at 500 characters. */
  args: string;
  /** `every 30 s`, or `cron "0 9 * * 1-5" Europe/Stockholm`. */
  timing: string;
  catchUp: 'once' | 'all' | 'none';
  startAt: number | null;
  endAt: number | null;
  limit: number | null;
  /** Null once finished (`limit` reached, past `endAt`). */
  nextRunAt: number | null;
  lastRunAt: number | null;
  runCount: number;
  createdAt: number;
  updatedAt: number;
}

/** `GET /api/schedules`: `supported` is false (with the reason) when the result backend cannot store them. */
export interface SchedulesView {
  supported: boolean;
  reason: string | null;
  schedules: ScheduleView[];
}

/** What the routes need from the running dashboard. */
export interface RouteContext {
  readonly app: App;
  readonly broker: GuardedBroker;
  readonly state: DashboardState;
  readonly metrics: MetricsCollector;
  readonly hub: SseHub;
  readonly maxTasks: number;
  now(): number;
  overview(): Overview;
  refreshStats(): Promise<void>;
  /** Refresh depths and push them (and changed tasks) to every open page now. */
  pushSoon(): void;
}

const MAX_ID_CHARS = 255;
/** Schedule ids are at most this long (core's limit). */
const MAX_SCHEDULE_ID_CHARS = 200;
/** Dead letters searched per queue when retrying one task by id. */
const RETRY_SCAN_LIMIT = 1_000;

/** Serve `/metrics` and `/api/*`. Throws `HttpError` for client mistakes. */
export async function route(ctx: RouteContext, req: IncomingMessage, res: ServerResponse, segments: string[], search: URLSearchParams, headers: Record<string, string>): Promise<void> {
  const method = req.method ?? 'GET';
  const [first, second, third, fourth, fifth] = segments;
  if (segments.length === 1 && first === 'metrics') {
    allow(method, 'GET');
    sendText(res, 200, 'text/plain; version=0.0.4; charset=utf-8', await ctx.metrics.render(), headers);
    return;
  }
  if (first !== 'api') throw new HttpError(404, 'not found');

  if (segments.length === 2 && second === 'state') {
    allow(method, 'GET');
    await ctx.refreshStats();
    sendJson(res, 200, { ...ctx.overview(), tasks: ctx.state.tasks(limitOf(search, ctx.maxTasks)) }, headers);
    return;
  }
  if (segments.length === 2 && second === 'events') {
    allow(method, 'GET');
    if (method === 'HEAD') {
      sendText(res, 200, 'text/event-stream; charset=utf-8', '', headers);
      return;
    }
    await ctx.refreshStats();
    ctx.hub.add(res, headers, { event: 'snapshot', data: { ...ctx.overview(), tasks: ctx.state.tasks() } });
    return;
  }
  if (second === 'tasks') {
    if (segments.length === 2) {
      allow(method, 'GET');
      const state = search.get('state');
      const name = search.get('name');
      const tasks = ctx.state
        .tasks()
        .filter((t) => (state === null || t.state === state) && (name === null || t.name === name))
        .slice(0, limitOf(search, ctx.maxTasks));
      sendJson(res, 200, { tasks }, headers);
      return;
    }
    const id = checkId(third!);
    if (segments.length === 3) {
      allow(method, 'GET');
      sendJson(res, 200, { task: await lookUp(ctx, id) }, headers);
      return;
    }
    if (segments.length === 4 && fourth === 'revoke') {
      allow(method, 'POST');
      await readJsonObject(req);
      await ctx.app.asyncResult(id).revoke();
      sendJson(res, 200, { revoked: id }, headers);
      return;
    }
    if (segments.length === 4 && fourth === 'retry') {
      allow(method, 'POST');
      await readJsonObject(req);
      const out = await retryDeadTask(ctx, id);
      sendJson(res, 200, out, headers);
      return;
    }
    throw new HttpError(404, 'not found');
  }
  if (second === 'schedules') {
    if (segments.length === 2) {
      allow(method, 'GET');
      sendJson(res, 200, await schedules(ctx), headers);
      return;
    }
    const id = third!;
    if (id.length === 0 || id.length > MAX_SCHEDULE_ID_CHARS) throw new HttpError(400, `a schedule id has 1 to ${MAX_SCHEDULE_ID_CHARS} characters`);
    if (segments.length === 4 && fourth === 'remove') {
      allow(method, 'POST');
      await readJsonObject(req);
      if (!(await ctx.app.schedules.remove(id))) throw new HttpError(404, `no runtime schedule "${clip(id, 100)}"`);
      sendJson(res, 200, { id, removed: true }, headers);
      return;
    }
    throw new HttpError(404, 'not found');
  }
  if (second === 'queues') {
    if (segments.length === 2) {
      allow(method, 'GET');
      await ctx.refreshStats();
      sendJson(res, 200, { queues: ctx.overview().queues }, headers);
      return;
    }
    const queue = checkQueue(ctx, third!);
    if (segments.length === 4 && fourth === 'purge') {
      allow(method, 'POST');
      await readJsonObject(req);
      const purged = await ctx.broker.purge(queue);
      ctx.pushSoon();
      sendJson(res, 200, { queue, purged }, headers);
      return;
    }
    if (fourth === 'dead-letters') {
      if (segments.length === 4) {
        allow(method, 'GET');
        const list = await ctx.broker.deadLetters.list(queue, { limit: limitOf(search, 100, 1_000) });
        sendJson(res, 200, { queue, deadLetters: list.map((d) => deadLetterView(ctx.app, d)) }, headers);
        return;
      }
      if (segments.length === 5 && fifth === 'redrive') {
        allow(method, 'POST');
        const body = await readJsonObject(req);
        const ids = idsOf(body['ids']);
        // Redrive goes by message id; the page shows tasks: note which tasks these messages carry.
        const taskIds = ids === undefined ? undefined : await taskIdsOf(ctx, queue, ids);
        const redriven = await ctx.broker.deadLetters.redrive(queue, ids);
        if (redriven > 0) markRedriven(ctx, queue, taskIds);
        ctx.pushSoon();
        sendJson(res, 200, { queue, redriven }, headers);
        return;
      }
      if (segments.length === 5 && fifth === 'purge') {
        allow(method, 'POST');
        await readJsonObject(req);
        const purged = await ctx.broker.deadLetters.purge(queue);
        ctx.pushSoon();
        sendJson(res, 200, { queue, purged }, headers);
        return;
      }
    }
    throw new HttpError(404, 'not found');
  }
  throw new HttpError(404, 'not found');
}

async function schedules(ctx: RouteContext): Promise<SchedulesView> {
  let entries: ScheduleEntry[];
  try {
    entries = await ctx.app.schedules.list();
  } catch (err) {
    if (isCeleriacError(err, ErrorCode.UNSUPPORTED) || isCeleriacError(err, ErrorCode.NO_RESULT_BACKEND)) {
      return { supported: false, reason: err.message, schedules: [] };
    }
    throw err;
  }
  return { supported: true, reason: null, schedules: entries.map(scheduleView) };
}

function scheduleView(e: ScheduleEntry): ScheduleView {
  const s = e.schedule;
  return {
    id: e.id,
    task: s.task,
    args: repr(s.args, 500),
    timing: s.cron !== undefined ? `cron "${s.cron}" ${s.timezone ?? 'UTC'}` : every(s.everyMs ?? 0),
    catchUp: s.catchUp,
    startAt: s.startAt ?? null,
    endAt: s.endAt ?? null,
    limit: s.limit ?? null,
    nextRunAt: e.nextRunAt,
    lastRunAt: e.lastRunAt,
    runCount: e.runCount,
    createdAt: e.createdAt,
    updatedAt: e.updatedAt,
  };
}

function every(ms: number): string {
  for (const [unit, size] of [['d', 86_400_000], ['h', 3_600_000], ['min', 60_000], ['s', 1_000]] as const) {
    if (ms % size === 0) return `every ${ms / size} ${unit}`;
  }
  return `every ${ms} ms`;
}

function allow(method: string, expected: 'GET' | 'POST'): void {
  if (method === expected || (expected === 'GET' && method === 'HEAD')) return;
  throw new HttpError(405, `use ${expected}`, { Allow: expected });
}

function limitOf(search: URLSearchParams, dflt: number, max = dflt): number {
  const raw = search.get('limit');
  if (raw === null) return dflt;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1) throw new HttpError(400, 'limit must be an integer >= 1');
  return Math.min(n, max);
}

function checkId(id: string): string {
  if (id.length === 0 || id.length > MAX_ID_CHARS) throw new HttpError(400, `a task id has 1 to ${MAX_ID_CHARS} characters`);
  return id;
}

/** Actions only touch queues the dashboard knows (configured or seen in events): a typo creates nothing. */
function checkQueue(ctx: RouteContext, queue: string): string {
  if (!ctx.state.hasQueue(queue)) throw new HttpError(404, `unknown queue "${clip(queue, 100)}" (known: ${ctx.state.queues.join(', ')})`);
  return queue;
}

function idsOf(value: unknown): string[] | undefined {
  if (value === undefined) return undefined;
  if (!Array.isArray(value) || value.length === 0 || value.length > 1_000 || !value.every((v) => typeof v === 'string' && v.length > 0 && v.length <= MAX_ID_CHARS)) {
    throw new HttpError(400, 'ids must be a non-empty array of at most 1000 dead-letter ids');
  }
  return value as string[];
}

async function lookUp(ctx: RouteContext, id: string): Promise<TaskView> {
  const seen = ctx.state.task(id);
  if (seen !== undefined) return seen;
  const backend = await ctx.app.getResultBackend();
  if (backend === undefined) {
    throw new HttpError(404, `task ${id} is not among the ${ctx.maxTasks} most recent tasks, and no result backend is configured to look further`);
  }
  const meta = await backend.get(id);
  if (meta === undefined) throw new HttpError(404, `task ${id} is not among the recent tasks and the result backend knows nothing of it (PENDING or expired)`);
  return taskFromBackend(id, meta, ctx.now());
}

/** Redrive the dead letters that carry task `id`: in its queue when the dashboard saw it, else in every known queue. */
async function retryDeadTask(ctx: RouteContext, id: string): Promise<{ taskId: string; queue: string; redriven: number }> {
  const known = ctx.state.task(id)?.queue;
  const queues = known !== null && known !== undefined ? [known] : ctx.state.queues;
  for (const queue of queues) {
    const dead = await ctx.broker.deadLetters.list(queue, { limit: RETRY_SCAN_LIMIT });
    const ids = dead.filter((d) => d.headers['id'] === id).map((d) => d.id);
    if (ids.length === 0) continue;
    const redriven = await ctx.broker.deadLetters.redrive(queue, ids);
    if (redriven > 0) {
      ctx.state.markRedriven(id, ctx.now());
      ctx.pushSoon();
      return { taskId: id, queue, redriven };
    }
  }
  throw new HttpError(404, `no dead letter of task ${id} in ${queues.join(', ')} (first ${RETRY_SCAN_LIMIT} of each searched)`);
}

async function taskIdsOf(ctx: RouteContext, queue: string, messageIds: string[]): Promise<Set<string>> {
  const wanted = new Set(messageIds);
  const out = new Set<string>();
  for (const d of await ctx.broker.deadLetters.list(queue, { limit: RETRY_SCAN_LIMIT })) {
    const taskId = d.headers['id'];
    if (wanted.has(d.id) && typeof taskId === 'string') out.add(taskId);
  }
  return out;
}

/** Mark the dead-lettered tasks of `queue` (those in `taskIds`, or all) as waiting to run again. */
function markRedriven(ctx: RouteContext, queue: string, taskIds: Set<string> | undefined): void {
  for (const t of ctx.state.tasks()) {
    if (t.queue === queue && t.deadLettered !== null && (taskIds === undefined || taskIds.has(t.id))) ctx.state.markRedriven(t.id, ctx.now());
  }
}

function deadLetterView(app: App, d: DeadLetter): DeadLetterView {
  let args: string | null = null;
  let retries: number | null;
  try {
    const msg = app.codec.decode(d, app.accept, app.maxDecodedBytes);
    args = clip(JSON.stringify(msg.args) ?? 'null', 500);
    retries = msg.retries; // an absent header means 0
  } catch {
    // undecodable (that may be why it is dead): show the headers only
    const r = d.headers['retries'];
    retries = typeof r === 'number' ? r : null;
  }
  return {
    id: d.id,
    taskId: typeof d.headers['id'] === 'string' ? d.headers['id'] : null,
    task: typeof d.headers['task'] === 'string' ? d.headers['task'] : null,
    args,
    retries,
    reason: clip(d.reason, 2_000),
    deadAt: d.deadAt,
  };
}
