import { expiredRowsCleanup } from './database.js';
import { taskDigest } from './sql.js';

/**
 * The result backend's statements, for the schema `s` (quoted). Headers list parameters and rows.
 */
export interface ResultStatements {
  /** Upsert results and notify the waited ones. */
  readonly set: string;
  /** Read live results. */
  readonly get: string;
  /** Mark tasks as waited on and read them. */
  readonly register: string;
  /** Forget a result. */
  readonly delete: string;
  /** Add to a counter. */
  readonly incr: string;
  /** Take a lease. */
  readonly acquireLease: string;
  /** Extend a held lease. */
  readonly renewLease: string;
  /** Give a held lease up. */
  readonly releaseLease: string;
  /** Remember a revocation. */
  readonly revoke: string;
  /** Which task ids are revoked. */
  readonly isRevoked: string;
  /** Every live revocation. */
  readonly listRevoked: string;
  /** Take a token from a bucket. */
  readonly takeTokens: string;
  /** Delete expired rows, one statement per table. */
  readonly cleanup: readonly string[];
  /** One schedule record. */
  readonly getSchedule: string;
  /** Every schedule record with the version, in one snapshot. */
  readonly listSchedules: string;
  /** The schedules' version. */
  readonly schedulesVersion: string;
  /** Lock the schedules and take the next rev (the first statement of a schedule write). */
  readonly nextScheduleRev: string;
  /** Create a schedule record unless one exists. */
  readonly createSchedule: string;
  /** Replace a schedule record if its rev is as expected. */
  readonly replaceSchedule: string;
  /** Remove a schedule record. */
  readonly deleteSchedule: string;
}

const READY = `('SUCCESS', 'FAILURE', 'REVOKED')`;
/** Task ids per NOTIFY payload: 200 md5 digests and newlines are 6,600 bytes, under the 8,000-byte limit. */
const DIGESTS_PER_NOTIFY = 200;

