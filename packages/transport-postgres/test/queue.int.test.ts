import { newId, TaskState, type Headers, type OutgoingMessage } from '@celeriac/core';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { PostgresBroker, PostgresResultBackend, quoteIdent, type PgMessage, type PgQueue } from '../src/index.js';
import { adminClient, code, dropSchema, postgresUrl, requireServer, sleep, uniqueSchema } from './helpers.js';

const ok = await requireServer('postgres');
const schema = uniqueSchema('queue');
const enc = new TextEncoder();
const dec = new TextDecoder();

function msg(text: string, headers: Headers = {}): OutgoingMessage {
  return { id: newId(), body: enc.encode(text), headers };
}

const texts = (ms: readonly PgMessage[]) => ms.map((m) => dec.decode(m.body));

describe.skipIf(!ok)('the queue model (PgQueue) against PostgreSQL', () => {
  let admin: pg.Client;
  const brokers: PostgresBroker[] = [];
  let n = 0;

  async function broker(opts: { visibilityTimeoutMs?: number; pollIntervalMs?: number } = {}): Promise<PostgresBroker> {
    const b = new PostgresBroker({ url: postgresUrl(), prefix: schema, poolSize: 2, visibilityTimeoutMs: 5_000, pollIntervalMs: 2_000, ...opts });
    brokers.push(b);
    await b.connect();
    return b;
  }

  /** A fresh queue name on the shared broker. */
  let main: PostgresBroker;
  const fresh = (): PgQueue => main.queue(`q${++n}`);

  beforeAll(async () => {
    admin = await adminClient();
    main = await broker();
  });

  afterAll(async () => {
    await Promise.all(brokers.map((b) => b.close()));
    await dropSchema(admin, schema);
    const { rows } = await admin.query('SELECT count(*)::int AS n FROM pg_namespace WHERE nspname = $1', [schema]);
    await admin.end();
    expect(rows[0].n).toBe(0);
  });

  it('round-trips the id, the body and every header value type, with a delivery count of 1', async () => {
    const q = fresh();
    const headers: Headers = { s: 'ünï\u0000code "q" \\', n: 42, f: 1.5, neg: -7, t: true, no: false, nil: null, list: [1, 'two', [null, false]], big: 1e21 };
    const body = new Uint8Array([0, 1, 2, 255, 0]);
    const m = { id: newId(), body, headers };
    await q.publish(m);
    const [got, ...rest] = await q.tryClaim(10);
    expect(rest).toEqual([]);
    expect(got!.id).toBe(m.id);
    expect(new Uint8Array(got!.body)).toEqual(body);
    expect(got!.headers).toEqual(headers);
    expect(got!.deliveries).toBe(1);
    await q.ack(got!);
    expect(await q.stats()).toEqual({ ready: 0, delayed: 0, inFlight: 0, dead: 0 });
  });

  it('claims priority 9 first and FIFO within a level, in batches up to max', async () => {
    const q = fresh();
    const order: [string, number][] = [];
    for (let i = 0; i < 30; i++) order.push([`m${i}`, (i * 7) % 10]);
    for (const [text, priority] of order) await q.publish(msg(text), { priority });
    const claimed: PgMessage[] = [];
    for (;;) {
      const got = await q.tryClaim(4);
      expect(got.length).toBeLessThanOrEqual(4);
      if (got.length === 0) break;
      claimed.push(...got);
    }
    const expected = [...order].sort((a, b) => b[1] - a[1] || Number(a[0].slice(1)) - Number(b[0].slice(1))).map(([t]) => t);
    expect(texts(claimed)).toEqual(expected);
    await Promise.all(claimed.map((m) => q.ack(m)));
  });

  it('publishBatch stores every message in order; publishes of one tick share one INSERT', async () => {
    const q = fresh();
    await q.publishBatch(Array.from({ length: 20 }, (_, i) => msg(`b${i}`)));
    expect(texts(await q.tryClaim(50))).toEqual(Array.from({ length: 20 }, (_, i) => `b${i}`));
    const other = fresh();
    await Promise.all(Array.from({ length: 60 }, (_, i) => other.publish(msg(`c${i}`))));
    // Rows inserted by one statement share their inserting transaction id.
    const { rows } = await admin.query(`SELECT count(DISTINCT xmin::text)::int AS n, count(*)::int AS total FROM ${quoteIdent(schema)}.message WHERE queue = $1`, [other.name]);
    expect(rows[0]).toEqual({ n: 1, total: 60 });
  });

  it('a message id still stored is not stored twice (a resent publish)', async () => {
    const q = fresh();
    const m = msg('once');
    await q.publish(m);
    await q.publish(m);
    await q.publishBatch([m, msg('other')]);
    expect((await q.stats()).ready).toBe(2);
  });

  it('holds a delayed message until it is due; a days-long delay stays delayed', async () => {
    const q = fresh();
    const t0 = Date.now();
    await q.publish(msg('soon'), { delayMs: 300 });
    await q.publish(msg('weeks'), { delayMs: 21 * 86_400_000 });
    expect(await q.tryClaim(10)).toEqual([]);
    expect(await q.stats()).toEqual({ ready: 0, delayed: 2, inFlight: 0, dead: 0 });
    const got = await q.claim(10);
    expect(texts(got)).toEqual(['soon']);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(295);
    expect(Date.now() - t0).toBeLessThan(1_500);
    expect(await q.nextVisibleMs()).toBeLessThanOrEqual(5_000); // the lease of 'soon'
    await q.ack(got[0]!);
    expect(await q.nextVisibleMs()).toBeGreaterThan(21 * 86_400_000 - 60_000);
    expect(await q.purge()).toBe(1);
    expect(await q.nextVisibleMs()).toBe(null);
  });

  it('concurrent claimers on separate connections never get the same message', async () => {
    const name = `q${++n}`;
    const total = 300;
    await main.queue(name).publishBatch(Array.from({ length: total }, (_, i) => msg(`x${i}`)));
    const others = await Promise.all([broker(), broker(), broker()]);
    const queues = [main.queue(name), ...others.map((b) => b.queue(name))];
    const seen: PgMessage[] = [];
    await Promise.all(
      queues.map(async (q) => {
        for (;;) {
          const got = await q.tryClaim(7);
          if (got.length === 0) return;
          seen.push(...got);
          await Promise.all(got.map((m) => q.ack(m)));
        }
      }),
    );
    const ids = seen.map((m) => m.id);
    expect(new Set(ids).size).toBe(total);
    expect(ids.length).toBe(total);
    expect(seen.every((m) => m.deliveries === 1)).toBe(true);
    await Promise.all(others.map((b) => b.close()));
  });

  it('recovers a message whose lease expired, with the delivery count incremented, and fences the old holder', async () => {
    const b = await broker({ visibilityTimeoutMs: 300 });
    const q = b.queue(`q${++n}`);
    await q.publish(msg('lease'));
    const [first] = await q.tryClaim(1);
    expect(first!.deliveries).toBe(1);
    expect(await q.tryClaim(1)).toEqual([]);
    expect((await q.stats()).inFlight).toBe(1);
    const t0 = Date.now();
    const [again] = await q.claim(1); // waits for the lease to expire: no notification announces it
    expect(Date.now() - t0).toBeLessThan(1_500);
    expect(again!.id).toBe(first!.id);
    expect(again!.deliveries).toBe(2);
    expect(await code(q.ack(first!))).toBe('ERR_STALE_DELIVERY');
    expect(await code(q.extend(first!))).toBe('ERR_STALE_DELIVERY');
    expect(await code(q.nack(first!, { requeue: true }))).toBe('ERR_STALE_DELIVERY');
    await q.ack(again!);
    expect(await q.stats()).toEqual({ ready: 0, delayed: 0, inFlight: 0, dead: 0 });
  });

  it('extend keeps a message leased past the visibility timeout', async () => {
    const b = await broker({ visibilityTimeoutMs: 400 });
    const q = b.queue(`q${++n}`);
    await q.publish(msg('long task'));
    const [held] = await q.tryClaim(1);
    for (let i = 0; i < 6; i++) {
      await sleep(150);
      await q.extend(held!);
      expect(await q.tryClaim(1)).toEqual([]);
    }
    await q.ack(held!);
  });

  it('nack requeues at its old place and counts the delivery; with delayMs, not before the delay', async () => {
    const q = fresh();
    await q.publish(msg('first'));
    await q.publish(msg('second'));
    const [a] = await q.tryClaim(1);
    await q.nack(a!, { requeue: true });
    const again = await q.tryClaim(2);
    expect(texts(again)).toEqual(['first', 'second']);
    expect(again.map((m) => m.deliveries)).toEqual([2, 1]);
    await q.nack(again[0]!, { requeue: true, delayMs: 300 });
    await q.ack(again[1]!);
    expect(await q.stats()).toEqual({ ready: 0, delayed: 1, inFlight: 0, dead: 0 });
    const t0 = Date.now();
    const [later] = await q.claim(1);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(250);
    expect(later!.deliveries).toBe(3);
    await q.ack(later!);
  });

  it('release gives messages back at once: counted, or uncounted for messages never handed out', async () => {
    const q = fresh();
    await q.publishBatch([msg('a'), msg('b')]);
    const got = await q.tryClaim(2);
    await q.release([got[0]!], true);
    await q.release([got[1]!], false);
    const again = await q.tryClaim(2);
    expect(texts(again)).toEqual(['a', 'b']);
    expect(again.map((m) => m.deliveries)).toEqual([2, 1]);
    // A release of a message whose lease was lost changes nothing and does not throw.
    await q.release([got[0]!], true);
    expect((await q.stats()).inFlight).toBe(2);
    await Promise.all(again.map((m) => q.ack(m)));
  });

  it('dead-letters with a reason; lists, redrives (count reset, tail of its level) and purges dead letters', async () => {
    const q = fresh();
    await q.publishBatch([msg('a', { task: 'x' }), msg('b'), msg('c')], { priority: 3 });
    const got = await q.tryClaim(3);
    const before = Date.now();
    for (const m of got) await q.nack(m, { requeue: false, reason: `failed ${dec.decode(m.body)}` });
    expect(await q.stats()).toEqual({ ready: 0, delayed: 0, inFlight: 0, dead: 3 });
    const dead = await q.deadList();
    expect(dead.map((d) => [d.id, dec.decode(d.body), d.reason])).toEqual(got.map((m) => [m.id, dec.decode(m.body), `failed ${dec.decode(m.body)}`]));
    expect(dead[0]!.headers).toEqual({ task: 'x' });
    expect(dead[0]!.deadAt).toBeGreaterThanOrEqual(before - 5_000);
    expect(await q.deadList(1)).toHaveLength(1);
    await q.publish(msg('newer'), { priority: 3 });
    expect(await q.deadRedrive([dead[1]!.id, 'not-dead'])).toBe(1);
    const redriven = await q.tryClaim(5);
    expect(texts(redriven)).toEqual(['newer', 'b']);
    expect(redriven.map((m) => m.deliveries)).toEqual([1, 1]);
    expect(redriven[1]!.priority).toBe(3);
    await Promise.all(redriven.map((m) => q.ack(m)));
    expect(await q.deadRedrive()).toBe(2);
    const rest = await q.tryClaim(5);
    expect(texts(rest)).toEqual(['a', 'c']);
    for (const m of rest) await q.nack(m, { requeue: false, reason: 'again' });
    expect(await q.deadPurge()).toBe(2);
    expect(await q.deadList()).toEqual([]);
    expect((await q.stats()).dead).toBe(0);
  });

  it('purge removes ready and delayed messages, not leased ones, and says how many', async () => {
    const q = fresh();
    await q.publishBatch([msg('1'), msg('2'), msg('3')]);
    await q.publish(msg('later'), { delayMs: 3_600_000 });
    const [held] = await q.tryClaim(1);
    expect(await q.purge()).toBe(3);
    expect(await q.stats()).toEqual({ ready: 0, delayed: 0, inFlight: 1, dead: 0 });
    await q.ack(held!);
  });

  it('acks of one tick go as one statement and all settle', async () => {
    const q = fresh();
    await q.publishBatch(Array.from({ length: 100 }, (_, i) => msg(`a${i}`)));
    const got = await q.tryClaim(100);
    const spy = vi.spyOn(main.database, 'query');
    try {
      await Promise.all(got.map((m) => q.ack(m)));
      expect(spy).toHaveBeenCalledTimes(1);
    } finally {
      spy.mockRestore();
    }
    expect(await q.stats()).toEqual({ ready: 0, delayed: 0, inFlight: 0, dead: 0 });
  });

  it('a waiting claim wakes on a publish (NOTIFY), not on a timer', async () => {
    const b = await broker({ pollIntervalMs: 5_000 });
    const q = b.queue(`q${++n}`);
    const t0 = Date.now();
    setTimeout(() => void q.publish(msg('wake')), 200);
    const got = await q.claim(5);
    expect(texts(got)).toEqual(['wake']);
    expect(Date.now() - t0).toBeLessThan(2_000);
    await q.ack(got[0]!);
  });

  it('a waiting claim wakes when a delay published meanwhile comes due, and when a requeue is announced', async () => {
    const b = await broker({ pollIntervalMs: 5_000 });
    const q = b.queue(`q${++n}`);
    const t0 = Date.now();
    setTimeout(() => void q.publish(msg('due'), { delayMs: 400 }), 100);
    const got = await q.claim(5);
    expect(texts(got)).toEqual(['due']);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(450);
    expect(Date.now() - t0).toBeLessThan(2_500);
    const t1 = Date.now();
    setTimeout(() => void q.nack(got[0]!, { requeue: true }), 100);
    const [again] = await q.claim(5);
    expect(again!.deliveries).toBe(2);
    expect(Date.now() - t1).toBeLessThan(2_500);
    await q.ack(again!);
  });

  it('an idle claim waits at most pollIntervalMs, without polling meanwhile, and ends at once on abort', async () => {
    const b = await broker({ pollIntervalMs: 600 });
    const q = b.queue(`q${++n}`);
    await q.claim(1); // listening from here on
    const spy = vi.spyOn(b.database, 'query');
    try {
      const t0 = Date.now();
      expect(await q.claim(1)).toEqual([]);
      const took = Date.now() - t0;
      expect(took).toBeGreaterThanOrEqual(590);
      expect(took).toBeLessThan(2_000);
      // The claim before it found nothing (and said when the next is due): wait, then one claim.
      expect(spy).toHaveBeenCalledTimes(1);
      const ac = new AbortController();
      const t1 = Date.now();
      const waiting = q.claim(1, ac.signal);
      setTimeout(() => ac.abort(), 100);
      expect(await waiting).toEqual([]);
      expect(Date.now() - t1).toBeLessThan(550);
    } finally {
      spy.mockRestore();
    }
  });

  it('after its LISTEN connection is cut, listens again, wakes waiting claims and reports it', async () => {
    const b = await broker({ pollIntervalMs: 30_000 });
    const events: string[] = [];
    b.onEvent((e) => events.push(e.type));
    const q = b.queue(`q${++n}`);
    await q.claim(1, AbortSignal.timeout(50)); // listening
    const pid = await b.database.listener.backendPid();
    expect(pid).toBeTypeOf('number');
    const t0 = Date.now();
    const waiting = q.claim(1); // would wait 30 s without a wake-up
    await sleep(50);
    await admin.query('SELECT pg_terminate_backend($1)', [pid]);
    expect(await waiting).toEqual([]); // the catch-up claim after the reconnect
    expect(Date.now() - t0).toBeLessThan(5_000);
    expect(events).toContain('error');
    expect(events).toContain('reconnected');
    expect(await b.database.listener.backendPid()).not.toBe(pid);
    // Notifications flow again.
    const t1 = Date.now();
    setTimeout(() => void q.publish(msg('after')), 100);
    const got = await q.claim(1);
    expect(texts(got)).toEqual(['after']);
    expect(Date.now() - t1).toBeLessThan(3_000);
    await q.ack(got[0]!);
  });

  it('a statement cut off by a lost connection rejects with a retryable ERR_CONNECTION; the pool reconnects by itself', async () => {
    const b = await broker();
    const db = b.database;
    const sleeping = db.query('SELECT pg_sleep(10)').catch((err: unknown) => err);
    let pid: number | undefined;
    for (let i = 0; i < 100 && pid === undefined; i++) {
      const { rows } = await admin.query<{ pid: number }>("SELECT pid FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(10)' AND state = 'active'");
      pid = rows[0]?.pid;
      if (pid === undefined) await sleep(20);
    }
    await admin.query('SELECT pg_terminate_backend($1)', [pid]);
    const err = (await sleeping) as { code?: string; retryable?: boolean; cause?: unknown };
    expect(err.code).toBe('ERR_CONNECTION');
    expect(err.retryable).toBe(true);
    expect(err.cause).toBeDefined();
    const q = b.queue(`q${++n}`);
    await q.publish(msg('after the outage'));
    expect((await q.stats()).ready).toBe(1);
    await q.purge();
  });

  it('ackWithResult stores the result and deletes the message in one statement; after a lost lease it stores it and rejects', async () => {
    const b = await broker({ visibilityTimeoutMs: 200 });
    const results = new PostgresResultBackend({ url: postgresUrl(), prefix: schema, poolSize: 1 });
    try {
      await results.connect();
      expect(results.writeTarget).toBe(b.resultWriteTarget);
      const q = b.queue(`q${++n}`);
      await q.publishBatch([msg('kept'), msg('late')]);
      const [kept, late] = await q.tryClaim(2);
      const waiting = results.wait('task-kept', { timeoutMs: 5_000 });
      await sleep(100); // the wait is registered (its NOTIFY comes with the write)
      const spy = vi.spyOn(b.database, 'query');
      await q.ackWithResult(kept!, results.prepareSet('task-kept', { state: TaskState.SUCCESS, result: 1 }, { ttlMs: 60_000 }));
      expect(spy).toHaveBeenCalledTimes(1);
      spy.mockRestore();
      expect(await waiting).toMatchObject({ state: 'SUCCESS', result: 1 });
      await sleep(300); // the lease of 'late' expires
      const [again] = await q.tryClaim(1);
      expect(again!.deliveries).toBe(2);
      const write = results.prepareSet('task-late', { state: TaskState.SUCCESS, result: 2 }, { ttlMs: Infinity });
      expect(await code(q.ackWithResult(late!, write))).toBe('ERR_STALE_DELIVERY');
      expect(await results.get('task-late')).toMatchObject({ state: 'SUCCESS', result: 2 });
      await q.ack(again!);
      expect(await q.stats()).toEqual({ ready: 0, delayed: 0, inFlight: 0, dead: 0 });
      expect(() => q.ackWithResult(again!, { kind: 'redis-set-result', keys: ['k'], args: [] })).toThrow(
        expect.objectContaining({ code: 'ERR_UNSUPPORTED' }) as Error,
      );
    } finally {
      await results.close();
    }
  });

  it('vacuums its message table once enough row versions died, whatever autovacuum does', async () => {
    const b = new PostgresBroker({ url: postgresUrl(), prefix: schema, poolSize: 2, vacuumEveryRows: 1_000 });
    brokers.push(b);
    await b.connect();
    const vacuums = async () =>
      Number((await admin.query("SELECT vacuum_count::int AS n FROM pg_stat_user_tables WHERE schemaname = $1 AND relname = 'message'", [schema])).rows[0]?.n ?? 0);
    const before = await vacuums();
    const q = b.queue(`q${++n}`);
    await q.publishBatch(Array.from({ length: 600 }, (_, i) => msg(`v${i}`)));
    for (let got = await q.tryClaim(100); got.length > 0; got = await q.tryClaim(100)) await Promise.all(got.map((m) => q.ack(m)));
    // 600 claims and 600 deletes: 1,200 dead row versions, over the threshold of 1,000.
    let after = before;
    for (let i = 0; i < 100 && after === before; i++) {
      await sleep(100);
      after = await vacuums();
    }
    expect(after).toBeGreaterThan(before);
  });

  it('refuses bad arguments at the call site', async () => {
    const q = fresh();
    await expect(q.publish(msg('x'), { priority: 10 })).rejects.toThrow(RangeError);
    await expect(q.publish(msg('x'), { delayMs: -1 })).rejects.toThrow(RangeError);
    await expect(q.publish({ id: '', body: enc.encode(''), headers: {} })).rejects.toThrow(TypeError);
    await expect(q.claim(0)).rejects.toThrow(RangeError);
    await expect(q.deadList(0)).rejects.toThrow(RangeError);
  });
});
