// Plugins by name from anywhere (issue 10, item 2): a config file in a fresh directory far from
// any node_modules names the first-party plugins and gets the ones shipped with the commands; a
// third-party name resolves from the config's folder with Node's algorithm; a name found nowhere
// says, in one line, where it was looked for. (The same from the installed package:
// test/pack-install.test.ts.)
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { repoRoot, runRecv, tempDir } from './helpers/cli.js';

let dir: string;
let cleanup: () => Promise<void>;
let run = 0;

before(async () => {
  ({ dir, cleanup } = await tempDir('srs-resolve-'));
});
after(() => cleanup());

// A source tree, a private ROOT and an empty folder for the config, all under the system's tmp dir.
async function fixture() {
  run += 1;
  const base = join(dir, `run${run}`);
  const src = join(base, 'src');
  const root = join(base, 'root');
  const etc = join(base, 'etc');
  await mkdir(src, { recursive: true });
  await mkdir(etc);
  await mkdir(root, { mode: 0o700 });
  await writeFile(join(src, 'a.txt'), 'alpha\n');
  return { base, src, root, etc };
}

// The snapshots (not the .meta folders, not latest) of host1.
function snapshots(root: string): string[] {
  return readdirSync(join(root, 'host1')).filter((name) => /^\d{4}-\d\d-\d\dT\d{6}Z$/.test(name));
}

// A package in `folder`/node_modules whose plugin writes "NAME handshake" to `log`.
async function writePluginPackage(folder: string, name: string, log: string): Promise<void> {
  const pkg = join(folder, 'node_modules', name);
  await mkdir(pkg, { recursive: true });
  await writeFile(join(pkg, 'package.json'), JSON.stringify({ name, type: 'module', exports: { '.': { require: './missing.cjs', import: './plugin.js' } } }));
  await writeFile(
    join(pkg, 'plugin.js'),
    `import { appendFileSync } from 'node:fs';
export default () => ({ name: ${JSON.stringify(name)}, apply(hooks) { hooks.handshake.tap(${JSON.stringify(name)}, () => { appendFileSync(${JSON.stringify(log)}, ${JSON.stringify(`${name} handshake\n`)}); }); } });`,
  );
}

describe('plugins by name', () => {
  test('a config in a fresh directory names the first-party plugins and gets the ones shipped with the commands', async () => {
    const f = await fixture();
    const config = join(f.etc, 'ssh-r-sync.config.json');
    await writeFile(config, JSON.stringify({ plugins: ['@ssh-r-sync/plugin-link-dest', '@ssh-r-sync/plugin-manifest'] }));
    // A stale copy beside the config must not win over the shipped one.
    const stale = join(f.etc, 'node_modules', '@ssh-r-sync', 'plugin-manifest');
    await mkdir(stale, { recursive: true });
    await writeFile(join(stale, 'package.json'), JSON.stringify({ name: '@ssh-r-sync/plugin-manifest', type: 'module', exports: './index.js' }));
    await writeFile(join(stale, 'index.js'), `throw new Error('the stale copy beside the config was loaded');`);
    const result = await runRecv(['--local', f.src, '--name', 'host1', '--config', config, f.root], { cwd: f.base });
    assert.equal(result.code, 0, result.stderr);
    const [snapshot] = snapshots(f.root);
    assert.ok(snapshot, 'link-dest made a snapshot');
    assert.equal(await readFile(join(f.root, 'host1', snapshot, 'a.txt'), 'utf8'), 'alpha\n');
    assert.ok(existsSync(join(f.root, 'host1', `${snapshot}.meta`, 'manifest.tsv')), 'manifest written');
  });

  test('--plugin names resolve from the working directory and then from the commands\' own install', async () => {
    const f = await fixture();
    const log = join(f.base, 'log');
    await writePluginPackage(f.base, 'srs-plugin-cwd', log);
    const result = await runRecv(
      ['--local', f.src, '--name', 'host1', '--plugin', '@ssh-r-sync/plugin-link-dest', '--plugin', 'srs-plugin-cwd', f.root],
      { cwd: f.base },
    );
    assert.equal(result.code, 0, result.stderr);
    assert.equal(snapshots(f.root).length, 1);
    assert.equal(await readFile(log, 'utf8'), 'srs-plugin-cwd handshake\n');
  });

  test("a third-party plugin in the config's folder node_modules is found, by its \"import\" export", async () => {
    const f = await fixture();
    const log = join(f.base, 'log');
    await writePluginPackage(f.etc, '@someone/srs-plugin-demo', log);
    const config = join(f.etc, 'ssh-r-sync.config.json');
    await writeFile(config, JSON.stringify({ plugins: ['@someone/srs-plugin-demo'] }));
    const result = await runRecv(['--local', f.src, '--name', 'host1', '--config', config, f.root], { cwd: '/' });
    assert.equal(result.code, 0, result.stderr);
    assert.equal(await readFile(log, 'utf8'), '@someone/srs-plugin-demo handshake\n');
  });

  test('a plugin found nowhere is a one-line configuration error that lists where it was looked for', async () => {
    const f = await fixture();
    const config = join(f.etc, 'ssh-r-sync.config.json');
    await writeFile(config, JSON.stringify({ plugins: ['srs-plugin-nowhere'] }));
    const result = await runRecv(['--local', f.src, '--name', 'host1', '--config', config, f.root], { cwd: f.base });
    assert.equal(result.code, 2);
    const lines = result.stderr.trimEnd().split('\n');
    assert.equal(lines.length, 1, result.stderr);
    const cli = join(repoRoot, 'packages/cli');
    assert.equal(
      lines[0],
      `ssh-r-sync-recv: error: cannot load plugin "srs-plugin-nowhere" (from ${f.etc}): package "srs-plugin-nowhere" is not installed in node_modules of ${f.etc}, nor of ${cli} (or their parents): npm install srs-plugin-nowhere in ${f.etc}, or npm install -g srs-plugin-nowhere`,
    );
    assert.ok(!existsSync(join(f.root, 'host1')), 'nothing was backed up');
  });
});
