import { CeleriacError } from '@celeriac/core';
import { PostgresErrorCode } from './errors.js';
import { migrationLockKey, quoteIdent, quoteLiteral } from './sql.js';

/** One step of the schema's history. Steps are never edited once released: a change is a new step. */
export interface Migration {
  /** Its row in `schema_version`; versions only grow. */
  readonly version: number;
  /** What it does, stored with the version. */
  readonly description: string;
  /** The DDL, for the schema `s` (already quoted). */
  readonly sql: (s: string) => string;
}

/**
 * Every migration, oldest first. Both the broker and the result backend live in one schema and share
 * this history: `schema_version` holds one row per applied step.
 */
export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    description: 'queues, dead letters, broadcasts, results, counters, leases, revocations, token buckets',
    sql: (s) => `
-- Messages of every queue. A row is ready when visible_at <= now() and no lease holds it; while
-- claimed, token fences its settles and visible_at is the lease deadline (an expired lease makes the
-- row claimable again). Acked rows are deleted, so the table holds only live work.
CREATE TABLE ${s}.message (
  id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  queue        text NOT NULL,
  message_id   text NOT NULL,
  priority     smallint NOT NULL DEFAULT 0 CHECK (priority BETWEEN 0 AND 9),
  run_at       timestamptz NOT NULL,
  visible_at   timestamptz NOT NULL,
  token        bigint,
  deliveries   integer NOT NULL DEFAULT 0,
  headers      json NOT NULL,
  body         bytea NOT NULL,
  published_at timestamptz NOT NULL DEFAULT now()
);
-- One live message per id and queue: a publish resent after a lost reply is not stored twice.
CREATE UNIQUE INDEX message_queue_message_id ON ${s}.message (queue, message_id);
-- The claim reads this index once per priority level: queue = $1 AND priority = p AND visible_at <= now().
CREATE INDEX message_claim ON ${s}.message (queue, priority, visible_at, id);
-- Rows are deleted at the rate they are inserted: vacuum after a fixed number of dead rows, whatever
-- the table's size, and without cost-based sleeps.
ALTER TABLE ${s}.message SET (
  autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 1000,
  autovacuum_vacuum_insert_scale_factor = 0, autovacuum_vacuum_insert_threshold = 10000,
  autovacuum_analyze_scale_factor = 0, autovacuum_analyze_threshold = 10000,
  autovacuum_vacuum_cost_delay = 0
);
CREATE SEQUENCE ${s}.claim_token AS bigint;

CREATE TABLE ${s}.dead_letter (
  id           bigint PRIMARY KEY,
  queue        text NOT NULL,
  message_id   text NOT NULL,
  priority     smallint NOT NULL,
  deliveries   integer NOT NULL,
  headers      json NOT NULL,
  body         bytea NOT NULL,
  reason       text NOT NULL,
  published_at timestamptz NOT NULL,
  dead_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX dead_letter_queue ON ${s}.dead_letter (queue, dead_at, id);

-- Broadcast bodies too large for a NOTIFY payload; the notification carries the row id.
CREATE TABLE ${s}.broadcast (
  id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  body       bytea NOT NULL,
  expires_at timestamptz NOT NULL
);
CREATE INDEX broadcast_expires_at ON ${s}.broadcast (expires_at);

-- Task results. state NULL: no result yet, only a waiter's marker (waited_until), so that a result
-- write notifies only when someone waits for it. expires_at NULL: kept forever.
CREATE TABLE ${s}.result (
  task_id      text PRIMARY KEY,
  state        text,
  meta         json,
  expires_at   timestamptz,
  waited_until timestamptz,
  updated_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX result_expires_at ON ${s}.result (expires_at) WHERE expires_at IS NOT NULL;

CREATE TABLE ${s}.counter (
  key        text PRIMARY KEY,
  value      bigint NOT NULL,
  expires_at timestamptz
);
CREATE INDEX counter_expires_at ON ${s}.counter (expires_at) WHERE expires_at IS NOT NULL;

CREATE TABLE ${s}.lease (
  name       text PRIMARY KEY,
  holder     text NOT NULL,
  expires_at timestamptz NOT NULL
);
CREATE INDEX lease_expires_at ON ${s}.lease (expires_at);

CREATE TABLE ${s}.revocation (
  task_id    text PRIMARY KEY,
  expires_at timestamptz
);
CREATE INDEX revocation_expires_at ON ${s}.revocation (expires_at) WHERE expires_at IS NOT NULL;

CREATE TABLE ${s}.token_bucket (
  name       text PRIMARY KEY,
  tokens     double precision NOT NULL,
  taken      boolean NOT NULL,
  at         timestamptz NOT NULL,
  expires_at timestamptz NOT NULL
);
CREATE INDEX token_bucket_expires_at ON ${s}.token_bucket (expires_at);
`,
  },
  {
    version: 2,
    description: 'runtime schedules',
    sql: (s) => `
-- Runtime schedules (app.schedules): compare-and-set records that never expire. A write locks the
-- one row of schedule_version, takes version + 1 as the record's rev and commits both: writes are
-- serialised, revs grow across ids in commit order, and a listing read in one statement with the
-- version is never older than it.
CREATE TABLE ${s}.schedule (
  id   text PRIMARY KEY,
  rev  bigint NOT NULL,
  data text NOT NULL
);
CREATE TABLE ${s}.schedule_version (
  one     boolean PRIMARY KEY DEFAULT true CHECK (one),
  version bigint NOT NULL
);
INSERT INTO ${s}.schedule_version (one, version) VALUES (true, 0);
`,
  },
];

