// One package to install (issue 10, item 1): `npm run pack`'s tarball, installed with
// `npm install -g --prefix` into a fresh prefix, runs a real backup through sshd with the
// installed commands only (the forced command is the installed receiver), the snapshot plugins on
// by name; the installed admin tool sees it. Third-party dependencies come from npm's cache that
// `npm ci` filled (--prefer-offline: the registry is asked only for what the cache lacks).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { startBackupServer, type BackupServer } from './helpers/backup-server.js';
import { repoRoot, runNode, runProgram as runHelper, tempDir, type RunResult } from './helpers/cli.js';

const NAME = 'host1';
const version = (JSON.parse(await readFile(join(repoRoot, 'packages/cli/package.json'), 'utf8')) as { version: string }).version;

let dir: string;
let cleanup: () => Promise<void>;
let prefix: string;
let installed: string;
let bin: (name: string) => string;

// npm and the installed commands, in the test's folder, without npm's update notice.
function runProgram(program: string, args: string[], timeoutMs: number): Promise<RunResult> {
  return runHelper(program, args, { cwd: dir, env: { ...process.env, npm_config_update_notifier: 'false' }, timeoutMs });
}

// Snapshot ids of host NAME in `root`.
function snapshots(root: string): string[] {
  return readdirSync(join(root, NAME)).filter((name) => /^\d{4}-\d\d-\d\dT\d{6}Z$/.test(name));
}

before(async () => {
  ({ dir, cleanup } = await tempDir('srs-pack-install-'));
  // The test run has just built and bundled (scripts/test.mjs): pack that, do not rebuild under other tests.
  const packed = await runProgram(process.execPath, [join(repoRoot, 'scripts/pack.mjs'), '--no-build', '--out', join(dir, 'out')], 120_000);
  assert.equal(packed.code, 0, packed.stderr);
  const tarball = join(dir, 'out', `ssh-r-sync-${version}.tgz`);
  assert.ok(existsSync(tarball), packed.stdout);
  prefix = join(dir, 'prefix');
  const install = await runProgram('npm', ['install', '-g', '--prefix', prefix, '--prefer-offline', '--no-audit', '--no-fund', '--loglevel=error', tarball], 300_000);
  assert.equal(install.code, 0, install.stderr);
  installed = join(prefix, 'lib', 'node_modules', 'ssh-r-sync');
  bin = (name) => join(prefix, 'bin', name);
});
after(() => cleanup()); // the prefix is inside `dir`

