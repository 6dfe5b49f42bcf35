#!/usr/bin/env node
// Runs every test file with node's built-in runner. Node 20 has no glob support in
// `--test`, so the files are listed here. Usage: node scripts/test.mjs [filter...]
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const roots = ['test', ...readdirSync(join(root, 'packages')).map((p) => join('packages', p, 'test'))];

function walk(dir, out) {
  let entries;
  try {
    entries = readdirSync(join(root, dir));
  } catch {
    return out;
  }
  for (const entry of entries.sort()) {
    const path = join(dir, entry);
    if (entry === 'node_modules' || entry === 'fixtures') continue;
    if (statSync(join(root, path)).isDirectory()) walk(path, out);
    else if (/\.test\.(ts|mts|js|mjs)$/.test(entry)) out.push(path);
  }
  return out;
}

const filters = process.argv.slice(2);
const files = roots
  .flatMap((dir) => walk(dir, []))
  .filter((file) => filters.length === 0 || filters.some((f) => file.includes(f)));
if (files.length === 0) {
  console.error(`no test files match ${filters.join(' ')}`);
  process.exit(1);
}
// The end-to-end tests run the compiled commands: build first (a no-op when up to date).
const build = spawnSync(process.execPath, [join(root, 'node_modules/typescript/bin/tsc'), '-b'], { stdio: 'inherit', cwd: root });
if (build.status !== 0) process.exit(build.status ?? 1);
const bundle = spawnSync(process.execPath, [join(root, 'scripts/bundle.mjs')], { stdio: 'inherit', cwd: root });
if (bundle.status !== 0) process.exit(bundle.status ?? 1);
// tsx runs the tests without checking their types: check them (and the benches) here, ~7 s.
const check = spawnSync(process.execPath, [join(root, 'node_modules/typescript/bin/tsc'), '-p', 'test/tsconfig.json'], { stdio: 'inherit', cwd: root });
if (check.status !== 0) {
  console.error('test: the tests do not type-check (tsc -p test/tsconfig.json)');
  process.exit(check.status ?? 1);
}
const result = spawnSync(
  process.execPath,
  ['--import', 'tsx', '--test', '--test-concurrency=2', ...files],
  { stdio: 'inherit', cwd: root },
);
process.exit(result.status ?? 1);
