import { Command, CommanderError, InvalidArgumentError } from 'commander';
import { isCeleriacError, redactUrl } from '@celeriac/core';
import { createDashboard, type Dashboard, type DashboardOptions } from './dashboard.js';

/** Where `runDashboardCli` writes and what it reads; the process's own by default. */
export interface DashboardCliIo {
  stdout: { write(text: string): unknown };
  stderr: { write(text: string): unknown };
  env: Readonly<Record<string, string | undefined>>;
  /** Stops the dashboard like SIGINT/SIGTERM do (tests, embedding). */
  signal?: AbortSignal;
  /** Called once the dashboard listens. */
  onListening?: (dashboard: Dashboard) => void;
}

interface ParsedOptions {
  broker?: string;
  resultBackend?: string;
  port: number;
  host: string;
  queues?: string[];
  token?: string;
  basicAuth?: string;
  maxTasks?: number;
}

const HELP = `
Environment (used when the flag is absent; prefer it for secrets: the command line shows in ps):
  CELERIAC_BROKER_URL or BROKER_URL                   --broker
  CELERIAC_RESULT_BACKEND_URL or RESULT_BACKEND_URL   --result-backend
  CELERIAC_DASHBOARD_TOKEN                            --token
  CELERIAC_DASHBOARD_BASIC_AUTH (user:password)       --basic-auth

Binds 127.0.0.1 unless --host says otherwise; any other address needs --token or --basic-auth.
Workers publish task events only with sendEvents: true (worker lifecycle and heartbeats always).
Exit codes: 0 stopped by SIGINT/SIGTERM, 1 runtime error (e.g. broker unreachable, port in use), 2 usage error.

Examples:
  $ celeriac dashboard --broker redis://127.0.0.1:6379
  $ CELERIAC_DASHBOARD_TOKEN=$(openssl rand -hex 16) celeriac dashboard --broker amqp://localhost --host 0.0.0.0`;

function port(value: string): number {
  if (!/^\d+$/.test(value) || Number(value) > 65_535) throw new InvalidArgumentError('expected a port number from 0 to 65535');
  return Number(value);
}

function positiveInt(value: string): number {
  if (!/^\d+$/.test(value) || Number(value) < 1 || !Number.isSafeInteger(Number(value))) throw new InvalidArgumentError('expected an integer >= 1');
  return Number(value);
}

function list(value: string): string[] {
  const items = value
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
  if (items.length === 0) throw new InvalidArgumentError('expected a comma-separated list');
  return items;
}

class UsageError extends Error {}

function buildProgram(io: DashboardCliIo): Command {
  return new Command('celeriac dashboard')
    .description('serve the live web dashboard and /metrics for a broker')
    .option('-b, --broker <url>', 'broker URL (default: $CELERIAC_BROKER_URL or $BROKER_URL)')
    .option('--result-backend <url>', 'result backend URL, to look up tasks the dashboard has not seen')
    .option('-p, --port <n>', 'TCP port', port, 5555)
    .option('--host <address>', 'address to bind', '127.0.0.1')
    .option('-Q, --queues <names>', 'comma-separated queues always shown (default: default; more appear as workers name them)', list)
    .option('--token <token>', 'require this access token (Bearer header, or the sign-in form)')
    .option('--basic-auth <user:password>', 'require HTTP basic auth')
    .option('--max-tasks <n>', 'recent tasks kept in memory (default: 500)', positiveInt)
    .helpOption('-h, --help', 'show this help')
    .addHelpText('after', HELP)
    .exitOverride()
    .configureOutput({ writeOut: (s) => void io.stdout.write(s), writeErr: (s) => void io.stderr.write(s) });
}

function checkUrl(value: string, flag: string): void {
  try {
    new URL(value);
  } catch {
    throw new UsageError(`${flag}: not a valid URL: ${redactUrl(value)} (expected e.g. redis://127.0.0.1:6379)`);
  }
}

