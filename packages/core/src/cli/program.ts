import { readFileSync } from 'node:fs';
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { redactUrl } from '../logger.js';
import { benchCommand } from './bench-command.js';
import { dashboardCommand } from './dashboard-command.js';
import { runBeat, type BeatCommandOptions } from './beat-command.js';
import { inspectQueues, inspectTask, inspectWorkers } from './inspect-command.js';
import { ExitCode, UsageError, describeError, describeStack, exitCodeOf } from './cli-error.js';
import { printErr } from './output.js';
import { dlqListCommand, dlqPurgeCommand, dlqRedriveCommand, purgeCommand } from './queue-commands.js';
import { schedulesListCommand, schedulesRemoveCommand } from './schedules-command.js';
import { checkScheduleId } from '../schedules.js';
import { runSupervisor } from './supervisor.js';
import { runWorker, type WorkerCommandOptions } from './worker-command.js';

function intAtLeast(min: number): (value: string) => number {
  return (value) => {
    if (!/^\d+$/.test(value) || Number(value) < min || !Number.isSafeInteger(Number(value))) {
      throw new InvalidArgumentError(`expected an integer >= ${min}`);
    }
    return Number(value);
  };
}

function list(value: string): string[] {
  const items = value
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
  if (items.length === 0) throw new InvalidArgumentError('expected a comma-separated list');
  return items;
}

/**
 * URLs are checked in the action, not by commander's parser: commander quotes a rejected value in
 * its message, and a URL may hold a password.
 */
function checkUrl(value: string | undefined, flag: string): void {
  if (value === undefined) return;
  try {
    new URL(value);
  } catch {
    throw new UsageError(`${flag}: not a valid URL: ${redactUrl(value)} (expected e.g. redis://127.0.0.1:6379)`);
  }
}

function version(): string {
  try {
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version?: unknown };
    return typeof pkg.version === 'string' ? pkg.version : 'unknown';
  } catch {
    return 'unknown';
  }
}

const WORKER_HELP = `
The app module exports the app (default export, or a named export \`app\`):
  // tasks.mjs
  import { createApp } from '@celeriac/core';
  export const app = createApp({ broker: process.env.BROKER_URL ?? 'memory://' });
  app.task('math.add', (a, b) => a + b);

--broker and --result-backend set BROKER_URL and CELERIAC_BROKER_URL (RESULT_BACKEND_URL and
CELERIAC_RESULT_BACKEND_URL) before the module is imported: the module must read one of them.

Signals: the first SIGINT/SIGTERM closes gracefully (running tasks may finish within
--shutdown-timeout-ms, prefetched ones are given back); a second one exits at once.
Exit codes: 0 closed cleanly, 1 runtime error, 2 usage error, 130/143 forced exit by a second signal.

Examples:
  $ celeriac worker --app ./tasks.mjs
  $ celeriac worker --app ./dist/tasks.js --broker redis://127.0.0.1:6379 -Q default,mail -c 16 -p 2`;

const SOURCE_HELP = `
The broker comes from --app (the app's own broker), else --broker, else CELERIAC_BROKER_URL or BROKER_URL.
Exit codes: 0 done, 1 runtime error (e.g. an unreachable broker), 2 usage error.`;

const BEAT_HELP = `
Static schedules are exported by the app module (\`export const schedules = { name: { task, cron | everyMs } }\`);
runtime schedules are those stored with app.schedules.upsert() when the result backend can store them
(memory, Redis, NATS KV). A module may have either or both. One beat holds the leader lease and sends;
each tick is sent once fleet-wide.
Exit codes: 0 closed cleanly, 1 runtime error, 2 usage error, 130/143 forced exit by a second signal.

Examples:
  $ celeriac beat -A ./tasks.mjs
  $ celeriac beat -A ./tasks.mjs --result-backend redis://127.0.0.1:6379 --lease-ms 5000`;

const SCHEDULES_HELP = `
Runtime schedules are the periodic tasks an app stores with app.schedules.upsert(id, schedule); every
running \`celeriac beat\` picks them up (static ones, exported by the app module, are not listed here).
The result backend comes from --app (the app's own), else --result-backend, else
CELERIAC_RESULT_BACKEND_URL or RESULT_BACKEND_URL. It must store schedules (memory, Redis, NATS KV);
memory:// lives inside one process, so only a shared store is useful here.
Exit codes: 0 done, 1 runtime error (or remove found no such schedule), 2 usage error.

Examples:
  $ celeriac schedules list --result-backend redis://127.0.0.1:6379
  $ celeriac schedules list -A ./tasks.mjs --json
  $ celeriac schedules remove customer-42-report -A ./tasks.mjs`;

/** Holds the exit code an action decided on (commander's actions return nothing). */
interface Outcome {
  code: number;
}

function addSourceOptions(cmd: Command): Command {
  return cmd
    .option('-A, --app <path>', 'module that exports the app; its broker is used')
    .option('-b, --broker <url>', 'broker URL, when no --app is given')
    .option('--json', 'print JSON', false)
    .option('-v, --verbose', 'print the stacks of errors', false)
    .addHelpText('after', SOURCE_HELP);
}

