import { CeleriacError, parseUrlOptions } from '@celeriac/core';
import { describe, expect, it } from 'vitest';
import { createRedisBroker, DEFAULT_OPTIONS, prefixPattern, queueKeys, resolveOptions } from '../src/index.js';
import { connectionUrl } from '../src/options.js';

describe('options', () => {
  it('default to documented values', () => {
    expect(resolveOptions({})).toEqual(DEFAULT_OPTIONS);
    expect(DEFAULT_OPTIONS.visibilityTimeoutMs).toBe(30_000);
    expect(DEFAULT_OPTIONS.prefix).toBe('celeriac');
  });

  it('are read from a URL query string', () => {
    const url = new URL('redis://127.0.0.1:6379/2?visibilityTimeoutMs=5000&prefix=app&claimBatch=20&cluster=false');
    const b = createRedisBroker(url, parseUrlOptions(url), {});
    expect(b.visibilityTimeoutMs).toBe(5000);
    expect(b.options.prefix).toBe('app');
    expect(b.options.claimBatch).toBe(20);
  });

  it('keep a numeric-looking prefix as written', () => {
    const url = new URL('redis://127.0.0.1:6379?prefix=007');
    expect(createRedisBroker(url, parseUrlOptions(url), {}).options.prefix).toBe('007');
  });

  it('refuse unknown names and out-of-range values', () => {
    expect(() => resolveOptions({ visibilityTimeout: 5 })).toThrow(CeleriacError);
    expect(() => resolveOptions({ visibilityTimeoutMs: 0 })).toThrow(RangeError);
    expect(() => resolveOptions({ claimBatch: 1.5 })).toThrow(RangeError);
    expect(() => resolveOptions({ cluster: 'yes' })).toThrow(TypeError);
    expect(() => resolveOptions({ prefix: '' })).toThrow(TypeError);
  });

  it('strip celeriac options from the URL ioredis connects to', () => {
    expect(connectionUrl(new URL('redis://u:p@h:1/3?prefix=x#y'))).toBe('redis://u:p@h:1/3');
  });

  it('expose capabilities constant for the broker lifetime', () => {
    const b = createRedisBroker(new URL('redis://127.0.0.1'), { maxMessageBytes: 1000 }, {});
    expect(b.capabilities).toEqual({
      delayedDelivery: 'native',
      priorities: 10,
      deadLetter: 'native',
      redeliveryCount: true,
      broadcast: true,
      maxMessageBytes: 1000,
      transactionalPublish: false,
    });
  });
});

describe('keys', () => {
  it('share one hash tag per queue, so a queue lives in one cluster slot', () => {
    const k = queueKeys('app', 'mail');
    const all = [...k.ready, k.delayed, k.active, k.msg, k.marker, k.seq, k.dead, k.deadInfo];
    expect(new Set(all).size).toBe(all.length);
    for (const key of all) expect(key.startsWith('{app:mail}:')).toBe(true);
    expect(k.ready).toHaveLength(10);
  });

  it('give each queue its own tag', () => {
    expect(queueKeys('app', 'a').tag).not.toBe(queueKeys('app', 'b').tag);
  });

  it('escape glob characters in the SCAN pattern of a prefix', () => {
    expect(prefixPattern('app')).toBe('{app:*');
    expect(prefixPattern('a*b')).toBe('{a\\*b:*');
  });
});
