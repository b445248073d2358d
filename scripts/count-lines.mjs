#!/usr/bin/env node
// Lines of code per workspace package, counted the same way every time: a copy of each package's
// sources (src/ and lua/; tests separately) is formatted with prettier --print-width 120, then lines
// that are blank or only comment are left out. Lua files are counted as written (prettier has no Lua).
// Usage: node scripts/count-lines.mjs [--json] [--per-file] [--prettier PATH]   (PATH: a prettier
// binary; default: `npx --yes prettier@3`, fetched once into npm's cache). `--per-file` also lists each
// source file's lines (e.g. a transport's adapter and its SQL, counted the same way).
import { execFileSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const args = process.argv.slice(2);
const json = args.includes('--json');
const perFile = args.includes('--per-file');
const perFileRows = [];
const at = args.indexOf('--prettier');
const prettier = at >= 0 ? [args[at + 1]] : ['npx', '--yes', 'prettier@3'];

const workspaces = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')).workspaces;

function* walk(dir) {
  if (!existsSync(dir)) return;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    if (e.name === 'node_modules' || e.name === 'dist' || e.name === 'fixtures') continue;
    const p = join(dir, e.name);
    if (e.isDirectory()) yield* walk(p);
    else yield p;
  }
}

/** Non-blank lines that are not only comment (// and /* … *\/ in TS/JS, -- and --[[ … ]] in Lua). */
function codeLines(text, lua) {
  let n = 0;
  let inBlock = false;
  for (const raw of text.split('\n')) {
    let line = raw.trim();
    if (inBlock) {
      const end = lua ? line.indexOf(']]') : line.indexOf('*/');
      if (end < 0) continue;
      inBlock = false;
      line = line.slice(end + 2).trim();
    }
    if (lua ? line.startsWith('--[[') : line.startsWith('/*')) {
      const close = lua ? line.indexOf(']]', 4) : line.indexOf('*/', 2);
      if (close < 0) {
        inBlock = true;
        continue;
      }
      line = line.slice(close + 2).trim();
    }
    if (line === '' || line.startsWith(lua ? '--' : '//')) continue;
    n++;
  }
  return n;
}

const scratch = mkdtempSync(join(tmpdir(), 'celeriac-lines-'));
const rows = [];
try {
  for (const ws of workspaces) {
    const dir = join(root, ws);
    const name = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')).name;
    const row = { package: name, src: 0, lua: 0, test: 0 };
    for (const [kind, sub] of [['src', 'src'], ['test', 'test'], ['src', 'bench'], ['src', 'scripts']]) {
      const files = [...walk(join(dir, sub))].filter((f) => /\.(ts|mjs|js)$/.test(f) && !f.endsWith('.d.ts'));
      if (files.length === 0) continue;
      const copy = join(scratch, ws.replace(/\//g, '_'), sub);
      for (const f of files) cpSync(f, join(copy, relative(join(dir, sub), f)));
      execFileSync(prettier[0], [...prettier.slice(1), '--print-width', '120', '--write', '--log-level', 'silent', copy], { stdio: 'inherit' });
      for (const f of walk(copy)) {
        const n = codeLines(readFileSync(f, 'utf8'), false);
        row[kind] += n;
        if (kind === 'src') perFileRows.push({ file: join(ws, sub, relative(copy, f)), lines: n });
      }
    }
    for (const f of walk(join(dir, 'lua'))) if (f.endsWith('.lua') && statSync(f).isFile()) row.lua += codeLines(readFileSync(f, 'utf8'), true);
    rows.push(row);
  }
} finally {
  rmSync(scratch, { recursive: true, force: true });
}
const total = rows.reduce((t, r) => ({ package: 'workspace', src: t.src + r.src, lua: t.lua + r.lua, test: t.test + r.test }), { src: 0, lua: 0, test: 0 });
if (json) {
  process.stdout.write(`${JSON.stringify([...rows, total], null, 2)}\n`);
} else {
  const line = (r) => `${r.package.padEnd(28)} ${String(r.src).padStart(6)} ${String(r.lua).padStart(5)} ${String(r.test).padStart(6)}`;
  process.stdout.write(`${'package'.padEnd(28)} ${'src'.padStart(6)} ${'lua'.padStart(5)} ${'test'.padStart(6)}\n`);
  for (const r of [...rows, total]) process.stdout.write(`${line(r)}\n`);
}
if (perFile && !json) {
  process.stdout.write('\nfile (src)\n');
  for (const f of perFileRows) process.stdout.write(`${f.file.padEnd(60)} ${String(f.lines).padStart(6)}\n`);
}
