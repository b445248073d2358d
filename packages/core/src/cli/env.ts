/**
 * How `--broker` and `--result-backend` reach the app module: the CLI sets these variables before it
 * imports the module, and the module reads them, e.g.
 * `createApp({ broker: process.env.BROKER_URL ?? 'memory://' })`. `App` has no setter for its broker,
 * and the module's tasks are registered on the app it creates, so the CLI cannot swap it afterwards.
 */
export const BROKER_ENV = ['BROKER_URL', 'CELERIAC_BROKER_URL'] as const;
export const RESULT_BACKEND_ENV = ['RESULT_BACKEND_URL', 'CELERIAC_RESULT_BACKEND_URL'] as const;

/** Set the variables for the options that were given. */
export function exportUrls(opts: { broker?: string | undefined; resultBackend?: string | undefined }): void {
  if (opts.broker !== undefined) for (const k of BROKER_ENV) process.env[k] = opts.broker;
  if (opts.resultBackend !== undefined) for (const k of RESULT_BACKEND_ENV) process.env[k] = opts.resultBackend;
}

/** The broker URL from the environment (`CELERIAC_BROKER_URL`, then `BROKER_URL`), if any. */
export function brokerUrlFromEnv(): string | undefined {
  const v = process.env['CELERIAC_BROKER_URL'] ?? process.env['BROKER_URL'];
  return v === undefined || v === '' ? undefined : v;
}
