import { stat } from 'node:fs/promises';
import { extname, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { App } from '../app.js';
import { CliError, UsageError, describeError, errorCode } from './cli-error.js';

/**
 * Duck-typed check: an app created by another copy of `@celeriac/core` (a global CLI with a local
 * app module) is still an app.
 */
export function isApp(value: unknown): value is App {
  if (typeof value !== 'object' || value === null) return false;
  const v = value as Record<string, unknown>;
  return (
    typeof v['worker'] === 'function' &&
    typeof v['getBroker'] === 'function' &&
    typeof v['task'] === 'function' &&
    typeof v['close'] === 'function'
  );
}

/**
 * Import the module at `path` (relative to `cwd`) and return the app it exports: its default export,
 * or a named export `app` (for CommonJS, `module.exports = app` or `module.exports = { app }`).
 *
 * @throws UsageError when the file does not exist; CliError when it fails to load or exports no app.
 */
export async function loadApp(path: string, cwd: string = process.cwd()): Promise<App> {
  const file = resolve(cwd, path);
  try {
    const s = await stat(file);
    if (!s.isFile()) throw new UsageError(`the app module ${path} is not a file (${file})`);
  } catch (err) {
    if (err instanceof UsageError) throw err;
    throw new UsageError(`cannot find the app module ${path} (looked for ${file})`, { cause: err });
  }
  let mod: Record<string, unknown>;
  try {
    mod = (await import(pathToFileURL(file).href)) as Record<string, unknown>;
  } catch (err) {
    const code = errorCode(err);
    if (code === 'ERR_UNKNOWN_FILE_EXTENSION' && ['.ts', '.mts', '.cts'].includes(extname(file))) {
      throw new CliError(
        `cannot import ${path}: Node runs JavaScript; compile it first, or run the CLI under a TypeScript loader (node --import tsx …)`,
        { cause: err },
      );
    }
    // Errors celeriac raised while the module ran (a bad URL, a bad task option) keep their own line.
    if (code !== undefined && /^ERR_/.test(code) && (err as Error).name === 'CeleriacError') throw err;
    throw new CliError(`could not load the app module ${path}: ${describeError(err)}`, { cause: err });
  }
  if (isApp(mod['default'])) return mod['default'];
  if (isApp(mod['app'])) return mod['app'];
  // A CommonJS module's `module.exports = { app }` arrives as the default export.
  const cjs = mod['default'];
  if (typeof cjs === 'object' && cjs !== null && isApp((cjs as Record<string, unknown>)['app'])) {
    return (cjs as Record<string, unknown>)['app'] as App;
  }
  const names = Object.keys(mod);
  throw new CliError(
    `the app module ${path} exports no app: export it as the default export or as \`app\`` +
      ` (its exports: ${names.length === 0 ? 'none' : names.join(', ')})`,
  );
}
