#!/usr/bin/env node
// `npm run pack`: writes ssh-r-sync-VERSION.tgz, the one package a user installs
// (`npm install -g ./ssh-r-sync-VERSION.tgz`). It holds what the workspace has already built:
//   bin/, dist/bundle/    the three commands (bundles with their V8 code caches, from scripts/bundle.mjs)
//   hooks/                the ready hook scripts
//   node_modules/@ssh-r-sync/{core,plugin-link-dest,plugin-manifest,plugin-rotate,plugin-btrfs,plugin-notify,plugin-prometheus,plugin-restic}
//                         bundledDependencies: they travel inside the tarball, so plugins named
//                         "@ssh-r-sync/plugin-…" resolve next to the commands and import this core
//                         (their package.json as in the workspace, less "dependencies": see below)
// Its "dependencies" are the first-party packages' third-party ones, the only packages npm fetches
// (none of them dev ones); a npm-shrinkwrap.json would not help: npm reads it only from packages
// installed from a registry, not from a tarball file.
// Nothing is built at install time. Usage: node scripts/pack.mjs [--no-build] [--out DIR]
// (--no-build when `npm run build` just ran, e.g. inside the test run).
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const args = process.argv.slice(2);
const outIndex = args.indexOf('--out');
const outDir = resolve(outIndex >= 0 && args[outIndex + 1] ? args[outIndex + 1] : root);
const readJson = (file) => JSON.parse(readFileSync(file, 'utf8'));
const fail = (message) => {
  console.error(`pack: ${message}`);
  process.exit(1);
};
const run = (command, argv, cwd) => {
  const done = spawnSync(command, argv, { cwd, stdio: ['ignore', 'pipe', 'inherit'], encoding: 'utf8', timeout: 600_000 });
  if (done.status !== 0) fail(`${command} ${argv.join(' ')} failed (${done.error?.message ?? `exit ${done.status}`})`);
  return done.stdout;
};

if (!args.includes('--no-build')) {
  run(process.execPath, [join(root, 'node_modules/typescript/bin/tsc'), '-b'], root);
  run(process.execPath, [join(root, 'scripts/bundle.mjs')], root);
}

const cli = readJson(join(root, 'packages/cli/package.json'));
const firstParty = ['core', 'plugin-link-dest', 'plugin-manifest', 'plugin-rotate', 'plugin-btrfs', 'plugin-notify', 'plugin-prometheus', 'plugin-restic'];
const manifests = Object.fromEntries(firstParty.map((dir) => [dir, readJson(join(root, 'packages', dir, 'package.json'))]));
for (const name of ['client', 'recv', 'admin']) {
  if (!existsSync(join(root, `packages/cli/dist/bundle/${name}.cjs`))) fail(`packages/cli/dist/bundle/${name}.cjs is missing: run npm run build`);
}

const stage = mkdtempSync(join(tmpdir(), 'srs-pack-'));
try {
  cpSync(join(root, 'packages/cli/bin'), join(stage, 'bin'), { recursive: true });
  cpSync(join(root, 'packages/cli/dist/bundle'), join(stage, 'dist/bundle'), { recursive: true });
  cpSync(join(root, 'hooks'), join(stage, 'hooks'), { recursive: true });
  cpSync(join(root, 'README.md'), join(stage, 'README.md'));
  // Each first-party package as it would be published: its package.json and its "files".
  for (const dir of firstParty) {
    const pkg = manifests[dir];
    const target = join(stage, 'node_modules', pkg.name);
    mkdirSync(target, { recursive: true });
    // Their third-party dependencies move up to ssh-r-sync's own (Node finds them there all the
    // same): npm takes whatever a bundled package depends on for part of the bundle, and would
    // leave it out of the install instead of fetching it.
    const { dependencies, ...bundledManifest } = pkg;
    writeFileSync(join(target, 'package.json'), `${JSON.stringify(bundledManifest, null, 2)}\n`);
    for (const entry of pkg.files ?? []) {
      if (existsSync(join(root, 'packages', dir, entry))) cpSync(join(root, 'packages', dir, entry), join(target, entry), { recursive: true });
    }
  }

  const bundled = firstParty.map((dir) => manifests[dir].name);
  const dependencies = Object.fromEntries(firstParty.map((dir) => [manifests[dir].name, manifests[dir].version])); // npm bundles only dependencies
  for (const pkg of Object.values(manifests)) {
    for (const [name, range] of Object.entries(pkg.dependencies ?? {})) {
      if (bundled.includes(name)) continue;
      if (dependencies[name] && dependencies[name] !== range) fail(`${pkg.name} wants ${name}@${range}, another first-party package ${dependencies[name]}: make them agree`);
      dependencies[name] = range;
    }
  }
  const pkg = {
    name: 'ssh-r-sync',
    version: cli.version,
    description: readJson(join(root, 'package.json')).description,
    license: cli.license,
    engines: cli.engines,
    bin: cli.bin,
    dependencies: Object.fromEntries(Object.entries(dependencies).sort(([a], [b]) => a.localeCompare(b))),
    bundleDependencies: bundled,
  };
  writeFileSync(join(stage, 'package.json'), `${JSON.stringify(pkg, null, 2)}\n`);

  mkdirSync(outDir, { recursive: true });
  const packed = JSON.parse(run('npm', ['pack', '--json', '--ignore-scripts', '--pack-destination', outDir], stage))[0];
  const file = join(outDir, packed.filename);
  console.log(`${file} (${Math.round(statSync(file).size / 1024)} KiB, ${packed.entryCount} files)`);
} finally {
  rmSync(stage, { recursive: true, force: true });
}
