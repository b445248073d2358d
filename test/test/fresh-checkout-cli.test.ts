import { execFile } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative, sep } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { repoRoot } from '../src/spawn.js';

const exec = promisify(execFile);

/**
 * The front door as a new user meets it: a copy of the workspace as a clone has it (no node_modules,
 * no build output), `npm ci`, the build, then `npx celeriac …` — which must find the workspace's own
 * bin, not go to the registry for a package named `celeriac`. (The pack-smoke test covers the tarball.)
 */
describe('npx celeriac in a fresh checkout', () => {
  const dir = mkdtempSync(join(tmpdir(), 'celeriac-fresh-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('npm ci links the bin before anything is built; after the build `npx celeriac worker --help` runs the CLI', async () => {
    const skip = /(^|[\\/])(node_modules|dist|\.git|\.bench)([\\/]|$)|\.tsbuildinfo$/;
    cpSync(repoRoot, dir, { recursive: true, filter: (src) => !skip.test(relative(repoRoot, src).split(sep).join('/')) });
    expect(existsSync(join(dir, 'node_modules'))).toBe(false);
    // The cache the workspace's own `npm ci` filled; the registry only for what it lacks.
    await exec('npm', ['ci', '--prefer-offline', '--no-audit', '--no-fund', '--ignore-scripts'], { cwd: dir, timeout: 120_000 });
    expect(existsSync(join(dir, 'node_modules', '.bin', 'celeriac'))).toBe(true);

    const before = await exec('npx', ['--no-install', 'celeriac', '--help'], { cwd: dir }).then(
      () => ({ code: 0, stderr: '' }),
      (err: { code?: number; stderr?: string }) => ({ code: err.code, stderr: err.stderr ?? '' }),
    );
    expect(before).toEqual({ code: 1, stderr: expect.stringContaining('the CLI is not built yet; run `npm run build` first') as unknown });

    await exec('npx', ['--no-install', 'tsc', '-b', 'packages/core'], { cwd: dir, timeout: 120_000 });
    const { stdout } = await exec('npx', ['--no-install', 'celeriac', 'worker', '--help'], { cwd: dir });
    expect(stdout).toMatch(/^Usage: celeriac worker \[options\]/);
    expect(stdout).toContain('--shutdown-timeout-ms');
  }, 180_000);
});
