// Root restoring a backup that a non-root receiver's account owns reads it with that account's
// rights, never root's (restore-account.ts): the account may rename its folders while rsync reads
// them, and rsync follows a symlinked folder on a file's path by itself, so a folder swapped for a
// symlink to one of root's would otherwise have root's rsync send root's files. What the account
// could place in its tree and not read itself (here a file of root's, mode 0600, as a swap or a
// link would put it there) is therefore not restored, to a local DEST or with --to; the rest is,
// owners included (see restore.test.ts for the whole awkward tree). Runs as root.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { chown, mkdir, readdir, readFile, rm, symlink, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { repoRoot, runNode, runRecv, tempDir } from './helpers/cli.js';
import { LINK_DEST_DIST, MANIFEST_DIST, startNonRootServer, startRootLogin, type NonRootServer, type RootLogin } from './helpers/nonroot-server.js';

const adminBin = join(repoRoot, 'packages/cli/bin/ssh-r-sync-admin.js');
const HOST = 'restore-account';
const SECRET = 'SECRET of root, mode 0600\n';
const skip = process.getuid?.() !== 0 ? 'needs root (a throwaway account, owners)' : false;

let tmp: { dir: string; cleanup: () => Promise<void> };
let server: NonRootServer;
let login: RootLogin;
let tree: string;
/** TMPDIR of the restores: where a staged tree would be left. */
let temp: string;

before(async () => {
  if (skip) return;
  tmp = await tempDir('srs-raccount-');
  temp = join(tmp.dir, 'temp');
  await mkdir(temp, { mode: 0o700 });
  const src = join(tmp.dir, 'src');
  await mkdir(join(src, 'd'), { recursive: true });
  await writeFile(join(src, 'd', 'own.txt'), 'the account\'s own\n');
  await writeFile(join(src, 'top.txt'), 'top\n');
  await chown(join(src, 'top.txt'), 1234, 5678);
  server = await startNonRootServer({ recvArgs: ['--name', HOST, '--mode', 'fake-super', '--plugin', MANIFEST_DIST, '--plugin', LINK_DEST_DIST] });
  login = await startRootLogin();
  const run = await server.backup(src, ['-n', HOST], { timeoutMs: 120_000 });
  assert.equal(run.code, 0, run.stderr);
  const snapshot = readdirSync(join(server.root, HOST)).find((name) => /^\d{4}-.*Z$/.test(name))!;
  tree = join(server.root, HOST, snapshot);
  // In the account's folder, a file of root's that the account cannot read.
  await writeFile(join(tree, 'd', 'roots.txt'), SECRET, { mode: 0o600 });
  assert.equal(statSync(join(tree, 'd')).uid, server.user.uid, 'the folder is the account\'s');
});

after(async () => {
  await login?.stop();
  await server?.stop();
  await tmp?.cleanup();
});

async function contents(dir: string): Promise<string> {
  let out = '';
  for (const entry of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (entry.isFile()) out += await readFile(join(entry.parentPath, entry.name), 'utf8');
  }
  return out;
}

test('to a local DEST: the file the account cannot read is refused, the rest comes back with its owners', { skip, timeout: 120_000 }, async () => {
  const dest = join(tmp.dir, 'local');
  const run = await runNode(adminBin, ['restore', server.root, HOST, dest], { timeoutMs: 100_000, env: { TMPDIR: temp } });
  assert.equal(run.code, 1, run.stderr);
  assert.match(run.stderr, /^ssh-r-sync-admin: error: restore into .* failed: .*roots\.txt.*Permission denied/m);
  assert.doesNotMatch(await contents(dest), /SECRET/);
  assert.equal(existsSync(join(dest, 'd', 'roots.txt')), false);
  assert.equal(readFileSync(join(dest, 'd', 'own.txt'), 'utf8'), 'the account\'s own\n');
  const top = statSync(join(dest, 'top.txt'));
  assert.deepEqual([top.uid, top.gid], [1234, 5678], 'owners from the fake-super store, set by root');
});

