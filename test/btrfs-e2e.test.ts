// @ssh-r-sync/plugin-btrfs end to end: the real client through a throwaway sshd to the real
// receiver, whose BACKUP_ROOT is a loop-mounted btrfs. Two backups give two read-only snapshots
// that share extents; an interrupted run is continued; rotation deletes a subvolume; restore and
// verify --data round trip with the manifest; status, versions and diff read them; a host kept by
// plugin-link-dest is refused when switched to plugin-btrfs; a non-root receiver works with
// user_subvol_rm_allowed and is told the one missing mount option without it.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, lstatSync, readdirSync, readlinkSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, open, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { startBackupServer, type BackupServer } from './helpers/backup-server.js';
import { btrfsSays, extentUsage, mountBtrfs, needBtrfs, type BtrfsMount } from './helpers/btrfs.js';
import { clientBin, processesMatching, repoRoot, runNode, runProgram, tempDir, writeScript, type RunResult } from './helpers/cli.js';
import { startNonRootServer } from './helpers/nonroot-server.js';
import { compareTrees } from './helpers/tree.js';

const BTRFS_DIST = join(repoRoot, 'packages/plugin-btrfs/dist/index.js');
const MANIFEST_DIST = join(repoRoot, 'packages/plugin-manifest/dist/index.js');
const LINK_DEST_DIST = join(repoRoot, 'packages/plugin-link-dest/dist/index.js');
const ROTATE_DIST = join(repoRoot, 'packages/plugin-rotate/dist/index.js');
const adminBin = join(repoRoot, 'packages/cli/bin/ssh-r-sync-admin.js');
const SNAPSHOT_ID = /^\d{4}-\d{2}-\d{2}T\d{6}Z$/;
const BIG = 8 * 1024 * 1024;
const NAME = 'bt';

let tmp: { dir: string; cleanup: () => Promise<void> };
before(async () => (tmp = await tempDir('srs-btrfs-e2e-')));
after(() => tmp.cleanup());

const snapshotIds = (host: string) => (existsSync(host) ? readdirSync(host).filter((entry) => SNAPSHOT_ID.test(entry)).sort() : []);
const readOnly = async (path: string) => (await btrfsSays('property', 'get', '-ts', path, 'ro')).trim();
// The client's files, every attribute and byte (the top directory is the receiver's: 0700).
const assertSameFiles = async (src: string, copy: string, what: string) => assert.deepEqual(await compareTrees(src, copy, { top: false }), [], `${what} differs from the source`);
const admin = (args: string[]) => runNode(adminBin, args, { timeoutMs: 120_000 });

function succeeded(run: RunResult, what: string): { status: string; snapshot: string | null; files: number | null } {
  assert.equal(run.code, 0, `${what}: exit ${run.code}\n${run.stderr}`);
  return JSON.parse(run.stdout.trim().split('\n').at(-1)!);
}

async function source(): Promise<string> {
  const src = await mkdtemp(join(tmp.dir, 'src-'));
  await writeFile(join(src, 'big'), randomBytes(BIG));
  await writeFile(join(src, 'changed.txt'), 'version 1\n');
  await mkdir(join(src, 'dir'));
  await writeFile(join(src, 'dir', 'unchanged.txt'), 'the same in every backup\n');
  return src;
}

