// @ssh-r-sync/plugin-btrfs's store on a real loop-mounted btrfs: runs prepared, rsynced into
// (real rsync with the receiver's default options) and committed give read-only snapshots that
// share their unchanged extents; remove deletes the subvolume; a ROOT not on btrfs is refused in
// one line; planted symlinks, plain directories and subvolumes are never used nor deleted.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chmod, chown, lstat, mkdir, mkdtemp, open, readFile, readdir, readlink, rm, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { defaultRsyncArgs, silentLogger, type DoneMark, type PreparedSnapshot, type RsyncCommand, type SnapshotStore } from '@ssh-r-sync/core';
import btrfsPlugin, { WORK_NAME } from '@ssh-r-sync/plugin-btrfs';
import { repoRoot, tempDir } from './helpers/cli.js';
import { btrfsSays, extentUsage, mountBtrfs, needBtrfs, type BtrfsMount } from './helpers/btrfs.js';

const run = promisify(execFile);
const BIG = 8 * 1024 * 1024;

let fs: BtrfsMount | undefined;
let tmp: { dir: string; cleanup: () => Promise<void> };
let counter = 0;
before(async () => {
  tmp = await tempDir('srs-btrfs-test-');
});
after(async () => {
  await fs?.cleanup();
  await tmp.cleanup();
});

// A fresh ROOT on the shared btrfs (mounted on first use), and a store for host `name` in it.
async function fixture(name = 'h'): Promise<{ root: string; dir: string; store: SnapshotStore }> {
  fs ??= await mountBtrfs();
  const root = join(fs.mountPoint, `root${++counter}`);
  await mkdir(root, { mode: 0o700 });
  return { root, dir: join(root, name), store: openStore(root, name) };
}

function openStore(root: string, name: string): SnapshotStore {
  const plugin = btrfsPlugin();
  assert.ok(plugin.store);
  return plugin.store.open({ root, name, dir: join(root, name) });
}

function command(source: string): RsyncCommand {
  return { program: 'rsync', args: defaultRsyncArgs({ mode: 'fake-super', oneFileSystem: false, compress: false }), source: `${source}/`, destination: '', transportArgs: [], env: {} };
}

function doneMark(prepared: PreparedSnapshot, host: string): DoneMark {
  const now = new Date().toISOString();
  return { version: 1, host, snapshot: prepared.id, completedAt: now, startedAt: now, rsyncExitCode: 0, originalExitCode: 0, files: null, bytes: null, durationMs: 0, mode: 'fake-super', hooks: [], extra: {} };
}

// One backup run as the pipeline drives a store: prepare, rsync into the work tree, commit.
async function backup(store: SnapshotStore, source: string): Promise<PreparedSnapshot> {
  const cmd = command(source);
  const prepared = await store.prepare({ command: cmd, now: new Date(), mode: 'fake-super', logger: silentLogger, signal: new AbortController().signal });
  await run(cmd.program, [...cmd.args, cmd.source, cmd.destination]);
  await store.commit(prepared, doneMark(prepared, store.location.name), new AbortController().signal);
  return prepared;
}

async function source(): Promise<string> {
  const src = await mkdtemp(join(tmp.dir, 'src-'));
  await writeFile(join(src, 'big'), randomBytes(BIG));
  await writeFile(join(src, 'small'), 'one\n');
  await mkdir(join(src, 'dir'));
  await writeFile(join(src, 'dir', 'file'), 'in dir\n');
  return src;
}

async function readOnly(path: string): Promise<string> {
  return (await btrfsSays('property', 'get', '-ts', path, 'ro')).trim();
}

