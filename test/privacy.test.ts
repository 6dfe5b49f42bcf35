// Host directories stay private (SPEC §4 rule 9): ROOT/NAME and every snapshot root end a run 0700
// and owned by the receiver, whatever mode and owner the client's top directory has (rsync copies
// both onto its destination), and a privileged receiver refuses a BACKUP_ROOT that other local
// users could read or change, as sshd's StrictModes does. Real runs of ssh-r-sync-recv (--local,
// and once through sshd); a throwaway local user tries to reach a client's setuid file and device.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, lstatSync, readdirSync, statSync } from 'node:fs';
import { chmod, chown, mkdir, symlink, writeFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { startBackupServer } from './helpers/backup-server.js';
import { repoRoot, runRecv, tempDir, writeScript, type RunResult } from './helpers/cli.js';

const NAME = 'h';
const LINK_DEST = '@ssh-r-sync/plugin-link-dest';
const SNAPSHOT_ID = /^\d{4}-\d{2}-\d{2}T\d{6}Z$/;

let tmp: { dir: string; cleanup: () => Promise<void> };
let user: { name: string; uid: number; gid: number };
let count = 0;

before(async () => {
  tmp = await tempDir('srs-privacy-');
  // A local user of the backup server whose uid is also the owner of the clients' top directories.
  const name = `srs-${randomBytes(4).toString('hex')}`;
  execFileSync('useradd', ['--no-create-home', '--shell', '/usr/sbin/nologin', name]);
  user = { name, uid: Number(execFileSync('id', ['-u', name], { encoding: 'utf8' })), gid: Number(execFileSync('id', ['-g', name], { encoding: 'utf8' })) };
});
after(async () => {
  if (user) execFileSync('userdel', [user.name]);
  await tmp?.cleanup();
});

interface Fixture {
  base: string;
  src: string;
  root: string;
  host: string;
}

// A client tree with a setuid-root program and a device node, its top directory `mode` and owned
// by the throwaway user; ROOT 0700 in a fresh directory that everyone may enter.
async function fixture(mode: number): Promise<Fixture> {
  const base = join(tmp.dir, `f${++count}`);
  const src = join(base, 'src');
  const root = join(base, 'root');
  await mkdir(join(src, 'sub'), { recursive: true });
  await mkdir(root, { mode: 0o700 });
  await writeFile(join(src, 'sub', 'file.txt'), 'data\n');
  await writeFile(join(src, 'setuid'), '#!/bin/sh\n');
  await chmod(join(src, 'setuid'), 0o4755);
  execFileSync('mknod', ['-m', '0666', join(src, 'null'), 'c', '1', '3']);
  await chown(src, user.uid, user.gid);
  await chmod(src, mode);
  await chmod(base, 0o755);
  await chmod(tmp.dir, 0o755); // the user can reach ROOT's door; only ROOT's own modes stop them
  return { base, src, root, host: join(root, NAME) };
}

function recv(f: Fixture, extra: string[] = []): Promise<RunResult> {
  return runRecv(['--local', f.src, '--name', NAME, ...extra, f.root], { cwd: repoRoot });
}

function assertExit(result: RunResult, code: number): void {
  assert.equal(result.code, code, `exited ${result.code}, not ${code}:\n${result.stderr}`);
}

function assertPrivate(dir: string, what: string): void {
  const info = lstatSync(dir);
  assert.ok(info.isDirectory(), `${what} is a directory`);
  assert.equal((info.mode & 0o7777).toString(8), '700', `${what} (${dir}) mode`);
  assert.equal(info.uid, 0, `${what} (${dir}) is owned by root, not by uid ${info.uid}`);
}

// What `stat PATH` says when the throwaway user runs it: null if it worked.
function statAsUser(path: string): string | null {
  const run = spawnSync('stat', ['-c', '%A', path], { uid: user.uid, gid: user.gid, encoding: 'utf8', timeout: 10_000 });
  return run.status === 0 ? null : run.stderr.trim();
}

describe('host and snapshot directories end every run 0700 and the receiver\'s', () => {
  for (const mode of [0o755, 0o777]) {
    test(`a mirror of a client whose top directory is ${mode.toString(8)} and owned by a local user`, async () => {
      const f = await fixture(mode);
      assertExit(await recv(f), 0);
      assertPrivate(f.host, 'ROOT/NAME');
      assert.equal(statSync(join(f.host, 'setuid')).mode & 0o7777, 0o4755, 'the setuid file is kept');
      assert.ok(lstatSync(join(f.host, 'null')).isCharacterDevice(), 'the device node is kept');
      // Even with ROOT opened up later (an admin's chmod), ROOT/NAME keeps the user out.
      await chmod(f.root, 0o755);
      for (const name of ['setuid', 'null', 'sub/file.txt']) {
        assert.match(statAsUser(join(f.host, name)) ?? `${user.name} can stat ${name}`, /Permission denied/);
      }
    });
  }

  test('a link-dest snapshot: ROOT/NAME and the snapshot root, on the first and the second run', async () => {
    const f = await fixture(0o777);
    for (const run of [1, 2]) {
      assertExit(await recv(f, ['--plugin', LINK_DEST]), 0);
      const ids = readdirSync(f.host).filter((entry) => SNAPSHOT_ID.test(entry));
      assert.equal(ids.length, run, `snapshots after run ${run}: ${ids.join(', ')}`);
      assertPrivate(f.host, 'ROOT/NAME');
      for (const id of ids) assertPrivate(join(f.host, id), `snapshot ${id}`);
      assert.equal(statSync(join(f.host, 'latest', 'setuid')).mode & 0o7777, 0o4755);
    }
  });

  test('a failed rsync leaves them private too', async () => {
    const f = await fixture(0o755);
    const pre = await writeScript(f.base, 'pre.sh', `printf -- '${f.base}/does-not-exist\\0'`);
    const result = await recv(f, ['-x', `rsync.pre:${pre}`]);
    assertExit(result, 1);
    assertPrivate(f.host, 'ROOT/NAME');
  });

  test('an existing ROOT/NAME left wider (by an older version) is closed at the handshake, before any hook', async () => {
    const f = await fixture(0o755);
    await mkdir(f.host, { mode: 0o755 });
    await chmod(f.host, 0o755);
    await chown(f.host, user.uid, user.gid);
    const skip = await writeScript(f.base, 'skip.sh', 'exit 75');
    const result = await recv(f, ['-x', `handshake:${skip}`]);
    assertExit(result, 75);
    assertPrivate(f.host, 'ROOT/NAME');
  });

  test('a symlink at ROOT/NAME is still refused, and its target outside ROOT is left as it was', async () => {
    const f = await fixture(0o755);
    const outside = join(f.base, 'outside');
    await mkdir(outside, { mode: 0o755 });
    await chmod(outside, 0o755);
    await symlink(outside, f.host);
    const result = await recv(f);
    assertExit(result, 1);
    assert.match(result.stderr, /^ssh-r-sync-recv: error: refused host directory .*outside/m);
    assert.equal(statSync(outside).mode & 0o7777, 0o755, 'the outside directory was not chmodded');
    assert.deepEqual(readdirSync(outside), []);
  });
});

describe('a privileged receiver refuses a BACKUP_ROOT that other users can read or change', () => {
  // One line on stderr, exit 2 (a configuration error), and nothing made in ROOT.
  async function assertRefused(f: Fixture, reason: string, extra: string[] = []): Promise<void> {
    const result = await recv(f, extra);
    assertExit(result, 2);
    const errors = result.stderr.split('\n').filter((line) => line.includes('error:'));
    assert.deepEqual(errors, [`ssh-r-sync-recv: error: refusing to back up into ${f.root}: ${reason}`]);
    assert.deepEqual(readdirSync(f.root), [], 'nothing created in ROOT');
  }

  test('ROOT readable, searchable or writable by others: chmod 700', async () => {
    const f = await fixture(0o755);
    for (const [mode, reason] of [
      [0o755, 'it is readable by other users'],
      [0o750, 'it is readable by other users'],
      [0o711, 'it is searchable by other users'],
      [0o777, 'it is writable by other users'],
      [0o1777, 'it is writable by other users'],
    ] as const) {
      await chmod(f.root, mode);
      await assertRefused(f, `${reason} (chmod 700 ${f.root})`, []);
    }
    await chmod(f.root, 0o700);
    assertExit(await recv(f, ['--mode', 'privileged']), 0);
  });

  test('a directory above ROOT writable by others (unless sticky), or ROOT owned by another user', async () => {
    const f = await fixture(0o755);
    await chmod(f.base, 0o777);
    await assertRefused(f, `${f.base} (above it) is writable by other users (chmod go-w ${f.base})`);
    await chmod(f.base, 0o775);
    await assertRefused(f, `${f.base} (above it) is writable by other users (chmod go-w ${f.base})`);
    // Sticky (like /tmp, where every test's ROOT lives): nobody else can rename or remove ROOT.
    await chmod(f.base, 0o1777);
    assertExit(await recv(f), 0);
    await chmod(f.base, 0o755);
    await chown(f.root, user.uid, user.gid);
    const result = await recv(f);
    assertExit(result, 2);
    assert.match(result.stderr, new RegExp(`^ssh-r-sync-recv: error: refusing to back up into ${f.root}: it is owned by uid ${user.uid}, not root \\(chown root ${f.root}\\)$`, 'm'));
  });

  test('fake-super and plain receivers are not held to it (no real setuid files or devices there)', async () => {
    const f = await fixture(0o755);
    await chmod(f.root, 0o755);
    assertExit(await recv(f, ['--mode', 'fake-super']), 0);
    assertPrivate(f.host, 'ROOT/NAME');
  });

  test('through sshd, the client is told why (exit 2, a configuration error) and nothing is written', { timeout: 60_000 }, async () => {
    const server = await startBackupServer({ recvArgs: ['--name', NAME] });
    try {
      const f = await fixture(0o755);
      await chmod(server.root, 0o750);
      const result = await server.backup(f.src, ['-n', NAME]);
      assert.equal(result.code, 2, result.stderr);
      assert.match(result.stderr, new RegExp(`^ssh-r-sync: error: refusing to back up into ${server.root}: it is readable by other users \\(chmod 700 ${server.root}\\)$`, 'm'));
      assert.ok(!existsSync(join(server.root, NAME)), 'no host directory made');
    } finally {
      await server.stop();
    }
  });
});
