import { newId, parseUrlOptions, resolveResultBackend, TaskState } from '@celeriac/core';
import { resultBackendSuite } from '@celeriac/core/testing';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { channelName, ChannelKind, createPostgresResultBackend, PostgresResultBackend, quoteIdent } from '../src/index.js';
import { taskDigest } from '../src/sql.js';
import { adminClient, dropSchema, eventually, postgresUrl, requireServer, sleep, uniqueSchema } from './helpers.js';

const ok = await requireServer('postgres');
const schema = uniqueSchema('results');
const ttl = { ttlMs: 60_000 };

function open(extra: Record<string, string> = {}): PostgresResultBackend {
  const u = new URL(postgresUrl());
  u.searchParams.set('prefix', schema);
  u.searchParams.set('poolSize', '2');
  for (const [k, v] of Object.entries(extra)) u.searchParams.set(k, v);
  return createPostgresResultBackend(u, parseUrlOptions(u), {});
}

describe.skipIf(!ok)('postgres result backend', () => {
  let admin: pg.Client;

  beforeAll(async () => {
    admin = await adminClient();
  });

  afterAll(async () => {
    await dropSchema(admin, schema);
    await admin.end();
  });

  resultBackendSuite({ describe, it }, 'postgres', {
    create: () => open(),
    sleep: (ms) => new Promise((r) => setTimeout(r, ms)),
    slackMs: 100,
  });

  it('is what core resolves postgres:// and postgresql:// result backend URLs to', async () => {
    for (const scheme of ['postgres', 'postgresql']) {
      const u = new URL(postgresUrl());
      u.protocol = `${scheme}:`;
      u.searchParams.set('prefix', schema);
      const b = await resolveResultBackend(u.href);
      // Core imports the built package (dist/), these tests the sources: compare by shape.
      expect([b.name, b.constructor.name, (b as PostgresResultBackend).schema]).toEqual(['postgres', 'PostgresResultBackend', schema]);
      await b.close();
    }
  });

  it('notifies only results someone waits for, at most one NOTIFY per batch', async () => {
    const b = open();
    const listener = new pg.Client(postgresUrl());
    await listener.connect();
    const payloads: string[] = [];
    listener.on('notification', (n) => payloads.push(n.payload ?? ''));
    await listener.query(`LISTEN ${quoteIdent(channelName(schema, ChannelKind.RESULTS))}`);
    try {
      // 50 results nobody waits for: not one notification.
      await Promise.all(Array.from({ length: 50 }, () => b.set(newId(), { state: TaskState.SUCCESS, result: 1 }, ttl)));
      const waited = [newId(), newId(), newId()];
      const waits = waited.map((id) => b.wait(id, { timeoutMs: 10_000 }));
      await eventually(async () => {
        const { rows } = await admin.query(`SELECT count(*)::int AS n FROM ${quoteIdent(schema)}.result WHERE task_id = ANY($1) AND waited_until > now()`, [waited]);
        return rows[0].n === 3;
      }, 5_000, 'the waits are registered');
      await sleep(200);
      expect(payloads).toEqual([]);
      // One batch: the three waited results and 20 others; STARTED is not ready, so not announced.
      await Promise.all([
        ...waited.map((id) => b.set(id, { state: TaskState.STARTED }, ttl)),
        ...Array.from({ length: 20 }, () => b.set(newId(), { state: TaskState.FAILURE, error: { name: 'Error', message: 'x' } }, ttl)),
      ]);
      await Promise.all(waited.map((id) => b.set(id, { state: TaskState.SUCCESS, result: id }, ttl)));
      expect((await Promise.all(waits)).map((m) => m.result)).toEqual(waited);
      await eventually(() => payloads.length > 0, 2_000, 'the notification');
      expect(payloads).toHaveLength(1);
      expect(payloads[0]!.split('\n').sort()).toEqual(waited.map(taskDigest).sort());
    } finally {
      await listener.end();
      await b.close();
    }
  });

  it('keeps a stored SUCCESS against later writes of the same tick, and lets an expired one be replaced', async () => {
    const b = open();
    const id = newId();
    await Promise.all([
      b.set(id, { state: TaskState.STARTED }, ttl),
      b.set(id, { state: TaskState.SUCCESS, result: 'first' }, ttl),
      b.set(id, { state: TaskState.FAILURE, error: { name: 'Error', message: 'late' } }, ttl),
    ]);
    expect(await b.get(id)).toEqual({ state: 'SUCCESS', result: 'first' });
    const short = newId();
    await b.set(short, { state: TaskState.SUCCESS, result: 1 }, { ttlMs: 50 });
    await sleep(120);
    await b.set(short, { state: TaskState.SUCCESS, result: 2 }, ttl);
    expect(await b.get(short)).toEqual({ state: 'SUCCESS', result: 2 });
    const forever = newId();
    await b.set(forever, { state: TaskState.SUCCESS, result: 'x\u0000y' }, { ttlMs: Infinity });
    expect(await b.get(forever)).toEqual({ state: 'SUCCESS', result: 'x\u0000y' });
    const { rows } = await admin.query(`SELECT expires_at FROM ${quoteIdent(schema)}.result WHERE task_id = $1`, [forever]);
    expect(rows[0].expires_at).toBeNull();
    await b.close();
  });

  it('a token bucket hammered by concurrent takers on many connections grants no more than its rate allows', async () => {
    const clients = [open({ poolSize: '8' }), open({ poolSize: '8' }), open({ poolSize: '8' })];
    const bucket = `hammer-${newId()}`;
    const limit = 50;
    let granted = 0;
    const t0 = Date.now();
    await Promise.all(
      clients.flatMap((c) =>
        Array.from({ length: 8 }, async () => {
          while (Date.now() - t0 < 1_500) if ((await c.takeTokens(bucket, limit, 1_000)).ok) granted++;
        }),
      ),
    );
    const elapsed = Date.now() - t0;
    await Promise.all(clients.map((c) => c.close()));
    // A full bucket, plus the refill over the run (elapsed measured after the last call returned).
    expect(granted).toBeLessThanOrEqual(limit + Math.ceil((elapsed * limit) / 1_000));
    expect(granted).toBeGreaterThanOrEqual(limit + 1);
  });

  it('a wait survives a delete of the result it waits for', async () => {
    const b = open();
    const id = newId();
    await b.set(id, { state: TaskState.STARTED }, ttl);
    const waiting = b.wait(id, { timeoutMs: 10_000 });
    await eventually(async () => {
      const { rows } = await admin.query(`SELECT waited_until FROM ${quoteIdent(schema)}.result WHERE task_id = $1`, [id]);
      return rows[0]?.waited_until != null;
    }, 5_000, 'registered');
    await b.delete(id);
    expect(await b.get(id)).toBeUndefined();
    await b.set(id, { state: TaskState.SUCCESS, result: 'after delete' }, ttl);
    expect((await waiting).result).toBe('after delete');
    await b.close();
  });

  it('deletes expired rows in batches (results, counters, leases, revocations, buckets), not ones still waited on', async () => {
    const b = open();
    const ids = Array.from({ length: 30 }, () => newId());
    await Promise.all(ids.map((id) => b.set(id, { state: TaskState.SUCCESS, result: 1 }, { ttlMs: 50 })));
    await b.incr(`c-${newId()}`, 1, { ttlMs: 50 });
    await b.acquireLease(`l-${newId()}`, 'h', 50);
    await b.revoke(newId(), 50);
    await b.takeTokens(`t-${newId()}`, 5, 20);
    const pending = newId();
    const waiting = b.wait(pending, { timeoutMs: 5_000 });
    await eventually(async () => {
      const { rows } = await admin.query(`SELECT 1 FROM ${quoteIdent(schema)}.result WHERE task_id = $1`, [pending]);
      return rows.length === 1;
    }, 5_000, 'marker');
    await admin.query(`UPDATE ${quoteIdent(schema)}.result SET expires_at = now() - interval '1 second' WHERE task_id = $1`, [pending]);
    await sleep(120);
    expect(await b.cleanup()).toBeGreaterThanOrEqual(34);
    const left = await admin.query(`SELECT task_id FROM ${quoteIdent(schema)}.result WHERE expires_at < now()`);
    expect(left.rows.map((r: { task_id: string }) => r.task_id)).toEqual([pending]);
    for (const table of ['counter', 'lease', 'revocation', 'token_bucket']) {
      const { rows } = await admin.query(`SELECT count(*)::int AS n FROM ${quoteIdent(schema)}.${table} WHERE expires_at < now()`);
      expect(rows[0].n, table).toBe(0);
    }
    await b.set(pending, { state: TaskState.SUCCESS, result: 'still seen' }, ttl);
    expect((await waiting).result).toBe('still seen');
    await b.close();
  });

  it('2,000 settled waits leave no listener behind and open no connection beyond the pool and one LISTEN', async () => {
    const app = `celeriac-test-leak-${newId().slice(0, 8)}`;
    const b = open({ application_name: app });
    const connections = async () =>
      (await admin.query<{ n: number }>('SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = $1', [app])).rows[0]!.n;
    const n = 2_000;
    const ids = Array.from({ length: n }, () => newId());
    await Promise.all(ids.filter((_, i) => i % 3 === 0).map((id) => b.set(id, { state: TaskState.SUCCESS, result: 1 }, ttl)));
    const waits = ids.map((id, i) => b.wait(id, { timeoutMs: i % 3 === 2 ? 1_000 : 20_000 }));
    const all = Promise.allSettled(waits);
    await eventually(() => b.waitingCount === ids.filter((_, i) => i % 3 !== 0).length, 10_000, 'waiting');
    expect(await connections()).toBeLessThanOrEqual(3); // pool of 2 + LISTEN
    await Promise.all(ids.filter((_, i) => i % 3 === 1).map((id) => b.set(id, { state: TaskState.FAILURE, error: { name: 'Error', message: 'x' } }, ttl)));
    const settled = await all;
    const outcome = settled.map((s) => (s.status === 'fulfilled' ? s.value.state : (s.reason as { code?: string }).code));
    expect(outcome).toEqual(ids.map((_, i) => ['SUCCESS', 'FAILURE', 'ERR_TIMEOUT'][i % 3]));
    expect(b.waitingCount).toBe(0);
    await eventually(() => b.database.listener.listening().length === 0, 2_000, 'the results channel unlistened');
    expect(b.database.listener.size).toBe(0);
    await b.close();
    await eventually(async () => (await connections()) === 0, 5_000, 'every connection closed');
  });

  it('after its LISTEN connection is cut, listens again and re-reads: a result stored meanwhile is not missed', async () => {
    const b = open();
    const id = newId();
    const waiting = b.wait(id, { timeoutMs: 15_000 });
    await eventually(() => b.database.listener.listening().length === 1, 5_000, 'listening');
    await eventually(async () => {
      const { rows } = await admin.query(`SELECT waited_until FROM ${quoteIdent(schema)}.result WHERE task_id = $1`, [id]);
      return rows[0]?.waited_until != null;
    }, 5_000, 'registered');
    const pid = await b.database.listener.backendPid();
    await admin.query('SELECT pg_terminate_backend($1)', [pid]);
    // Stored while the LISTEN connection is down: its NOTIFY reaches nobody.
    const writer = open();
    await writer.set(id, { state: TaskState.SUCCESS, result: 'while down' }, ttl);
    await writer.close();
    expect((await waiting).result).toBe('while down');
    await b.close();
  });

  it('a call cut off by a lost connection rejects with a retryable ERR_CONNECTION; the next call reconnects', async () => {
    const b = open();
    await b.connect();
    const sleeping = b.database.query('SELECT pg_sleep(10) AS results_sleep').catch((err: unknown) => err);
    let pid: number | undefined;
    for (let i = 0; i < 100 && pid === undefined; i++) {
      const { rows } = await admin.query<{ pid: number }>("SELECT pid FROM pg_stat_activity WHERE query LIKE '%AS results_sleep' AND state = 'active' AND pid <> pg_backend_pid()");
      pid = rows[0]?.pid;
      if (pid === undefined) await sleep(20);
    }
    await admin.query('SELECT pg_terminate_backend($1)', [pid]);
    expect(await sleeping).toMatchObject({ code: 'ERR_CONNECTION', retryable: true });
    const id = newId();
    await b.set(id, { state: TaskState.SUCCESS, result: 1 }, ttl);
    expect(await b.get(id)).toEqual({ state: 'SUCCESS', result: 1 });
    await b.close();
  });

  it('refuses bad arguments at the call site', async () => {
    const b = open();
    await expect(b.get('')).rejects.toThrow(TypeError);
    await expect(b.set('a\u0000b', { state: TaskState.SUCCESS }, ttl)).rejects.toThrow(TypeError);
    await expect(b.set(newId(), { state: TaskState.SUCCESS, result: 1n }, ttl)).rejects.toMatchObject({ code: 'ERR_SERIALIZATION' });
    await expect(b.incr('k', 1.5, ttl)).rejects.toThrow(RangeError);
    await expect(b.acquireLease('l', 'h', Infinity)).rejects.toThrow(RangeError);
    await expect(b.takeTokens('t', 0, 1000)).rejects.toThrow(RangeError);
    await b.close();
    await expect(b.get(newId())).rejects.toMatchObject({ code: 'ERR_CLOSED' });
  });
});
