import { context, ROOT_CONTEXT, SpanKind, SpanStatusCode, trace, TraceFlags, type Context, type Span } from '@opentelemetry/api';

/**
 * OpenTelemetry tracing through `@opentelemetry/api` only: the app registers an SDK if it wants spans.
 * Without one, nothing is created (one cheap check per message). Context crosses processes in the
 * W3C `traceparent` header, written and parsed here so no global propagator is required.
 */

const TRACER = '@celeriac/core';

let calls = 0;
let active = false;

/** True when an SDK tracer provider is registered (re-checked every 256 calls: the hot path stays free). */
export function tracingActive(): boolean {
  if ((calls++ & 255) === 0) {
    const provider = trace.getTracerProvider() as { getDelegate?: () => object };
    const delegate = provider.getDelegate?.() ?? provider;
    active = delegate.constructor.name !== 'NoopTracerProvider';
  }
  return active;
}

function tracer() {
  return trace.getTracer(TRACER);
}

export function formatTraceparent(span: Span): string {
  const c = span.spanContext();
  return `00-${c.traceId}-${c.spanId}-${(c.traceFlags & TraceFlags.SAMPLED) === TraceFlags.SAMPLED ? '01' : '00'}`;
}

const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;

/** The remote parent context carried by a message, or the active context when there is none. */
export function contextFromTraceparent(traceparent: string | null): Context {
  const m = traceparent === null ? null : TRACEPARENT.exec(traceparent);
  if (m === null) return context.active();
  return trace.setSpanContext(ROOT_CONTEXT, {
    traceId: m[1]!,
    spanId: m[2]!,
    traceFlags: parseInt(m[3]!, 16),
    isRemote: true,
  });
}

const SYSTEM = 'celeriac';

export function startPublishSpan(queue: string, task: string, taskId: string, broker: string): Span {
  return tracer().startSpan(
    `${queue} publish`,
    {
      kind: SpanKind.PRODUCER,
      attributes: {
        'messaging.system': SYSTEM,
        'messaging.operation.type': 'publish',
        'messaging.destination.name': queue,
        'messaging.message.id': taskId,
        'celeriac.task.name': task,
        'celeriac.broker': broker,
      },
    },
    context.active(),
  );
}

export function startReceiveSpan(queue: string, parent: Context, deliveries: number): Span {
  return tracer().startSpan(
    `${queue} receive`,
    {
      kind: SpanKind.CONSUMER,
      attributes: {
        'messaging.system': SYSTEM,
        'messaging.operation.type': 'receive',
        'messaging.destination.name': queue,
        'celeriac.deliveries': deliveries,
      },
    },
    parent,
  );
}

export function startRunSpan(task: string, taskId: string, queue: string, retries: number, parent: Context): Span {
  return tracer().startSpan(
    `${task} process`,
    {
      kind: SpanKind.CONSUMER,
      attributes: {
        'messaging.system': SYSTEM,
        'messaging.operation.type': 'process',
        'messaging.destination.name': queue,
        'messaging.message.id': taskId,
        'celeriac.task.name': task,
        'celeriac.task.retries': retries,
      },
    },
    parent,
  );
}

export function endSpan(span: Span, error?: { name: string; message: string }): void {
  if (error !== undefined) {
    span.setStatus({ code: SpanStatusCode.ERROR, message: error.message });
    span.setAttribute('error.type', error.name);
  }
  span.end();
}

export { context, trace };