/** The result backend's statements for schema `s` (already quoted). */
export function resultStatements(s: string): ResultStatements {
  return {
    /*
      set: store task states — each unless a live SUCCESS is stored — and notify the ready ones that
      someone waits for (waited_until in the future). One statement per batch; at most one NOTIFY per
      200 waited results, none when nobody waits, so result writes do not queue on the server's
      notification lock.

      $1 task ids text[] (no duplicates), $2 states text[], $3 metas json[], $4 ttl ms float8[]
      (null: kept forever), $5 md5 hex of the task ids text[], $6 the results channel
      Rows: one, {stored: rows written}
    */
    set: `WITH ${resultWriteCtes(s)}
SELECT (SELECT count(*)::int FROM up) AS stored, (SELECT count(*)::int FROM woke) AS notified`,

    /*
      get: the live results of these task ids (not expired, not a bare waiter's marker).
      $1 task ids text[]
      Rows: {task_id, meta}
    */
    get: `SELECT task_id, meta FROM ${s}.result
WHERE task_id = ANY($1::text[]) AND state IS NOT NULL AND (expires_at IS NULL OR expires_at > now())`,

    /*
      register: mark that someone waits for these tasks until now() + ms (null: forever), creating a
      marker row (state null, removed a minute after the wait ends) where none exists. Row locks order
      this against a concurrent set: either the set sees the marker and notifies, or this returns
      the stored result.

      $1 task ids text[] (no duplicates), $2 wait ms float8[]
      Rows: {task_id, meta} with meta null unless a live result is stored
    */
    register: `INSERT INTO ${s}.result AS r (task_id, waited_until, expires_at)
SELECT a.task_id, t.until, t.until + interval '1 minute'
FROM unnest($1::text[], $2::float8[]) AS a(task_id, ms),
     LATERAL (SELECT coalesce(now() + a.ms * interval '1 millisecond', 'infinity'::timestamptz) AS until) t
ON CONFLICT (task_id) DO UPDATE SET waited_until = greatest(r.waited_until, excluded.waited_until)
RETURNING r.task_id, CASE WHEN r.state IS NOT NULL AND (r.expires_at IS NULL OR r.expires_at > now()) THEN r.meta END AS meta`,

    /*
      delete: forget a result; a row someone still waits on keeps its marker.
      $1 task id
    */
    delete: `WITH gone AS (
  DELETE FROM ${s}.result WHERE task_id = $1 AND (waited_until IS NULL OR waited_until <= now()) RETURNING 1
)
UPDATE ${s}.result SET state = NULL, meta = NULL, expires_at = waited_until + interval '1 minute'
WHERE task_id = $1 AND waited_until > now()`,

    /*
      incr: add $2 to counter $1 (an expired counter starts again from 0); its expiry becomes now() + $3 ms.
      Rows: one, {value}
    */
    incr: `INSERT INTO ${s}.counter AS c (key, value, expires_at) VALUES ($1, $2, now() + $3 * interval '1 millisecond')
ON CONFLICT (key) DO UPDATE SET
  value = CASE WHEN c.expires_at <= now() THEN excluded.value ELSE c.value + excluded.value END,
  expires_at = excluded.expires_at
RETURNING value::text AS value`,

    /*
      acquireLease: take lease $1 for holder $2 for $3 ms unless someone holds it (expired leases are free).
      Rows: one when taken, none otherwise
    */
    acquireLease: `INSERT INTO ${s}.lease AS l (name, holder, expires_at) VALUES ($1, $2, now() + $3 * interval '1 millisecond')
ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
  WHERE l.expires_at <= now()
RETURNING 1 AS ok`,

    /* renewLease: extend lease $1 by $3 ms if holder $2 still holds it. Rows: one when renewed. */
    renewLease: `UPDATE ${s}.lease SET expires_at = now() + $3 * interval '1 millisecond'
WHERE name = $1 AND holder = $2 AND expires_at > now()
RETURNING 1 AS ok`,

    /* releaseLease: give lease $1 up if holder $2 holds it. Rows: one when released. */
    releaseLease: `DELETE FROM ${s}.lease WHERE name = $1 AND holder = $2 AND expires_at > now() RETURNING 1 AS ok`,

    /* revoke: remember task $1 as revoked for $2 ms (null: forever). */
    revoke: `INSERT INTO ${s}.revocation (task_id, expires_at) VALUES ($1, now() + $2 * interval '1 millisecond')
ON CONFLICT (task_id) DO UPDATE SET expires_at = excluded.expires_at`,

    /* isRevoked: which of the task ids $1 (text[]) are revoked. Rows: {task_id} */
    isRevoked: `SELECT task_id FROM ${s}.revocation
WHERE task_id = ANY($1::text[]) AND (expires_at IS NULL OR expires_at > now())`,

    /* listRevoked: every live revocation. Rows: {task_id} */
    listRevoked: `SELECT task_id FROM ${s}.revocation WHERE expires_at IS NULL OR expires_at > now()`,

    /*
      takeTokens: take one token from bucket $1 of $2 tokens refilled continuously over $3 ms, on the
      server's clock. The row lock of the upsert serialises takers of one bucket. now() is when a
      statement's transaction started, so one that waited for the lock may be older than the stored
      `at`: `at` never moves back (else the time between would be refilled twice — found by the
      workflows rate-limit test: 117 starts in 0.9 s at 50/s), and such a taker gets no refill.
      Rows: one, {taken, tokens} (tokens left after this call)
    */
    takeTokens: `INSERT INTO ${s}.token_bucket AS b (name, tokens, taken, at, expires_at)
VALUES ($1, $2::float8 - 1, true, now(), now() + 2 * $3::float8 * interval '1 millisecond')
ON CONFLICT (name) DO UPDATE SET
  tokens = CASE
    WHEN least($2::float8, b.tokens + greatest(0, extract(epoch FROM now() - b.at) * 1000) * $2::float8 / $3::float8) >= 1
    THEN least($2::float8, b.tokens + greatest(0, extract(epoch FROM now() - b.at) * 1000) * $2::float8 / $3::float8) - 1
    ELSE least($2::float8, b.tokens + greatest(0, extract(epoch FROM now() - b.at) * 1000) * $2::float8 / $3::float8)
  END,
  taken = least($2::float8, b.tokens + greatest(0, extract(epoch FROM now() - b.at) * 1000) * $2::float8 / $3::float8) >= 1,
  at = greatest(b.at, now()),
  expires_at = now() + 2 * $3::float8 * interval '1 millisecond'
RETURNING taken, tokens`,

    /*
      cleanup: each deletes up to $1 expired rows (skipping rows other cleaners hold) and returns them.
      A result row someone still waits on stays until the wait ends.
    */
    cleanup: [
      expiredRowsCleanup(s, 'result', ' AND (waited_until IS NULL OR waited_until < now())'),
      expiredRowsCleanup(s, 'counter'),
      expiredRowsCleanup(s, 'lease'),
      expiredRowsCleanup(s, 'revocation'),
      expiredRowsCleanup(s, 'token_bucket'),
    ],

    /* getSchedule: the record of id $1. Rows: none, or {rev, data} (rev a bigint as text). */
    getSchedule: `SELECT rev::text AS rev, data FROM ${s}.schedule WHERE id = $1`,

    /*
      listSchedules: every record, each row also carrying the version (one snapshot, so the version is
      never newer than the records). Rows: {version, id, rev, data}; one row with a null id when there
      are none.
    */
    listSchedules: `SELECT v.version::text AS version, r.id, r.rev::text AS rev, r.data
FROM ${s}.schedule_version v LEFT JOIN ${s}.schedule r ON true`,

    /* schedulesVersion: the rev of the latest write, 0 before any. Rows: one, {version}. */
    schedulesVersion: `SELECT version::text AS version FROM ${s}.schedule_version`,

    /*
      nextScheduleRev: the first statement of every schedule write, inside its transaction: locks the
      version row (so writes are serialised and the next statements, with a new snapshot, see every
      earlier write) and takes the next rev. The caller rolls back when its write does not happen.
      Rows: one, {rev}
    */
    nextScheduleRev: `UPDATE ${s}.schedule_version SET version = version + 1 RETURNING version::text AS rev`,

    /* createSchedule: store record $1 with rev $2 and data $3 unless one exists. Rows: one when created. */
    createSchedule: `INSERT INTO ${s}.schedule (id, rev, data) VALUES ($1, $2, $3) ON CONFLICT (id) DO NOTHING RETURNING 1 AS ok`,

    /* replaceSchedule: give record $1 rev $2 and data $3 if its rev is $4. Rows: one when replaced. */
    replaceSchedule: `UPDATE ${s}.schedule SET rev = $2, data = $3 WHERE id = $1 AND rev = $4 RETURNING 1 AS ok`,

    /* deleteSchedule: remove record $1. Rows: one when removed. */
    deleteSchedule: `DELETE FROM ${s}.schedule WHERE id = $1 RETURNING 1 AS ok`,
  };
}

