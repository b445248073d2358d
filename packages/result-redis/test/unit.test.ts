import { CeleriacError, parseUrlOptions, TaskState } from '@celeriac/core';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { decodeMeta, encodeMeta, ttlArg } from '../src/codec.js';
import { createRedisResultBackend, DEFAULT_OPTIONS, RedisResultBackend, resolveOptions } from '../src/index.js';

describe('result codec', () => {
  it('puts state first, so the set script can recognise a stored SUCCESS from its first bytes', () => {
    const json = encodeMeta({ result: 1, name: 't', state: TaskState.SUCCESS });
    expect(json.startsWith('{"state":"SUCCESS"')).toBe(true);
    expect(decodeMeta(json)).toEqual({ state: 'SUCCESS', result: 1, name: 't' });
  });

  it('refuses a value JSON cannot encode with ERR_SERIALIZATION', () => {
    expect(() => encodeMeta({ state: TaskState.SUCCESS, result: 1n })).toThrow(CeleriacError);
  });

  it('turns a ttl into whole milliseconds, and a non-finite one into no expiry', () => {
    expect(ttlArg(1.2)).toBe(2);
    expect(ttlArg(0)).toBe(1);
    expect(ttlArg(Infinity)).toBe(0);
  });
});

describe('options', () => {
  it('default, parse from a URL and refuse unknown names', () => {
    expect(resolveOptions({})).toEqual(DEFAULT_OPTIONS);
    const url = new URL('redis://127.0.0.1:6379?prefix=007&autoPipelining=true');
    const b = createRedisResultBackend(url, parseUrlOptions(url), {});
    expect(b.options.prefix).toBe('007');
    expect(DEFAULT_OPTIONS.autoPipelining).toBe(false);
    expect(b.options.autoPipelining).toBe(true);
    expect(() => resolveOptions({ prefx: 'x' })).toThrow(CeleriacError);
    expect(() => resolveOptions({ cluster: 1 })).toThrow(TypeError);
    void b.close();
  });
});

describe('README', () => {
  it('states the capabilities the backend declares', async () => {
    const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
    const block = /<!-- capabilities:start[^>]*-->([\s\S]*?)<!-- capabilities:end -->/.exec(readme)?.[1] ?? '';
    const rows = Object.fromEntries(
      [...block.matchAll(/^\| (\w+) \| ([^|]+?) \|$/gm)].filter((m) => m[1] !== 'capability').map((m) => [m[1]!, m[2]!]),
    );
    const b = new RedisResultBackend();
    expect(rows).toEqual(Object.fromEntries(Object.entries(b.capabilities).map(([k, v]) => [k, String(v)])));
    await b.close();
  });
});
