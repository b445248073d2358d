import { fork } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { BenchRecord, ChildMessage, RowSpec, RunMessage } from './record.js';
import { emptyRecordFor } from './records.js';

/**
 * The compiled row script. Next to this module when running from `dist`; from `src` (tests run the
 * TypeScript sources) the built `dist/row.js` of this package.
 */
export function rowScriptPath(): string {
  const here = fileURLToPath(new URL('./row.js', import.meta.url));
  if (existsSync(here)) return here;
  const built = fileURLToPath(new URL('../dist/row.js', import.meta.url));
  if (existsSync(built)) return built;
  throw new Error(`the row script is not built: run \`npx tsc -b benchmarks\` (looked for ${here} and ${built})`);
}

export interface RowProcessOptions {
  script: string;
  /** The row is killed and reported failed after this long. */
  timeoutMs: number;
  onProgress?: (phase: string, done: number, total: number) => void;
}

const STDERR_TAIL = 2000;

/** Runs one row in a child process and resolves with its record; never rejects. */
export function runRowProcess(spec: RowSpec, opts: RowProcessOptions): Promise<BenchRecord> {
  return new Promise((resolve) => {
    let record: BenchRecord | undefined;
    let stderr = '';
    let settled = false;
    const child = fork(opts.script, [], { stdio: ['ignore', 'ignore', 'pipe', 'ipc'], execArgv: [] });
    const finish = (r: BenchRecord) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve(r);
    };
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      finish(emptyRecordFor(spec, 'failed', `row did not finish within ${opts.timeoutMs} ms; killed`));
    }, opts.timeoutMs);
    child.stderr?.setEncoding('utf8');
    child.stderr?.on('data', (chunk: string) => {
      stderr = (stderr + chunk).slice(-STDERR_TAIL);
    });
    child.on('message', (msg: ChildMessage) => {
      if (msg.type === 'progress') opts.onProgress?.(msg.phase, msg.done, msg.total);
      else if (msg.type === 'result') record = msg.record;
    });
    child.on('error', (err) => finish(emptyRecordFor(spec, 'failed', `row process failed: ${err.message}`)));
    child.on('exit', (code, signal) => {
      if (record !== undefined) finish(record);
      else {
        const why = signal === null ? `exit code ${String(code)}` : `signal ${signal}`;
        const tail = stderr.trim().split('\n').slice(-3).join(' | ');
        finish(emptyRecordFor(spec, 'failed', `row process ended (${why}) without a result${tail === '' ? '' : `: ${tail}`}`));
      }
    });
    const run: RunMessage = { type: 'run', spec };
    child.send(run);
  });
}
