import { constants } from 'node:os';

/** The signals that stop a worker or a supervisor. */
export const SHUTDOWN_SIGNALS: readonly NodeJS.Signals[] = ['SIGINT', 'SIGTERM'];

export interface ShutdownHandlers {
  /** The first SIGINT/SIGTERM: shut down gracefully. */
  first(signal: NodeJS.Signals): void;
  /** Any later one: exit at once. */
  second(signal: NodeJS.Signals): void;
}

/** Install SIGINT/SIGTERM handlers; the returned function removes them. */
export function onShutdownSignals(handlers: ShutdownHandlers): () => void {
  let seen = 0;
  const listener = (signal: NodeJS.Signals): void => {
    seen++;
    if (seen === 1) handlers.first(signal);
    else handlers.second(signal);
  };
  for (const s of SHUTDOWN_SIGNALS) process.on(s, listener);
  return () => {
    for (const s of SHUTDOWN_SIGNALS) process.off(s, listener);
  };
}

/** The shell's convention for "ended by a signal": 128 + its number (130 for SIGINT, 143 for SIGTERM). */
export function signalExitCode(signal: NodeJS.Signals): number {
  return 128 + (constants.signals[signal] ?? 15);
}
