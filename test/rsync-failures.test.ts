// Errors carry the cause: a full disk, a file that vanished mid-transfer, a killed rsync and a
// killed ssh, made to happen for real, each end with one line that says what happened in words,
// on the receiver (--local) and on the client of a real reverse backup through sshd.
//
// How each is made: BACKUP_ROOT on a 2 MiB tmpfs for a 3 MiB source; for the vanished file an
// `-r` wrapper that slows rsync down and removes zz-vanish once rsync's sender has aa-big open
// (the file list is complete then, and the sender opens zz-vanish only after aa-big); for the
// kills, wrappers that SIGKILL rsync (or ssh, found first in the client's PATH) once it runs.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { startBackupServer, type BackupServer } from './helpers/backup-server.js';
import { runRecv, tempDir, writeScript, type RunResult } from './helpers/cli.js';
import { processesUsing, waitUntil } from './helpers/fake-peer.js';
import { pseudoRandom } from './helpers/tree.js';

const NAME = 'h';
let tmp: { dir: string; cleanup: () => Promise<void> };
let count = 0;
const mounts: string[] = [];

before(async () => {
  tmp = await tempDir('srs-failures-');
});
after(async () => {
  for (const mount of mounts.splice(0)) execFileSync('umount', [mount]);
  await tmp?.cleanup();
});

// A source with `files` (name → size) and an empty BACKUP_ROOT (0700).
async function fixture(files: Record<string, number>): Promise<{ base: string; src: string; root: string }> {
  const base = join(tmp.dir, `f${++count}`);
  const src = join(base, 'src');
  const root = join(base, 'root');
  await mkdir(src, { recursive: true });
  await mkdir(root, { mode: 0o700 });
  for (const [name, size] of Object.entries(files)) await writeFile(join(src, name), pseudoRandom(size, name));
  return { base, src, root };
}

// Mounts a 2 MiB tmpfs on `dir` (root's, 0700), unmounted after the tests.
function smallDisk(dir: string): void {
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=2m,mode=0700', 'tmpfs', dir]);
  mounts.push(dir);
}

function unmount(dir: string): void {
  execFileSync('umount', [dir]);
  mounts.splice(mounts.indexOf(dir), 1);
}

// The lines of stderr that report an error: there must be exactly one.
function errorLine(result: RunResult, prefix: string): string {
  const lines = result.stderr.split('\n').filter((line) => line.startsWith(`${prefix}: error:`));
  assert.equal(lines.length, 1, `one error line expected:\n${result.stderr}`);
  return lines[0]!;
}

describe('the receiver says what happened (--local)', () => {
  test('a full BACKUP_ROOT: exit 1 and "no space left on BACKUP_ROOT", with the file rsync was writing', async () => {
    const f = await fixture({ 'big.bin': 3 << 20, 'small.txt': 100 });
    smallDisk(f.root);
    try {
      const result = await runRecv(['--local', f.src, '--name', NAME, f.root]);
      assert.equal(result.code, 1, result.stderr);
      assert.match(
        errorLine(result, 'ssh-r-sync-recv'),
        new RegExp(`^ssh-r-sync-recv: error: no space left on BACKUP_ROOT \\(${f.root}\\): free space there .*: rsync: \\[receiver\\] write failed on "${f.root}/${NAME}/big\\.bin": No space left on device \\(28\\)$`),
      );
    } finally {
      unmount(f.root);
    }
  });

  test('a file that vanishes during the transfer: exit 1, says so and names it', async () => {
    const f = await fixture({ 'aa-big': 1 << 20, 'zz-vanish': 10 });
    const vanish = join(f.src, 'zz-vanish');
    const wrapper = await writeScript(
      f.base,
      'rsync-vanish',
      `rsync --bwlimit=256 "$@" &\npid=$!\n` +
        `while kill -0 $pid 2>/dev/null && ! ls -l /proc/$pid/fd 2>/dev/null | grep -q '/aa-big$'; do sleep 0.02; done\n` +
        `rm -f '${vanish}'\nwait $pid\n`,
    );
    const result = await runRecv(['--local', f.src, '--name', NAME, '-r', wrapper, f.root]);
    assert.equal(result.code, 1, result.stderr);
    assert.equal(
      errorLine(result, 'ssh-r-sync-recv'),
      `ssh-r-sync-recv: error: some files vanished on the client during the transfer (rsync exit 24; an rsync.post hook can map 24 to 0): file has vanished: "${vanish}"`,
    );
  });

  test('rsync killed with SIGKILL: exit 1, the signal named', async () => {
    const f = await fixture({ 'a.bin': 1 << 20 });
    // The wrapper becomes rsync (exec); a background job of its own kills that process once it is rsync.
    const wrapper = await writeScript(
      f.base,
      'rsync-killed',
      `self=$$\nrsync=$(readlink -f "$(command -v rsync)")\n` +
        `(while [ -e /proc/$self ] && [ "$(readlink /proc/$self/exe)" != "$rsync" ]; do sleep 0.01; done; kill -KILL $self) </dev/null >/dev/null 2>&1 &\n` +
        `exec rsync --bwlimit=100 "$@"\n`,
    );
    const result = await runRecv(['--local', f.src, '--name', NAME, '-r', wrapper, f.root]);
    assert.equal(result.code, 1, result.stderr);
    assert.equal(errorLine(result, 'ssh-r-sync-recv'), 'ssh-r-sync-recv: error: rsync was killed by SIGKILL');
  });
});

