import { isCeleriacError } from '@celeriac/core';
import { PayloadRefused } from './driver.js';
import type { BenchRecord, RowSpec } from './record.js';

/** The record of a row that produced no measurement. */
export function emptyRecordFor(spec: RowSpec, status: BenchRecord['status'], message: string): BenchRecord {
  return {
    system: spec.system,
    transport: spec.transport,
    scenario: spec.scenario,
    mode: spec.enqueue,
    tasks: spec.tasks,
    concurrency: spec.concurrency,
    payloadBytes: spec.payloadBytes,
    options: spec.system === 'celeriac' ? { serializer: spec.serializer } : {},
    enqueuePerSec: null,
    processPerSec: null,
    p50Ms: null,
    p90Ms: null,
    p99Ms: null,
    maxMs: null,
    peakRssMb: null,
    status,
    message,
    namespace: spec.prefix,
  };
}

/** How a failure shows in the report: a documented refusal, a missing package, or a failure. */
export function classify(err: unknown): { status: BenchRecord['status']; message: string } {
  const message = err instanceof Error ? err.message : String(err);
  if (err instanceof PayloadRefused || isCeleriacError(err, 'ERR_PAYLOAD_TOO_LARGE')) return { status: 'refused', message };
  if (isCeleriacError(err, 'ERR_MODULE_MISSING')) return { status: 'skipped', message };
  return { status: 'failed', message };
}
