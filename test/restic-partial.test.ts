// A copy restic can make only in part (exit 3: some files of the snapshot could not be read) must
// not pass for the snapshot: the partial restic snapshot is forgotten, the snapshot stays to copy,
// and once it can be read the next sync copies it whole. As the non-root backup user (root reads
// everything), with a fake-super store whose one file an admin left unreadable to it.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { chmod, chown, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { listSnapshots } from '@ssh-r-sync/core';
import { repoRoot, runProgram, tempDir, type RunResult } from './helpers/cli.js';
import { createThrowawayUser, removeThrowawayUser, type ThrowawayUser } from './helpers/nonroot-server.js';

const HOST = 'partial1';
const adminBin = join(repoRoot, 'packages/cli/bin/ssh-r-sync-admin.js');
const recvBin = join(repoRoot, 'packages/cli/bin/ssh-r-sync-recv.js');

let tmp: Awaited<ReturnType<typeof tempDir>>;
let user: ThrowawayUser | undefined;
before(async () => {
  tmp = await tempDir('srs-restic-partial-');
  await chmod(tmp.dir, 0o711);
  user = await createThrowawayUser(tmp.dir);
});
after(async () => {
  if (user) await removeThrowawayUser(user);
  await tmp?.cleanup();
});

// Runs node with a command as the backup user (runuser: no password, no shell).
function asUser(argv: string[]): Promise<RunResult> {
  return runProgram('runuser', ['-u', user!.name, '--', process.execPath, ...argv], { cwd: '/', env: { ...process.env, NO_COLOR: '1', HOME: user!.home }, timeoutMs: 180_000 });
}