test('with --to: read as the account into a private staging folder first; nothing is sent, nothing is left', { skip, timeout: 120_000 }, async () => {
  const dest = join(tmp.dir, 'remote');
  await mkdir(dest);
  const run = await runNode(adminBin, ['restore', '--to', login.to(dest), ...login.restoreArgs(), server.root, HOST], { timeoutMs: 100_000, env: { TMPDIR: temp } });
  assert.equal(run.code, 1, run.stderr);
  assert.match(run.stderr, /failed before anything was sent: reading the backup as its owner \(uid \d+\) .*Permission denied/);
  assert.deepEqual(await readdir(dest), []);
  assert.deepEqual(await readdir(join(temp, 'srs-restore-stages')), [], 'the staging folder is removed');
  // Once the file is gone, the same restore goes through, owners included.
  await rm(join(tree, 'd', 'roots.txt'));
  const again = await runNode(adminBin, ['restore', '--to', login.to(dest), ...login.restoreArgs(), server.root, HOST], { timeoutMs: 100_000, env: { TMPDIR: temp } });
  assert.equal(again.code, 0, again.stderr);
  assert.equal(readFileSync(join(dest, 'd', 'own.txt'), 'utf8'), 'the account\'s own\n');
  const top = statSync(join(dest, 'top.txt'));
  assert.deepEqual([top.uid, top.gid], [1234, 5678]);
  assert.deepEqual(await readdir(join(temp, 'srs-restore-stages')), [], 'the staging folder is removed');
});

test('an rsync older than 3.4.0 is refused for it, with what to do, and nothing is written', { skip, timeout: 60_000 }, async () => {
  // A stand-in that only prints an old version: rsync 3.2 cannot be installed next to 3.4+ here.
  const bin = join(tmp.dir, 'old-rsync');
  await mkdir(bin);
  await writeFile(join(bin, 'rsync'), '#!/bin/sh\necho "rsync  version 3.2.7  protocol version 31"\n', { mode: 0o755 });
  const dest = join(tmp.dir, 'old');
  const run = await runNode(adminBin, ['restore', server.root, HOST, dest], { timeoutMs: 50_000, env: { TMPDIR: temp, PATH: `${bin}:${process.env.PATH}` } });
  assert.equal(run.code, 2, run.stderr);
  assert.match(run.stderr, /^ssh-r-sync-admin: error: root restores a backup another account owns with rsync 3\.4\.0 or newer only \(found 3\.2\.7\): .*upgrade rsync, or restore as that account/m);
  assert.equal(existsSync(dest), false, 'DEST is not even made');
});

test('root\'s own store reached through a symlink is read by root as before (a symlink\'s mode bits are no opening)', { skip, timeout: 60_000 }, async () => {
  const root = join(tmp.dir, 'privileged');
  await mkdir(root, { mode: 0o700 });
  const src = join(tmp.dir, 'src');
  const made = await runRecv(['--local', src, '--name', HOST, '--mode', 'privileged', root]);
  assert.equal(made.code, 0, made.stderr);
  const link = join(tmp.dir, 'by-link');
  await symlink(root, link);
  const dest = join(tmp.dir, 'from-link');
  const run = await runNode(adminBin, ['restore', link, HOST, dest], { timeoutMs: 50_000, env: { TMPDIR: temp } });
  assert.equal(run.code, 0, run.stderr);
  const top = statSync(join(dest, 'top.txt'));
  assert.deepEqual([top.uid, top.gid], [1234, 5678]);
});

test('a stage left by a killed --to restore is removed by the next one; one whose restore still runs is kept', { skip, timeout: 120_000 }, async () => {
  const stale = join(temp, 'srs-restore-stages', 'srs-restore-stage-killed');
  const live = join(temp, 'srs-restore-stages', 'srs-restore-stage-running');
  for (const dir of [stale, live]) {
    await mkdir(join(dir, 'tree'), { recursive: true, mode: 0o700 });
    await writeFile(join(dir, 'tree', 'copy.txt'), 'a staged copy\n');
    await writeFile(join(dir, 'lock'), '');
    const old = new Date(Date.now() - 5 * 60_000);
    await utimes(dir, old, old);
  }
  // The running restore's lock, held as the restore holds it.
  const holder = spawn('flock', ['-x', join(live, 'lock'), '-c', 'echo locked; exec cat'], { stdio: ['pipe', 'pipe', 'inherit'] });
  const exited = new Promise((resolve) => holder.on('close', resolve));
  try {
    await new Promise<void>((resolve, reject) => {
      holder.stdout.on('data', (chunk: Buffer) => chunk.toString().includes('locked') && resolve());
      holder.on('close', () => reject(new Error('flock ended')));
    });
    const dest = join(tmp.dir, 'after-kill');
    await mkdir(dest);
    const run = await runNode(adminBin, ['restore', '--to', login.to(dest), ...login.restoreArgs(), server.root, HOST], { timeoutMs: 100_000, env: { TMPDIR: temp } });
    assert.equal(run.code, 0, run.stderr);
    assert.deepEqual(await readdir(join(temp, 'srs-restore-stages')), ['srs-restore-stage-running'], 'the killed restore\'s stage is gone, the running one\'s kept');
  } finally {
    holder.stdin.end();
    await exited;
    await rm(live, { recursive: true, force: true });
  }
});
