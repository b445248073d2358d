import { randomUUID } from 'node:crypto';
import { CeleriacError } from '@celeriac/core';
import { serverUrl } from '@celeriac/test-servers';
import pg from 'pg';
import { quoteIdent } from '../src/index.js';

export { requireServer } from '@celeriac/test-servers';

/** The shared server's URL: POSTGRES_URL, or the loopback default (DESIGN.md §8). */
export function postgresUrl(): string {
  return serverUrl('postgres');
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
