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
    const traceIds = new Set(spans.map((s) => s.spanContext().traceId));
    expect(traceIds.size).toBe(1);
    const byId = new Map(spans.map((s) => [s.spanContext().spanId, s]));
    const parentOf = (s: (typeof spans)[number]) => byId.get(s.parentSpanContext?.spanId ?? '');
    const names = (kind: string) => spans.filter((s) => s.name === kind);
    const publishes = names('default publish');
    const runs = spans.filter((s) => s.name.endsWith(' process'));
    // three step publishes (the first from the caller, the next two from inside the previous run)
    expect(publishes).toHaveLength(3);
    expect(parentOf(publishes[0]!)).toBeUndefined();
    expect(runs.map((s) => s.name)).toEqual(['add process', 'add process', 'flaky process', 'flaky process']);
    for (const run of runs) {
      const receive = parentOf(run)!;
      expect(receive.name).toBe('default receive');
      expect(parentOf(receive)!.name).toBe('default publish');
    }
    // step n+1 was published from inside step n's run span
    expect(parentOf(publishes[1]!)).toBe(runs[0]);
    expect(parentOf(publishes[2]!)).toBe(runs[1]);
    expect(runs[2]!.status.code).toBe(2); // ERROR on the failed first attempt
    expect(runs[2]!.attributes['celeriac.task.retries']).toBe(0);
    expect(runs[3]!.attributes['celeriac.task.retries']).toBe(1);
  });
});
