import { metrics as otel, type Counter, type Histogram } from '@opentelemetry/api';
import type { App } from './app.js';
import type { Broker, QueueStats } from './broker.js';
import type { EventName } from './events.js';
import { watchEvents, type RemoteEvent } from './monitor.js';

const BUCKETS_S = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300];

/** Task events and the state each one counts as. */
const STATE_OF: Partial<Record<EventName, string>> = {
  'task:sent': 'sent',
  'task:received': 'received',
  'task:started': 'started',
  'task:retried': 'retried',
  'task:succeeded': 'succeeded',
  'task:failed': 'failed',
  'task:revoked': 'revoked',
  'task:dead-lettered': 'dead_lettered',
};

class Hist {
  readonly counts = new Array<number>(BUCKETS_S.length + 1).fill(0);
  sum = 0;
  n = 0;
  observe(seconds: number): void {
    let i = 0;
    while (i < BUCKETS_S.length && seconds > BUCKETS_S[i]!) i++;
    this.counts[i]!++;
    this.sum += seconds;
    this.n++;
  }
}

export interface MetricsOptions {
  /** Queues whose depths are reported: a list, or a function read at each refresh. @default the app's default queue */
  queues?: readonly string[] | (() => readonly string[]);
  /** A worker missing heartbeats this long is counted offline. @default 3 × 2 s heartbeat + 1 s */
  offlineAfterMs?: number;
}

/**
 * Counts tasks by state and name, runtime and queue-wait histograms, queue depths and workers
 * online — fed by an app's own events or by every worker's events over the broker's broadcast.
 * Exposed as Prometheus text (`render()`) and through the OpenTelemetry metrics API (instruments on
 * the global meter; the app registers an SDK to export them).
 */
export class MetricsCollector {
  private readonly counts = new Map<string, number>();
  private readonly runtime = new Map<string, Hist>();
  private readonly wait = new Map<string, Hist>();
  private readonly workers = new Map<string, { lastSeen: number; online: boolean }>();
  private readonly queues: () => readonly string[];
  private readonly offlineAfterMs: number;
  private lastStats = new Map<string, QueueStats>();
  private readonly otelTasks: Counter;
  private readonly otelRuntime: Histogram;
  private readonly otelWait: Histogram;
  private readonly unsubscribers: (() => unknown)[] = [];

  constructor(
    private readonly app: App,
    opts: MetricsOptions = {},
  ) {
    const q = opts.queues ?? [app.defaultQueue];
    this.queues = typeof q === 'function' ? q : () => q;
    this.offlineAfterMs = opts.offlineAfterMs ?? 7_000;
    const meter = otel.getMeter('@celeriac/core');
    this.otelTasks = meter.createCounter('celeriac.tasks', { description: 'Task events by state and task name' });
    this.otelRuntime = meter.createHistogram('celeriac.task.duration', { unit: 's', description: 'Handler runtime' });
    this.otelWait = meter.createHistogram('celeriac.task.queue_wait', { unit: 's', description: 'Publish (or ETA) to handler start' });
    meter
      .createObservableGauge('celeriac.queue.messages', { description: 'Messages per queue and state' })
      .addCallback((r) => {
        for (const [queue, s] of this.lastStats) {
          r.observe(s.ready, { queue, state: 'ready' });
          r.observe(s.delayed, { queue, state: 'delayed' });
          r.observe(s.inFlight, { queue, state: 'in_flight' });
          r.observe(s.dead, { queue, state: 'dead' });
        }
      });
    meter.createObservableGauge('celeriac.workers.online').addCallback((r) => r.observe(this.workersOnline()));
  }

  /** Count this process's own events. */
  attachLocal(): this {
    for (const name of [...Object.keys(STATE_OF), 'worker:ready', 'worker:heartbeat', 'worker:offline'] as EventName[]) {
      this.unsubscribers.push(
        this.app.on(name, (e) => this.observe({ type: name, at: this.app.clock.now(), hostname: this.app.hostname, pid: process.pid, ...e } as RemoteEvent)),
      );
    }
    return this;
  }

  /** Count every worker's events received over the broker's broadcast. */
  async attachRemote(): Promise<this> {
    const broker = await this.app.getBroker();
    if (broker.broadcast === undefined) return this;
    this.unsubscribers.push(await watchEvents(broker.broadcast, (e) => this.observe(e)));
    return this;
  }

