import { afterEach, describe, expect, it } from 'vitest';
import { MeterProvider, InMemoryMetricExporter, PeriodicExportingMetricReader, AggregationTemporality } from '@opentelemetry/sdk-metrics';
import { metrics } from '@opentelemetry/api';
import {
  createApp,
  createMemoryBroker,
  createMemoryResultBackend,
  createMetrics,
  MemoryServer,
  watchEvents,
  type App,
  type RemoteEvent,
} from '../src/index.js';
import { createFakeClock } from '../src/testing/index.js';

const apps: App[] = [];
afterEach(async () => {
  await Promise.all(apps.splice(0).map((a) => a.close()));
});

describe('cross-process events and metrics', () => {
  it("a monitor in another process sees every worker's events and heartbeats, and metrics count them", async () => {
    const clock = createFakeClock();
    const server = new MemoryServer({ clock });
    const backend = createMemoryResultBackend({ clock });
    const mk = () => {
      const app = createApp({ broker: createMemoryBroker({ server }), resultBackend: backend, clock });
      apps.push(app);
      return app;
    };
    const workerApp = mk();
    const add = workerApp.task('add', async (a: number, b: number) => a + b);
    const bad = workerApp.task('bad', async () => {
      throw new Error('nope');
    });
    const monitorApp = mk(); // e.g. the dashboard: knows no tasks, only the broker
    const seen: RemoteEvent[] = [];
    const broker = await monitorApp.getBroker();
    const stop = await watchEvents(broker.broadcast!, (e) => seen.push(e));
    const m = await createMetrics(monitorApp).attachRemote();
    await workerApp.worker({ sendEvents: true, heartbeatMs: 1000 }).start();
    await add.delay(1, 2);
    await add.delay(3, 4);
    await bad.delay();
    await clock.advance(1100);
    const types = seen.map((e) => e.type);
    expect(types).toContain('worker:ready');
    expect(types).toContain('worker:heartbeat');
    expect(types.filter((t) => t === 'task:succeeded')).toHaveLength(2);
    expect(types.filter((t) => t === 'task:failed')).toHaveLength(1);
    const received = seen.find((e) => e.type === 'task:received');
    expect(received).toMatchObject({ name: 'add', argsRepr: '[1,2]', hostname: workerApp.hostname });
    expect(m.count('succeeded', 'add')).toBe(2);
    expect(m.count('failed')).toBe(1);
    expect(m.workersOnline()).toBe(1);
    const text = await m.render();
    expect(text).toContain('celeriac_tasks_total{task="add",state="succeeded"} 2');
    expect(text).toContain('celeriac_tasks_total{task="bad",state="dead_lettered"} 1');
    expect(text).toContain('celeriac_queue_messages{queue="default",state="dead"} 1');
    expect(text).toContain('celeriac_workers_online 1');
    expect(text).toMatch(/celeriac_task_runtime_seconds_count\{task="add"\} 2/);
    await workerApp.close();
    await clock.advance(200);
    expect(seen.some((e) => e.type === 'worker:offline')).toBe(true);
    expect(m.workersOnline()).toBe(0);
    await stop();
    await m.close();
  });

  it('without sendEvents only worker lifecycle crosses; metrics also go to the OpenTelemetry metrics API', async () => {
    const exporter = new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE);
    const reader = new PeriodicExportingMetricReader({ exporter, exportIntervalMillis: 60_000 });
    const provider = new MeterProvider({ readers: [reader] });
    metrics.setGlobalMeterProvider(provider);
    try {
      const clock = createFakeClock();
      const app = createApp({ broker: 'memory://', clock });
      apps.push(app);
      const add = app.task('add', async (a: number, b: number) => a + b);
      const seen: string[] = [];
      await watchEvents((await app.getBroker()).broadcast!, (e) => seen.push(e.type));
      const m = createMetrics(app).attachLocal();
      await app.worker().start();
      const r = await add.delay(1, 1);
      await clock.advance(150); // the event batch flushes every 100 ms
      expect(await r.get({ timeoutMs: 10 })).toBe(2);
      expect(seen).toEqual(['worker:ready']);
      await reader.forceFlush();
      const all = exporter.getMetrics().flatMap((rm) => rm.scopeMetrics.flatMap((sm) => sm.metrics));
      const tasks = all.find((x) => x.descriptor.name === 'celeriac.tasks')!;
      const succeeded = tasks.dataPoints.find((p) => p.attributes['state'] === 'succeeded' && p.attributes['task'] === 'add');
      expect(succeeded?.value).toBe(1);
      expect(all.some((x) => x.descriptor.name === 'celeriac.task.duration')).toBe(true);
      await m.close();
    } finally {
      await provider.shutdown();
      metrics.disable();
    }
  });
});