describe('a partial copy (restic exit 3)', () => {
  test('is forgotten and reported; the snapshot stays to copy, and is copied whole once it can be read', async () => {
    const { uid, gid, home } = user!;
    const src = join(tmp.dir, 'src');
    await mkdir(src, { mode: 0o755 });
    await writeFile(join(src, 'a.txt'), 'alpha\n', { mode: 0o644 });
    await writeFile(join(src, 'b.txt'), 'beta\n', { mode: 0o644 });
    const root = join(tmp.dir, 'backups');
    await mkdir(root, { mode: 0o700 });
    await chown(root, uid, gid);
    const passwordFile = join(home, 'restic.pass');
    await writeFile(passwordFile, 'partial-secret\n', { mode: 0o600 });
    const repository = join(home, 'repo');
    const repo = (path: string) => ({ name: 'offsite', repository: path, passwordFile });
    // Two configs: the repository, and one that is not there (the copy of the second run fails).
    const config = join(home, 'up.config.json');
    const down = join(home, 'down.config.json');
    await writeFile(config, JSON.stringify({ plugins: ['@ssh-r-sync/plugin-link-dest', ['@ssh-r-sync/plugin-restic', { repositories: [repo(repository)] }]] }));
    await writeFile(down, JSON.stringify({ plugins: ['@ssh-r-sync/plugin-link-dest', ['@ssh-r-sync/plugin-restic', { repositories: [repo(join(home, 'absent'))] }]] }));
    for (const file of [passwordFile, config, down]) await chown(file, uid, gid);
    execFileSync('restic', ['-r', repository, '--password-file', passwordFile, 'init'], { stdio: 'pipe', timeout: 120_000 });
    execFileSync('chown', ['-R', `${uid}:${gid}`, repository]);
    const copies = () =>
      (JSON.parse(execFileSync('restic', ['-r', repository, '--password-file', passwordFile, 'snapshots', '--json', '--host', HOST], { encoding: 'utf8', timeout: 120_000 })) as { id: string; tags: string[] }[]).map((c) => ({
        resticId: c.id,
        id: c.tags.find((t) => t.startsWith('id:'))!.slice(3),
      }));

    const first = await asUser([recvBin, '--config', config, '--local', src, '--name', HOST, root]);
    assert.equal(first.code, 0, first.stderr);
    await writeFile(join(src, 'b.txt'), 'beta, changed\n');
    const second = await asUser([recvBin, '--config', down, '--local', src, '--name', HOST, root]);
    assert.equal(second.code, 0, second.stderr);
    assert.match(second.stderr, /off-site copy to offsite failed: .*; 2 snapshots still to copy/);
    const [one, two] = await listSnapshots(join(root, HOST));
    assert.deepEqual(copies().map((c) => c.id), [one!.id]);

    // The second snapshot's b.txt, as an admin might leave it: root's, mode 000.
    const damaged = join(two!.paths.tree, 'b.txt');
    await chown(damaged, 0, 0);
    await chmod(damaged, 0o000);
    // First while another restic of the account holds the repository (a copy of another host):
    // the partial copy cannot be forgotten at once; it is recorded, counts as no copy, and is
    // never restored from.
    const holder = spawn('runuser', ['-u', user!.name, '--', 'restic', '-r', repository, '--password-file', passwordFile, 'backup', '--stdin', '--host', 'other'], { stdio: ['pipe', 'ignore', 'ignore'], env: { ...process.env, HOME: home } });
    try {
      while (readdirSync(join(repository, 'locks')).filter((n) => !n.includes('-tmp-')).length === 0) await sleep(50);
      const locked = await asUser([adminBin, 'offsite', 'sync', '--config', config, root]);
      assert.equal(locked.code, 1, locked.stderr);
      assert.match(locked.stdout, /exited with code 3: .*the partial copy could not be forgotten yet: it does not count as a copy, and the next run forgets it\)\)\n$/);
      assert.match(locked.stderr, /offsite: offsite \(.*\): restic forget of a partial copy exited with code 1: .*already locked.*; it does not count as a copy, and the next run tries again/);
      const listed = copies();
      assert.deepEqual(listed.map((c) => c.id), [one!.id, two!.id], 'the partial copy is in the repository');
      const recorded = JSON.parse(await readFile(join(root, '.ssh-r-sync', 'offsite', `${HOST}.json`), 'utf8')) as { repositories: { offsite: { pending: string[]; partial: string[] } } };
      assert.deepEqual(recorded.repositories.offsite.partial, [listed[1]!.resticId]);
      assert.deepEqual(recorded.repositories.offsite.pending, [two!.id]);
      const restore = await runProgram(process.execPath, [adminBin, 'restore', '--from-offsite', 'offsite', '--config', config, '--snapshot', two!.id, root, HOST, join(tmp.dir, 'never')], { cwd: '/', env: { ...process.env, NO_COLOR: '1' }, timeoutMs: 180_000 });
      assert.equal(restore.code, 2, restore.stderr);
      assert.match(restore.stderr, new RegExp(`offsite has no copy of ${HOST} ${two!.id} \\(copies: ${one!.id}\\)`));
    } finally {
      holder.stdin!.end();
      if (holder.exitCode === null) await new Promise((resolve) => holder.once('close', resolve));
    }

    // A forget by the repository's own rules waits while a partial copy is there (restic would
    // count it, and it has the whole copy's time to come).
    const keepConfig = join(home, 'keep.config.json');
    await writeFile(keepConfig, JSON.stringify({ plugins: ['@ssh-r-sync/plugin-link-dest', ['@ssh-r-sync/plugin-restic', { repositories: [{ ...repo(repository), keep: '1d' }] }]] }));
    await chown(keepConfig, uid, gid);
    const waits = await asUser([adminBin, 'offsite', 'forget', '--config', keepConfig, root]);
    assert.equal(waits.code, 0, waits.stderr);
    assert.equal(waits.stdout, `${HOST}: offsite: forgot 0\n`);
    assert.match(waits.stderr, /offsite: forget waits until the 1 partial copy is gone/);
    assert.equal(copies().length, 2);

    // Then unlocked, the file still unreadable: the recorded partial copy goes, the new one too.
    const partial = await asUser([adminBin, 'offsite', 'sync', '--config', config, root]);
    assert.equal(partial.code, 1, partial.stderr);
    assert.match(partial.stdout, new RegExp(`^${HOST}: offsite: 0 copied, 1 still to copy \\(failed: offsite \\(.*\\): restic backup of ${two!.id} exited with code 3: .*\\(some files of the snapshot could not be read; the partial copy was forgotten\\)\\)\\n$`));
    assert.match(partial.stderr, /offsite: forgot 1 partial copy \(restic exit 3\)/);
    assert.deepEqual(copies().map((c) => c.id), [one!.id], 'no copy passes for the second snapshot');
    const state = JSON.parse(await readFile(join(root, '.ssh-r-sync', 'offsite', `${HOST}.json`), 'utf8')) as { repositories: { offsite: { pending: string[]; partial: string[]; lastFailure: { error: string } | null } } };
    assert.deepEqual(state.repositories.offsite.pending, [two!.id]);
    assert.deepEqual(state.repositories.offsite.partial, []);
    assert.match(state.repositories.offsite.lastFailure!.error, /code 3/);

    // Readable again: the next sync copies it whole.
    await chown(damaged, uid, gid);
    await chmod(damaged, 0o600);
    const whole = await asUser([adminBin, 'offsite', 'sync', '--config', config, root]);
    assert.equal(whole.code, 0, whole.stderr);
    assert.equal(whole.stdout, `${HOST}: offsite: 1 copied, 0 still to copy\n`);
    const after = copies();
    assert.deepEqual(after.map((c) => c.id), [one!.id, two!.id]);
    const dump = execFileSync('restic', ['-r', repository, '--password-file', passwordFile, 'dump', after[1]!.resticId, '/b.txt'], { encoding: 'utf8', timeout: 120_000 });
    assert.equal(dump, 'beta, changed\n');
  });
});