/** The schema version this code reads and writes. */
export const SCHEMA_VERSION: number = MIGRATIONS[MIGRATIONS.length - 1]!.version;

function versionTable(s: string): string {
  return `CREATE TABLE IF NOT EXISTS ${s}.schema_version (
  version     integer PRIMARY KEY,
  description text NOT NULL,
  applied_at  timestamptz NOT NULL DEFAULT now()
);`;
}

function recordVersion(s: string, m: Migration): string {
  return `INSERT INTO ${s}.schema_version (version, description) VALUES (${m.version}, ${quoteLiteral(m.description)});`;
}

/**
 * The SQL that brings an empty database to the current schema, for teams whose DBAs apply
 * migrations (run it in one transaction, then connect with `migrate=false`). The README shows it
 * for the default schema; `migrationSql('myapp')` gives it for another.
 */
export function migrationSql(schema = 'celeriac'): string {
  const s = quoteIdent(schema);
  const lines = [`CREATE SCHEMA IF NOT EXISTS ${s};`, versionTable(s)];
  for (const m of MIGRATIONS) {
    lines.push(`\n-- version ${m.version}: ${m.description}`, m.sql(s).trim(), recordVersion(s, m));
  }
  return `${lines.join('\n')}\n`;
}

/** What `ensureSchema` needs of a connection: a plain query with parameters. */
export interface SchemaClient {
  /** Run one statement (or several, without values). */
  query(text: string, values?: unknown[]): Promise<{ rows: Record<string, unknown>[] }>;
}

/**
 * The version a schema has, or 0 when it has no `schema_version` table. Existence is read from
 * pg_class with the statement's snapshot, never by name lookup (`to_regclass`): a failed lookup
 * leaves a negative entry in the session's catalog cache that waiting on an advisory lock does not
 * invalidate, so a client that waited for another's migration would still think the table absent.
 */
export async function currentVersion(client: SchemaClient, schema: string): Promise<number> {
  const { rows } = await client.query(
    `SELECT EXISTS (
  SELECT 1 FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
  WHERE n.nspname = $1 AND c.relname = 'schema_version'
) AS present`,
    [schema],
  );
  if (rows[0]?.['present'] !== true) return 0;
  const v = await client.query(`SELECT coalesce(max(version), 0)::int AS version FROM ${quoteIdent(schema)}.schema_version`);
  return Number(v.rows[0]?.['version'] ?? 0);
}

function tooNew(schema: string, found: number): CeleriacError {
  return new CeleriacError(
    PostgresErrorCode.SCHEMA_VERSION,
    `schema "${schema}" is at version ${found}, newer than this celeriac knows (${SCHEMA_VERSION}); ` +
      'upgrade @celeriac/transport-postgres (a schema is never downgraded)',
  );
}

/**
 * Make sure `schema` is at {@link SCHEMA_VERSION}.
 *
 * With `migrate`, missing steps are applied in one transaction under a transaction-scoped advisory
 * lock (concurrent first connects wait for each other; works through transaction-mode poolers too),
 * and a schema already current costs one read. Without it, the version is only checked. Either way a
 * schema newer than this code is refused with ERR_SCHEMA_VERSION, never downgraded. `client` must be
 * a single connection (not a pool): the steps run inside its BEGIN … COMMIT.
 */
export async function ensureSchema(client: SchemaClient, schema: string, migrate: boolean): Promise<void> {
  const found = await currentVersion(client, schema);
  if (found === SCHEMA_VERSION) return;
  if (found > SCHEMA_VERSION) throw tooNew(schema, found);
  if (!migrate) {
    throw new CeleriacError(
      PostgresErrorCode.SCHEMA_VERSION,
      found === 0
        ? `schema "${schema}" has no celeriac tables and migrate=false; apply the SQL in the README (or migrationSql("${schema}")), or connect once with migrate=true`
        : `schema "${schema}" is at version ${found}, this celeriac needs ${SCHEMA_VERSION} and migrate=false; apply the missing steps, or connect once with migrate=true`,
    );
  }
  const s = quoteIdent(schema);
  await client.query('BEGIN');
  try {
    await client.query('SELECT pg_advisory_xact_lock($1::bigint)', [migrationLockKey(schema)]);
    // Another client may have migrated while this one waited for the lock.
    const now = await currentVersion(client, schema);
    if (now > SCHEMA_VERSION) throw tooNew(schema, now);
    if (now < SCHEMA_VERSION) {
      await client.query(`CREATE SCHEMA IF NOT EXISTS ${s}`);
      await client.query(versionTable(s));
      for (const m of MIGRATIONS) {
        if (m.version <= now) continue;
        await client.query(m.sql(s));
        await client.query(recordVersion(s, m));
      }
    }
    await client.query('COMMIT');
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw err;
  }
}
