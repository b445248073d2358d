import { CliError, describeError, errorCode } from './cli-error.js';
import { printErr } from './output.js';

/** The package behind `celeriac dashboard`; not a dependency of core, so it is imported by name at run time. */
export const DASHBOARD_PACKAGE = '@celeriac/dashboard';

/**
 * `celeriac dashboard [...args]`: hand the arguments to `runDashboardCli(argv)` of `@celeriac/dashboard`
 * (it serves until SIGINT/SIGTERM) and exit with the code it returns. Without the package: one line
 * saying how to install it, exit code 1.
 */
export async function dashboardCommand(args: readonly string[]): Promise<number> {
  let mod: Record<string, unknown>;
  try {
    const spec: string = DASHBOARD_PACKAGE;
    mod = (await import(spec)) as Record<string, unknown>;
  } catch (err) {
    const code = errorCode(err);
    const message = err instanceof Error ? err.message : '';
    if ((code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND') && message.includes(`'${DASHBOARD_PACKAGE}'`)) {
      printErr(`celeriac dashboard needs the package ${DASHBOARD_PACKAGE}: npm install ${DASHBOARD_PACKAGE}`);
      return 1;
    }
    const hint = code === 'ERR_MODULE_NOT_FOUND' ? ' (is it built? npm run build)' : '';
    throw new CliError(`could not load ${DASHBOARD_PACKAGE}: ${describeError(err)}${hint}`, { cause: err });
  }
  const run = mod['runDashboardCli'];
  if (typeof run !== 'function') {
    throw new CliError(`${DASHBOARD_PACKAGE} does not export runDashboardCli(argv); install a version that matches @celeriac/core`);
  }
  const code: unknown = await (run as (argv: string[]) => Promise<unknown>)([...args]);
  return typeof code === 'number' && Number.isInteger(code) ? code : 0;
}
