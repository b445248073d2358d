import { createApp } from '@celeriac/core';
import { requirePostgresBinaries, startPrivatePostgres } from '@celeriac/test-servers';
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { PostgresBroker, PostgresResultBackend } from '../src/index.js';
import { sleep } from './helpers.js';

// A private server, so the count is this worker's alone (the shared one serves other tests).
const ok = requirePostgresBinaries();

/** Committed transactions of database `test`, read from another database (so reading adds none). */
async function commits(admin: pg.Client): Promise<number> {
  const { rows } = await admin.query<{ n: string }>("SELECT xact_commit::text AS n FROM pg_stat_database WHERE datname = 'test'");
  return Number(rows[0]?.n);
}

describe.skipIf(!ok)('an idle worker on PostgreSQL', () => {
  it('commits at most 30 transactions in 30 s (pg_stat_database.xact_commit): no busy poll, LISTEN/NOTIFY and a 5 s fallback', async () => {
    const server = await startPrivatePostgres();
    const adminUrl = new URL(server.url);
    adminUrl.pathname = '/postgres';
    const admin = new pg.Client(adminUrl.href);
    await admin.connect();
    // Defaults, as a user runs it: broker and results on the same server, heartbeats every 2 s.
    const app = createApp({
      broker: new PostgresBroker({ url: server.url, prefix: 'idle' }),
      resultBackend: new PostgresResultBackend({ url: server.url, prefix: 'idle' }),
    });
    try {
      app.task('idle.noop', () => Promise.resolve(1));
      await app.worker({ concurrency: 8 }).start();
      await sleep(3_000); // connections, schema, the first claims and LISTEN settle
      const before = await commits(admin);
      await sleep(30_000);
      const after = await commits(admin);
      console.log(`idle worker on PostgreSQL, 30 s: xact_commit grew by ${after - before}`);
      expect(after - before).toBeLessThanOrEqual(30);
      expect(after - before).toBeGreaterThan(0); // the counter is read at all: claims and heartbeats do commit
    } finally {
      await app.close();
      await admin.end();
      await server.close();
    }
  }, 60_000);
});
