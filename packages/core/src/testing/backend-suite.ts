import { assertEqual, fail, rejectsWith } from './assert.js';
import { createApp, type App } from '../app.js';
import { ErrorCode } from '../errors.js';
import { newId } from '../ids.js';
import { TaskState, type ResultBackend } from '../result-backend.js';
import type { SuiteApi } from './broker-suite.js';

export interface BackendSuiteEnv {
  /** A new client of the same store. */
  create(): ResultBackend | Promise<ResultBackend>;
  /** Let `ms` pass (fake clock advance, or a real sleep). */
  sleep(ms: number): Promise<void>;
  /** Scheduling slack of the store (expiry, notifications). */
  slackMs: number;
  /** @default 30_000 */
  timeoutMs?: number;
}


/**
 * The result-backend conformance suite: DESIGN.md §6 on every backend. Optional operations are
 * tested where `capabilities` says so, and must be absent where it does not.
 */
export function resultBackendSuite(api: SuiteApi, name: string, env: BackendSuiteEnv): void {
  const timeout = env.timeoutMs ?? 30_000;
  const ttl = 60_000;

  function test(title: string, fn: (open: () => Promise<ResultBackend>) => Promise<void>): void {
    api.it(
      title,
      async () => {
        const opened: ResultBackend[] = [];
        const open = async () => {
          const b = await env.create();
          opened.push(b);
          return b;
        };
        try {
          await fn(open);
        } finally {
          await Promise.allSettled(opened.map((b) => b.close()));
        }
      },
      timeout,
    );
  }

  api.describe(`result backend conformance: ${name}`, () => {
    test('an unknown task id reads as undefined (PENDING)', async (open) => {
      const b = await open();
      assertEqual(await b.get(newId()), undefined, 'unknown id');
    });

    test('set then get round-trips the state, result and error', async (open) => {
      const b = await open();
      const id = newId();
      await b.set(id, { state: TaskState.SUCCESS, result: { n: 1, list: [1, 'two', null], s: 'ü' }, name: 't', retries: 2 }, { ttlMs: ttl });
      const m = await b.get(id);
      assertEqual(m?.state, 'SUCCESS', 'state');
      assertEqual(m?.result, { n: 1, list: [1, 'two', null], s: 'ü' }, 'result');
      assertEqual([m?.name, m?.retries], ['t', 2], 'name and retries');
      const f = newId();
      const error = { name: 'TypeError', code: 'ERR_X', message: 'bad', stack: 'TypeError: bad\n    at x', retryable: false };
      await b.set(f, { state: TaskState.FAILURE, error }, { ttlMs: ttl });
      assertEqual((await b.get(f))?.error, error, 'error');
    });

    test('a stored SUCCESS is never overwritten', async (open) => {
      const b = await open();
      const id = newId();
      await b.set(id, { state: TaskState.STARTED }, { ttlMs: ttl });
      await b.set(id, { state: TaskState.SUCCESS, result: 1 }, { ttlMs: ttl });
      await b.set(id, { state: TaskState.FAILURE, error: { name: 'Error', message: 'late' } }, { ttlMs: ttl });
      await b.set(id, { state: TaskState.STARTED }, { ttlMs: ttl });
      const m = await b.get(id);
      assertEqual([m?.state, m?.result], ['SUCCESS', 1], 'after later writes');
    });

    test('wait resolves on a result stored later, by another client', async (open) => {
      const a = await open();
      const b = await open();
      const id = newId();
      const waiting = a.wait(id, { timeoutMs: 10_000 });
      await b.set(id, { state: TaskState.PROGRESS, progress: 50 }, { ttlMs: ttl });
      await env.sleep(env.slackMs);
      await b.set(id, { state: TaskState.SUCCESS, result: 'done' }, { ttlMs: ttl });
      const m = await waiting;
      assertEqual([m.state, m.result], ['SUCCESS', 'done'], 'waited result');
    });

    test('wait resolves at once on a result already stored', async (open) => {
      const b = await open();
      const id = newId();
      await b.set(id, { state: TaskState.FAILURE, error: { name: 'Error', message: 'x' } }, { ttlMs: ttl });
      const m = await b.wait(id, { timeoutMs: 5_000 });
      assertEqual(m.state, 'FAILURE', 'state');
    });

    test('wait rejects with ERR_TIMEOUT, and with ERR_ABORTED when its signal aborts', async (open) => {
      const b = await open();
      const timedOut = b.wait(newId(), { timeoutMs: 200 });
      const check = rejectsWith(timedOut, 'ERR_TIMEOUT', 'timeout');
      await env.sleep(200 + env.slackMs);
      await check;
      const ac = new AbortController();
      const aborted = b.wait(newId(), { timeoutMs: 10_000, signal: ac.signal });
      ac.abort();
      await rejectsWith(aborted, 'ERR_ABORTED', 'abort');
    });

    test('results expire after their ttl', async (open) => {
      const b = await open();
      const id = newId();
      await b.set(id, { state: TaskState.SUCCESS, result: 1 }, { ttlMs: 1000 });
      assertEqual((await b.get(id))?.state, 'SUCCESS', 'before expiry');
      await env.sleep(1000 + env.slackMs + 100);
      assertEqual(await b.get(id), undefined, 'after expiry');
    });

    test('delete forgets a result', async (open) => {
      const b = await open();
      const id = newId();
      await b.set(id, { state: TaskState.SUCCESS, result: 1 }, { ttlMs: ttl });
      await b.delete(id);
      assertEqual(await b.get(id), undefined, 'after delete');
    });

    test('counters are atomic across clients — or absent', async (open) => {
      const a = await open();
      const b = await open();
      if (!a.capabilities.counters) {
        assertEqual(a.incr, undefined, 'incr without the capability');
        return;
      }
      const key = `c-${newId()}`;
      const results = await Promise.all(Array.from({ length: 100 }, (_, i) => (i % 2 === 0 ? a : b).incr!(key, 1, { ttlMs: ttl })));
      assertEqual([...results].sort((x, y) => x - y), Array.from({ length: 100 }, (_, i) => i + 1), 'each increment seen once');
    });

    test('a lease has one holder at a time, is renewed by it, and passes on when it expires — or is absent', async (open) => {
      const a = await open();
      const b = await open();
      if (!a.capabilities.leases) {
        assertEqual(a.acquireLease, undefined, 'acquireLease without the capability');
        return;
      }
      const name = `lease-${newId()}`;
      assertEqual(await a.acquireLease!(name, 'A', 1000), true, 'A acquires');
      assertEqual(await b.acquireLease!(name, 'B', 1000), false, 'B while A holds it');
      assertEqual(await a.renewLease!(name, 'A', 1000), true, 'A renews');
      assertEqual(await b.renewLease!(name, 'B', 1000), false, 'B cannot renew');
      assertEqual(await b.releaseLease!(name, 'B'), false, 'B cannot release');
      await env.sleep(1000 + env.slackMs + 100);
      assertEqual(await b.acquireLease!(name, 'B', 1000), true, 'B after expiry');
      assertEqual(await a.renewLease!(name, 'A', 1000), false, 'A lost it');
      assertEqual(await b.releaseLease!(name, 'B'), true, 'B releases');
      assertEqual(await a.acquireLease!(name, 'A', 1000), true, 'A after release');
    });

    test('revocations are kept for their ttl — or absent', async (open) => {
      const a = await open();
      const b = await open();
      if (!a.capabilities.revocations) {
        assertEqual(a.revoke, undefined, 'revoke without the capability');
        return;
      }
      const id = newId();
      assertEqual(await b.isRevoked!(id), false, 'before revoke');
      await a.revoke!(id, 1000);
      assertEqual(await b.isRevoked!(id), true, 'after revoke, seen by another client');
      if (b.listRevoked !== undefined) {
        const other = newId();
        await a.revoke!(other, 60_000);
        const listed = await b.listRevoked();
        if (!listed.includes(id) || !listed.includes(other)) fail(`listRevoked misses a revoked id: ${JSON.stringify(listed)}`);
      }
      await env.sleep(1000 + env.slackMs + 100);
      assertEqual(await b.isRevoked!(id), false, 'after the ttl');
      if (b.listRevoked !== undefined && (await b.listRevoked()).includes(id)) fail('listRevoked lists an expired revocation');
    });

    test('token buckets allow `limit` per window across clients — or are absent', async (open) => {
      const a = await open();
      const b = await open();
      if (!a.capabilities.rateLimits) {
        assertEqual(a.takeTokens, undefined, 'takeTokens without the capability');
        return;
      }
      const bucket = `rate-${newId()}`;
      const windowMs = 60_000;
      const taken = await Promise.all(Array.from({ length: 8 }, (_, i) => (i % 2 === 0 ? a : b).takeTokens!(bucket, 5, windowMs)));
      assertEqual(taken.filter((t) => t.ok).length, 5, 'tokens granted');
      const refused = taken.filter((t) => !t.ok);
      if (refused.some((t) => t.retryInMs <= 0 || t.retryInMs > windowMs)) fail(`retryInMs out of range: ${JSON.stringify(refused)}`);
    });

    test('runtime schedules are compare-and-set records whose revs grow with every write, seen by every client — or absent', async (open) => {
      const a = await open();
      const b = await open();
      if (a.capabilities.schedules !== true) {
        for (const op of ['getSchedule', 'listSchedules', 'schedulesVersion', 'putSchedule', 'deleteSchedule'] as const) {
          assertEqual(a[op], undefined, `${op} without the capability`);
        }
        return;
      }
      const id = `sched ${newId()} ü/.*>`;
      assertEqual(await b.getSchedule!(id), undefined, 'an unknown id');
      const v0 = await a.schedulesVersion!();
      assertEqual(await a.putSchedule!(id, 'x', 7), 0, 'a compare-and-set on a record that does not exist');
      assertEqual(await b.getSchedule!(id), undefined, 'after the refused write');
      // Text of every kind, as core's JSON may hold it.
      const text = `{"a":"line\nbreak\ttab "q" ' \\ é 日本 🙂 \u2028"} ${'z'.repeat(20_000)}`;
      const r1 = await a.putSchedule!(id, text, 0);
      if (!(r1 > v0)) fail(`the first write's rev ${r1} is not above the version before it (${v0})`);
      assertEqual(await b.getSchedule!(id), { id, rev: r1, data: text }, 'read by another client');
      assertEqual(await b.putSchedule!(id, 'y', 0), 0, 'create over an existing record');
      assertEqual(await b.putSchedule!(id, 'y', r1 + 1_000), 0, 'a compare-and-set on a wrong rev');
      const r2 = await b.putSchedule!(id, 'y', r1);
      if (!(r2 > r1)) fail(`the second write's rev ${r2} is not above the first's (${r1})`);
      assertEqual(await a.putSchedule!(id, 'z', r1), 0, 'a compare-and-set on a rev already replaced');
      assertEqual((await a.getSchedule!(id))?.data, 'y', 'the winner of the compare-and-set');
      const seen = await a.schedulesVersion!();
      if (seen < r2) fail(`schedulesVersion ${seen} is below the latest write's rev ${r2}`);
      const listed = await a.listSchedules!();
      if (listed.version < r2) fail(`the listing's version ${listed.version} is below the latest write's rev ${r2}`);
      assertEqual(listed.schedules.filter((s) => s.id === id), [{ id, rev: r2, data: 'y' }], 'listed, with its odd id intact');
      assertEqual(await b.deleteSchedule!(id), true, 'delete');
      const afterDelete = await a.schedulesVersion!();
      if (!(afterDelete > r2)) fail(`schedulesVersion ${afterDelete} did not grow with the delete (latest write ${r2})`);
      assertEqual(await a.getSchedule!(id), undefined, 'after delete');
      assertEqual((await a.listSchedules!()).schedules.some((s) => s.id === id), false, 'listed after delete');
      assertEqual(await a.deleteSchedule!(id), false, 'a second delete');
      assertEqual(await a.putSchedule!(id, 'old', r2), 0, 'a compare-and-set on the deleted rev');
      const r3 = await a.putSchedule!(id, 'again', 0);
      if (!(r3 > afterDelete)) fail(`a record created again after a delete got rev ${r3}, not above ${afterDelete}`);
      assertEqual(await b.getSchedule!(id), { id, rev: r3, data: 'again' }, 'created again after a delete');
      await a.deleteSchedule!(id);
    });

    test('runtime schedules: of many clients creating one id at once one wins, and of many compare-and-sets on one rev one wins — or absent', async (open) => {
      const clients = [await open(), await open(), await open()];
      if (clients[0]!.capabilities.schedules !== true) return; // absence is checked above
      const id = `race-${newId()}`;
      const created = await Promise.all(Array.from({ length: 30 }, (_, i) => clients[i % 3]!.putSchedule!(id, `create ${i}`, 0)));
      const winners = created.filter((r) => r > 0);
      assertEqual(winners.length, 1, 'writes that created the record');
      const winner = created.findIndex((r) => r > 0);
      assertEqual(await clients[1]!.getSchedule!(id), { id, rev: winners[0]!, data: `create ${winner}` }, 'the record is the winner’s');
      const updated = await Promise.all(Array.from({ length: 30 }, (_, i) => clients[i % 3]!.putSchedule!(id, `update ${i}`, winners[0]!)));
      assertEqual(updated.filter((r) => r > 0).length, 1, 'compare-and-sets that won on one rev');
      const u = updated.findIndex((r) => r > 0);
      assertEqual((await clients[2]!.getSchedule!(id))?.data, `update ${u}`, 'the record is the compare-and-set winner’s');
      const deleted = await Promise.all(clients.map((c) => c.deleteSchedule!(id)));
      assertEqual(deleted.filter(Boolean).length, 1, 'deletes that removed it');
    });

    test('app.schedules on this backend: apps upserting one id at once leave one schedule, an unchanged upsert keeps its next run — or ERR_UNSUPPORTED', async (open) => {
      const apps: App[] = [];
      try {
        for (let i = 0; i < 3; i++) apps.push(createApp({ broker: 'memory://', resultBackend: await open() }));
        const [a, b, c] = apps as [App, App, App];
        const id = `app-${newId()}`;
        const def = { task: 'report', args: [{ customer: 42, tags: ['a', 'b'] }], everyMs: 3_600_000, limit: 5 };
        if ((await a.getResultBackend())?.capabilities.schedules !== true) {
          await rejectsWith(a.schedules.upsert(id, def), ErrorCode.UNSUPPORTED, 'upsert');
          await rejectsWith(a.schedules.list(), ErrorCode.UNSUPPORTED, 'list');
          await rejectsWith(a.schedules.remove(id), ErrorCode.UNSUPPORTED, 'remove');
          return;
        }
        const results = await Promise.all(Array.from({ length: 12 }, (_, i) => apps[i % 3]!.schedules.upsert(id, { ...def })));
        assertEqual(results.filter((r) => r.status === 'created').length, 1, 'upserts that created it');
        assertEqual(results.filter((r) => r.status === 'unchanged').length, 11, 'upserts that found it unchanged');
        const mine = (await c.schedules.list()).filter((e) => e.id === id);
        assertEqual(mine.length, 1, 'schedules of that id');
        const first = mine[0]!;
        assertEqual([first.runCount, first.schedule.limit, first.schedule.args], [0, 5, [{ customer: 42, tags: ['a', 'b'] }]], 'stored');
        if (first.nextRunAt === null) fail('a new schedule has no next run');
        // Keys in another order, defaults spelled out: the same definition.
        const again = await b.schedules.upsert(id, { limit: 5, everyMs: 3_600_000, catchUp: 'once', args: [{ tags: ['a', 'b'], customer: 42 }], task: 'report' });
        assertEqual([again.status, again.entry.nextRunAt], ['unchanged', first.nextRunAt], 'an unchanged upsert');
        const changed = await a.schedules.upsert(id, { ...def, limit: 7 });
        assertEqual([changed.status, changed.entry.runCount], ['changed', 0], 'a changed upsert');
        assertEqual((await c.schedules.get(id))?.schedule.limit, 7, 'the change, read by another app');
        assertEqual(await b.schedules.remove(id), true, 'remove');
        assertEqual(await a.schedules.get(id), undefined, 'after remove');
        assertEqual(await c.schedules.remove(id), false, 'a second remove');
      } finally {
        await Promise.allSettled(apps.map((app) => app.close()));
      }
    });

    test('close is idempotent', async (open) => {
      const b = await open();
      await Promise.all([b.close(), b.close()]);
    });
  });
}