/**
 * The kind of the result write this package's result backend prepares (`prepareSet`) and its broker
 * runs with an ack (`ackWithResult`): keys `[result schema, task id]`, args `[state, meta JSON, ttl ms
 * (-1: kept forever), md5 hex of the task id, the results channel]`.
 */
export const RESULT_WRITE_KIND = 'postgres-set-result';

/** One result write of a batch. */
export interface ResultWrite {
  taskId: string;
  state: string;
  json: string;
  ttlMs: number | null;
}

/**
 * The writes of one statement, one per task id: ON CONFLICT cannot touch a row twice in a statement,
 * so they are folded as applying them in order would (the first SUCCESS stays, else the last wins).
 */
export function foldWrites<T extends ResultWrite>(items: readonly T[]): T[] {
  const byId = new Map<string, T>();
  for (const it of items) {
    const prev = byId.get(it.taskId);
    if (prev === undefined || prev.state !== 'SUCCESS') byId.set(it.taskId, it);
  }
  return [...byId.values()];
}

/** The first six parameters of a result write ($1…$6 of {@link resultWriteCtes}). */
export function resultWriteParams(rows: readonly ResultWrite[], channel: string): unknown[] {
  return [
    rows.map((r) => r.taskId),
    rows.map((r) => r.state),
    rows.map((r) => r.json),
    rows.map((r) => r.ttlMs),
    rows.map((r) => taskDigest(r.taskId)),
    channel,
  ];
}

/**
 * The CTEs `w`, `up` and `woke` of a result write (shared by `set` and the broker's `ackWithResult`):
 * $1 task ids text[] (no duplicates), $2 states text[], $3 metas json[], $4 ttl ms float8[] (null:
 * kept forever), $5 md5 hex of the task ids text[], $6 the results channel. `woke` must be read for
 * its NOTIFY to be sent.
 */
export function resultWriteCtes(s: string): string {
  return `w AS MATERIALIZED (
  SELECT * FROM unnest($1::text[], $2::text[], $3::json[], $4::float8[], $5::text[]) AS w(task_id, state, meta, ttl_ms, digest)
), up AS (
  INSERT INTO ${s}.result AS r (task_id, state, meta, expires_at, updated_at)
  SELECT task_id, state, meta, now() + ttl_ms * interval '1 millisecond', now() FROM w
  ON CONFLICT (task_id) DO UPDATE
    SET state = excluded.state, meta = excluded.meta, expires_at = excluded.expires_at, updated_at = excluded.updated_at
    WHERE r.state IS DISTINCT FROM 'SUCCESS' OR r.expires_at <= now()
  RETURNING r.task_id, r.state, r.waited_until
), woke AS (
  SELECT pg_notify($6, string_agg(x.digest, E'\\n')) FROM (
    SELECT w.digest, (row_number() OVER ()) / ${DIGESTS_PER_NOTIFY} AS g
    FROM up JOIN w USING (task_id)
    WHERE up.state IN ${READY} AND up.waited_until > now()
  ) x GROUP BY x.g
)`;
}

/**
 * The broker's `ackWithResult` statement: store results in schema `r` (as `set` does, notifying the
 * waited ones) and delete the fenced messages of schema `s`, in one statement and transaction.
 * $1…$6 as in {@link resultWriteCtes}, $7 message row ids bigint[], $8 their tokens bigint[].
 * Rows: the message ids deleted (a missing one had lost its lease: its result is stored all the same),
 * and a row with a null id per NOTIFY sent.
 */
export function resultAndAckStatement(r: string, s: string): string {
  return `WITH ${resultWriteCtes(r)}, acked AS (
  DELETE FROM ${s}.message m USING unnest($7::bigint[], $8::bigint[]) AS a(id, token)
  WHERE m.id = a.id AND m.token = a.token
  RETURNING m.id
)
SELECT id::text AS row FROM acked
UNION ALL SELECT NULL FROM woke`;
}