describe('plugin-btrfs store on a loop-mounted btrfs', { concurrency: 1 }, () => {
  test('two runs give two read-only snapshots that share their unchanged extents; latest is the second', async (t) => {
    if (!needBtrfs(t)) return;
    const { dir, store } = await fixture();
    const src = await source();
    const first = await backup(store, src);
    // 4 KiB changed in the middle of the big file, one small file changed.
    const handle = await open(join(src, 'big'), 'r+');
    await handle.write(randomBytes(4096), 0, 4096, BIG / 2);
    await handle.close();
    await writeFile(join(src, 'small'), 'two\n');
    const second = await backup(store, src);

    assert.match(await btrfsSays('subvolume', 'show', dir), /^\s*Subvolume ID:\s+\d+$/m); // ROOT/NAME became a subvolume
    for (const snapshot of [first, second]) {
      assert.equal(await readOnly(join(dir, snapshot.id)), 'ro=true');
      assert.equal(snapshot.workTree, join(dir, WORK_NAME));
      assert.equal(snapshot.inPlace, true);
    }
    assert.equal(await readOnly(join(dir, WORK_NAME)), 'ro=false');
    assert.equal(await readFile(join(dir, first.id, 'small'), 'utf8'), 'one\n');
    assert.equal(await readFile(join(dir, second.id, 'small'), 'utf8'), 'two\n');
    assert.deepEqual(await readFile(join(dir, second.id, 'big')), await readFile(join(src, 'big')));
    assert.equal(await readlink(join(dir, 'latest')), second.id);
    assert.equal(second.previous?.paths.id, first.id);
    const listed = await store.list();
    assert.deepEqual(listed.map((s) => [s.id, s.complete]), [[first.id, true], [second.id, true]]);
    // In place: only the changed blocks of the big file are the second snapshot's own.
    const usage = await extentUsage(join(dir, second.id, 'big'));
    assert.ok(usage.total >= BIG, `total ${usage.total}`);
    assert.ok(usage.exclusive <= 512 * 1024, `exclusive ${usage.exclusive} of ${usage.total}: the rewrite did not keep the unchanged blocks shared`);
    assert.ok(usage.shared >= BIG - 512 * 1024, `shared ${usage.shared}`);
  });

  test('remove deletes the snapshot subvolume, done mark first, then its metadata', async (t) => {
    if (!needBtrfs(t)) return;
    const { dir, store } = await fixture();
    const src = await source();
    const first = await backup(store, src);
    const second = await backup(store, src);
    const [snapshot] = await store.list();
    assert.equal(snapshot!.id, first.id);
    await store.remove(snapshot!);
    assert.equal(existsSync(join(dir, first.id)), false);
    assert.equal(existsSync(first.paths.meta), false);
    const below = await btrfsSays('subvolume', 'list', '-o', dir);
    assert.match(below, new RegExp(`${second.id}$`, 'm'));
    assert.doesNotMatch(below, new RegExp(`${first.id}$`, 'm'));
    assert.deepEqual((await store.list()).map((s) => s.id), [second.id]);
  });

  test('an abandoned run keeps .work to be continued and drops its metadata; tidy drops stale metadata', async (t) => {
    if (!needBtrfs(t)) return;
    const { dir, store } = await fixture();
    const src = await source();
    const first = await backup(store, src);
    // An interrupted run: prepared, part written, never committed.
    const cmd = command(src);
    const interrupted = await store.prepare({ command: cmd, now: new Date(), mode: 'fake-super', logger: silentLogger, signal: new AbortController().signal });
    await writeFile(join(dir, WORK_NAME, 'partial'), 'half\n');
    await store.abandon(interrupted, silentLogger);
    assert.equal(existsSync(interrupted.paths.meta), false);
    assert.equal(await readFile(join(dir, WORK_NAME, 'partial'), 'utf8'), 'half\n');
    // One that died before abandon could run (SIGKILL): its metadata stays until a commit's tidy.
    const killed = await store.prepare({ command: command(src), now: new Date(), mode: 'fake-super', logger: silentLogger, signal: new AbortController().signal });
    assert.ok(existsSync(killed.paths.inProgress));
    const next = await backup(store, src);
    assert.equal(next.previous?.paths.id, first.id);
    const work = await store.tidy(next, silentLogger);
    assert.ok(work, 'tidy has the killed run\'s metadata to remove');
    await work(new AbortController().signal);
    assert.equal(await store.tidy(next, silentLogger), null, 'and nothing after that');
    assert.equal(existsSync(killed.paths.meta), false);
    assert.deepEqual((await store.list()).map((s) => s.id), [first.id, next.id]);
    assert.equal(existsSync(join(dir, next.id, 'partial')), false, 'rsync --delete removed what the source does not have');
  });

  test('.work gone: the next run starts it from a writable snapshot of the newest complete snapshot', async (t) => {
    if (!needBtrfs(t)) return;
    const { dir, store } = await fixture();
    const src = await source();
    const first = await backup(store, src);
    await btrfsSays('subvolume', 'delete', join(dir, WORK_NAME));
    const prepared = await store.prepare({ command: command(src), now: new Date(), mode: 'fake-super', logger: silentLogger, signal: new AbortController().signal });
    assert.equal(prepared.createdEmptyAt, null);
    assert.equal(await readOnly(join(dir, WORK_NAME)), 'ro=false');
    assert.equal(await readFile(join(dir, WORK_NAME, 'small'), 'utf8'), 'one\n');
    assert.match(await btrfsSays('subvolume', 'show', join(dir, WORK_NAME)), new RegExp(`Parent UUID:\\s+${await uuidOf(join(dir, first.id))}`));
    await store.abandon(prepared, silentLogger);
  });

  test('a ROOT that is not on btrfs (a tmpfs) is refused in one line before anything is made', async (t) => {
    if (!needBtrfs(t)) return;
    const root = await mkdtemp(join(tmp.dir, 'tmpfs-'));
    await run('mount', ['-t', 'tmpfs', '-o', 'size=8m,mode=0700', 'tmpfs', root]);
    try {
      const store = openStore(root, 'h');
      const cmd = command(tmp.dir);
      await assert.rejects(
        store.prepare({ command: cmd, now: new Date(), mode: 'fake-super', logger: silentLogger, signal: new AbortController().signal }),
        (error: Error & { code?: string }) => {
          assert.equal(error.code, 'ECONFIG');
          assert.match(error.message, new RegExp(`^${root} is on tmpfs, not btrfs: plugin-btrfs needs BACKUP_ROOT on a btrfs file system`));
          assert.doesNotMatch(error.message, /\n/);
          return true;
        },
      );
      assert.deepEqual(await readdir(root), []);
    } finally {
      await run('umount', [root]);
    }
  });

  test('without the btrfs program, prepare says to install btrfs-progs, before anything is made', async (t) => {
    if (!needBtrfs(t)) return;
    const { root, dir } = await fixture();
    // In a mount namespace of its own, /usr/bin/btrfs is /dev/null (not a program) for the child only.
    const script = `const [plugin, root] = process.argv.slice(1);
const store = (await import(plugin)).default().store.open({ root, name: 'h', dir: root + '/h' });
const command = { program: 'rsync', args: [], source: '/', destination: '', transportArgs: [], env: {} };
await store.prepare({ command, now: new Date(), mode: 'fake-super', logger: { debug() {}, info() {}, warn() {}, error() {}, scope() { return this; } }, signal: new AbortController().signal })
  .then(() => console.log('prepared'), (error) => console.log(error.code + ': ' + error.message));`;
    const plugin = pathToFileURL(join(repoRoot, 'packages/plugin-btrfs/dist/index.js')).href;
    const { stdout } = await run('unshare', ['--mount', '--propagation', 'private', '--', 'sh', '-c', 'mount --bind /dev/null /usr/bin/btrfs && exec "$@"', 'sh', process.execPath, '--input-type=module', '-e', script, plugin, root], { env: { ...process.env, PATH: '/usr/bin:/bin' } });
    assert.equal(stdout.trim(), 'ECONFIG: plugin-btrfs needs the btrfs program, which is not installed: apt-get install btrfs-progs');
    assert.equal(existsSync(dir), false);
  });

  test('rsync options that cannot go with in-place writes are refused, by name', async (t) => {
    if (!needBtrfs(t)) return;
    const { store } = await fixture();
    const cmd = command(tmp.dir);
    cmd.args.push('--link-dest=/elsewhere');
    await assert.rejects(
      store.prepare({ command: cmd, now: new Date(), mode: 'fake-super', logger: silentLogger, signal: new AbortController().signal }),
      /^Error: plugin-btrfs writes each run in place .* cannot also use --link-dest=\/elsewhere .*: remove it$|cannot also use --link-dest=\/elsewhere/,
    );
  });

  test('a host directory with files that is not a subvolume is refused with what to do; its files stay', async (t) => {
    if (!needBtrfs(t)) return;
    const { root, dir, store } = await fixture();
    await mkdir(dir, { mode: 0o700 });
    await writeFile(join(dir, 'theirs'), 'keep\n');
    await assert.rejects(
      store.prepare({ command: command(tmp.dir), now: new Date(), mode: 'fake-super', logger: silentLogger, signal: new AbortController().signal }),
      new RegExp(`^SshRSyncError: ${dir} is a plain directory with files in it, not a btrfs subvolume: .*move it aside \\(mv ${dir} ${root}/\\.h\\.old\\) and run again$`),
    );
    assert.deepEqual(await readdir(dir), ['theirs']);
    // An empty one becomes a subvolume.
    await rm(join(dir, 'theirs'));
    const prepared = await store.prepare({ command: command(tmp.dir), now: new Date(), mode: 'fake-super', logger: silentLogger, signal: new AbortController().signal });
    assert.equal((await lstat(dir)).ino, 256);
    assert.equal((await lstat(dir)).mode & 0o777, 0o700);
    await store.abandon(prepared, silentLogger);
  });

  test('hostile plants: a .work symlink, snapshot-named symlinks and plain directories are neither used nor deleted', async (t) => {
    if (!needBtrfs(t)) return;
    const { root, dir, store } = await fixture();
    const src = await source();
    await backup(store, src);
    // Outside ROOT/NAME, on the same btrfs: a subvolume and a directory that must survive.
    const outside = join(root, 'outside');
    await mkdir(outside);
    await btrfsSays('subvolume', 'create', join(outside, 'vol'));
    await writeFile(join(outside, 'vol', 'secret'), 'not yours\n');
    await mkdir(join(outside, 'plain'));

    // .work replaced by a symlink to the outside subvolume: refused, nothing written through it.
    await btrfsSays('subvolume', 'delete', join(dir, WORK_NAME));
    await symlink(join(outside, 'vol'), join(dir, WORK_NAME));
    await assert.rejects(
      store.prepare({ command: command(src), now: new Date(), mode: 'fake-super', logger: silentLogger, signal: new AbortController().signal }),
      new RegExp(`^SshRSyncError: ${dir}/\\.work is a symlink: plugin-btrfs keeps its working subvolume there .*remove it \\(it is not a snapshot\\) and run again$`),
    );
    await rm(join(dir, WORK_NAME));
    // A plain directory as .work: refused too (it is not a subvolume: no snapshot can be made of it).
    await mkdir(join(dir, WORK_NAME));
    await assert.rejects(
      store.prepare({ command: command(src), now: new Date(), mode: 'fake-super', logger: silentLogger, signal: new AbortController().signal }),
      /\.work is a plain directory, not a btrfs subvolume: /,
    );
    await rm(join(dir, WORK_NAME), { recursive: true });

    // Snapshot-named symlinks with done marks, the newest dated last: one to the outside
    // subvolume, one to a plain directory; and a plain directory under a snapshot's name.
    const planted = ['2030-01-01T000000Z', '2030-01-02T000000Z', '2030-01-03T000000Z'];
    await symlink(join(outside, 'vol'), join(dir, planted[0]!));
    await mkdir(join(dir, planted[1]!));
    await symlink(join(outside, 'plain'), join(dir, planted[2]!));
    for (const id of planted) {
      await mkdir(join(dir, `${id}.meta`));
      await writeFile(join(dir, `${id}.meta`, 'done.json'), JSON.stringify({ version: 1, host: 'h', snapshot: id }));
    }
    const listed = await store.list(new Date('2030-01-04T00:00:00Z'));
    for (const id of planted) {
      const snapshot = listed.find((s) => s.id === id)!;
      assert.equal(snapshot.complete, true);
      await assert.rejects(store.remove(snapshot), new RegExp(`^SshRSyncError: not deleting ${dir}/${id}: it is (a symlink|a plain directory, not a btrfs subvolume), which plugin-btrfs never makes there`));
      assert.ok(existsSync(snapshot.paths.doneMark), 'a refused remove leaves the done mark');
    }
    // .work is gone and the newest "complete" snapshot is a planted symlink: .work starts
    // empty, not as a copy of what the symlink leads to.
    await rm(join(dir, planted[2]!));
    await rm(join(dir, `${planted[2]!}.meta`), { recursive: true });
    await rm(join(dir, planted[1]!), { recursive: true });
    await rm(join(dir, `${planted[1]!}.meta`), { recursive: true });
    const prepared = await store.prepare({ command: command(src), now: new Date('2030-01-04T00:00:00Z'), mode: 'fake-super', logger: silentLogger, signal: new AbortController().signal });
    assert.deepEqual(await readdir(join(dir, WORK_NAME)), []);
    assert.equal(prepared.createdEmptyAt, null, 'no inode of an empty .work came through a link');
    await store.abandon(prepared, silentLogger);
    assert.equal(await readFile(join(outside, 'vol', 'secret'), 'utf8'), 'not yours\n');
    assert.ok(existsSync(join(outside, 'plain')));
  });
});

