import { createServer } from 'node:net';
import { afterEach, describe, expect, it, vi } from 'vitest';
import {
  CONTAINERS,
  findBinary,
  freePort,
  loadTestcontainers,
  probeServer,
  requireServer,
  retryOnPortClash,
  selectServer,
  serverUrl,
  type SelectionInput,
} from '@celeriac/test-servers';

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

describe('PostgreSQL discovery (POSTGRES_URL)', () => {
  it('defaults to the test database on loopback, and the variable wins', () => {
    expect(selectServer({ ...base, kind: 'postgres', answering: true })).toEqual({
      action: 'use',
      url: 'postgres://postgres@127.0.0.1:5432/test',
      source: 'loopback',
    });
    expect(serverUrl('postgres', {})).toBe('postgres://postgres@127.0.0.1:5432/test');
    expect(serverUrl('postgres', { POSTGRES_URL: 'postgres://ada:pw@10.0.0.7:5433/q' })).toBe('postgres://ada:pw@10.0.0.7:5433/q');
    expect(serverUrl('postgres', { POSTGRES_URL: '' })).toBe('postgres://postgres@127.0.0.1:5432/test');
  });

  it('a missing PostgreSQL skips locally with one line and fails under CI, without printing a password', () => {
    const local = selectServer({ ...base, kind: 'postgres', envUrl: 'postgres://ada:s3cret@10.0.0.7:5433/q' });
    expect(local).toEqual({
      action: 'skip',
      line: 'skipping postgres integration tests: POSTGRES_URL=postgres://ada:***@10.0.0.7:5433/q is not answering',
    });
    const ci = selectServer({ ...base, kind: 'postgres', ci: true });
    expect(ci.action).toBe('fail');
    expect(ci).toMatchObject({ message: expect.stringContaining('postgres is not answering at postgres://postgres@127.0.0.1:5432/test') });
  });
});

describe('probeServer and requireServer (the facts gathered for selectServer)', () => {
  const saved = { REDIS_URL: process.env['REDIS_URL'], POSTGRES_URL: process.env['POSTGRES_URL'], CI: process.env['CI'] };
  afterEach(() => {
    vi.restoreAllMocks();
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  });

  it('requireServer: a server that is not answering skips with exactly one stderr line locally, throws under CI', async () => {
    process.env['POSTGRES_URL'] = `postgres://postgres@127.0.0.1:${await freePort()}/test`;
    delete process.env['CI'];
    const lines: string[] = [];
    vi.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => {
      lines.push(String(chunk));
      return true;
    });
    expect(await requireServer('postgres')).toBe(false);
    expect(lines).toEqual([expect.stringMatching(/^skipping postgres integration tests: POSTGRES_URL=postgres:\/\/postgres@127\.0\.0\.1:\d+\/test is not answering\n$/)]);
    process.env['CI'] = 'true';
    await expect(requireServer('postgres')).rejects.toThrow(/is not answering; start that server or unset POSTGRES_URL/);
    expect(lines).toHaveLength(1);
  });

  it('requireServer: true, silently, when the server answers', async () => {
    const srv = createServer((s) => s.destroy());
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    const addr = srv.address();
    process.env['POSTGRES_URL'] = `postgres://postgres@127.0.0.1:${typeof addr === 'object' && addr !== null ? addr.port : 0}/test`;
    const write = vi.spyOn(process.stderr, 'write');
    try {
      expect(await requireServer('postgres')).toBe(true);
      expect(write).not.toHaveBeenCalled();
    } finally {
      await new Promise<void>((r) => srv.close(() => r()));
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
  it('has a container for every server, PostgreSQL with trust auth and the test database', () => {
    expect(Object.keys(CONTAINERS).sort()).toEqual(['amqp', 'nats', 'postgres', 'redis']);
    expect(CONTAINERS.postgres.env).toEqual({ POSTGRES_HOST_AUTH_METHOD: 'trust', POSTGRES_DB: 'test' });
    expect(CONTAINERS.postgres.url('localhost', 32768)).toBe('postgres://postgres@localhost:32768/test');
  });

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