  observe(e: RemoteEvent): void {
    const state = STATE_OF[e.type];
    if (state !== undefined && 'name' in e && e.name !== null) {
      const key = `${e.name}\u0000${state}`;
      this.counts.set(key, (this.counts.get(key) ?? 0) + 1);
      this.otelTasks.add(1, { task: e.name, state });
    }
    if (e.type === 'task:succeeded' || e.type === 'task:failed') {
      const s = e.runtimeMs / 1000;
      hist(this.runtime, e.name).observe(s);
      this.otelRuntime.record(s, { task: e.name });
    }
    if (e.type === 'task:started' && e.queueWaitMs !== null) {
      const s = e.queueWaitMs / 1000;
      hist(this.wait, e.name).observe(s);
      this.otelWait.record(s, { task: e.name });
    }
    // Judged on this process's clock at arrival, so a sender with a skewed clock is not miscounted.
    const now = this.app.clock.now();
    if (e.type === 'worker:ready' || e.type === 'worker:heartbeat') this.workers.set(e.workerId, { lastSeen: now, online: true });
    if (e.type === 'worker:offline') this.workers.set(e.workerId, { lastSeen: now, online: false });
  }

  workersOnline(): number {
    const now = this.app.clock.now();
    let n = 0;
    for (const w of this.workers.values()) if (w.online && now - w.lastSeen <= this.offlineAfterMs) n++;
    return n;
  }

  /** How many events of `state` were seen for `task` (all tasks when omitted). */
  count(state: string, task?: string): number {
    let n = 0;
    for (const [k, v] of this.counts) {
      const [name, s] = k.split('\u0000') as [string, string];
      if (s === state && (task === undefined || name === task)) n += v;
    }
    return n;
  }

  /** Read queue depths from the broker now. */
  async refreshQueues(broker?: Broker): Promise<void> {
    const b = broker ?? (await this.app.getBroker());
    const next = new Map<string, QueueStats>();
    for (const q of this.queues()) next.set(q, await b.stats(q));
    this.lastStats = next;
  }

  /** The Prometheus text exposition format (0.0.4). */
  async render(): Promise<string> {
    await this.refreshQueues().catch(() => undefined);
    const out: string[] = [];
    out.push('# HELP celeriac_tasks_total Task events by task name and state.', '# TYPE celeriac_tasks_total counter');
    for (const [k, v] of [...this.counts].sort()) {
      const [name, state] = k.split('\u0000') as [string, string];
      out.push(`celeriac_tasks_total{task="${esc(name)}",state="${state}"} ${v}`);
    }
    renderHist(out, 'celeriac_task_runtime_seconds', 'Handler runtime in seconds.', this.runtime);
    renderHist(out, 'celeriac_task_queue_wait_seconds', 'Seconds from publish (or ETA) to handler start.', this.wait);
    out.push('# HELP celeriac_queue_messages Messages per queue and state.', '# TYPE celeriac_queue_messages gauge');
    for (const [queue, s] of this.lastStats) {
      for (const [state, v] of [['ready', s.ready], ['delayed', s.delayed], ['in_flight', s.inFlight], ['dead', s.dead]] as const) {
        out.push(`celeriac_queue_messages{queue="${esc(queue)}",state="${state}"} ${v}`);
      }
    }
    out.push('# HELP celeriac_workers_online Workers whose heartbeat is current.', '# TYPE celeriac_workers_online gauge');
    out.push(`celeriac_workers_online ${this.workersOnline()}`);
    return `${out.join('\n')}\n`;
  }

  async close(): Promise<void> {
    for (const off of this.unsubscribers.splice(0)) await off();
  }
}

function hist(map: Map<string, Hist>, name: string): Hist {
  let h = map.get(name);
  if (h === undefined) {
    h = new Hist();
    map.set(name, h);
  }
  return h;
}

function renderHist(out: string[], metric: string, help: string, map: Map<string, Hist>): void {
  out.push(`# HELP ${metric} ${help}`, `# TYPE ${metric} histogram`);
  for (const [name, h] of [...map].sort(([a], [b]) => a.localeCompare(b))) {
    let cumulative = 0;
    BUCKETS_S.forEach((le, i) => {
      cumulative += h.counts[i]!;
      out.push(`${metric}_bucket{task="${esc(name)}",le="${le}"} ${cumulative}`);
    });
    out.push(`${metric}_bucket{task="${esc(name)}",le="+Inf"} ${h.n}`);
    out.push(`${metric}_sum{task="${esc(name)}"} ${h.sum}`);
    out.push(`${metric}_count{task="${esc(name)}"} ${h.n}`);
  }
}

function esc(s: string): string {
  return s.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

/** Collect metrics for an app: its own events (`attachLocal`) or every worker's (`attachRemote`). */
export function createMetrics(app: App, opts: MetricsOptions = {}): MetricsCollector {
  return new MetricsCollector(app, opts);
}