async function uuidOf(path: string): Promise<string> {
  const match = /^\s*UUID:\s+(\S+)/m.exec(await btrfsSays('subvolume', 'show', path));
  assert.ok(match);
  return match[1]!;
}

// The store driven by a non-root user (a throwaway srs-XXXX owning ROOT): what a receiver that
// is not root can do on btrfs depends on the mount option user_subvol_rm_allowed.
const AS_USER_SCRIPT = `
import { execFileSync } from 'node:child_process';
const [core, plugin, root, name, src, action] = process.argv.slice(2);
const { defaultRsyncArgs, silentLogger } = await import(core);
const store = (await import(plugin)).default().store.open({ root, name, dir: root + '/' + name });
const signal = new AbortController().signal;
try {
  if (action === 'backup') {
    const command = { program: 'rsync', args: defaultRsyncArgs({ mode: 'fake-super', oneFileSystem: false, compress: false }), source: src + '/', destination: '', transportArgs: [], env: {} };
    const prepared = await store.prepare({ command, now: new Date(), mode: 'fake-super', logger: silentLogger, signal });
    execFileSync('rsync', [...command.args, command.source, command.destination]);
    const at = new Date().toISOString();
    await store.commit(prepared, { version: 1, host: name, snapshot: prepared.id, completedAt: at, startedAt: at, rsyncExitCode: 0, originalExitCode: 0, files: null, bytes: null, durationMs: 0, mode: 'fake-super', hooks: [], extra: {} }, signal);
    console.log(prepared.id);
  } else {
    const [oldest] = await store.list();
    await store.remove(oldest);
    console.log(oldest.id);
  }
} catch (error) {
  console.error(error.code + ': ' + error.message);
  process.exit(1);
}
`;

