// The admin tools' view of a host's backups (core's storedSnapshots/openStoredSnapshot): only
// committed ones, the storage mode recorded in each done mark, and one-line errors that say what
// exists when asked for what does not.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { openStoredSnapshot, storedSnapshots } from '@ssh-r-sync/core';
import { repoRoot, runRecv, tempDir } from './helpers/cli.js';

const PLUGINS = ['--plugin', '@ssh-r-sync/plugin-link-dest', '--plugin', '@ssh-r-sync/plugin-manifest'];
let tmp: { dir: string; cleanup: () => Promise<void> };
before(async () => (tmp = await tempDir('srs-stored-')));
after(() => tmp.cleanup());

describe('stored snapshots', () => {
  test('two committed runs and an unfinished one: two snapshots, latest is the newest, each knows its mode', async () => {
    const root = join(tmp.dir, 'root');
    const src = join(tmp.dir, 'src');
    await mkdir(root, { mode: 0o700 });
    await mkdir(src);
    await writeFile(join(src, 'a'), 'a\n');
    for (let i = 0; i < 2; i++) {
      const run = await runRecv(['--local', src, '--name', 'st1', '--mode', 'fake-super', ...PLUGINS, root], { cwd: repoRoot });
      assert.equal(run.code, 0, run.stderr);
    }
    // A run that never committed: a tree and an in-progress mark, no done mark.
    await mkdir(join(root, 'st1', '2030-01-01T000000Z'));
    const list = await storedSnapshots(root, 'st1');
    assert.equal(list.length, 2);
    assert.deepEqual(list.map((s) => s.mode), ['fake-super', 'fake-super']);
    assert.equal((await openStoredSnapshot(root, 'st1')).id, list[1]!.id);
    assert.equal((await openStoredSnapshot(root, 'st1', list[0]!.id)).paths.tree, join(root, 'st1', list[0]!.id));
    await assert.rejects(openStoredSnapshot(root, 'st1', '2030-01-01T000000Z'), /has no complete snapshot 2030-01-01T000000Z \(complete ones: /);
    await assert.rejects(openStoredSnapshot(root, 'st1', '../x'), /give a snapshot id like/);
    await assert.rejects(openStoredSnapshot(root, 'nope'), /no host "nope" under .*ssh-r-sync-admin status/);
    await assert.rejects(openStoredSnapshot(root, '../etc'), /name/i);
    await rm(join(root, 'st1', '2030-01-01T000000Z'), { recursive: true });
  });

  test('a mirror host: its one committed mirror is latest', async () => {
    const root = join(tmp.dir, 'mroot');
    const src = join(tmp.dir, 'msrc');
    await mkdir(root, { mode: 0o700 });
    await mkdir(src);
    await writeFile(join(src, 'b'), 'b\n');
    const run = await runRecv(['--local', src, '--name', 'mi1', '--plugin', '@ssh-r-sync/plugin-manifest', root], { cwd: repoRoot });
    assert.equal(run.code, 0, run.stderr);
    const latest = await openStoredSnapshot(root, 'mi1');
    assert.equal(latest.kind, 'mirror');
    assert.equal(latest.paths.tree, join(root, 'mi1'));
    assert.equal(latest.mode, 'privileged');
  });
});
