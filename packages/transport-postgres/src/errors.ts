import { CeleriacError, ErrorCode } from '@celeriac/core';
import { DatabaseError } from 'pg';

/**
 * The error codes this package adds to core's `ErrorCode` (stable within a major version). Every
 * error it throws is a `CeleriacError` with one of these or one of core's codes.
 */
export const PostgresErrorCode = {
  /**
   * The schema was migrated by a newer celeriac than this one (never downgraded), or, with
   * `migrate=false`, it is missing or older than this code needs.
   */
  SCHEMA_VERSION: 'ERR_SCHEMA_VERSION',
  /** The server refused a statement for a reason other than the connection (see `cause`). */
  DATABASE: 'ERR_DATABASE',
} as const;

/** Any code this package throws: one of core's, or one of {@link PostgresErrorCode}. */
export type PostgresErrorCodeValue = (typeof PostgresErrorCode)[keyof typeof PostgresErrorCode] | (typeof ErrorCode)[keyof typeof ErrorCode];

/** SQLSTATE classes and codes that mean the connection (or the server's availability) failed. */
const CONNECTION_STATES: ReadonlySet<string> = new Set([
  '57P01', // admin_shutdown (pg_terminate_backend, fast shutdown)
  '57P02', // crash_shutdown
  '57P03', // cannot_connect_now (starting up, shutting down)
  '57P05', // idle_session_timeout
  '53300', // too_many_connections
  '25P03', // idle_in_transaction_session_timeout
]);

/** SQLSTATEs after which running the same statement again may well succeed. */
const TRANSIENT_STATES: ReadonlySet<string> = new Set([
  '40001', // serialization_failure
  '40P01', // deadlock_detected
  '55P03', // lock_not_available
]);

/** Node's socket error codes. */
const SOCKET_CODES: ReadonlySet<string> = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN']);

function systemCode(err: unknown): string | undefined {
  if (err instanceof Error && 'code' in err && typeof err.code === 'string') return err.code;
  return undefined;
}

/**
 * The one place driver errors become celeriac errors (the original is kept as `cause`):
 *
 * - celeriac errors, `TypeError` and `RangeError` (bad arguments) pass through;
 * - a lost or refused connection (SQLSTATE class 08, 57P01–57P03, 53300, a socket error, or pg's
 *   "Connection terminated") is a retryable `ERR_CONNECTION`;
 * - a statement cancelled by `statement_timeout` is a retryable `ERR_TIMEOUT`;
 * - any other server error is `ERR_DATABASE` (retryable for serialization failures, deadlocks and
 *   lock timeouts), with its SQLSTATE in the message.
 *
 * Messages never contain the connection string (so never a password).
 */
export function classifyError(err: unknown, doing?: string): Error {
  if (err instanceof CeleriacError || err instanceof TypeError || err instanceof RangeError) return err;
  const prefix = doing === undefined ? '' : `${doing}: `;
  if (err instanceof DatabaseError) {
    const state = err.code ?? '';
    if (state.startsWith('08') || CONNECTION_STATES.has(state)) {
      return new CeleriacError(ErrorCode.CONNECTION, `${prefix}connection to PostgreSQL lost (${state}): ${err.message}`, { cause: err, retryable: true });
    }
    if (state === '57014') {
      return new CeleriacError(ErrorCode.TIMEOUT, `${prefix}statement cancelled (${state}): ${err.message}`, { cause: err, retryable: true });
    }
    return new CeleriacError(PostgresErrorCode.DATABASE, `${prefix}PostgreSQL error ${state}: ${err.message}`, {
      cause: err,
      retryable: TRANSIENT_STATES.has(state),
    });
  }
  const code = systemCode(err);
  const text = err instanceof Error ? err.message : String(err);
  if (code !== undefined && !SOCKET_CODES.has(code) && !code.startsWith('ERR_SOCKET')) {
    // Not a socket failure, not a server error: the driver refused something we asked of it.
    return new CeleriacError(PostgresErrorCode.DATABASE, `${prefix}${text}`, { cause: err });
  }
  // Socket errors, "Connection terminated unexpectedly", "Client has encountered a connection error
  // and is not queryable", connect timeouts: the connection is gone; try again on a new one.
  return new CeleriacError(ErrorCode.CONNECTION, `${prefix}connection to PostgreSQL failed: ${text}`, { cause: err, retryable: true });
}

/** A promise's rejection, classified: `.catch(rejectClassified)`. */
export function rejectClassified(err: unknown): never {
  throw classifyError(err);
}

/** The error a settle gets when its claim token no longer matches: the lease was lost. */
export function staleDelivery(): CeleriacError {
  return new CeleriacError(
    ErrorCode.STALE_DELIVERY,
    'the delivery lease expired and the message was claimed again or settled; this holder can no longer settle it',
  );
}
