import { parseUrlOptions } from '@celeriac/core';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPostgresBroker, MIGRATIONS, migrationSql, PostgresBroker, PostgresResultBackend, quoteIdent, SCHEMA_VERSION } from '../src/index.js';
import { adminClient, code, dropSchema, postgresUrl, requireServer, uniqueSchema } from './helpers.js';

const ok = await requireServer('postgres');

describe.skipIf(!ok)('schema and migrations', () => {
  let admin: pg.Client;
  const schemas: string[] = [];
  const schema = (name: string) => {
    const s = uniqueSchema(name);
    schemas.push(s);
    return s;
  };
  const versions = async (s: string) =>
    (await admin.query<{ version: number }>(`SELECT version FROM ${quoteIdent(s)}.schema_version ORDER BY version`)).rows.map((r) => r.version);

  beforeAll(async () => {
    admin = await adminClient();
  });

  afterAll(async () => {
    for (const s of schemas) await dropSchema(admin, s);
    await admin.end();
  });

  it('creates the schema on first connect, with one version row per migration', async () => {
    const s = schema('fresh');
    const b = new PostgresBroker({ url: postgresUrl(), prefix: s, poolSize: 1 });
    await b.connect();
    await b.connect(); // idempotent
    await b.close();
    expect(await versions(s)).toEqual(MIGRATIONS.map((m) => m.version));
    const { rows } = await admin.query<{ table_name: string }>(
      'SELECT table_name FROM information_schema.tables WHERE table_schema = $1 ORDER BY table_name',
      [s],
    );
    expect(rows.map((r) => r.table_name)).toEqual([
      'broadcast',
      'counter',
      'dead_letter',
      'lease',
      'message',
      'result',
      'revocation',
      'schedule',
      'schedule_version',
      'schema_version',
      'token_bucket',
    ]);
  });

  it('migrates a schema an earlier version left (version 1) step by step, keeping its messages', async () => {
    const s = schema('upgrade');
    const q = quoteIdent(s);
    await admin.query(`CREATE SCHEMA ${q}`);
    await admin.query(`CREATE TABLE ${q}.schema_version (version integer PRIMARY KEY, description text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`);
    await admin.query(MIGRATIONS[0]!.sql(q));
    await admin.query(`INSERT INTO ${q}.schema_version (version, description) VALUES (1, 'v1')`);
    await admin.query(
      `INSERT INTO ${q}.message (queue, message_id, run_at, visible_at, headers, body) VALUES ('old', 'left-by-v1', now(), now(), '{"task":"t"}', '\\x6869')`,
    );
    const b = new PostgresBroker({ url: postgresUrl(), prefix: s, poolSize: 1 });
    await b.connect();
    try {
      expect(await versions(s)).toEqual(MIGRATIONS.map((m) => m.version));
      const [m] = await b.queue('old').tryClaim(1);
      expect([m?.id, Buffer.from(m!.body).toString(), m?.headers]).toEqual(['left-by-v1', 'hi', { task: 't' }]);
      await b.queue('old').ack(m!);
    } finally {
      await b.close();
    }
  });

  it('is safe when many clients connect first at the same time (brokers and result backends)', async () => {
    const s = schema('race');
    const clients = Array.from({ length: 8 }, (_, i) =>
      i % 2 === 0 ? new PostgresBroker({ url: postgresUrl(), prefix: s, poolSize: 1 }) : new PostgresResultBackend({ url: postgresUrl(), prefix: s, poolSize: 1 }),
    );
    const results = await Promise.allSettled(clients.map((c) => c.connect()));
    await Promise.all(clients.map((c) => c.close()));
    expect(results.map((r) => (r.status === "rejected" ? String(r.reason) : r.status))).toEqual(clients.map(() => "fulfilled"));
    expect(await versions(s)).toEqual(MIGRATIONS.map((m) => m.version));
  });

  it('refuses a schema newer than this code with ERR_SCHEMA_VERSION, and never downgrades it', async () => {
    const s = schema('newer');
    const first = new PostgresBroker({ url: postgresUrl(), prefix: s, poolSize: 1 });
    await first.connect();
    await first.close();
    await admin.query(`INSERT INTO ${quoteIdent(s)}.schema_version (version, description) VALUES ($1, 'from the future')`, [SCHEMA_VERSION + 1]);
    for (const migrate of [true, false]) {
      const b = new PostgresBroker({ url: postgresUrl(), prefix: s, poolSize: 1, migrate });
      const err = (await b.connect().catch((e: unknown) => e)) as Error & { code?: string };
      await b.close();
      expect(err.code).toBe('ERR_SCHEMA_VERSION');
      expect(err.message).toContain(`version ${SCHEMA_VERSION + 1}`);
    }
    expect(await versions(s)).toEqual([...MIGRATIONS.map((m) => m.version), SCHEMA_VERSION + 1]);
  });

  it('with migrate=false only checks: a missing schema is refused; the README SQL applied by hand is accepted', async () => {
    const s = schema('dba');
    const u = new URL(postgresUrl());
    u.searchParams.set('prefix', s);
    u.searchParams.set('migrate', 'false');
    u.searchParams.set('poolSize', '1');
    const b = createPostgresBroker(u, parseUrlOptions(u), {});
    expect(b.options.migrate).toBe(false);
    expect(await code(b.connect())).toBe('ERR_SCHEMA_VERSION');
    const { rows } = await admin.query('SELECT count(*)::int AS n FROM pg_namespace WHERE nspname = $1', [s]);
    expect(rows[0].n).toBe(0); // nothing created
    await admin.query(`BEGIN; ${migrationSql(s)} COMMIT;`);
    await b.connect(); // a failed connect can be retried
    const q = b.queue('dba');
    await q.publish({ id: 'm1', body: new Uint8Array([1]), headers: {} });
    expect((await q.tryClaim(1)).map((m) => m.id)).toEqual(['m1']);
    await b.close();
    const backend = new PostgresResultBackend({ url: postgresUrl(), prefix: s, migrate: false, poolSize: 1 });
    await backend.set('t', { state: 'SUCCESS', result: 1 }, { ttlMs: 60_000 });
    expect(await backend.get('t')).toEqual({ state: 'SUCCESS', result: 1 });
    await backend.close();
  });

  it('quotes the schema everywhere: a name with capitals, spaces and quotes works', async () => {
    const s = schema('Odd "Name"');
    const b = new PostgresBroker({ url: postgresUrl(), prefix: s, poolSize: 1 });
    await b.connect();
    const q = b.queue('q');
    await q.publish({ id: 'x', body: new Uint8Array([1]), headers: {} });
    const [m] = await q.claim(1);
    await q.ack(m!);
    await b.broadcast.publish('c', new Uint8Array(10_000)); // the spill table too
    await b.close();
    expect(await versions(s)).toEqual(MIGRATIONS.map((m) => m.version));
  });
});