describe('the client of a reverse backup is told the same', { timeout: 120_000 }, () => {
  let server: BackupServer;
  before(async () => {
    server = await startBackupServer({ recvArgs: ['--name', NAME] });
  });
  after(async () => {
    if (mounts.includes(server?.root)) unmount(server.root);
    await server?.stop();
  });

  test('a full BACKUP_ROOT on the server', async () => {
    const f = await fixture({ 'big.bin': 3 << 20 });
    smallDisk(server.root);
    try {
      const result = await server.backup(f.src, ['-n', NAME]);
      assert.equal(result.code, 1, result.stderr);
      assert.match(errorLine(result, 'ssh-r-sync'), new RegExp(`^ssh-r-sync: error: no space left on BACKUP_ROOT \\(${server.root}\\): .*No space left on device \\(28\\) \\(rsync exit 11\\)$`));
    } finally {
      unmount(server.root);
    }
  });

  test('ssh killed with SIGKILL during the run: the client names the signal; nothing is left running', async () => {
    const f = await fixture({ 'a.bin': 1000 });
    const mark = join(f.base, 'serving');
    // The receiver's rsync.pre hook says the run is under way, then waits for the end of the run.
    const pre = await writeScript(f.base, 'pre-waits.sh', `touch '${mark}'\nexec sleep 60\n`);
    await server.setRecvArgs(['--name', NAME, '-x', `rsync.pre:${pre}`]);
    const bin = join(f.base, 'bin');
    await mkdir(bin);
    await writeScript(
      bin,
      'ssh',
      `self=$$\n(while [ -e /proc/$self ] && [ ! -e '${mark}' ]; do sleep 0.02; done; kill -KILL $self) </dev/null >/dev/null 2>&1 &\n` +
        `exec ${execFileSync('sh', ['-c', 'command -v ssh'], { encoding: 'utf8' }).trim()} "$@"\n`,
    );
    try {
      const result = await server.backup(f.src, ['-n', NAME], { env: { PATH: `${bin}:${process.env.PATH}` } });
      assert.ok(existsSync(mark), `the run never reached rsync.pre:\n${result.stderr}`);
      assert.equal(result.code, 1, result.stderr);
      assert.equal(errorLine(result, 'ssh-r-sync'), 'ssh-r-sync: error: ssh was killed by SIGKILL');
      await waitUntil(() => processesUsing(pre).length === 0, 30_000);
      assert.deepEqual(processesUsing(pre), [], 'the receiver and its hook end when the client is gone');
    } finally {
      await server.setRecvArgs(['--name', NAME]);
    }
  });
});
