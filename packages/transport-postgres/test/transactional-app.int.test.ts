import { createApp, type App, type TransactionClient } from '@celeriac/core';
import knex, { type Knex } from 'knex';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PostgresBroker, PostgresResultBackend, quoteIdent } from '../src/index.js';
import { adminClient, dropSchema, postgresUrl, requireServer, sleep, uniqueSchema } from './helpers.js';

// Transactional enqueue through the task API (DESIGN.md §10) with a real worker consuming.
const ok = await requireServer('postgres');
const schema = uniqueSchema('txapp');
const s = quoteIdent(schema);

/** The README's Knex adapter: Knex's `raw` takes `?` placeholders; the statement binds only `$1`. */
const fromKnex = (trx: Knex.Transaction): TransactionClient => ({
  query: async (text, values = []) => ({ rows: ((await trx.raw(text.replace(/\$\d+/g, '?'), values as Knex.RawBinding[])) as { rows: unknown[] }).rows }),
});

describe.skipIf(!ok)('transactional enqueue through applyAsync with a worker consuming', () => {
  let admin: pg.Client;
  let producer: App;
  let worker: App;
  let db: pg.Client; // the application's connection, where its transactions run
  const runs = new Map<string, number>();
  const sent: string[] = [];

  const open = () =>
    createApp({
      // pollIntervalMs 30 s: a waiting worker is woken only by the NOTIFY that commits with the insert.
      broker: new PostgresBroker({ url: postgresUrl(), prefix: schema, poolSize: 2, pollIntervalMs: 30_000 }),
      resultBackend: new PostgresResultBackend({ url: postgresUrl(), prefix: schema, poolSize: 2 }),
    });
  const register = (app: App) =>
    app.task('orders.ship', async (orderId: number) => {
      runs.set(String(orderId), (runs.get(String(orderId)) ?? 0) + 1);
      return orderId;
    });

  beforeAll(async () => {
    admin = await adminClient();
    producer = open();
    worker = open();
    register(worker);
    producer.on('task:sent', ({ taskId }) => void sent.push(taskId));
    await worker.worker({ concurrency: 4 }).start();
    await producer.getBroker();
    db = new pg.Client({ connectionString: postgresUrl(), application_name: 'celeriac-test-app' });
    await db.connect();
    await db.query(`CREATE TABLE IF NOT EXISTS ${s}.orders (id serial PRIMARY KEY, item text NOT NULL)`);
  });

  afterAll(async () => {
    await db?.end();
    await Promise.all([producer?.close(), worker?.close()]);
    await dropSchema(admin, schema);
    await admin.end();
  });

  let shipTask: ReturnType<typeof register> | undefined;
  const ship = () => (shipTask ??= register(producer));
  const order = async (item: string): Promise<number> =>
    (await db.query<{ id: number }>(`INSERT INTO ${s}.orders (item) VALUES ($1) RETURNING id`, [item])).rows[0]!.id;

  it('held open 2 s after its insert: the worker runs nothing; after COMMIT the task runs once, woken by the NOTIFY', async () => {
    await db.query('BEGIN');
    const id = await order('held open');
    const r = await ship().applyAsync([id], { transaction: db });
    const t0 = Date.now();
    while (Date.now() - t0 < 2_000) {
      expect(runs.get(String(id))).toBeUndefined();
      await sleep(100);
    }
    expect(await (await producer.getBroker()).stats('default')).toMatchObject({ ready: 0, inFlight: 0 });
    await db.query('COMMIT');
    const committed = Date.now();
    expect(await r.get({ timeoutMs: 10_000 })).toBe(id);
    expect(Date.now() - committed).toBeLessThan(5_000); // not the 30 s poll
    await sleep(500);
    expect(runs.get(String(id))).toBe(1);
    expect(sent).not.toContain(r.id); // task:sent is for sends without a transaction
  });

  it('after ROLLBACK nothing is waiting, the task never runs and its result stays PENDING', async () => {
    await db.query('BEGIN');
    const id = await order('rolled back');
    const r = await ship().applyAsync([id], { transaction: db });
    const bulk = await ship().applyAsyncBulk([[id + 1_000_000], [id + 2_000_000]], { transaction: db });
    await db.query('ROLLBACK');
    expect(await (await producer.getBroker()).stats('default')).toMatchObject({ ready: 0, delayed: 0, inFlight: 0 });
    expect((await db.query(`SELECT count(*)::int AS n FROM ${s}.orders WHERE id = $1`, [id])).rows[0]).toEqual({ n: 0 });
    await sleep(1_500);
    for (const x of [id, id + 1_000_000, id + 2_000_000]) expect(runs.get(String(x))).toBeUndefined();
    expect(await r.state()).toBe('PENDING');
    expect(await bulk[0]!.state()).toBe('PENDING');
  });

  it('the bulk form and a plain send: committed tasks run once each; task:sent fires for the plain one only', async () => {
    await db.query('BEGIN');
    const ids = [await order('a'), await order('b'), await order('c')];
    const rs = await ship().applyAsyncBulk(ids.map((i) => [i] as [number]), { transaction: db });
    await db.query('COMMIT');
    const plain = await ship().delay(-1);
    expect(await Promise.all(rs.map((r) => r.get({ timeoutMs: 10_000 })))).toEqual(ids);
    expect(await plain.get({ timeoutMs: 10_000 })).toBe(-1);
    await sleep(300);
    for (const i of ids) expect(runs.get(String(i))).toBe(1);
    expect(sent).toContain(plain.id);
    for (const r of rs) expect(sent).not.toContain(r.id);
  });

  it('through a real Knex transaction and the README adapter: committed runs, rolled back does not', async () => {
    const k = knex({ client: 'pg', connection: postgresUrl(), pool: { min: 0, max: 1 } });
    try {
      let kept = 0;
      const r = await k.transaction(async (trx) => {
        kept = ((await trx(`${schema}.orders`).insert({ item: 'knex' }).returning('id')) as { id: number }[])[0]!.id;
        return ship().applyAsync([kept], { transaction: fromKnex(trx) });
      });
      let dropped = 0;
      await k
        .transaction(async (trx) => {
          dropped = ((await trx(`${schema}.orders`).insert({ item: 'knex rolled back' }).returning('id')) as { id: number }[])[0]!.id;
          await ship().applyAsync([dropped], { transaction: fromKnex(trx) });
          throw new Error('roll back');
        })
        .catch(() => undefined);
      expect(await r.get({ timeoutMs: 10_000 })).toBe(kept);
      await sleep(1_000);
      expect([runs.get(String(kept)), runs.get(String(dropped))]).toEqual([1, undefined]);
    } finally {
      await k.destroy();
    }
  });

  it('is refused with ERR_UNSUPPORTED on a broker without transactional publish, before any statement runs', async () => {
    const other = createApp({ broker: 'memory://' });
    const t = other.task('orders.ship', async (id: number) => id);
    let ran = 0;
    const client: TransactionClient = { query: () => ((ran += 1), Promise.resolve({ rows: [] })) };
    await expect(t.applyAsync([1], { transaction: client })).rejects.toMatchObject({ code: 'ERR_UNSUPPORTED' });
    await expect(t.applyAsyncBulk([[1]], { transaction: client })).rejects.toMatchObject({ code: 'ERR_UNSUPPORTED' });
    expect(ran).toBe(0);
    await other.close();
  });
});
