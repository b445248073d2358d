import { randomUUID } from 'node:crypto';
import { connect } from 'node:net';
import { CeleriacError } from '@celeriac/core';
import pg from 'pg';
import { quoteIdent } from '../src/index.js';

// The server discovery of test/src/servers.ts with kind `postgres` (that file is being centralised;
// this copy goes once it knows Postgres).

/** The shared server's URL: POSTGRES_URL, or the loopback default (DESIGN.md §8). */
export function postgresUrl(): string {
  return process.env['POSTGRES_URL'] ?? 'postgres://postgres@127.0.0.1:5432/test';
}

function isAnswering(timeoutMs = 1000): Promise<boolean> {
  const u = new URL(postgresUrl());
  const port = u.port === '' ? 5432 : Number(u.port);
  const host = u.hostname === '' ? '127.0.0.1' : u.hostname.replace(/^\[|\]$/g, '');
  return new Promise((resolve) => {
    const socket = connect({ host, port });
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

/**
 * Whether tests against PostgreSQL should run. A missing server skips them with one clear line
 * locally, and fails under CI=true.
 */
export async function requireServer(kind: 'postgres'): Promise<boolean> {
  if (await isAnswering()) return true;
  const line = `${kind} is not answering at ${postgresUrl().replace(/\/\/([^:/@]*):[^@/]*@/, '//$1:***@')}`;
  if (process.env['CI'] === 'true') throw new Error(`${line}; CI must start it (see DESIGN.md §8)`);
  process.stderr.write(`skipping ${kind} integration tests: ${line}\n`);
  return false;
}

/** A schema name no other test file (or engineer) uses. */
export function uniqueSchema(name: string): string {
  return `celeriac_test_${name}_${randomUUID().slice(0, 8)}`;
}

/** A connected client for setup and checks; `end()` it in afterAll. */
export async function adminClient(): Promise<pg.Client> {
  const c = new pg.Client({ connectionString: postgresUrl(), application_name: 'celeriac-test-admin' });
  await c.connect();
  return c;
}

/** Drop a test's schema and everything in it. */
export async function dropSchema(admin: pg.Client, schema: string): Promise<void> {
  await admin.query(`DROP SCHEMA IF EXISTS ${quoteIdent(schema)} CASCADE`);
}

/** 'resolved', or the code of the CeleriacError `p` rejected with (else the error as text). */
export async function code(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'resolved';
  } catch (err) {
    return err instanceof CeleriacError ? err.code : String(err);
  }
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Poll `fn` every 10 ms until it returns true, or fail after `budgetMs`. */
export async function eventually(fn: () => boolean | Promise<boolean>, budgetMs: number, what: string): Promise<void> {
  const until = Date.now() + budgetMs;
  for (;;) {
    if (await fn()) return;
    if (Date.now() > until) throw new Error(`${what}: not within ${budgetMs} ms`);
    await sleep(10);
  }
}
