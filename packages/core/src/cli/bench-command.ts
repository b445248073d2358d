import { CliError, describeError, errorCode } from './cli-error.js';
import { printErr } from './output.js';

/** The package behind `celeriac bench`; not a dependency of core, so it is imported by name at run time. */
export const BENCH_PACKAGE = '@celeriac/bench';

/**
 * `celeriac bench [...args]`: hand the arguments to `runBenchCli(argv)` of `@celeriac/bench` and exit
 * with the code it returns. Without the package: one line saying how to install it, exit code 1.
 */
export async function benchCommand(args: readonly string[]): Promise<number> {
  let mod: Record<string, unknown>;
  try {
    // A variable specifier: the bench depends on core, so core must not depend on it at build time.
    const spec: string = BENCH_PACKAGE;
    mod = (await import(spec)) as Record<string, unknown>;
  } catch (err) {
    const code = errorCode(err);
    const message = err instanceof Error ? err.message : '';
    if ((code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND') && message.includes(`'${BENCH_PACKAGE}'`)) {
      printErr(`celeriac bench needs the package ${BENCH_PACKAGE}: npm install ${BENCH_PACKAGE}`);
      return 1;
    }
    const hint = code === 'ERR_MODULE_NOT_FOUND' ? ' (is it built? npm run build)' : '';
    throw new CliError(`could not load ${BENCH_PACKAGE}: ${describeError(err)}${hint}`, { cause: err });
  }
  const run = mod['runBenchCli'];
  if (typeof run !== 'function') {
    throw new CliError(`${BENCH_PACKAGE} does not export runBenchCli(argv); install a version that matches @celeriac/core`);
  }
  const code: unknown = await (run as (argv: string[]) => Promise<unknown>)([...args]);
  return typeof code === 'number' && Number.isInteger(code) ? code : 0;
}