/** Build the `celeriac` program. `outcome.code` receives the exit code of the action that ran. */
export function createProgram(outcome: Outcome): Command {
  const program = new Command('celeriac')
    .description('celeriac: a task queue for TypeScript and Node.js — run workers, inspect queues, benchmark')
    .version(version(), '-V, --version')
    .enablePositionalOptions()
    .exitOverride()
    .showSuggestionAfterError()
    .configureOutput({ writeErr: (s) => process.stderr.write(s), writeOut: (s) => process.stdout.write(s) });

  program
    .command('worker')
    .description('consume queues and run the tasks of an app module')
    .requiredOption('-A, --app <path>', 'module that exports the app, relative to the current directory')
    .option('-b, --broker <url>', 'broker URL, exported as BROKER_URL / CELERIAC_BROKER_URL for the app module')
    .option('--result-backend <url>', 'result backend URL, exported as RESULT_BACKEND_URL / CELERIAC_RESULT_BACKEND_URL')
    .option('-Q, --queues <names>', 'comma-separated queues to consume (default: the app\'s default queue)', list)
    .option('-c, --concurrency <n>', 'handlers running at once per process (default: 8)', intAtLeast(1))
    .option('--prefetch-multiplier <n>', 'unacked deliveries held = concurrency × this (default: 4)', intAtLeast(1))
    .option('-p, --processes <n>', 'worker processes under one supervisor', intAtLeast(1), 1)
    .option('--max-restarts <n>', 'consecutive crashes of one worker process before the supervisor gives up', intAtLeast(0), 5)
    .option('--shutdown-timeout-ms <ms>', 'how long running tasks may take to finish on shutdown', intAtLeast(0), 30_000)
    .option('--connect-timeout-ms <ms>', 'how long the worker may take to connect at start', intAtLeast(1), 30_000)
    .option('-v, --verbose', 'print every task event and the stacks of errors', false)
    .option('-E, --events', 'publish task events for dashboards and monitors (heartbeats are always sent)', false)
    .addOption(new Option('--pool <kind>', "'threads' runs handlers in worker threads so hard time limits are enforced").choices(['async', 'threads']))
    .addOption(new Option('--internal-supervised <slot>').hideHelp().argParser(intAtLeast(0)))
    .addHelpText('after', WORKER_HELP)
    .action(async (opts: WorkerCommandOptions) => {
      checkUrl(opts.broker, '--broker');
      checkUrl(opts.resultBackend, '--result-backend');
      outcome.code = opts.processes > 1 && opts.internalSupervised === undefined ? await runSupervisor(opts) : await runWorker(opts);
    });

  addSourceOptions(
    program
      .command('purge')
      .description('drop every ready message of a queue (not the delayed, in-flight or dead ones)')
      .argument('<queue>', 'queue name'),
  ).action(async (queue: string, opts: { app?: string; broker?: string; json: boolean }) => {
    checkUrl(opts.broker, '--broker');
    await purgeCommand(queue, opts);
  });

  const dlq = program.command('dlq').description('inspect and redrive dead-lettered messages');
  addSourceOptions(
    dlq
      .command('list')
      .description('list the dead letters of a queue')
      .argument('<queue>', 'queue name')
      .option('-l, --limit <n>', 'at most this many', intAtLeast(1), 100),
  ).action(async (queue: string, opts: { app?: string; broker?: string; json: boolean; limit: number }) => {
    checkUrl(opts.broker, '--broker');
    await dlqListCommand(queue, opts);
  });
  addSourceOptions(
    dlq
      .command('redrive')
      .description('move dead letters back to their queue: all of them, or those with --ids')
      .argument('<queue>', 'queue name')
      .option('--ids <ids>', 'comma-separated dead-letter ids (as `dlq list` prints them)', list),
  ).action(async (queue: string, opts: { app?: string; broker?: string; json: boolean; ids?: string[] }) => {
    checkUrl(opts.broker, '--broker');
    await dlqRedriveCommand(queue, opts);
  });
  addSourceOptions(
    dlq.command('purge').description('drop the dead letters of a queue').argument('<queue>', 'queue name'),
  ).action(async (queue: string, opts: { app?: string; broker?: string; json: boolean }) => {
    checkUrl(opts.broker, '--broker');
    await dlqPurgeCommand(queue, opts);
  });

  const inspect = program.command('inspect').description('look at queues, workers and tasks');
  addSourceOptions(
    inspect.command('queues').description('depths of queues: ready, delayed, in flight, dead').argument('[queues...]', 'queue names (default: default)'),
  ).action(async (queues: string[], opts: { app?: string; broker?: string; json: boolean }) => {
    checkUrl(opts.broker, '--broker');
    await inspectQueues(queues, opts);
  });
  addSourceOptions(
    inspect
      .command('workers')
      .description('workers heard over the broker (heartbeats every 2 s)')
      .option('--wait-ms <ms>', 'how long to listen', intAtLeast(1), 3_000),
  ).action(async (opts: { app?: string; broker?: string; json: boolean; waitMs: number }) => {
    checkUrl(opts.broker, '--broker');
    await inspectWorkers(opts);
  });
  addSourceOptions(
    inspect
      .command('task')
      .description("a task's state, result or error, from the app's result backend")
      .argument('<id>', 'task id')
      .option('--result-backend <url>', 'result backend URL, exported as RESULT_BACKEND_URL for the app module'),
  ).action(async (id: string, opts: { app?: string; broker?: string; resultBackend?: string; json: boolean }) => {
    checkUrl(opts.resultBackend, '--result-backend');
    await inspectTask(id, opts);
  });

  program
    .command('beat')
    .description('send the periodic tasks the app module exports as `schedules` and the runtime ones of app.schedules; run several for failover')
    .requiredOption('-A, --app <path>', 'module that exports the app (and any static `schedules`), relative to the current directory')
    .option('-b, --broker <url>', 'broker URL, exported as BROKER_URL / CELERIAC_BROKER_URL for the app module')
    .option('--result-backend <url>', 'result backend URL (holds the leader lease and tick records)')
    .option('--lease-ms <ms>', 'leader lease; a dead leader is replaced within this', intAtLeast(30), 10_000)
    .option('--sync-ms <ms>', 'how often the leader checks for runtime schedules created, changed or removed', intAtLeast(1), 1_000)
    .addHelpText('after', BEAT_HELP)
    .action(async (opts: BeatCommandOptions) => {
      checkUrl(opts.broker, '--broker');
      checkUrl(opts.resultBackend, '--result-backend');
      outcome.code = await runBeat(opts);
    });

  const schedules = program
    .command('schedules')
    .description('list and remove the runtime schedules of app.schedules (stored in the result backend)')
    .addHelpText('after', SCHEDULES_HELP);
  const addScheduleSource = (cmd: Command): Command =>
    cmd
      .option('-A, --app <path>', 'module that exports the app; its result backend is used')
      .option('--result-backend <url>', 'result backend URL, when no --app is given (with --app: exported as RESULT_BACKEND_URL)')
      .option('--json', 'print JSON', false)
      .option('-v, --verbose', 'print the stacks of errors', false)
      .addHelpText('after', SCHEDULES_HELP);
  addScheduleSource(
    schedules.command('list').description('every runtime schedule: task, timing, next run, run count (and limit), last run'),
  ).action(async (opts: { app?: string; resultBackend?: string; json: boolean }) => {
    checkUrl(opts.resultBackend, '--result-backend');
    await schedulesListCommand(opts);
  });
  addScheduleSource(
    schedules
      .command('remove')
      .description('remove a runtime schedule: no beat sends a tick of it afterwards')
      .argument('<id>', 'schedule id (as `schedules list` prints it)'),
  ).action(async (id: string, opts: { app?: string; resultBackend?: string; json: boolean }) => {
    checkUrl(opts.resultBackend, '--result-backend');
    try {
      checkScheduleId(id);
    } catch (err) {
      throw new UsageError((err as Error).message);
    }
    outcome.code = await schedulesRemoveCommand(id, opts);
  });

  program
    .command('dashboard')
    .description('serve the live web dashboard and /metrics (needs the package @celeriac/dashboard); arguments go to it as they are')
    .argument('[args...]', 'arguments for the dashboard; `celeriac dashboard --help` shows them')
    .helpOption(false)
    .allowUnknownOption()
    .allowExcessArguments()
    .passThroughOptions()
    .action(async (args: string[]) => {
      outcome.code = await dashboardCommand(args);
    });

  program
    .command('bench')
    .description('run the benchmarks (needs the package @celeriac/bench); arguments go to it as they are')
    .argument('[args...]', 'arguments for the bench; `celeriac bench --help` shows them')
    .helpOption(false)
    .allowUnknownOption()
    .allowExcessArguments()
    .passThroughOptions()
    .action(async (args: string[]) => {
      outcome.code = await benchCommand(args);
    });

  return program;
}

/**
 * Run the CLI on `argv` (without `node` and the script) and resolve with the exit code. Errors are
 * printed as one line (`celeriac: error: …`); `--verbose` adds the stack.
 */
export async function runCli(argv: readonly string[]): Promise<number> {
  const outcome: Outcome = { code: ExitCode.OK };
  const program = createProgram(outcome);
  if (argv.length === 0) {
    program.outputHelp({ error: true });
    return ExitCode.USAGE;
  }
  try {
    await program.parseAsync([...argv], { from: 'user' });
    return outcome.code;
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode === 0 ? ExitCode.OK : ExitCode.USAGE;
    const verbose = argv.includes('--verbose') || argv.includes('-v');
    printErr(`celeriac: error: ${describeError(err)}`);
    if (verbose) printErr(describeStack(err));
    return exitCodeOf(err);
  }
}
