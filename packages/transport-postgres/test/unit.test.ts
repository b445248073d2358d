import { CeleriacError, parseUrlOptions } from '@celeriac/core';
import { readFileSync } from 'node:fs';
import { DatabaseError } from 'pg';
import { describe, expect, it } from 'vitest';
import { inlinePayload, MAX_INLINE_PAYLOAD_BYTES } from '../src/broadcast.js';
import { classifyError } from '../src/errors.js';
import {
  channelName,
  ChannelKind,
  createPostgresBroker,
  DEFAULT_BROKER_OPTIONS,
  DEFAULT_RESULT_BACKEND_OPTIONS,
  migrationSql,
  PostgresBroker,
  PostgresResultBackend,
  resolveBrokerOptions,
  resolveResultBackendOptions,
} from '../src/index.js';
import { connectionString } from '../src/options.js';
import { queueStatements } from '../src/queue-sql.js';

function dbError(code: string, message = 'boom'): DatabaseError {
  const e = new DatabaseError(message, message.length, 'error');
  e.code = code;
  return e;
}

describe('options', () => {
  it('default, parse from a URL (prefix as written, driver parameters kept for the driver) and refuse unknown names', async () => {
    expect(resolveBrokerOptions({})).toEqual(DEFAULT_BROKER_OPTIONS);
    expect(resolveResultBackendOptions({})).toEqual(DEFAULT_RESULT_BACKEND_OPTIONS);
    const url = new URL('postgres://u:pw@db:5433/app?prefix=007&visibilityTimeoutMs=5000&migrate=false&sslmode=require&application_name=x');
    const b = createPostgresBroker(url, parseUrlOptions(url), {});
    expect([b.options.prefix, b.options.visibilityTimeoutMs, b.options.migrate]).toEqual(['007', 5000, false]);
    await b.close();
    expect(connectionString(url)).toBe('postgres://u:pw@db:5433/app?sslmode=require&application_name=x');
    expect(() => resolveBrokerOptions({ prefx: 'x' })).toThrow(CeleriacError);
    expect(() => resolveResultBackendOptions({ visibilityTimeoutMs: 1000 })).toThrow(CeleriacError); // a broker option
    expect(() => resolveBrokerOptions({ migrate: 1 })).toThrow(TypeError);
    expect(() => resolveBrokerOptions({ visibilityTimeoutMs: 10 })).toThrow(RangeError);
  });

  it('accepts a schema only where PostgreSQL keeps it as written', () => {
    expect(resolveBrokerOptions({ prefix: 'My "App"' }).prefix).toBe('My "App"');
    expect(() => resolveBrokerOptions({ prefix: 'x'.repeat(64) })).toThrow(RangeError); // would be truncated
    expect(() => resolveBrokerOptions({ prefix: 'pg_app' })).toThrow(RangeError);
    expect(() => resolveBrokerOptions({ prefix: '' })).toThrow(TypeError);
    expect(() => resolveBrokerOptions({ prefix: 'a\u0000b' })).toThrow(TypeError);
  });
});

describe('classifyError', () => {
  it('turns a lost connection into a retryable ERR_CONNECTION and a server refusal into ERR_DATABASE, keeping the cause', () => {
    const cases: [unknown, string, boolean][] = [
      [dbError('57P01'), 'ERR_CONNECTION', true],
      [dbError('08006'), 'ERR_CONNECTION', true],
      [dbError('53300'), 'ERR_CONNECTION', true],
      [dbError('57014'), 'ERR_TIMEOUT', true],
      [dbError('40001'), 'ERR_DATABASE', true],
      [dbError('40P01'), 'ERR_DATABASE', true],
      [dbError('42P01'), 'ERR_DATABASE', false],
      [dbError('23505'), 'ERR_DATABASE', false],
      [Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }), 'ERR_CONNECTION', true],
      [new Error('Connection terminated unexpectedly'), 'ERR_CONNECTION', true],
    ];
    for (const [err, code, retryable] of cases) {
      const c = classifyError(err) as CeleriacError;
      expect([c.code, c.retryable, c.cause], String(err)).toEqual([code, retryable, err]);
    }
    const mine = new CeleriacError('ERR_X', 'x');
    expect(classifyError(mine)).toBe(mine);
    const arg = new RangeError('bad');
    expect(classifyError(arg)).toBe(arg);
    expect((classifyError(dbError('42P01', 'relation "x" does not exist')) as Error).message).toContain('42P01');
  });
});

describe('statements', () => {
  it('publish takes exactly one parameter, $1, and no `?` (a Knex-style adapter rewrites $n to ?)', () => {
    const sql = queueStatements('"s"').publish;
    expect(sql.match(/\$\d+/g)).toEqual(['$1']);
    expect(sql).not.toContain('?');
  });

  it('names channels within the 63-byte identifier limit, the same for the same schema and name', () => {
    const long = channelName('s'.repeat(63), ChannelKind.QUEUE, 'q'.repeat(1000));
    expect(Buffer.byteLength(long)).toBeLessThanOrEqual(63);
    expect(channelName('a', ChannelKind.QUEUE, 'q')).toBe(channelName('a', ChannelKind.QUEUE, 'q'));
    expect(channelName('a', ChannelKind.QUEUE, 'q')).not.toBe(channelName('b', ChannelKind.QUEUE, 'q'));
    expect(channelName('a', ChannelKind.QUEUE, 'q')).not.toBe(channelName('a', ChannelKind.BROADCAST, 'q'));
  });

  it('keeps a broadcast inline while its NOTIFY payload stays under 8,000 bytes', () => {
    expect(inlinePayload(Buffer.from('{"a":1}'))).toBe('t{"a":1}');
    expect(inlinePayload(new Uint8Array([0, 255]))).toBe('bAP8=');
    expect(inlinePayload(new Uint8Array(MAX_INLINE_PAYLOAD_BYTES - 1).fill(65))?.length).toBe(MAX_INLINE_PAYLOAD_BYTES);
    expect(inlinePayload(new Uint8Array(MAX_INLINE_PAYLOAD_BYTES).fill(65))).toBeUndefined();
    expect(inlinePayload(new Uint8Array(6_000))).toBeUndefined();
  });
});

describe('README', () => {
  const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');

  it('states the capabilities the broker and the result backend declare', async () => {
    const table = (name: string) => {
      const block = new RegExp(`<!-- ${name}:start[^>]*-->([\\s\\S]*?)<!-- ${name}:end -->`).exec(readme)?.[1] ?? '';
      return Object.fromEntries([...block.matchAll(/^\| (\w+) \| ([^|]+?) \|$/gm)].filter((m) => m[1] !== 'capability').map((m) => [m[1]!, m[2]!]));
    };
    const b = new PostgresBroker();
    const r = new PostgresResultBackend();
    expect(table('capabilities')).toEqual(Object.fromEntries(Object.entries(b.capabilities).map(([k, v]) => [k, String(v)])));
    expect(table('result-capabilities')).toEqual(Object.fromEntries(Object.entries(r.capabilities).map(([k, v]) => [k, String(v)])));
    await Promise.all([b.close(), r.close()]);
  });

  it('shows the migration SQL exactly as the code applies it', () => {
    const block = /<!-- migration-sql:start[^>]*-->\n```sql\n([\s\S]*?)```\n<!-- migration-sql:end -->/.exec(readme)?.[1];
    expect(block).toBe(migrationSql('celeriac'));
  });
});