function toOptions(o: ParsedOptions, env: DashboardCliIo['env']): DashboardOptions {
  const broker = o.broker ?? env['CELERIAC_BROKER_URL'] ?? env['BROKER_URL'];
  if (broker === undefined || broker === '') throw new UsageError('--broker is required (or set CELERIAC_BROKER_URL)');
  checkUrl(broker, '--broker');
  const resultBackend = o.resultBackend ?? env['CELERIAC_RESULT_BACKEND_URL'] ?? env['RESULT_BACKEND_URL'];
  if (resultBackend !== undefined) checkUrl(resultBackend, '--result-backend');
  const token = o.token ?? env['CELERIAC_DASHBOARD_TOKEN'];
  const basic = o.basicAuth ?? env['CELERIAC_DASHBOARD_BASIC_AUTH'];
  const out: DashboardOptions = { broker, port: o.port, host: o.host };
  if (resultBackend !== undefined && resultBackend !== '') out.resultBackend = resultBackend;
  if (o.queues !== undefined) out.queues = o.queues;
  if (token !== undefined && token !== '') out.token = token;
  if (basic !== undefined && basic !== '') {
    const i = basic.indexOf(':');
    if (i <= 0) throw new UsageError('--basic-auth: expected user:password');
    out.basicAuth = { user: basic.slice(0, i), password: basic.slice(i + 1) };
  }
  if (o.maxTasks !== undefined) out.maxTasks = o.maxTasks;
  return out;
}

/**
 * `celeriac dashboard [options]`: start the dashboard, print its URL, serve until SIGINT/SIGTERM
 * (or `io.signal`), then close. `argv` holds the arguments after `dashboard`. Resolves with the exit
 * code: 0 stopped, 1 runtime error, 2 usage error. Never throws.
 */
export async function runDashboardCli(argv: readonly string[], ioIn: Partial<DashboardCliIo> = {}): Promise<number> {
  const io: DashboardCliIo = {
    stdout: ioIn.stdout ?? process.stdout,
    stderr: ioIn.stderr ?? process.stderr,
    env: ioIn.env ?? process.env,
    ...(ioIn.signal === undefined ? {} : { signal: ioIn.signal }),
    ...(ioIn.onListening === undefined ? {} : { onListening: ioIn.onListening }),
  };
  const program = buildProgram(io);
  let opts: DashboardOptions;
  try {
    program.parse([...argv], { from: 'user' });
    opts = toOptions(program.opts<ParsedOptions>(), io.env);
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode === 0 ? 0 : 2;
    io.stderr.write(`celeriac dashboard: ${err instanceof Error ? err.message : String(err)}\n`);
    return 2;
  }

  const stop = new AbortController();
  const onSignal = () => stop.abort();
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  const onAbort = () => stop.abort();
  io.signal?.addEventListener('abort', onAbort, { once: true });
  let dashboard: Dashboard | undefined;
  try {
    if (io.signal?.aborted === true) return 0;
    dashboard = await createDashboard(opts);
    const auth = opts.token !== undefined ? ', token required' : opts.basicAuth !== undefined ? ', basic auth required' : '';
    io.stdout.write(`celeriac dashboard on ${dashboard.url} (broker ${redactUrl(String(opts.broker))}${auth}); Ctrl-C stops it\n`);
    io.onListening?.(dashboard);
    if (!stop.signal.aborted) await new Promise<void>((resolve) => stop.signal.addEventListener('abort', () => resolve(), { once: true }));
    await dashboard.close();
    return 0;
  } catch (err) {
    const code = isCeleriacError(err) ? ` [${err.code}]` : '';
    io.stderr.write(`celeriac dashboard: ${redactText(err instanceof Error ? err.message : String(err))}${code}\n`);
    await dashboard?.close().catch(() => undefined);
    return 1;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    io.signal?.removeEventListener('abort', onAbort);
  }
}

/** Hide the password of any URL inside an error message. */
function redactText(text: string): string {
  return text.replace(/(\b[a-z][a-z0-9+.-]*:\/\/[^:/@\s]*):[^@/\s]*@/gi, '$1:***@');
}
