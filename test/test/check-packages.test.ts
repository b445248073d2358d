import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runNode } from '../src/spawn.js';

/** scripts/check-packages.mjs catches what it promises to catch (the real packages run in `npm test`). */

let tmp: string;

function makePackage(name: string, opts: { shebang: boolean; types: boolean; files: string[] }): string {
  const dir = join(tmp, name);
  mkdirSync(join(dir, 'src'), { recursive: true });
  mkdirSync(join(dir, 'dist/cli'), { recursive: true });
  writeFileSync(join(dir, 'src/index.ts'), 'export const x = 1;\n');
  writeFileSync(join(dir, 'src/claim.lua'), '-- KEYS: none\nreturn 1\n');
  writeFileSync(join(dir, 'dist/index.js'), 'export const x = 1;\n');
  if (opts.types) writeFileSync(join(dir, 'dist/index.d.ts'), 'export declare const x = 1;\n');
  writeFileSync(join(dir, 'dist/cli/main.js'), `${opts.shebang ? '#!/usr/bin/env node\n' : ''}console.log(1);\n`);
  writeFileSync(
    join(dir, 'package.json'),
    JSON.stringify({
      name,
      version: '0.0.0',
      type: 'module',
      license: 'MIT',
      engines: { node: '>=20.19' },
      exports: { '.': { types: './dist/index.d.ts', default: './dist/index.js' } },
      bin: { [name]: './dist/cli/main.js' },
      files: opts.files,
      sideEffects: false,
    }),
  );
  return dir;
}

beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), 'celeriac-check-packages-test-'));
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('scripts/check-packages.mjs', () => {
  it('passes a well-packaged package', async () => {
    const dir = makePackage('good-pkg', { shebang: true, types: true, files: ['dist', 'src'] });
    const r = await runNode(['scripts/check-packages.mjs', dir], { timeoutMs: 60_000 });
    expect(r, r.stdout + r.stderr).toMatchObject({ code: 0 });
    expect(r.stdout).toMatch(/^ok {3}good-pkg: publint, attw \(esm-only\)/m);
  });

  it('fails a package with missing types, a bin without shebang and an unpublished Lua script', async () => {
    const dir = makePackage('bad-pkg', { shebang: false, types: false, files: ['dist'] });
    const r = await runNode(['scripts/check-packages.mjs', dir], { timeoutMs: 60_000 });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/FAIL bad-pkg/);
    expect(r.stderr).toMatch(/types is \.\/dist\/index\.d\.ts but the file does not exist/);
    expect(r.stderr).toMatch(/bin bad-pkg: dist\/cli\/main\.js does not start with #!\/usr\/bin\/env node/);
    expect(r.stderr).toMatch(/run-time asset src\/claim\.lua is not in the tarball/);
  });

  it('skips a package without src/index.ts in one line', async () => {
    const dir = join(tmp, 'no-index');
    mkdirSync(dir);
    writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: 'no-index', version: '0.0.0', private: true }));
    const r = await runNode(['scripts/check-packages.mjs', dir]);
    expect(r).toMatchObject({ code: 0, stdout: 'skip no-index: no src/index.ts\n' });
  });

  it('skips a private package in one line, though it has src/index.ts and no dist/ (a publishable one fails)', async () => {
    const dir = join(tmp, 'private-src');
    mkdirSync(join(dir, 'src'), { recursive: true });
    writeFileSync(join(dir, 'src/index.ts'), 'export const x = 1;\n');
    const manifest = { name: 'private-src', version: '0.0.0', type: 'module', exports: { '.': './src/index.ts' } };
    writeFileSync(join(dir, 'package.json'), JSON.stringify({ ...manifest, private: true }));
    const r = await runNode(['scripts/check-packages.mjs', dir]);
    expect(r).toMatchObject({ code: 0, stdout: 'skip private-src: private (not published)\n' });
    writeFileSync(join(dir, 'package.json'), JSON.stringify(manifest));
    const published = await runNode(['scripts/check-packages.mjs', dir]);
    expect(published.code).toBe(1);
    expect(published.stderr).toMatch(/FAIL private-src: no dist\//);
  });
});
