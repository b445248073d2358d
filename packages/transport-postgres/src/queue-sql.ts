import { quoteLiteral } from './sql.js';

/**
 * The queue model's statements, for the schema `s` (quoted). Each one is a single statement, so it
 * runs the same on a pooled connection and inside a caller's transaction, and its NOTIFY (if any)
 * is delivered exactly when its changes commit. Headers list the parameters and the result rows.
 */
export interface QueueStatements {
  /** Store messages (one JSON parameter) and NOTIFY claimers: the form for a caller's transaction. */
  readonly publish: string;
  /** Store messages (parameter arrays) and NOTIFY claimers: the form on the broker's own pool. */
  readonly publishRows: string;
  /** Lease up to $2 claimable messages of queue $1. */
  readonly claim: string;
  /** Ms until the next message of queue $1 becomes claimable. */
  readonly nextVisible: string;
  /** Delete fenced deliveries. */
  readonly ack: string;
  /** Renew fenced leases. */
  readonly extend: string;
  /** Requeue, delay, dead-letter or give back fenced deliveries. */
  readonly settle: string;
  /** Delete a batch of ready and delayed messages. */
  readonly purge: string;
  /** A queue's counts. */
  readonly stats: string;
  /** The oldest dead letters. */
  readonly deadList: string;
  /** Move dead letters back. */
  readonly deadRedrive: string;
  /** Delete a batch of dead letters. */
  readonly deadPurge: string;
}

