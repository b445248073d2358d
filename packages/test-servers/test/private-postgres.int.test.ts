import { existsSync, statSync } from 'node:fs';
import { connect } from 'node:net';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { requirePostgresBinaries, startPrivatePostgres, type PrivatePostgresServer } from '@celeriac/test-servers';

const started: PrivatePostgresServer[] = [];
afterAll(async () => {
  await Promise.all(started.map((s) => s.close()));
});

/** Run `fn` with a connected client, then end it. */
async function withClient<T>(url: string, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url });
  client.on('error', () => undefined); // a server stopped under an idle client
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

/** True when nothing accepts TCP connections on the port. */
function refuses(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host: '127.0.0.1', port });
    s.once('connect', () => {
      s.destroy();
      resolve(false);
    });
    s.once('error', (err: NodeJS.ErrnoException) => resolve(err.code === 'ECONNREFUSED'));
  });
}

describe.skipIf(!requirePostgresBinaries())('private PostgreSQL node', () => {
  it('keeps a committed row over an immediate stop (a crash) and a restart; close removes everything', async () => {
    const t0 = Date.now();
    const db = await startPrivatePostgres();
    started.push(db);
    const startedInMs = Date.now() - t0;
    expect(db.port).not.toBe(5432);
    expect(db.url).toBe(`postgres://postgres@127.0.0.1:${db.port}/test`);
    expect(db.running()).toBe(true);
    if (process.getuid?.() === 0) {
      // PostgreSQL refuses to run as root: the files belong to the postgres user.
      expect(statSync(db.dataDir).uid).not.toBe(0);
    }
    expect(existsSync(`${db.socketDir}/.s.PGSQL.${db.port}`)).toBe(true);

    await withClient(db.url, async (c) => {
      expect((await c.query<{ d: string }>('SELECT current_database() AS d')).rows[0]?.d).toBe('test');
      await c.query('CREATE TABLE kept (id int PRIMARY KEY, note text NOT NULL)');
      await c.query('INSERT INTO kept VALUES (1, $1)', ['written before the crash']);
    });

    await db.stop({ mode: 'immediate' });
    expect(db.running()).toBe(false);
    expect(await refuses(db.port)).toBe(true);

    const t1 = Date.now();
    await db.restart();
    const recoveredInMs = Date.now() - t1;
    expect(db.running()).toBe(true);
    const rows = await withClient(db.url, async (c) => (await c.query('SELECT id, note FROM kept')).rows);
    expect(rows).toEqual([{ id: 1, note: 'written before the crash' }]);

    await db.stop({ mode: 'fast' });
    await db.start({ keepData: false });
    const tables = await withClient(db.url, async (c) => (await c.query("SELECT to_regclass('kept') AS t")).rows);
    expect(tables).toEqual([{ t: null }]); // a new initdb, and the test database again

    const root = db.root;
    await db.close();
    expect(await refuses(db.port)).toBe(true);
    expect(existsSync(db.dataDir)).toBe(false);
    expect(existsSync(root)).toBe(false);
    console.log(`private PostgreSQL: started in ${startedInMs} ms, back after an immediate stop in ${recoveredInMs} ms`);
  }, 90_000);
});
