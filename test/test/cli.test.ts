import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { requirePackage } from '../src/packages.js';
import { killAllSpawned, requireBuiltCli, runCli, spawnCli } from '../src/spawn.js';

const fixture = (name: string): string => `test/test/fixtures/${name}`;

/** The user-facing error lines: exactly one line, no stack frames. */
function expectOneErrorLine(stderr: string, re: RegExp): void {
  const lines = stderr.trimEnd().split('\n');
  expect(lines, stderr).toHaveLength(1);
  expect(lines[0]).toMatch(/^celeriac: error: /);
  expect(lines[0]).toMatch(re);
  expect(stderr).not.toMatch(/^\s+at /m);
}

let tmp: string;
beforeAll(() => {
  requireBuiltCli();
  tmp = mkdtempSync(join(tmpdir(), 'celeriac-cli-test-'));
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
afterEach(() => killAllSpawned());

describe('celeriac: help and usage errors', () => {
  it('--help lists the commands and exits 0', async () => {
    const r = await runCli(['--help']);
    expect(r.code).toBe(0);
    for (const c of ['worker', 'purge', 'dlq', 'bench']) expect(r.stdout).toContain(c);
  });

  it('worker --help documents the app module, BROKER_URL, signals and exit codes', async () => {
    const r = await runCli(['worker', '--help']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('--app <path>');
    expect(r.stdout).toContain('--processes <n>');
    expect(r.stdout).toContain('BROKER_URL');
    expect(r.stdout).toMatch(/Exit codes: 0 .*1 .*2 /);
  });

  it('dlq --help lists list, redrive and purge', async () => {
    const r = await runCli(['dlq', '--help']);
    expect(r.code).toBe(0);
    for (const c of ['list', 'redrive', 'purge']) expect(r.stdout).toContain(c);
  });

  it('no command: help on stderr, exit 2', async () => {
    const r = await runCli([]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('Usage: celeriac');
  });

  it('an unknown command exits 2 and suggests the right one', async () => {
    const r = await runCli(['wroker']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("unknown command 'wroker'");
    expect(r.stderr).toContain('worker');
  });

  it('a missing --app exits 2', async () => {
    const r = await runCli(['worker']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/required option '-A, --app <path>'/);
  });

  it('a bad number exits 2', async () => {
    const r = await runCli(['worker', '--app', fixture('app-basic.mjs'), '--concurrency', 'many']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--concurrency.*expected an integer >= 1/);
  });

  it('a prefetch budget below the number of queues is a usage error', async () => {
    const r = await runCli(['worker', '--app', fixture('app-basic.mjs'), '-Q', 'a,b,c', '-c', '1', '--prefetch-multiplier', '1']);
    expect(r.code).toBe(2);
    expectOneErrorLine(r.stderr, /at least the number of queues/);
  });

  it('a --broker that is not a URL exits 2 without printing its password', async () => {
    const r = await runCli(['worker', '--app', fixture('app-basic.mjs'), '--broker', 'redis://ada:s3cret@bad host:6379']);
    expect(r.code).toBe(2);
    expectOneErrorLine(r.stderr, /--broker: not a valid URL/);
    expect(r.stdout + r.stderr).not.toContain('s3cret');
  });

  it('purge without a broker source exits 2', async () => {
    const r = await runCli(['purge', 'default'], { env: { BROKER_URL: undefined, CELERIAC_BROKER_URL: undefined } });
    expect(r.code).toBe(2);
    expectOneErrorLine(r.stderr, /--app .*--broker/);
  });
});

describe('celeriac worker: errors are one clear line', () => {
  it('a missing module: exit 2', async () => {
    const r = await runCli(['worker', '--app', './no/such/tasks.mjs']);
    expect(r.code).toBe(2);
    expectOneErrorLine(r.stderr, /cannot find the app module \.\/no\/such\/tasks\.mjs/);
  });

  it('a module that exports no app: exit 1, naming its exports', async () => {
    const r = await runCli(['worker', '--app', fixture('app-no-export.mjs')]);
    expect(r.code).toBe(1);
    expectOneErrorLine(r.stderr, /exports no app.*notTheApp/);
  });

  it('a module that throws while loading: exit 1; --verbose adds the stack', async () => {
    const r = await runCli(['worker', '--app', fixture('app-throws.mjs')]);
    expect(r.code).toBe(1);
    expectOneErrorLine(r.stderr, /could not load the app module .*refuses to load/);
    const v = await runCli(['worker', '--app', fixture('app-throws.mjs'), '--verbose']);
    expect(v.code).toBe(1);
    expect(v.stderr).toMatch(/^\s+at .*app-throws\.mjs/m);
  });

  it('a bad broker URL in the app: exit 1 with ERR_INVALID_URL', async () => {
    const r = await runCli(['worker', '--app', fixture('app-basic.mjs')], { env: { BROKER_URL: 'not-a-url' } });
    expect(r.code).toBe(1);
    expectOneErrorLine(r.stderr, /not a valid URL.*\(ERR_INVALID_URL\)/);
  });

  it('an unknown scheme: exit 1 with ERR_INVALID_URL, credentials not printed', async () => {
    const r = await runCli(['worker', '--app', fixture('app-basic.mjs'), '--broker', 'kafka://ada:s3cret@127.0.0.1:9092']);
    expect(r.code).toBe(1);
    expectOneErrorLine(r.stderr, /no broker for scheme "kafka:".*\(ERR_INVALID_URL\)/);
    expect(r.stdout + r.stderr).not.toContain('s3cret');
  });

  it('an unreachable broker: exit 1 with ERR_CONNECTION, the password in the driver message redacted', async () => {
    const r = await runCli(['worker', '--app', fixture('app-unreachable.mjs')]);
    expect(r.code).toBe(1);
    expectOneErrorLine(r.stderr, /could not start: .*ECONNREFUSED redis:\/\/admin:\*\*\*@127\.0\.0\.1:1 \(ERR_CONNECTION\)/);
    expect(r.stdout + r.stderr).not.toContain('s3cret');
  });

  it('an unreachable broker for purge: exit 1, one line', async () => {
    const r = await runCli(['purge', 'default', '--app', fixture('app-unreachable.mjs')]);
    expect(r.code).toBe(1);
    expectOneErrorLine(r.stderr, /cannot connect to the app's broker.*ERR_CONNECTION/);
  });
});

describe('celeriac worker: start and shutdown (memory://)', () => {
  it('finds a default export, and SIGINT closes it with exit 0', async () => {
    const w = spawnCli(['worker', '--app', fixture('app-default-export.mjs')]);
    await w.waitFor(/worker \d+: ready \(broker memory, queues default, concurrency 8, prefetch 32\)/);
    w.child.kill('SIGINT');
    expect(await w.exited).toEqual({ code: 0, signal: null });
    expect(w.stdout()).toMatch(/closed \(0 given back, 0 abandoned\)/);
  });

  it('loads a CommonJS app module (module.exports = { app })', async () => {
    const w = spawnCli(['worker', '--app', fixture('app-commonjs.cjs')]);
    await w.waitFor(/worker \d+: ready \(broker memory/);
    w.child.kill('SIGTERM');
    expect(await w.exited).toEqual({ code: 0, signal: null });
  });

  it('--broker reaches the module as BROKER_URL; -Q, -c and --prefetch-multiplier reach the worker', async () => {
    const w = spawnCli([
      'worker',
      '--app',
      fixture('app-basic.mjs'),
      '--broker',
      'memory://?visibilityTimeoutMs=5000',
      '-Q',
      'a,b',
      '-c',
      '3',
      '--prefetch-multiplier',
      '2',
    ]);
    await w.waitFor(/ready \(broker memory, queues a,b, concurrency 3, prefetch 6\)/);
    w.child.kill('SIGTERM');
    expect((await w.exited).code).toBe(0);
  });

  it('SIGTERM lets a running task finish, then exits 0', async () => {
    const w = spawnCli(['worker', '--app', fixture('app-basic.mjs')], { env: { FIXTURE_SLOW_MS: '1500' } });
    await w.waitFor(/ready/);
    await w.waitFor(/slow task started/);
    w.child.kill('SIGTERM');
    expect(await w.exited).toEqual({ code: 0, signal: null });
    const out = w.stdout();
    expect(out).toMatch(/SIGTERM received, closing/);
    expect(out.indexOf('slow task finished')).toBeGreaterThan(out.indexOf('SIGTERM received'));
    expect(out.indexOf('closed (0 given back, 0 abandoned)')).toBeGreaterThan(out.indexOf('slow task finished'));
  });

  it('a second signal exits at once (143) without waiting for the task', async () => {
    const w = spawnCli(['worker', '--app', fixture('app-basic.mjs')], { env: { FIXTURE_SLOW_MS: '60000' } });
    await w.waitFor(/slow task started/);
    await w.waitFor(/ready/);
    w.child.kill('SIGTERM');
    await w.waitFor(/SIGTERM received, closing/);
    w.child.kill('SIGTERM');
    expect(await w.exited).toEqual({ code: 143, signal: null });
    expect(w.stderr()).toMatch(/received again, exiting at once/);
    expect(w.stdout()).not.toContain('slow task finished');
  });
});

describe('celeriac worker --processes (supervisor)', () => {
  it('restarts a worker process that crashed, and SIGTERM closes them all with exit 0', async () => {
    const marker = join(tmp, 'crash-once');
    const w = spawnCli(['worker', '--app', fixture('app-crash.mjs'), '--processes', '2'], {
      env: { FIXTURE_CRASH_MARKER: marker },
    });
    await w.waitFor(/starting 2 worker processes/);
    const crashed = await w.waitFor(/crashing (\d+)/);
    await w.waitFor(/worker [01] \(pid \d+\) exited with code 7; restarting in 500 ms \(restart 1 of at most 5\)/);
    // Two workers ready in the end: the one that did not crash and the replacement of the one that did.
    const survivors = await w.waitUntil((out) => {
      const pids = new Set([...out.matchAll(/worker (\d+): ready/g)].map((m) => m[1]!));
      pids.delete(crashed[1]!);
      return pids.size === 2 ? [...pids] : undefined;
    }, 'two live workers ready');
    w.child.kill('SIGTERM');
    expect(await w.exited).toEqual({ code: 0, signal: null });
    for (const pid of survivors) expect(w.stdout()).toContain(`worker ${pid}: closed`);
  });

  it('workers whose supervisor was killed (SIGKILL) close on their own: no orphans', async () => {
    const w = spawnCli(['worker', '--app', fixture('app-basic.mjs'), '--processes', '2']);
    const pids = await w.waitUntil((out) => {
      const ready = [...out.matchAll(/worker (\d+): ready/g)].map((m) => m[1]!);
      return ready.length === 2 ? ready : undefined;
    }, 'two workers ready');
    w.child.kill('SIGKILL');
    // The workers hold the supervisor's stdout: it closes (and `exited` resolves) once both are gone.
    expect(await w.exited).toEqual({ code: null, signal: 'SIGKILL' });
    for (const pid of pids) {
      expect(w.stderr()).toContain(`worker ${pid}: the supervisor is gone, closing`);
      expect(w.stdout()).toContain(`worker ${pid}: closed (0 given back, 0 abandoned)`);
    }
  });

  it('gives up after --max-restarts consecutive crashes: exit 1', async () => {
    const r = await runCli(['worker', '--app', fixture('app-crash.mjs'), '--processes', '2', '--max-restarts', '1'], {
      env: { FIXTURE_CRASH_ALWAYS: '1' },
    });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/crashed 2 times in a row, giving up/);
  });

  it('a worker that cannot start stops the supervisor at once: exit 1 and the one-line error', async () => {
    const r = await runCli(['worker', '--app', fixture('app-no-export.mjs'), '--processes', '2']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^celeriac: error: the app module .* exports no app/m);
    expect(r.stderr).toMatch(/could not start; stopping/);
    expect(r.stderr).not.toMatch(/restarting/);
    expect(r.stderr).not.toMatch(/^\s+at /m);
  });
});

describe('celeriac purge / dlq with --app (memory://, content made by the app module)', () => {
  const app = fixture('app-dead-letters.mjs');

  it('purge --json reports how many ready messages went', async () => {
    const r = await runCli(['purge', 'fixture.ready', '--app', app, '--json']);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({ queue: 'fixture.ready', purged: 3 });
  });

  it('purge prints a sentence without --json', async () => {
    const r = await runCli(['purge', 'fixture.ready', '--app', app]);
    expect(r.code).toBe(0);
    expect(r.stdout.trim()).toBe('purged 3 messages from queue fixture.ready');
  });

  it('dlq list --json gives each dead letter with its task and reason', async () => {
    const r = await runCli(['dlq', 'list', 'default', '--app', app, '--json']);
    expect(r.code).toBe(0);
    const out = JSON.parse(r.stdout) as { queue: string; deadLetters: { task: string; reason: string; deadAt: string }[] };
    expect(out.queue).toBe('default');
    expect(out.deadLetters).toHaveLength(2);
    for (const d of out.deadLetters) {
      expect(d.task).toBe('fixture.fail');
      expect(d.reason).toMatch(/boom [12]/);
      expect(Number.isNaN(Date.parse(d.deadAt))).toBe(false);
    }
  });

  it('dlq list --limit caps the list; text output has one row per letter', async () => {
    const r = await runCli(['dlq', 'list', 'default', '--app', app, '--limit', '1']);
    expect(r.code).toBe(0);
    const lines = r.stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^1 dead letter in queue default \(first 1; --limit for more\)/);
    expect(lines).toHaveLength(2);
    expect(lines[1]).toMatch(/fixture\.fail\s+Error: boom/);
  });

  it('dlq redrive moves all of them back, or only --ids', async () => {
    const all = await runCli(['dlq', 'redrive', 'default', '--app', app, '--json']);
    expect(all.code).toBe(0);
    expect(JSON.parse(all.stdout)).toEqual({ queue: 'default', redriven: 2 });
    const none = await runCli(['dlq', 'redrive', 'default', '--app', app, '--ids', 'no-such-id', '--json']);
    expect(JSON.parse(none.stdout)).toEqual({ queue: 'default', redriven: 0 });
  });

  it('dlq purge drops them', async () => {
    const r = await runCli(['dlq', 'purge', 'default', '--app', app, '--json']);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({ queue: 'default', purged: 2 });
  });

  it('a --broker memory:// is its own empty broker, and says so', async () => {
    const r = await runCli(['purge', 'default', '--broker', 'memory://']);
    expect(r.code).toBe(0);
    expect(r.stdout.trim()).toBe('purged 0 messages from queue default');
    expect(r.stderr).toMatch(/lives inside one process/);
  });
});

// Without the package, `celeriac bench` says what to install: pack-smoke.test.ts checks that outside the repo.
describe.skipIf(!(await requirePackage('@celeriac/bench')))('celeriac bench', () => {
  it('hands its arguments to @celeriac/bench (here --help) and exits with its code', async () => {
    const r = await runCli(['bench', '--help']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('Usage: celeriac bench');
  });
});
