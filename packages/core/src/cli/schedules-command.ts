import { systemClock } from '../clock.js';
import { redactUrl, silentLogger } from '../logger.js';
import { resolveResultBackend } from '../resolve.js';
import { Schedules, type ScheduleEntry } from '../schedules.js';
import { CliError, UsageError, describeError } from './cli-error.js';
import { exportUrls, RESULT_BACKEND_ENV } from './env.js';
import { loadApp } from './load-app.js';
import { printErr } from './output.js';
import { emit } from './queue-commands.js';

/** How the schedules commands find the result backend: `--app`, else `--result-backend`, else the environment. */
export interface ScheduleSource {
  app?: string;
  resultBackend?: string;
  json: boolean;
}

/**
 * Run `fn` with the runtime schedules of a result backend, then close it. With `--app` it is the app's
 * own backend (the module decides the URL and options; `--result-backend` is exported to it as
 * RESULT_BACKEND_URL); otherwise one resolved from the URL.
 */
async function withSchedules<T>(src: ScheduleSource, fn: (schedules: Schedules) => Promise<T>): Promise<T> {
  if (src.app !== undefined) {
    exportUrls(src);
    const app = await loadApp(src.app);
    try {
      return await fn(app.schedules);
    } finally {
      await app.close();
    }
  }
  const url = src.resultBackend ?? [...RESULT_BACKEND_ENV].reverse().map((k) => process.env[k]).find((v) => v !== undefined && v !== ''); // CELERIAC_ first
  if (url === undefined) {
    throw new UsageError('say which result backend: --app ./tasks.js, --result-backend URL, or RESULT_BACKEND_URL / CELERIAC_RESULT_BACKEND_URL');
  }
  if (url.startsWith('memory:') && !src.json) {
    printErr(`note: ${url} lives inside one process; this command sees an empty store of its own`);
  }
  const backend = await resolveResultBackend(url).catch((err: unknown) => {
    throw new CliError(`cannot use the result backend ${redactUrl(url)}: ${describeError(err)}`, { cause: err });
  });
  try {
    return await fn(new Schedules({ getResultBackend: () => Promise.resolve(backend), clock: systemClock, logger: silentLogger }));
  } finally {
    await backend.close();
  }
}

/** A schedule as `schedules list --json` prints it: times as ISO 8601 strings (UTC). */
export interface ScheduleJson {
  id: string;
  task: string;
  args: unknown[];
  cron: string | null;
  timezone: string | null;
  everyMs: number | null;
  options: Record<string, unknown>;
  catchUp: 'once' | 'all' | 'none';
  startAt: string | null;
  endAt: string | null;
  limit: number | null;
  nextRunAt: string | null;
  lastRunAt: string | null;
  runCount: number;
  createdAt: string;
  updatedAt: string;
}

const iso = (ms: number | null | undefined): string | null => (ms === null || ms === undefined ? null : new Date(ms).toISOString());

function toJson(e: ScheduleEntry): ScheduleJson {
  const s = e.schedule;
  return {
    id: e.id,
    task: s.task,
    args: s.args,
    cron: s.cron ?? null,
    timezone: s.timezone ?? null,
    everyMs: s.everyMs ?? null,
    options: s.options ?? {},
    catchUp: s.catchUp,
    startAt: iso(s.startAt),
    endAt: iso(s.endAt),
    limit: s.limit ?? null,
    nextRunAt: iso(e.nextRunAt),
    lastRunAt: iso(e.lastRunAt),
    runCount: e.runCount,
    createdAt: iso(e.createdAt)!,
    updatedAt: iso(e.updatedAt)!,
  };
}

/** `every 30 s`, `cron "0 9 * * 1-5" Europe/Stockholm`. */
export function describeTiming(j: Pick<ScheduleJson, 'cron' | 'timezone' | 'everyMs'>): string {
  if (j.cron !== null) return `cron "${j.cron}" ${j.timezone ?? 'UTC'}`;
  const ms = j.everyMs ?? 0;
  for (const [unit, size] of [['d', 86_400_000], ['h', 3_600_000], ['min', 60_000], ['s', 1_000]] as const) {
    if (ms % size === 0) return `every ${ms / size} ${unit}`;
  }
  return `every ${ms} ms`;
}

function table(rows: string[][]): string[] {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => r.map((cell, i) => (i === r.length - 1 ? cell : cell.padEnd(widths[i]!))).join('  ').trimEnd());
}

/** `celeriac schedules list`: every runtime schedule with its next run and run count. */
export async function schedulesListCommand(src: ScheduleSource): Promise<void> {
  const entries = await withSchedules(src, (s) => s.list());
  const rows = entries.map(toJson);
  emit(src.json, { schedules: rows }, () => {
    if (rows.length === 0) return ['no runtime schedules'];
    const runs = (r: ScheduleJson) => `${r.runCount}${r.limit === null ? '' : `/${r.limit}`}`;
    const next = (r: ScheduleJson) => r.nextRunAt ?? 'finished';
    return [
      `${rows.length} runtime schedule${rows.length === 1 ? '' : 's'} (times in UTC)`,
      ...table([
        ['ID', 'TASK', 'SCHEDULE', 'NEXT RUN', 'RUNS', 'LAST RUN'],
        ...rows.map((r) => [r.id, r.task, describeTiming(r), next(r), runs(r), r.lastRunAt ?? '-']),
      ]).map((l) => `  ${l}`),
    ];
  });
}

/** `celeriac schedules remove <id>`: exit code 0 when removed, 1 when there was no such schedule. */
export async function schedulesRemoveCommand(id: string, src: ScheduleSource): Promise<number> {
  const removed = await withSchedules(src, (s) => s.remove(id));
  if (removed || src.json) {
    emit(src.json, { id, removed }, `removed runtime schedule ${id}`);
    return removed ? 0 : 1;
  }
  throw new CliError(`no runtime schedule ${JSON.stringify(id)} (celeriac schedules list shows them)`);
}
