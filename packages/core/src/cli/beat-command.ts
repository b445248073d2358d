import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Schedule } from '../beat.js';
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
}

/**
 * `celeriac beat`: send the periodic tasks the app module exports as `schedules`
 * (`{ name: { task, cron | everyMs, ... } }`) until SIGINT/SIGTERM. Run several for failover: one
 * holds the leader lease and each tick is sent once.
 */
export async function runBeat(opts: BeatCommandOptions): Promise<number> {
  exportUrls(opts);
  const app = await loadApp(opts.app);
  const mod = (await import(pathToFileURL(resolve(opts.app)).href)) as { schedules?: unknown; default?: { schedules?: unknown } };
  const schedules = (mod.schedules ?? mod.default?.schedules) as Record<string, Schedule> | undefined;
  if (schedules === undefined || typeof schedules !== 'object' || Object.keys(schedules).length === 0) {
    throw new CliError(`the app module ${opts.app} exports no schedules: export const schedules = { name: { task, cron | everyMs } }`);
  }
  const beat = app.beat({ schedules, leaseMs: opts.leaseMs });
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
    printOut(`beat ${process.pid}: ${Object.keys(schedules).length} schedule(s): ${Object.keys(schedules).join(', ')}; ${beat.isLeader ? 'leader' : 'standby'}`);
    await stopped;
    await beat.close();
    await app.close();
    printOut(`beat ${process.pid}: sent ${beat.sent.length} tick(s); closed`);
    return 0;
  } finally {
    dispose();
  }
}
