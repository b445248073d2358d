/** Exit codes of the `celeriac` command. A second shutdown signal exits with 128 + the signal number. */
export const ExitCode = {
  /** Finished, or shut down gracefully. */
  OK: 0,
  /** Something failed while running: the app module, the broker, a command. */
  ERROR: 1,
  /** The command line is wrong: unknown command or option, a bad value, a missing file. */
  USAGE: 2,
} as const;

/** An error the CLI reports as one line, without a stack, exiting with `exitCode`. */
export class CliError extends Error {
  readonly exitCode: number;
  constructor(message: string, options: { cause?: unknown; exitCode?: number } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'CliError';
    this.exitCode = options.exitCode ?? ExitCode.ERROR;
  }
}

/** A mistake in the command line (exit code 2). */
export class UsageError extends CliError {
  constructor(message: string, options: { cause?: unknown } = {}) {
    super(message, { ...options, exitCode: ExitCode.USAGE });
    this.name = 'UsageError';
  }
}

const CREDENTIALS = /(\b[a-z][a-z0-9+.-]*:\/\/[^:/@\s]*):[^@/\s]*@/gi;

/** Hide passwords of every URL inside a text: `redis://u:secret@h` → `redis://u:***@h`. */
export function redactText(text: string): string {
  return text.replace(CREDENTIALS, '$1:***@');
}

/** The stable code of a celeriac (or Node) error, if it has one. */
export function errorCode(err: unknown): string | undefined {
  if (typeof err !== 'object' || err === null) return undefined;
  const code = (err as { code?: unknown }).code;
  return typeof code === 'string' ? code : undefined;
}

/**
 * One line for an error: its message and, for celeriac errors, the code (`… (ERR_CONNECTION)`).
 * CeleriacErrors are recognised by shape, not `instanceof`, so an app module that loaded another copy
 * of `@celeriac/core` is reported the same way.
 */
export function describeError(err: unknown): string {
  if (err instanceof CliError) return redactText(err.message);
  if (err instanceof Error) {
    const code = errorCode(err);
    const text = err.name === 'CeleriacError' || err.name === 'Error' ? err.message : `${err.name}: ${err.message}`;
    return redactText(code !== undefined && /^ERR_[A-Z_]+$/.test(code) && !text.includes(code) ? `${text} (${code})` : text);
  }
  return redactText(String(err));
}

/** The exit code for an error that reached the top of the CLI. */
export function exitCodeOf(err: unknown): number {
  return err instanceof CliError ? err.exitCode : ExitCode.ERROR;
}

/** The stack of an error and of its causes, redacted, for `--verbose`. */
export function describeStack(err: unknown): string {
  const parts: string[] = [];
  let e: unknown = err;
  for (let depth = 0; e !== undefined && depth < 5; depth++) {
    parts.push(e instanceof Error ? (e.stack ?? `${e.name}: ${e.message}`) : String(e));
    e = e instanceof Error ? e.cause : undefined;
  }
  return redactText(parts.join('\ncaused by: '));
}
