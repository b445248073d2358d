import { assertEqual, fail, rejectsWith } from './assert.js';
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

    test('close is idempotent', async (open) => {
      const b = await open();
      await Promise.all([b.close(), b.close()]);
    });
  });
}
