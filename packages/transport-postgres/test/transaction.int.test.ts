import { guardBroker, newId, type OutgoingMessage } from '@celeriac/core';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PostgresBroker, quoteIdent, type SqlClient } from '../src/index.js';
import { adminClient, code, dropSchema, postgresUrl, requireServer, sleep, uniqueSchema } from './helpers.js';

const ok = await requireServer('postgres');
const schema = uniqueSchema('tx');
const enc = new TextEncoder();
const dec = new TextDecoder();

function msg(text: string): OutgoingMessage {
  return { id: newId(), body: enc.encode(text), headers: { task: 'orders.ship' } };
}

/**
 * A stand-in for a Knex transaction's `raw`: `?` placeholders, and an array binding expanded into a
 * list, as Knex does. Only the part the README's adapter relies on; it talks to a real pg client.
 */
function knexLike(client: pg.Client) {
  return {
    async raw(sql: string, bindings: unknown[]): Promise<{ rows: unknown[] }> {
      const values: unknown[] = [];
      let i = 0;
      const text = sql.replace(/\?/g, () => {
        const b = bindings[i++];
        if (Array.isArray(b)) return b.map((v) => `$${values.push(v)}`).join(', ');
        return `$${values.push(b)}`;
      });
      if (i !== bindings.length) throw new Error(`Expected ${i} bindings, saw ${bindings.length}`);
      return client.query(text, values);
    },
  };
}

/** The adapter the README shows for Knex (`trx.raw` takes `?` placeholders). */
function fromKnex(trx: { raw(sql: string, bindings: unknown[]): Promise<{ rows: unknown[] }> }): SqlClient {
  return {
    query: async (text, values = []) => ({ rows: (await trx.raw(text.replace(/\$\d+/g, '?'), values)).rows }),
  };
}

describe.skipIf(!ok)('transactional publish', () => {
  let admin: pg.Client;
  let broker: PostgresBroker;
  let app: pg.Client; // the application's own connection, where its transactions run
  let n = 0;
  const queue = () => `tx${++n}`;

  beforeAll(async () => {
    admin = await adminClient();
    broker = new PostgresBroker({ url: postgresUrl(), prefix: schema, poolSize: 2, pollIntervalMs: 10_000 });
    await broker.connect();
    app = new pg.Client({ connectionString: postgresUrl(), application_name: 'celeriac-test-app' });
    await app.connect();
    await app.query(`CREATE TABLE ${quoteIdent(schema)}.orders (id serial PRIMARY KEY, item text NOT NULL)`);
  });

  afterAll(async () => {
    await app.end();
    await broker.close();
    await dropSchema(admin, schema);
    await admin.end();
  });

  it('is declared by the broker', () => {
    expect(broker.capabilities.transactionalPublish).toBe(true);
  });

  it('rolled back: neither the row nor the message exists', async () => {
    const q = queue();
    await app.query('BEGIN');
    await app.query(`INSERT INTO ${quoteIdent(schema)}.orders (item) VALUES ('rolled back')`);
    await broker.publish(q, msg('ship rolled back'), { transaction: app });
    await app.query('ROLLBACK');
    expect(await broker.stats(q)).toEqual({ ready: 0, delayed: 0, inFlight: 0, dead: 0 });
    expect(await broker.queue(q).tryClaim(10)).toEqual([]);
  });

  it('committed: exactly one message, claimable once', async () => {
    const q = queue();
    await app.query('BEGIN');
    const { rows } = await app.query<{ id: number }>(`INSERT INTO ${quoteIdent(schema)}.orders (item) VALUES ('kept') RETURNING id`);
    await broker.publish(q, { ...msg(`ship ${rows[0]!.id}`) }, { transaction: app });
    await app.query('COMMIT');
    const got = await broker.queue(q).tryClaim(10);
    expect(got.map((m) => dec.decode(m.body))).toEqual([`ship ${rows[0]!.id}`]);
    expect(await broker.queue(q).tryClaim(10)).toEqual([]);
    await broker.queue(q).ack(got[0]!);
  });

  it('held open 2 s: not claimable meanwhile; a waiting claim wakes on the commit (its NOTIFY commits with it)', async () => {
    const q = broker.queue(queue());
    await q.claim(1, AbortSignal.timeout(50)); // listening
    await app.query('BEGIN');
    await broker.publishBatch(q.name, [msg('a'), msg('b')], { transaction: app, priority: 5 });
    const waiting = q.claim(10); // pollIntervalMs is 10 s: only the NOTIFY can end this wait early
    const t0 = Date.now();
    while (Date.now() - t0 < 2_000) {
      expect(await q.tryClaim(10)).toEqual([]);
      expect((await q.stats()).ready).toBe(0);
      await sleep(200);
    }
    const committedAt = Date.now();
    await app.query('COMMIT');
    const got = await waiting;
    expect(Date.now() - committedAt).toBeLessThan(2_000);
    expect(got.map((m) => [dec.decode(m.body), m.priority])).toEqual([
      ['a', 5],
      ['b', 5],
    ]);
    await Promise.all(got.map((m) => q.ack(m)));
  });

  it('works through a Knex-style adapter (`?` placeholders, arrays expanded) and through core guard', async () => {
    const q = queue();
    const trx = knexLike(app);
    await app.query('BEGIN');
    await broker.publish(q, msg('via knex'), { transaction: fromKnex(trx) });
    await guardBroker(broker).publish(q, msg('via guard'), { transaction: app } as never);
    await app.query('COMMIT');
    const got = await broker.queue(q).tryClaim(10);
    expect(got.map((m) => dec.decode(m.body)).sort()).toEqual(['via guard', 'via knex']);
    await Promise.all(got.map((m) => broker.queue(q).ack(m)));
  });

  it("a failure in the caller's transaction rejects with ERR_DATABASE and the driver error as cause", async () => {
    await app.query('BEGIN');
    await app.query('SELECT 1/0').catch(() => undefined); // the transaction is now aborted
    const err = (await broker.publish(queue(), msg('x'), { transaction: app }).catch((e: unknown) => e)) as { code: string; cause: unknown };
    await app.query('ROLLBACK');
    expect(err.code).toBe('ERR_DATABASE');
    expect(err.cause).toBeInstanceOf(pg.DatabaseError);
    expect(await code(broker.publish(queue(), msg('y'), { transaction: app, priority: 11 }))).toContain('RangeError');
    expect(await code(broker.publish(queue(), msg('z'), { transaction: {} as SqlClient }))).toContain('TypeError');
  });
});
