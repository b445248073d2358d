import { brokerSuite } from '@celeriac/core/testing';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PostgresBroker, quoteIdent } from '../src/index.js';
import { adminClient, dropSchema, postgresUrl, requireServer, uniqueSchema } from './helpers.js';

const ok = await requireServer('postgres');
const schema = uniqueSchema('conformance');
const s = quoteIdent(schema);

describe.skipIf(!ok)('postgres broker', () => {
  let admin: pg.Client;

  beforeAll(async () => {
    admin = await adminClient();
  });

  afterAll(async () => {
    const left = await admin.query<{ n: number }>(
      `SELECT (SELECT count(*) FROM ${s}.message)::int + (SELECT count(*) FROM ${s}.dead_letter)::int AS n`,
    );
    await dropSchema(admin, schema);
    await admin.end();
    expect(left.rows[0]?.n).toBe(0);
  });

  brokerSuite({ describe, it }, 'postgres', {
    create: () => new PostgresBroker({ url: postgresUrl(), prefix: schema, visibilityTimeoutMs: 1000, poolSize: 2, pollIntervalMs: 1000 }),
    sleep: (ms) => new Promise((r) => setTimeout(r, ms)),
    visibilityTimeoutMs: 1000,
    slackMs: 150,
    beginTransaction: async () => {
      const client = new pg.Client({ connectionString: postgresUrl(), application_name: 'celeriac-test-tx' });
      await client.connect();
      await client.query('BEGIN');
      const end = async (sql: string) => {
        try {
          await client.query(sql);
        } finally {
          await client.end();
        }
      };
      return { client, commit: () => end('COMMIT'), rollback: () => end('ROLLBACK') };
    },
    cleanup: async (queues) => {
      await admin.query(`DELETE FROM ${s}.message WHERE queue = ANY($1::text[])`, [queues]);
      await admin.query(`DELETE FROM ${s}.dead_letter WHERE queue = ANY($1::text[])`, [queues]);
    },
  });
});
