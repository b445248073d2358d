import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { repoRoot, requireBuiltCli, runNode } from '../src/spawn.js';

/**
 * What a user gets from `npm install @celeriac/core`: core is packed with `npm pack`, the tarball is
 * installed into a fresh project outside the repository (its dependencies from the npm cache, offline
 * when the cache has them), and used there from ESM, from CommonJS (`require` of ESM, Node >= 20.19),
 * from TypeScript, and through its `celeriac` bin.
 */

const exec = promisify(execFile);

let tmp: string;
let project: string;
let installLog = '';

const ESM = `
import { createApp } from '@celeriac/core';
const app = createApp({ broker: 'memory://' });
const add = app.task('math.add', (a, b) => a + b);
const worker = app.worker();
await worker.start();
const r = await add.delay(2, 3);
console.log('esm result', await r.get({ timeoutMs: 5000 }));
await app.close();
`;

const CJS = `
const { createApp } = require('@celeriac/core');
(async () => {
  const app = createApp({ broker: 'memory://' });
  const add = app.task('math.add', (a, b) => a + b);
  await app.worker().start();
  const r = await add.delay(20, 22);
  console.log('cjs result', await r.get({ timeoutMs: 5000 }));
  await app.close();
})().catch((err) => { console.error(err); process.exit(1); });
`;

const TS = `
import { createApp, type AsyncResult } from '@celeriac/core';
const app = createApp({ broker: 'memory://' });
const add = app.task('math.add', (a: number, b: number) => a + b);
export const ok: Promise<AsyncResult<number>> = add.delay(1, 2);
// @ts-expect-error the argument types travel with the package: a string is not a number
export const bad = add.delay('x', 2);
`;

const TASKS = `
import { createApp } from '@celeriac/core';
export const app = createApp({ broker: process.env.BROKER_URL ?? 'memory://' });
app.task('math.add', (a, b) => a + b);
`;

beforeAll(async () => {
  requireBuiltCli();
  tmp = mkdtempSync(join(tmpdir(), 'celeriac-pack-'));
  project = join(tmp, 'project');
  mkdirSync(project);
  const packed = await exec('npm', ['pack', '--json', '--ignore-scripts', '--pack-destination', tmp], {
    cwd: join(repoRoot, 'packages/core'),
  });
  const [info] = JSON.parse(packed.stdout) as [{ filename: string }];
  const tarball = join(tmp, info.filename);
  writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'celeriac-smoke', version: '0.0.0', private: true }));
  writeFileSync(join(project, 'esm.mjs'), ESM);
  writeFileSync(join(project, 'cjs.cjs'), CJS);
  writeFileSync(join(project, 'check.ts'), TS);
  writeFileSync(join(project, 'tasks.mjs'), TASKS);
  writeFileSync(
    join(project, 'tsconfig.json'),
    JSON.stringify({
      compilerOptions: { module: 'NodeNext', moduleResolution: 'NodeNext', target: 'ES2023', strict: true, noEmit: true, skipLibCheck: true, types: [] },
      files: ['check.ts'],
    }),
  );
  const flags = ['install', '--no-audit', '--no-fund', '--ignore-scripts', '--no-package-lock'];
  try {
    const r = await exec('npm', [...flags, '--offline', tarball], { cwd: project });
    installLog = `offline install:\n${r.stdout}${r.stderr}`;
  } catch (offline) {
    // The cache lacks something: fall back to a normal install (network allowed).
    const r = await exec('npm', [...flags, '--prefer-offline', tarball], { cwd: project });
    installLog = `offline install failed (${String(offline).split('\n')[0]}); normal install:\n${r.stdout}${r.stderr}`;
  }
}, 180_000);

afterAll(() => {
  if (tmp !== undefined) rmSync(tmp, { recursive: true, force: true });
});

describe('the packed @celeriac/core, installed in a fresh project', () => {
  it('runs a task from ESM (import)', async () => {
    const r = await runNode(['esm.mjs'], { cwd: project });
    expect(r, installLog).toMatchObject({ code: 0, stdout: 'esm result 5\n' });
  });

  it('runs a task from CommonJS (require of ESM)', async () => {
    const r = await runNode(['cjs.cjs'], { cwd: project });
    expect(r, installLog).toMatchObject({ code: 0, stdout: 'cjs result 42\n' });
  });

  it('type-checks a TypeScript consumer with exact task argument types', async () => {
    const tsc = join(repoRoot, 'node_modules/typescript/bin/tsc');
    const r = await runNode([tsc, '-p', 'tsconfig.json'], { cwd: project });
    expect(r, `${r.stdout}${r.stderr}`).toMatchObject({ code: 0 });
  });

  it('installs the celeriac bin, which starts a worker', async () => {
    const bin = join(project, 'node_modules/.bin/celeriac');
    const help = await exec(bin, ['--help'], { cwd: project });
    expect(help.stdout).toContain('Usage: celeriac');
    const r = await runNode([bin, 'worker', '--app', './tasks.mjs', '--connect-timeout-ms', '5000'], {
      cwd: project,
      env: { BROKER_URL: 'redis://127.0.0.1:6379' },
    });
    // Only core is installed: the redis transport is missing, and the error says what to install.
    expect(r.code).toBe(1);
    expect(r.stderr.trim()).toBe(
      'celeriac: error: the worker could not start: the redis: broker needs the package @celeriac/transport-redis: npm install @celeriac/transport-redis (ERR_MODULE_MISSING)',
    );
  });

  it('`celeriac bench` without @celeriac/bench says what to install, exit 1', async () => {
    const r = await runNode([join(project, 'node_modules/.bin/celeriac'), 'bench', '--scenario', 'x'], { cwd: project });
    expect(r.code).toBe(1);
    expect(r.stderr.trim()).toBe('celeriac bench needs the package @celeriac/bench: npm install @celeriac/bench');
  });
});
