import { afterAll, describe, expect, it } from 'vitest';
import { context, trace } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { chain, createApp } from '../src/index.js';

const exporter = new InMemorySpanExporter();
const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
trace.setGlobalTracerProvider(provider);

afterAll(async () => {
  await provider.shutdown();
  trace.disable();
  context.disable();
});

describe('tracing', () => {
  it('a 3-step chain is one trace with correct parent/child links, and a retry stays in it', async () => {
    const app = createApp({ broker: 'memory://' });
    const add = app.task('add', async (a: number, b: number) => a + b);
    let failures = 0;
    const flaky = app.task(
      'flaky',
      async (x: number) => {
        if (failures++ === 0) throw new Error('once');
        return x;
      },
      { maxRetries: 1, retryBackoffMs: 1, retryJitter: false },
    );
    await app.worker().start();
    const r = await chain(add.s(1, 2), add.s(3), flaky.s()).applyAsync();
    expect(await r.get({ timeoutMs: 5000 })).toBe(6);
    await app.close();

    const spans = exporter.getFinishedSpans();
    expect(new Set(spans.map((s) => s.spanContext().traceId)).size).toBe(1);
    const byId = new Map(spans.map((s) => [s.spanContext().spanId, s]));
    const parentOf = (s: (typeof spans)[number]) => byId.get(s.parentSpanContext?.spanId ?? '');
    const publishes = spans.filter((s) => s.name === 'default publish');
    const runs = spans.filter((s) => s.name.endsWith(' process'));
    expect(runs.map((s) => s.name).sort()).toEqual(['add process', 'add process', 'flaky process', 'flaky process']);
    // every run: process → receive → a publish
    for (const run of runs) {
      const receive = parentOf(run)!;
      expect(receive.name).toBe('default receive');
      expect(parentOf(receive)!.name).toBe('default publish');
    }
    // three step publishes: the first from the caller (a root), the next two from inside an add run
    expect(publishes).toHaveLength(3);
    const roots = publishes.filter((p) => parentOf(p) === undefined);
    expect(roots).toHaveLength(1);
    const fromRuns = publishes.filter((p) => parentOf(p) !== undefined).map((p) => parentOf(p)!);
    expect(fromRuns.map((r) => r.name)).toEqual(['add process', 'add process']);
    expect(new Set(fromRuns).size).toBe(2);
    // the flaky step failed once (ERROR) and its retry is a second run in the same trace
    const flakyRuns = runs.filter((s) => s.name === 'flaky process').sort((a, b) => Number(a.attributes['celeriac.task.retries']) - Number(b.attributes['celeriac.task.retries']));
    expect(flakyRuns.map((s) => s.attributes['celeriac.task.retries'])).toEqual([0, 1]);
    expect(flakyRuns[0]!.status.code).toBe(2);
    expect(flakyRuns[1]!.status.code).not.toBe(2);
  });
});
