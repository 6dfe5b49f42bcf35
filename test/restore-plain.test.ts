// `ssh-r-sync-admin restore` of a plain store (--mode plain: no owners, permissions, devices or
// xattrs kept): what the store holds comes back — contents, symlinks, hard links, holes, mtimes —
// and what it never held is not invented.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, lstatSync, readlinkSync, statSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { repoRoot, runNode, runRecv, tempDir } from './helpers/cli.js';
import { SPARSE_SIZE, buildTree, compareTrees } from './helpers/tree.js';

const adminBin = join(repoRoot, 'packages/cli/bin/ssh-r-sync-admin.js');
const PLUGINS = ['--plugin', '@ssh-r-sync/plugin-link-dest', '--plugin', '@ssh-r-sync/plugin-manifest'];
const HOST = 'restore-plain';
/** What a plain store cannot hold: special files. */
const SPECIAL = new Set(['fifo', 'chardev']);

let tmp: { dir: string; cleanup: () => Promise<void> };
before(async () => (tmp = await tempDir('srs-restore-plain-')));
after(() => tmp.cleanup());

test('a plain store comes back with contents, links, hard links, holes and mtimes; its summary says plain', async () => {
  const src = join(tmp.dir, 'src');
  const root = join(tmp.dir, 'root');
  await mkdir(src);
  await mkdir(root, { mode: 0o700 });
  await buildTree(src);
  const backup = await runRecv(['--local', src, '--name', HOST, '--mode', 'plain', ...PLUGINS, root], { cwd: repoRoot });
  assert.equal(backup.code, 0, backup.stderr);
  const dest = join(tmp.dir, 'back');
  const run = await runNode(adminBin, ['restore', '--json', root, HOST, dest], { timeoutMs: 120_000 });
  assert.equal(run.code, 0, run.stderr);
  assert.equal(JSON.parse(run.stdout).mode, 'plain');
  const ignore = (name: Buffer) => SPECIAL.has(name.toString('latin1'));
  assert.deepEqual(await compareTrees(src, dest, { owner: false, mode: false, top: false, ignore }), []);
  assert.equal(readlinkSync(join(dest, 'link-rel')), 'small.txt');
  assert.equal(lstatSync(join(dest, 'hard-a')).ino, lstatSync(join(dest, 'dir', 'hard-b')).ino, 'hard links stay one inode');
  const sparse = statSync(join(dest, 'sparse.img'));
  assert.equal(sparse.size, SPARSE_SIZE);
  assert.ok(sparse.blocks * 512 <= 1024 * 1024, 'the sparse file stays sparse');
  for (const name of SPECIAL) assert.ok(!existsSync(join(dest, name)), `${name} was never stored, and is not made up`);
});