/** The statements of the queue model for schema `s` (already quoted). */
export function queueStatements(s: string): QueueStatements {
  return {
    /*
      publish: store messages, ready now or after their delay, and wake claimers.

      $1  one JSON document (a single text parameter, so Knex-style adapters that rewrite $n to ? and
          expand arrays pass it through unchanged):
          {"q": queue, "c": NOTIFY channel, "m": [{"i": message id, "p": priority 0..9, "d": delay ms,
           "h": the headers as a JSON string, "b": the body in base64}, …]}
          The headers travel as a string because a JSON document holding \u0000 cannot be taken apart
          by the server; the json column keeps them verbatim.

      Rows: one, {stored: messages inserted}. A message whose (queue, id) is still stored is skipped
      (a publish resent after a lost reply is not stored twice). When something was stored, one
      NOTIFY on the queue's channel carries the ms until the earliest of them is due ('0': now).
    */
    publish: `WITH a AS MATERIALIZED (
  SELECT d->>'q' AS q, d->>'c' AS c, d->'m' AS m FROM (SELECT $1::json AS d) x
), ins AS (
  INSERT INTO ${s}.message (queue, message_id, priority, run_at, visible_at, headers, body)
  SELECT a.q, m.i, m.p, t.at, t.at, m.h::json, decode(m.b, 'base64')
  FROM a, json_to_recordset(a.m) AS m(i text, p smallint, d float8, h text, b text),
       LATERAL (SELECT now() + m.d * interval '1 millisecond' AS at) t
  ON CONFLICT (queue, message_id) DO NOTHING
  RETURNING run_at
), n AS (
  SELECT count(*)::int AS stored, min(run_at) AS due FROM ins
)
SELECT n.stored, CASE WHEN n.stored > 0
  THEN pg_notify(a.c, greatest(0, ceil(extract(epoch FROM n.due - now()) * 1000))::bigint::text) END AS notified
FROM n, a`,

    /*
      publishRows: publish, with the messages as parameter arrays — what the broker's own connections
      send (the server takes arrays apart at about 1.6× the rate of the JSON document; `publish` stays
      for callers' transactions, whose adapters may rewrite arrays).

      $1 queue, $2 its NOTIFY channel, $3 message ids text[], $4 priorities smallint[], $5 delays ms
      float8[], $6 headers json[] (each a JSON text), $7 bodies bytea[]
      Rows: one, {stored, notified}, as `publish`.
    */
    publishRows: `WITH ins AS (
  INSERT INTO ${s}.message (queue, message_id, priority, run_at, visible_at, headers, body)
  SELECT $1, u.i, u.p, t.at, t.at, u.h, u.b
  FROM unnest($3::text[], $4::smallint[], $5::float8[], $6::json[], $7::bytea[]) AS u(i, p, d, h, b),
       LATERAL (SELECT now() + u.d * interval '1 millisecond' AS at) t
  ON CONFLICT (queue, message_id) DO NOTHING
  RETURNING run_at
), n AS (
  SELECT count(*)::int AS stored, min(run_at) AS due FROM ins
)
SELECT n.stored, CASE WHEN n.stored > 0
  THEN pg_notify($2, greatest(0, ceil(extract(epoch FROM n.due - now()) * 1000))::bigint::text) END AS notified
FROM n`,

    /*
      claim: lease up to $2 claimable messages of queue $1: priority 9 first, then by the time they
      became claimable (FIFO within a level). Claimable = visible_at <= now(): ready, a delay that
      came due, or a lease that expired (its holder died) — so recovery needs no separate sweep, and
      the delivery count grows with every claim.

      $1 queue, $2 the most messages, $3 lease ms (visibilityTimeoutMs)

      The index message_claim is read once per level (queue = $1 AND priority = p AND visible_at <=
      now()), stopping as soon as $2 rows are locked; SKIP LOCKED lets concurrent claimers take
      different rows, and a row another claimer just leased fails the re-check and is skipped.
      Each claimed row gets a fresh token from the claim_token sequence: ack, nack, extend and
      release name the row by (id, token), so a holder whose lease was lost cannot settle it.

      Rows: the claimed messages, unordered (the caller sorts by priority desc, was_visible_at, id),
      each with wait_ms null. When none was claimed, instead one row with a null `row` and wait_ms =
      the ms until the next message becomes claimable (the nextVisible probe, in the same round
      trip), or null when the queue is empty: an idle claimer runs one statement per wait.
    */
    claim: `WITH picked AS (
  SELECT c.id, c.visible_at FROM generate_series(9, 0, -1) AS p(priority)
  CROSS JOIN LATERAL (
    SELECT id, visible_at FROM ${s}.message
    WHERE queue = $1 AND priority = p.priority AND visible_at <= now()
    ORDER BY visible_at, id
    LIMIT $2
    FOR UPDATE SKIP LOCKED
  ) c
  LIMIT $2
), claimed AS (
  UPDATE ${s}.message m
  SET visible_at = now() + $3 * interval '1 millisecond',
      token = nextval(${quoteLiteral(`${s}.claim_token`)}),
      deliveries = m.deliveries + 1
  FROM picked WHERE m.id = picked.id
  RETURNING m.id::text AS row, m.token::text AS token, m.message_id, m.priority, m.deliveries, m.headers, m.body,
    picked.visible_at AS was_visible_at
)
SELECT claimed.*, NULL::float8 AS wait_ms FROM claimed
UNION ALL
SELECT NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, (${nextVisibleMs(s)})
WHERE NOT EXISTS (SELECT 1 FROM claimed)`,

    /*
      nextVisible: ms until the next message of queue $1 becomes claimable — a delay coming due or a
      lease expiring — or null when the queue is empty. One index probe per level.

      $1 queue
      Rows: one, {wait_ms: number | null}
    */
    nextVisible: `SELECT (${nextVisibleMs(s)}) AS wait_ms`,

    /*
      ack: delete finished messages (the hot table keeps only live work; autovacuum reclaims the dead
      rows, see the table's storage parameters).

      $1 row ids bigint[], $2 their tokens bigint[]
      Rows: the ids deleted; an id missing from them had lost its lease (ERR_STALE_DELIVERY).
    */
    ack: `DELETE FROM ${s}.message m USING unnest($1::bigint[], $2::bigint[]) AS a(id, token)
WHERE m.id = a.id AND m.token = a.token
RETURNING m.id::text AS row`,

    /*
      extend: renew leases.

      $1 row ids bigint[], $2 their tokens bigint[], $3 lease ms
      Rows: the ids renewed; a missing id had lost its lease (claimed again, or settled).
    */
    extend: `UPDATE ${s}.message m SET visible_at = now() + $3 * interval '1 millisecond'
FROM unnest($1::bigint[], $2::bigint[]) AS a(id, token)
WHERE m.id = a.id AND m.token = a.token
RETURNING m.id::text AS row`,

    /*
      settle: every verdict but ack, fenced by the token, in one statement.

      $1 row ids bigint[], $2 tokens bigint[], $3 modes text[], $4 delays ms float8[],
      $5 reasons text[], $6 the queue's NOTIFY channel
        mode 'r'  requeue: claimable again at once, at its old place (visible_at = run_at)
             'u'  give back a message that was claimed but never handed out: as 'r', and the
                  delivery count is decremented again
             'd'  requeue after $4 ms (run_at and visible_at = now() + delay)
             'x'  dead-letter with reason $5: moved to dead_letter
      Rows: the ids settled (and one row with a null id when a NOTIFY was sent: the requeued ones wake
      claimers, with the ms until the earliest is claimable as payload).
    */
    settle: `WITH a AS MATERIALIZED (
  SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::float8[], $5::text[]) AS a(id, token, mode, delay_ms, reason)
), dead AS (
  DELETE FROM ${s}.message m USING a
  WHERE m.id = a.id AND m.token = a.token AND a.mode = 'x'
  RETURNING m.id, m.queue, m.message_id, m.priority, m.deliveries, m.headers, m.body, m.published_at, a.reason
), buried AS (
  INSERT INTO ${s}.dead_letter (id, queue, message_id, priority, deliveries, headers, body, reason, published_at)
  SELECT id, queue, message_id, priority, deliveries, headers, body, reason, published_at FROM dead
  RETURNING id
), back AS (
  UPDATE ${s}.message m SET
    token = NULL,
    run_at = CASE WHEN a.mode = 'd' THEN now() + a.delay_ms * interval '1 millisecond' ELSE m.run_at END,
    visible_at = CASE WHEN a.mode = 'd' THEN now() + a.delay_ms * interval '1 millisecond' ELSE m.run_at END,
    deliveries = m.deliveries - CASE WHEN a.mode = 'u' THEN 1 ELSE 0 END
  FROM a
  WHERE m.id = a.id AND m.token = a.token AND a.mode <> 'x'
  RETURNING m.id, a.mode, a.delay_ms
)
SELECT id::text AS row FROM buried
UNION ALL SELECT id::text FROM back
UNION ALL SELECT NULL FROM (
  SELECT pg_notify($6, min(CASE WHEN mode = 'd' THEN ceil(delay_ms) ELSE 0 END)::bigint::text) FROM back HAVING count(*) > 0
) woke`,

    /*
      purge: delete up to $2 ready or delayed messages of queue $1 (leased ones stay with their holder).
      Called until it deletes fewer, so no purge holds locks on a huge queue for long.

      $1 queue, $2 the most rows
      Rows: one, {n: rows deleted}
    */
    purge: `WITH gone AS (
  DELETE FROM ${s}.message m USING (
    SELECT id FROM ${s}.message WHERE queue = $1 AND token IS NULL LIMIT $2 FOR UPDATE SKIP LOCKED
  ) p WHERE m.id = p.id
  RETURNING 1
)
SELECT count(*)::int AS n FROM gone`,

    /*
      stats: one queue's counts. ready = claimable now (including expired leases nobody claimed yet),
      delayed = waiting for its due time, in_flight = leased, dead = dead letters.

      $1 queue
      Rows: one, {ready, delayed, in_flight, dead}
    */
    stats: `SELECT
  count(*) FILTER (WHERE visible_at <= now())::int AS ready,
  count(*) FILTER (WHERE visible_at > now() AND token IS NULL)::int AS delayed,
  count(*) FILTER (WHERE visible_at > now() AND token IS NOT NULL)::int AS in_flight,
  (SELECT count(*)::int FROM ${s}.dead_letter WHERE queue = $1) AS dead
FROM ${s}.message WHERE queue = $1`,

    /*
      deadList: the oldest $2 dead letters of queue $1.

      Rows: {message_id, headers, body, reason, dead_at_ms}
    */
    deadList: `SELECT message_id, headers, body, reason, (extract(epoch FROM dead_at) * 1000)::float8 AS dead_at_ms
FROM ${s}.dead_letter WHERE queue = $1 ORDER BY dead_at, id LIMIT $2`,

    /*
      deadRedrive: move up to $3 dead letters of queue $1 (those with message ids in $2, or the oldest
      when $2 is null) back to the tail of their level, delivery count reset. A dead letter whose id
      was published again meanwhile is dropped as a duplicate of the live message.

      $1 queue, $2 message ids text[] or null, $3 the most rows, $4 the queue's NOTIFY channel
      Rows: one, {n: dead letters taken}
    */
    deadRedrive: `WITH moved AS (
  DELETE FROM ${s}.dead_letter d USING (
    SELECT id FROM ${s}.dead_letter
    WHERE queue = $1 AND ($2::text[] IS NULL OR message_id = ANY($2::text[]))
    ORDER BY dead_at, id LIMIT $3 FOR UPDATE SKIP LOCKED
  ) p WHERE d.id = p.id
  RETURNING d.*
), ins AS (
  INSERT INTO ${s}.message (queue, message_id, priority, run_at, visible_at, headers, body, published_at)
  SELECT queue, message_id, priority, now(), now(), headers, body, published_at FROM moved ORDER BY dead_at, id
  ON CONFLICT (queue, message_id) DO NOTHING
  RETURNING 1
)
SELECT (SELECT count(*)::int FROM moved) AS n,
  CASE WHEN (SELECT count(*) FROM ins) > 0 THEN pg_notify($4, '0') END AS notified`,

    /*
      deadPurge: delete up to $2 dead letters of queue $1.
      Rows: one, {n: rows deleted}
    */
    deadPurge: `WITH gone AS (
  DELETE FROM ${s}.dead_letter d USING (
    SELECT id FROM ${s}.dead_letter WHERE queue = $1 LIMIT $2 FOR UPDATE SKIP LOCKED
  ) p WHERE d.id = p.id
  RETURNING 1
)
SELECT count(*)::int AS n FROM gone`,
  };
}

/**
 * An expression: ms until the next message of queue $1 becomes claimable — a delay coming due or a
 * lease expiring (a row another claimer holds locked counts as claimable now: 0) — or null when the
 * queue is empty. One index probe per level.
 */
function nextVisibleMs(s: string): string {
  return `SELECT CASE WHEN min(x.v) IS NOT NULL
  THEN greatest(0, ceil(extract(epoch FROM min(x.v) - now()) * 1000))::float8 END
FROM generate_series(0, 9) AS p(priority)
CROSS JOIN LATERAL (
  SELECT visible_at AS v FROM ${s}.message WHERE queue = $1 AND priority = p.priority ORDER BY visible_at LIMIT 1
) x`;
}