describe('plugin-btrfs store as a non-root user', { concurrency: 1 }, () => {
  for (const allowed of [true, false]) {
    test(allowed ? 'with user_subvol_rm_allowed: snapshots are made and removed' : 'without user_subvol_rm_allowed: remove says which mount option on which file system, and the snapshot stays complete', async (t) => {
      if (!needBtrfs(t)) return;
      const { createThrowawayUser, removeThrowawayUser } = await import('./helpers/nonroot-server.js');
      const mount = await mountBtrfs({ options: allowed ? ['user_subvol_rm_allowed'] : [] });
      const base = await mkdtemp(join(tmp.dir, 'user-'));
      const user = await createThrowawayUser(base);
      try {
        await chmod(join(mount.mountPoint, '..'), 0o711);
        await chmod(base, 0o711);
        await chmod(tmp.dir, 0o711);
        const root = join(mount.mountPoint, 'root');
        await mkdir(root, { mode: 0o700 });
        await chown(root, user.uid, user.gid);
        const src = await source();
        await run('chmod', ['-R', 'a+rX', src]);
        await chmod(join(src, '..'), 0o711);
        const script = join(base, 'as-user.mjs');
        await writeFile(script, AS_USER_SCRIPT);
        const core = pathToFileURL(join(repoRoot, 'packages/core/dist/index.js')).href;
        const plugin = pathToFileURL(join(repoRoot, 'packages/plugin-btrfs/dist/index.js')).href;
        const asUser = (action: string) =>
          run('runuser', ['-u', user.name, '--', process.execPath, script, core, plugin, root, 'h', src, action], { cwd: base }).then(
            ({ stdout }) => ({ code: 0, stdout: stdout.trim(), stderr: '' }),
            (error: { code: number; stdout: string; stderr: string }) => ({ code: error.code, stdout: error.stdout.trim(), stderr: error.stderr.trim() }),
          );
        const first = await asUser('backup');
        assert.equal(first.code, 0, first.stderr);
        const second = await asUser('backup');
        assert.equal(second.code, 0, second.stderr);
        assert.equal(await readOnly(join(root, 'h', first.stdout)), 'ro=true');
        const removed = await asUser('remove');
        if (allowed) {
          assert.equal(removed.code, 0, removed.stderr);
          assert.equal(removed.stdout, first.stdout);
          assert.equal(existsSync(join(root, 'h', first.stdout)), false);
          assert.equal(existsSync(join(root, 'h', `${first.stdout}.meta`)), false);
        } else {
          assert.equal(removed.code, 1);
          const loop = (await run('findmnt', ['-n', '-o', 'SOURCE', mount.mountPoint])).stdout.trim();
          assert.equal(
            removed.stderr,
            `ECONFIG: cannot delete btrfs snapshot ${join(root, 'h', first.stdout)}: a non-root receiver needs the mount option user_subvol_rm_allowed on the btrfs file system ${loop} mounted at ${mount.mountPoint} (mount -o remount,user_subvol_rm_allowed ${mount.mountPoint}, and in /etc/fstab), or run the receiver as root`,
          );
          assert.equal(await readOnly(join(root, 'h', first.stdout)), 'ro=true');
          assert.ok(existsSync(join(root, 'h', `${first.stdout}.meta`, 'done.json')), 'the snapshot is still complete');
        }
      } finally {
        await removeThrowawayUser(user);
        await mount.cleanup();
      }
    });
  }
});