async function waitUntil(what: string, ready: () => boolean | Promise<boolean>, ms = 30_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await ready())) {
    assert.ok(Date.now() < deadline, `${what}: not within ${ms / 1000} s`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

describe('plugin-btrfs through sshd, ROOT on a loop-mounted btrfs', { concurrency: 1 }, () => {
  let server: BackupServer | undefined;
  let fs: BtrfsMount | undefined;
  let src: string;
  let host: string;
  const args = ['--name', NAME, '--plugin', BTRFS_DIST, '--plugin', MANIFEST_DIST];

  before(async () => {
    if (process.getuid?.() !== 0 && !process.env.CI) return;
    server = await startBackupServer({ recvArgs: args });
    fs = await mountBtrfs({ at: server.root });
    src = await source();
    host = join(server.root, NAME);
  });
  after(async () => {
    await fs?.cleanup(); // before sshd's directory (which holds ROOT) is removed
    await server?.stop();
  });

  test('two backups: two read-only snapshots, the client told each id, unchanged blocks shared, latest', async (t) => {
    if (!needBtrfs(t)) return;
    const first = succeeded(await server!.backup(src, ['-n', NAME, '--json'], { timeoutMs: 60_000 }), 'the first backup');
    const handle = await open(join(src, 'big'), 'r+');
    await handle.write(randomBytes(4096), 0, 4096, BIG / 2);
    await handle.close();
    await writeFile(join(src, 'changed.txt'), 'version 2\n');
    const second = succeeded(await server!.backup(src, ['-n', NAME, '--json'], { timeoutMs: 60_000 }), 'the second backup');
    assert.deepEqual(snapshotIds(host), [first.snapshot, second.snapshot]);
    for (const id of [first.snapshot!, second.snapshot!]) assert.equal(await readOnly(join(host, id)), 'ro=true');
    assert.equal(readlinkSync(join(host, 'latest')), second.snapshot);
    assert.equal(await readFile(join(host, first.snapshot!, 'changed.txt'), 'utf8'), 'version 1\n');
    await assertSameFiles(src, join(host, second.snapshot!), 'the second snapshot');
    assert.ok(existsSync(join(host, `${second.snapshot}.meta`, 'manifest.tsv')));
    const usage = await extentUsage(join(host, second.snapshot!, 'big'));
    assert.ok(usage.exclusive <= 512 * 1024, `the second snapshot's big file has ${usage.exclusive} bytes of its own: in-place writing did not keep its blocks shared`);
  });

  test('status counts the snapshots; versions and diff read their manifests; restore and verify --data round trip', async (t) => {
    if (!needBtrfs(t)) return;
    const status = await admin(['status', server!.root, NAME, '--json']);
    assert.equal(status.code, 0, status.stderr);
    const [entry] = JSON.parse(status.stdout).hosts as { name: string; kind: string; complete: number; incomplete: number; newestComplete: { id: string } }[];
    assert.equal(entry!.name, NAME);
    assert.notEqual(entry!.kind, 'mirror');
    assert.equal(entry!.complete, 2);
    assert.equal(entry!.incomplete, 0);
    assert.equal(entry!.newestComplete.id, readlinkSync(join(host, 'latest')));
    const [a, b] = snapshotIds(host);
    const versions = await admin(['versions', server!.root, NAME, 'changed.txt', '--json']);
    assert.equal(versions.code, 0, versions.stderr);
    assert.deepEqual((JSON.parse(versions.stdout).versions as { first: string; last: string }[]).map((v) => [v.first, v.last]), [[a, a], [b, b]]);
    const diff = await admin(['diff', server!.root, NAME, a!, b!, '--json']);
    assert.equal(diff.code, 0, diff.stderr);
    assert.deepEqual((JSON.parse(diff.stdout).changes as { change: string; path: string }[]).map((c) => [c.change, c.path]), [['M', 'big'], ['M', 'changed.txt']]);
    const verify = await admin(['verify', '--data', '--snapshot', 'all', server!.root, NAME]);
    assert.equal(verify.code, 0, `${verify.stdout}\n${verify.stderr}`);
    const dest = join(tmp.dir, 'restored');
    const restore = await admin(['restore', server!.root, NAME, dest]);
    assert.equal(restore.code, 0, restore.stderr);
    await assertSameFiles(src, dest, 'the restored tree');
  });

  test('a client that dies mid-transfer leaves .work to be continued, and no snapshot; the next backup continues it', async (t) => {
    if (!needBtrfs(t)) return;
    const slow = await writeScript(tmp.dir, 'slow.sh', "printf -- '--bwlimit=256\\0'");
    await server!.setRecvArgs([...args, '-x', `rsync.pre:${slow}`]);
    // Incompressible (the receiver's rsync compresses), and sorted after changed.txt.
    await writeFile(join(src, 'zz-big.bin'), randomBytes(8 * 1024 * 1024));
    await writeFile(join(src, 'changed.txt'), 'version 3, sent before the client dies\n');
    const before = snapshotIds(host);
    const client = spawn(process.execPath, [clientBin, ...server!.clientArgs(), '-n', NAME, `${server!.sshd.user}@127.0.0.1`, src], { detached: true, stdio: 'ignore' });
    const exited = new Promise((resolve) => client.once('exit', resolve));
    try {
      await waitUntil('the receiver writing changed.txt into .work', async () => (await readFile(join(host, '.work', 'changed.txt'), 'utf8').catch(() => '')).startsWith('version 3'));
    } finally {
      process.kill(-client.pid!, 'SIGKILL');
    }
    await exited;
    await waitUntil('the receiver stopping', async () => (await processesMatching(server!.root)).length === 0);
    assert.deepEqual(snapshotIds(host), before, 'no snapshot of the interrupted run');
    assert.deepEqual(readdirSync(host).filter((entry) => entry.endsWith('.meta')).sort(), before.map((id) => `${id}.meta`), 'its metadata went with it');
    assert.equal(await readOnly(join(host, '.work')), 'ro=false');

    await server!.setRecvArgs(args);
    const resumed = succeeded(await server!.backup(src, ['-n', NAME, '--json'], { timeoutMs: 60_000 }), 'the backup after the interruption');
    assert.ok((resumed.files ?? 0) <= 1, `changed.txt was sent again: ${resumed.files} files transferred`);
    assert.deepEqual(snapshotIds(host), [...before, resumed.snapshot]);
    await assertSameFiles(src, join(host, resumed.snapshot!), 'the snapshot after the interruption');
  });

  test('rotation deletes the subvolume of an expired snapshot', async (t) => {
    if (!needBtrfs(t)) return;
    const config = join(tmp.dir, 'rotate.config.json');
    await writeFile(config, JSON.stringify({ plugins: [BTRFS_DIST, MANIFEST_DIST, [ROTATE_DIST, { keep: '1h', keepLast: 1 }]] }));
    await server!.setRecvArgs(['--name', NAME, '--config', config]);
    const before = snapshotIds(host);
    const run = succeeded(await server!.backup(src, ['-n', NAME, '--json'], { timeoutMs: 60_000 }), 'the backup with rotation');
    await waitUntil('rotation after the session', async () => snapshotIds(host).length === 1 && (await processesMatching(server!.root)).length === 0);
    assert.deepEqual(snapshotIds(host), [run.snapshot]);
    const below = await btrfsSays('subvolume', 'list', '-o', host);
    for (const id of before) assert.doesNotMatch(below, new RegExp(`${id}$`, 'm'), `${id}'s subvolume is deleted`);
    assert.equal(readdirSync(host).filter((entry) => entry.endsWith('.meta')).length, 1);
    await server!.setRecvArgs(args);
  });

  test('a host kept by plugin-link-dest is refused when switched to plugin-btrfs, with what to do', async (t) => {
    if (!needBtrfs(t)) return;
    await server!.setRecvArgs(['--name', 'switch', '--plugin', LINK_DEST_DIST]);
    succeeded(await server!.backup(src, ['-n', 'switch', '--json'], { timeoutMs: 60_000 }), 'the link-dest backup');
    const kept = snapshotIds(join(server!.root, 'switch'));
    await server!.setRecvArgs(['--name', 'switch', '--plugin', BTRFS_DIST]);
    const refused = await server!.backup(src, ['-n', 'switch'], { timeoutMs: 60_000 });
    assert.equal(refused.code, 2, refused.stderr);
    const dir = join(server!.root, 'switch');
    assert.match(refused.stderr, new RegExp(`^ssh-r-sync: error: ${dir} holds snapshots of switch, but this run stores btrfs snapshots; a host never changes store kind by itself: load @ssh-r-sync/plugin-link-dest as before, or move the old snapshots aside \\(mv ${dir} ${server!.root}/\\.switch\\.snapshots\\) and start afresh`));
    assert.deepEqual(snapshotIds(join(server!.root, 'switch')), kept);
    assert.equal(existsSync(join(server!.root, 'switch', '.work')), false);
    assert.notEqual(lstatSync(join(server!.root, 'switch')).ino, 256, 'the host directory was not replaced by a subvolume');
    await server!.setRecvArgs(args);
  });
});

describe('plugin-btrfs with a non-root receiver', { concurrency: 1 }, () => {
  for (const allowed of [true, false]) {
    test(allowed ? 'with user_subvol_rm_allowed: backups and prune work' : 'without user_subvol_rm_allowed: backups work, prune says which mount option on which file system', async (t) => {
      if (!needBtrfs(t)) return;
      const server = await startNonRootServer({ recvArgs: ['--name', 'nr', '--mode', 'fake-super', '--plugin', BTRFS_DIST, '--plugin', MANIFEST_DIST] });
      let fs: BtrfsMount | undefined;
      try {
        fs = await mountBtrfs({ at: server.root, options: allowed ? ['user_subvol_rm_allowed'] : [] });
        const src = await source();
        await chmod(src, 0o755);
        const ids: string[] = [];
        for (let i = 0; i < 2; i++) {
          await writeFile(join(src, 'changed.txt'), `version ${i}\n`);
          const run = await server.backup(src, ['-n', 'nr', '--json'], { timeoutMs: 60_000 });
          ids.push(succeeded(run, `backup ${i + 1} to the non-root receiver`).snapshot!);
        }
        const host = join(server.root, 'nr');
        assert.deepEqual(snapshotIds(host), ids);
        // prune as the receiver's own user, as its systemd unit or cron job would.
        const pruned = await runAs(server.user.name, [process.execPath, adminBin, 'prune', '--keep', '1h', server.root, 'nr']);
        if (allowed) {
          assert.equal(pruned.code, 0, pruned.stderr);
          assert.deepEqual(snapshotIds(host), [ids[1]]);
        } else {
          assert.equal(pruned.code, 1, pruned.stdout + pruned.stderr);
          assert.match(pruned.stderr, new RegExp(`^ssh-r-sync-admin\\[nr\\]: error: could not delete ${ids[0]}: cannot delete btrfs snapshot ${host}/${ids[0]}: a non-root receiver needs the mount option user_subvol_rm_allowed on the btrfs file system /dev/loop\\d+ mounted at ${server.root} \\(mount -o remount,user_subvol_rm_allowed ${server.root}, and in /etc/fstab\\), or run the receiver as root$`, 'm'));
          assert.deepEqual(snapshotIds(host), ids);
          assert.ok(existsSync(join(host, `${ids[0]}.meta`, 'done.json')), 'the snapshot that could not be deleted is still complete');
        }
      } finally {
        await fs?.cleanup();
        await server.stop();
      }
    });
  }
});

// Runs argv as `user` (runuser: no password, no shell), from a directory it may read.
function runAs(user: string, argv: string[]): Promise<RunResult> {
  return runProgram('runuser', ['-u', user, '--', ...argv], { cwd: '/', env: { ...process.env, NO_COLOR: '1' }, timeoutMs: 120_000 });
}
