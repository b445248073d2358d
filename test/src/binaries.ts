import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';

/** The full path of `command` (absolute, or found on PATH and executable), or undefined. */
export function findBinary(command: string): string | undefined {
  const candidates = command.includes('/')
    ? [command]
    : (process.env['PATH'] ?? '').split(delimiter).filter((d) => d !== '').map((d) => join(d, command));
  for (const c of candidates) {
    try {
      accessSync(c, constants.X_OK);
      return c;
    } catch {
      // not here
    }
  }
  return undefined;
}

/**
 * Whether tests that start a private server from `command` should run: a missing binary skips them
 * with one clear line locally and throws under CI=true.
 */
export function requireBinary(command: string): boolean {
  if (findBinary(command) !== undefined) return true;
  const line = `${command} is not installed`;
  if (process.env['CI'] === 'true') throw new Error(`${line}; CI must provide it (see DESIGN.md §8)`);
  process.stderr.write(`skipping private-server tests: ${line}\n`);
  return false;
}
