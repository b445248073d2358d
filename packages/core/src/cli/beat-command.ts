import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Schedule } from '../beat.js';
import { scheduleStore } from '../schedules.js';
import { CliError } from './cli-error.js';
import { exportUrls } from './env.js';
import { loadApp } from './load-app.js';
import { printOut } from './output.js';
import { onShutdownSignals, signalExitCode } from './signals.js';

export interface BeatCommandOptions {
  app: string;
  broker?: string;
  resultBackend?: string;
  leaseMs: number;
  syncMs: number;
}

/**
 * `celeriac beat`: send the periodic tasks the app module exports as `schedules`
 * (`{ name: { task, cron | everyMs, ... } }`) and the runtime schedules of `app.schedules` (when the
 * result backend stores them) until SIGINT/SIGTERM. Run several for failover: one holds the leader
 * lease and each tick is sent once.
 */
export async function runBeat(opts: BeatCommandOptions): Promise<number> {
  exportUrls(opts);
  const app = await loadApp(opts.app);
  const mod = (await import(pathToFileURL(resolve(opts.app)).href)) as { schedules?: unknown; default?: { schedules?: unknown } };
  const exported = mod.schedules ?? mod.default?.schedules;
  if (exported !== undefined && (typeof exported !== 'object' || exported === null)) {
    throw new CliError(`the app module ${opts.app} exports \`schedules\` that is not an object: export const schedules = { name: { task, cron | everyMs } }`);
  }
  const schedules = (exported ?? {}) as Record<string, Schedule>;
  const backend = await app.getResultBackend();
  const runtime = scheduleStore(backend) !== undefined;
  if (Object.keys(schedules).length === 0 && !runtime) {
    await app.close();
    throw new CliError(
      `nothing to send: the app module ${opts.app} exports no schedules (export const schedules = { name: { task, cron | everyMs } }), ` +
        `and ${backend === undefined ? 'the app has no result backend' : `the ${backend.name} result backend cannot store runtime schedules`}`,
    );
  }
  const beat = app.beat({ schedules, leaseMs: opts.leaseMs, syncMs: opts.syncMs });
  let stop: (signal: NodeJS.Signals) => void = () => undefined;
  const stopped = new Promise<NodeJS.Signals>((r) => (stop = r));
  const dispose = onShutdownSignals({
    first: (signal) => {
      printOut(`beat ${process.pid}: ${signal} received, releasing the lease; send it again to exit at once`);
      stop(signal);
    },
    second: (signal) => process.exit(signalExitCode(signal)),
  });
  try {
    await beat.start();
    const names = Object.keys(schedules);
    const what = [
      `${names.length} static schedule(s)${names.length === 0 ? '' : `: ${names.join(', ')}`}`,
      runtime ? `runtime schedules from the ${backend!.name} result backend` : 'no runtime schedules (the result backend cannot store them)',
    ];
    printOut(`beat ${process.pid}: ${what.join('; ')}; ${beat.isLeader ? 'leader' : 'standby'}`);
    await stopped;
    await beat.close();
    await app.close();
    printOut(`beat ${process.pid}: sent ${beat.sent.length} tick(s); closed`);
    return 0;
  } finally {
    dispose();
  }
}