describe('the packed package', () => {
  test('installs the three commands, the first-party plugins and the hook scripts, without dev dependencies', async () => {
    for (const name of ['ssh-r-sync', 'ssh-r-sync-recv', 'ssh-r-sync-admin']) {
      const result = await runNode(bin(name), ['--version'], { cwd: dir, env: { SSH_R_SYNC_DEBUG: '1' } });
      assert.equal(result.code, 0, result.stderr);
      assert.equal(result.stdout.trim(), version);
      // The V8 code cache made at build time fits the installed bundle (same bytes, same node).
      assert.match(result.stderr, /code cache of (client|recv|admin)\.cjs: used/);
    }
    for (const plugin of ['plugin-link-dest', 'plugin-btrfs', 'plugin-manifest', 'plugin-rotate', 'plugin-notify', 'plugin-prometheus', 'plugin-restic', 'core']) {
      assert.ok(existsSync(join(installed, 'node_modules', '@ssh-r-sync', plugin, 'dist', 'index.js')), plugin);
    }
    for (const hook of ['done-log', 'rsync-post-ignore-vanished']) {
      assert.ok((statSync(join(installed, 'hooks', hook)).mode & 0o111) !== 0, `hooks/${hook} is executable`);
    }
    const modules = readdirSync(join(installed, 'node_modules'));
    for (const dev of ['typescript', 'esbuild', 'tsx', '@types']) assert.ok(!modules.includes(dev), `${dev} was not installed`);
    assert.ok(!existsSync(join(installed, 'src')) && !existsSync(join(installed, 'node_modules', '@ssh-r-sync', 'core', 'src')), 'no sources to build');
  });

  describe('a backup with the installed commands only', () => {
    let server: BackupServer;
    before(async () => {
      server = await startBackupServer({
        recvBin: bin('ssh-r-sync-recv'),
        recvArgs: ['--name', NAME, '--plugin', '@ssh-r-sync/plugin-link-dest', '--plugin', '@ssh-r-sync/plugin-manifest'],
      });
    });
    after(() => server?.stop());

    test('through sshd, snapshot plugins on by name; status of the installed admin sees it', async () => {
      const src = join(dir, 'src');
      await mkdir(join(src, 'sub'), { recursive: true });
      await writeFile(join(src, 'a.txt'), 'alpha\n');
      await writeFile(join(src, 'sub', 'b.txt'), 'beta\n');
      const result = await runNode(bin('ssh-r-sync'), [...server.clientArgs(), '-n', NAME, `${server.sshd.user}@127.0.0.1`, src], { cwd: dir });
      assert.equal(result.code, 0, result.stderr);
      assert.match(result.stderr, /^ssh-r-sync: backup of host1 done: /m);
      const [snapshot, ...more] = snapshots(server.root);
      assert.ok(snapshot && more.length === 0, 'one snapshot');
      assert.equal(await readFile(join(server.root, NAME, snapshot, 'sub', 'b.txt'), 'utf8'), 'beta\n');
      const manifest = await readFile(join(server.root, NAME, `${snapshot}.meta`, 'manifest.tsv'), 'utf8');
      assert.match(manifest, /sub\/b\.txt/);
      const status = await runNode(bin('ssh-r-sync-admin'), ['status', server.root], { cwd: dir });
      assert.equal(status.code, 0, status.stdout + status.stderr);
      assert.match(status.stdout, new RegExp(`${NAME}.*${snapshot}`));
    });
  });

  test('from a config in a fresh directory: first-party plugins by name, a globally installed third-party one, and a missing one named with the places looked in', async () => {
    const src = join(dir, 'src-local');
    const root = join(dir, 'root-local');
    const etc = join(dir, 'etc');
    await mkdir(src);
    await mkdir(root, { mode: 0o700 });
    await mkdir(etc);
    await writeFile(join(src, 'c.txt'), 'gamma\n');
    // As `npm install -g --prefix PREFIX srs-plugin-global` would leave it.
    const log = join(dir, 'global-plugin.log');
    const globalPlugin = join(prefix, 'lib', 'node_modules', 'srs-plugin-global');
    await mkdir(globalPlugin);
    await writeFile(join(globalPlugin, 'package.json'), JSON.stringify({ name: 'srs-plugin-global', type: 'module', exports: './index.js' }));
    await writeFile(
      join(globalPlugin, 'index.js'),
      `import { appendFileSync } from 'node:fs';\nexport default { name: 'global', apply(hooks) { hooks.handshake.tap('global', () => { appendFileSync(${JSON.stringify(log)}, 'global handshake\\n'); }); } };\n`,
    );
    const config = join(etc, 'ssh-r-sync.config.json');
    await writeFile(config, JSON.stringify({ plugins: ['@ssh-r-sync/plugin-link-dest', '@ssh-r-sync/plugin-manifest', 'srs-plugin-global'] }));
    const result = await runNode(bin('ssh-r-sync-recv'), ['--local', src, '--name', NAME, '--config', config, root], { cwd: '/' });
    assert.equal(result.code, 0, result.stderr);
    const [snapshot] = snapshots(root);
    assert.ok(snapshot, 'link-dest made a snapshot');
    assert.ok(existsSync(join(root, NAME, `${snapshot}.meta`, 'manifest.tsv')), 'manifest written');
    assert.equal(await readFile(log, 'utf8'), 'global handshake\n');

    await writeFile(config, JSON.stringify({ plugins: ['srs-plugin-nowhere'] }));
    const missing = await runNode(bin('ssh-r-sync-recv'), ['--local', src, '--name', NAME, '--config', config, root], { cwd: '/' });
    assert.equal(missing.code, 2);
    assert.equal(
      missing.stderr.trimEnd(),
      `ssh-r-sync-recv: error: cannot load plugin "srs-plugin-nowhere" (from ${etc}): package "srs-plugin-nowhere" is not installed in node_modules of ${etc}, nor of ${installed} (or their parents): npm install srs-plugin-nowhere in ${etc}, or npm install -g srs-plugin-nowhere`,
    );
  });
});
