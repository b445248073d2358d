#!/usr/bin/env node
// Check the packaging of every workspace package that has a build, as a user installing it meets it.
// Each package is packed once with `npm pack`, and the tarball is checked by:
//   publint --strict                package.json fields, the exports map, files that are really published;
//   attw --profile esm-only         the types resolve for every export (ESM-only packages: the node10
//                                   and CJS-typing resolutions are not checked);
//   this script                     bin files are in the tarball and start with a node shebang; run-time
//                                   assets in src/ (Lua scripts, …: anything not .ts) are in the
//                                   tarball, under src/ or dist/.
// Packages without src/index.ts, and private ones ("private": true: never published, like the test
// servers, whose exports point at TypeScript source), are skipped with one line; a publishable one with
// src/index.ts but no dist/ fails.
// Usage: node scripts/check-packages.mjs [package-dir …]   (default: every workspace)
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const bin = (name) => join(root, 'node_modules', '.bin', name);
const readJson = (file) => JSON.parse(readFileSync(file, 'utf8'));
const env = { ...process.env, FORCE_COLOR: '0', NO_COLOR: '1' };

/** Run a command; resolve { ok, stdout, output } (never reject). */
function run(command, args, cwd = root) {
  return new Promise((resolve) => {
    execFile(command, args, { cwd, env, maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
      resolve({ ok: err === null, stdout, output: `${stdout}${stderr}${err && !stderr ? String(err) : ''}`.trim() });
    });
  });
}

function* walk(dir) {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) yield* walk(p);
    else yield p;
  }
}

function fileProblems(dir, pkg, files) {
  const problems = [];
  const bins = typeof pkg.bin === 'string' ? { [pkg.name]: pkg.bin } : (pkg.bin ?? {});
  for (const [name, target] of Object.entries(bins)) {
    const rel = target.replace(/^\.\//, '');
    if (!files.has(rel)) problems.push(`bin ${name}: ${rel} is not in the tarball (built? in "files"?)`);
    else if (!readFileSync(join(dir, rel), 'utf8').startsWith('#!/usr/bin/env node')) {
      problems.push(`bin ${name}: ${rel} does not start with #!/usr/bin/env node`);
    }
  }
  for (const file of walk(join(dir, 'src'))) {
    if (/\.(ts|tsx|mts|cts)$/.test(file)) continue;
    const rel = relative(join(dir, 'src'), file);
    if (!files.has(`src/${rel}`) && !files.has(`dist/${rel}`)) {
      problems.push(`run-time asset src/${rel} is not in the tarball (add it to "files" or copy it to dist/)`);
    }
  }
  return problems;
}

/** Check one package; resolves the lines to print and whether it failed. */
async function check(dir, scratch) {
  const pkg = readJson(join(dir, 'package.json'));
  const name = pkg.name ?? relative(root, dir);
  if (!existsSync(join(dir, 'src', 'index.ts'))) return { failed: false, text: `skip ${name}: no src/index.ts` };
  if (pkg.private === true) return { failed: false, text: `skip ${name}: private (not published)` };
  if (!existsSync(join(dir, 'dist'))) return { failed: true, text: `FAIL ${name}: no dist/ (build first: npm run build)` };
  const packed = await run('npm', ['pack', '--json', '--ignore-scripts', '--pack-destination', scratch], dir);
  if (!packed.ok) return { failed: true, text: `FAIL ${name}: npm pack failed:\n${packed.output}` };
  const [info] = JSON.parse(packed.stdout);
  const tarball = join(scratch, info.filename);
  const files = new Set(info.files.map((f) => f.path));
  const [publint, attw] = await Promise.all([
    run(bin('publint'), ['run', tarball, '--strict']),
    run(bin('attw'), [tarball, '--profile', 'esm-only', '--format', 'ascii', '--no-emoji']),
  ]);
  const problems = [];
  if (!publint.ok) problems.push(`publint:\n${publint.output}`);
  if (!attw.ok) problems.push(`attw:\n${attw.output}`);
  problems.push(...fileProblems(dir, pkg, files));
  if (problems.length === 0) {
    return { failed: false, text: `ok   ${name}: publint, attw (esm-only), ${files.size} files incl. bin and run-time assets` };
  }
  return { failed: true, text: `FAIL ${name}:\n  ${problems.join('\n').replaceAll('\n', '\n  ')}` };
}

const dirs =
  process.argv.length > 2
    ? process.argv.slice(2).map((d) => resolve(d))
    : readJson(join(root, 'package.json')).workspaces.map((w) => join(root, w));
const scratch = mkdtempSync(join(tmpdir(), 'celeriac-check-packages-'));
let failed = 0;
try {
  // Two at a time: each check is a few processes, and the machine is shared.
  const results = new Array(dirs.length);
  let next = 0;
  const lane = async () => {
    while (next < dirs.length) {
      const i = next++;
      const dir = dirs[i];
      try {
        const own = join(scratch, String(i)); // each package packs into its own directory
        mkdirSync(own);
        results[i] = await check(dir, own);
      } catch (err) {
        results[i] = { failed: true, text: `FAIL ${relative(root, dir)}: ${err instanceof Error ? err.message : String(err)}` };
      }
    }
  };
  await Promise.all([lane(), lane()]);
  for (const r of results) {
    if (r.failed) {
      failed++;
      console.error(r.text);
    } else console.log(r.text);
  }
} finally {
  rmSync(scratch, { recursive: true, force: true });
}
if (failed > 0) {
  console.error(`${failed} package(s) failed the packaging checks`);
  process.exit(1);
}
