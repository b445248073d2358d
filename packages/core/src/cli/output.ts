/**
 * Where the CLI writes. Lifecycle lines go to stdout, errors and warnings to stderr. Writes to pipes
 * and files are synchronous on Linux, so a `process.exit()` after them loses nothing.
 */
export function printOut(line: string): void {
  process.stdout.write(`${line}\n`);
}

export function printErr(line: string): void {
  process.stderr.write(`${line}\n`);
}
