import { createServer } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { probeServer } from '../src/acquire-server.js';
import { findBinary } from '../src/binaries.js';
import { freePort, retryOnPortClash } from '../src/server-process.js';
import { selectServer, type SelectionInput } from '../src/server-selection.js';
import { loadTestcontainers } from '../src/testcontainers.js';

const base: SelectionInput = { kind: 'redis', envUrl: undefined, answering: false, dockerEngine: false, ci: false };

describe('selectServer (which server integration tests use)', () => {
  it('uses the URL variable when it is set and answering', () => {
    expect(selectServer({ ...base, envUrl: 'redis://10.0.0.5:6380', answering: true, dockerEngine: true })).toEqual({
      action: 'use',
      url: 'redis://10.0.0.5:6380',
      source: 'env',
    });
  });

  it('never replaces a set URL that does not answer with a container: skip locally, fail in CI', () => {
    const local = selectServer({ ...base, kind: 'amqp', envUrl: 'amqp://ada:s3cret@10.0.0.5:5672', dockerEngine: true });
    expect(local.action).toBe('skip');
    expect(local).toMatchObject({ line: expect.stringContaining('AMQP_URL=amqp://ada:***@10.0.0.5:5672 is not answering') });
    expect(JSON.stringify(local)).not.toContain('s3cret');
    const ci = selectServer({ ...base, kind: 'amqp', envUrl: 'amqp://ada:s3cret@10.0.0.5:5672', dockerEngine: true, ci: true });
    expect(ci.action).toBe('fail');
    expect(ci).toMatchObject({ message: expect.stringContaining('unset AMQP_URL') });
  });

  it('treats an empty variable as unset', () => {
    expect(selectServer({ ...base, kind: 'nats', envUrl: '', answering: true })).toEqual({
      action: 'use',
      url: 'nats://127.0.0.1:4222',
      source: 'loopback',
    });
  });

  it('uses the loopback default when it answers, whatever Docker says', () => {
    for (const dockerEngine of [true, false]) {
      expect(selectServer({ ...base, kind: 'amqp', answering: true, dockerEngine })).toEqual({
        action: 'use',
        url: 'amqp://guest:guest@127.0.0.1:5672',
        source: 'loopback',
      });
    }
  });

  it('starts a container when nothing answers and a Docker engine is reachable, in CI too', () => {
    for (const ci of [false, true]) {
      expect(selectServer({ ...base, kind: 'nats', dockerEngine: true, ci })).toEqual({ action: 'testcontainers', kind: 'nats' });
    }
  });

  it('without server or Docker: one skip line locally, a failure under CI', () => {
    const local = selectServer({ ...base, kind: 'amqp' });
    expect(local).toEqual({
      action: 'skip',
      line: 'skipping amqp integration tests: amqp is not answering at amqp://guest:***@127.0.0.1:5672 and no Docker engine is reachable',
    });
    const ci = selectServer({ ...base, kind: 'amqp', ci: true });
    expect(ci.action).toBe('fail');
    expect(ci).toMatchObject({ message: expect.stringContaining('CI must start it') });
  });
});

describe('probeServer (the facts gathered for selectServer)', () => {
  const saved = { REDIS_URL: process.env['REDIS_URL'], CI: process.env['CI'] };
  afterEach(() => {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  });

  it('a REDIS_URL on a closed port is skipped locally and fails in CI, without asking Docker', async () => {
    process.env['REDIS_URL'] = `redis://127.0.0.1:${await freePort()}`;
    delete process.env['CI'];
    expect((await probeServer('redis')).action).toBe('skip');
    process.env['CI'] = 'true';
    expect((await probeServer('redis')).action).toBe('fail');
  });

  it('a REDIS_URL on a port that accepts connections is used', async () => {
    const srv = createServer((s) => s.destroy());
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    const addr = srv.address();
    const port = typeof addr === 'object' && addr !== null ? addr.port : 0;
    process.env['REDIS_URL'] = `redis://127.0.0.1:${port}`;
    try {
      expect(await probeServer('redis')).toEqual({ action: 'use', url: `redis://127.0.0.1:${port}`, source: 'env' });
    } finally {
      await new Promise<void>((r) => srv.close(() => r()));
    }
  });
});

describe('testcontainers loading', () => {
  it('says what to install when the package is missing', async () => {
    const missing = Object.assign(new Error("Cannot find package 'testcontainers'"), { code: 'ERR_MODULE_NOT_FOUND' });
    const err = await loadTestcontainers(() => Promise.reject(missing)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Error);
    expect((err as Error).message).toMatch(/Docker engine is reachable but the package testcontainers is not installed: npm install/);
    expect((err as Error).cause).toBe(missing);
  });
});

describe('harness helpers', () => {
  it('freePort gives a loopback port that can be bound', async () => {
    const port = await freePort();
    expect(port).toBeGreaterThan(0);
    const srv = createServer();
    await new Promise<void>((resolve, reject) => {
      srv.once('error', reject);
      srv.listen(port, '127.0.0.1', resolve);
    });
    await new Promise<void>((r) => srv.close(() => r()));
  });

  it('retryOnPortClash retries only on "address in use", up to the limit', async () => {
    let calls = 0;
    const ok = await retryOnPortClash(() => {
      calls++;
      return calls < 3 ? Promise.reject(new Error('bind: Address already in use')) : Promise.resolve('up');
    });
    expect([ok, calls]).toEqual(['up', 3]);
    calls = 0;
    await expect(
      retryOnPortClash(() => {
        calls++;
        return Promise.reject(new Error('permission denied'));
      }),
    ).rejects.toThrow('permission denied');
    expect(calls).toBe(1);
    calls = 0;
    await expect(
      retryOnPortClash(() => {
        calls++;
        return Promise.reject(new Error('EADDRINUSE'));
      }, 2),
    ).rejects.toThrow('EADDRINUSE');
    expect(calls).toBe(2);
  });

  it('findBinary finds an executable by path or on PATH, and nothing for a missing one', () => {
    expect(findBinary(process.execPath)).toBe(process.execPath);
    expect(findBinary('sh')).toMatch(/\/sh$/);
    expect(findBinary('celeriac-no-such-binary')).toBeUndefined();
  });
});
