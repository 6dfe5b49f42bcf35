// An off-site copy never holds up the host's next backup: it runs after its run has released the
// host's lock (core's unlocked after-session task), one copy of a host at a time (the off-site
// lock). With a repository that hangs, the next backup goes ahead, its rotation keeps the held
// snapshot, and when the repository answers again the running copy copies both, oldest first.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { listSnapshots, readHolds, readHostRecord } from '@ssh-r-sync/core';
import { backupCase, runRecv, tempDir, writeScript } from './helpers/cli.js';
import { initRepository } from './helpers/restic.js';

let tmp: Awaited<ReturnType<typeof tempDir>>;
before(async () => (tmp = await tempDir('srs-restic-unlocked-')));
after(async () => tmp.cleanup());

async function until(what: string, check: () => boolean | Promise<boolean>): Promise<void> {
  const deadline = Date.now() + 120_000;
  while (!(await check())) {
    assert.ok(Date.now() < deadline, `never: ${what}`);
    await sleep(50);
  }
}

// A host `name` backed up locally with plugin-link-dest, plugin-rotate (`rotate`) and plugin-restic
// into a real repository, through a `restic` that waits while HANG exists (`when`: for every
// call, or only for `backup`) and writes its pid to `waiting` when it starts to wait.
async function hangingCase(dir: string, name: string, rotate: Record<string, unknown>, when: 'every call' | 'backup') {
  const f = await backupCase(join(tmp.dir, dir), ['core', 'plugin-restic', 'plugin-rotate', 'plugin-link-dest']);
  const { passwordFile, repository } = await initRepository(f.base, 'unlocked-secret');
  const hangFlag = join(f.base, 'HANG');
  const waiting = join(f.base, 'waiting');
  const wait = `if [ -e ${hangFlag} ]; then echo $$ > ${waiting}.part && mv ${waiting}.part ${waiting}; fi; while [ -e ${hangFlag} ]; do sleep 0.1; done`;
  const restic = await writeScript(f.base, 'restic', `${when === 'backup' ? `case " $* " in *" backup "*) ${wait};; esac` : wait}\nexec restic "$@"\n`);
  const config = join(f.base, 'ssh-r-sync.config.json');
  await writeFile(config, JSON.stringify({ plugins: ['@ssh-r-sync/plugin-link-dest', ['@ssh-r-sync/plugin-rotate', rotate], ['@ssh-r-sync/plugin-restic', { restic, repositories: [{ name: 'offsite', repository, passwordFile }] }]] }));
  return {
    ...f,
    passwordFile,
    repository,
    hangFlag,
    waiting,
    run: () => runRecv(['--config', config, '--local', f.src, '--name', name, f.root], { cwd: f.base, timeoutMs: 180_000 }),
  };
}

describe('an off-site copy runs without the host\'s lock', () => {
  test('a repository that hangs does not hold up the next backup; the held snapshot survives its rotation; both are copied once it answers', async () => {
    // While HANG exists the repository does not answer (a network that swallows packets).
    const f = await hangingCase('f1', 'u1', { keep: '1d' }, 'every call');
    const { passwordFile, repository, hangFlag, waiting, run } = f;
    await writeFile(hangFlag, '');
    const first = run();
    await until('the first run\'s copy waits for the repository', () => existsSync(waiting));
    await writeFile(join(f.src, 'b.txt'), 'beta\n');
    const second = await run();
    assert.equal(second.code, 0, second.stderr);
    assert.match(second.stderr, /\[restic\]: an off-site copy of u1 is running already .*; it copies what is missing, oldest first/);
    const [one, two] = await listSnapshots(join(f.root, 'u1'));
    assert.ok(one?.complete && two?.complete, 'both backups are complete');
    // plugin-rotate's 1d would keep only the newest of the day: the first is held, not deleted.
    assert.match(second.stderr, /\[rotate\]: u1: 2 snapshots kept, 0 deleted/);
    assert.deepEqual([...(await readHolds(f.root, 'u1')).keys()].sort(), [one!.id, two!.id]);

    // The repository answers again: the first run's copy copies both, oldest first, and ends.
    await rm(hangFlag);
    const firstDone = await first;
    assert.equal(firstDone.code, 0, firstDone.stderr);
    assert.doesNotMatch(firstDone.stderr, /error|failed/);
    const copies = (JSON.parse(execFileSync('restic', ['-r', repository, '--password-file', passwordFile, 'snapshots', '--json'], { encoding: 'utf8', timeout: 120_000 })) as { time: string; tags: string[] }[])
      .sort((a, b) => Date.parse(a.time) - Date.parse(b.time))
      .map((c) => c.tags.find((t) => t.startsWith('id:'))!.slice(3));
    assert.deepEqual(copies, [one!.id, two!.id]);
    assert.equal((await readHolds(f.root, 'u1')).size, 0, 'nothing is held once copied');
    const state = JSON.parse(readFileSync(join(f.root, '.ssh-r-sync', 'offsite', 'u1.json'), 'utf8')) as { repositories: { offsite: { lastFailure: unknown; pending: string[] } } };
    assert.equal(state.repositories.offsite.lastFailure, null);
    assert.deepEqual(state.repositories.offsite.pending, []);
    // The host's record: the newer run's own account (its copy found the first one at work).
    assert.deepEqual((await readHostRecord(f.root, 'u1'))?.afterSession?.tasks.map((t) => [t.name, t.outcome]), [['rotate', 'ok'], ['restic', 'ok']]);
    assert.match((await readHostRecord(f.root, 'u1'))?.facts?.restic?.lines[0] ?? '', new RegExp(`^off-site offsite: newest copy ${two!.id}, 0 s behind the newest local snapshot, 0 to copy$`));
  });

  test('the metrics file is written again once the copy ended: it shows the copy the run just made', async () => {
    const f = await backupCase(join(tmp.dir, 'f3'), ['core', 'plugin-restic', 'plugin-link-dest', 'plugin-prometheus']);
    const { passwordFile, repository } = await initRepository(f.base, 'metrics-secret');
    const textfile = join(f.base, 'ssh-r-sync.prom');
    const config = join(f.base, 'ssh-r-sync.config.json');
    // plugin-prometheus first: its report is made before the copy, whatever the order.
    await writeFile(config, JSON.stringify({ plugins: ['@ssh-r-sync/plugin-link-dest', ['@ssh-r-sync/plugin-prometheus', { textfile }], ['@ssh-r-sync/plugin-restic', { repositories: [{ name: 'offsite', repository, passwordFile }] }]] }));
    const run = await runRecv(['--config', config, '--local', f.src, '--name', 'u3', f.root], { cwd: f.base, timeoutMs: 180_000 });
    assert.equal(run.code, 0, run.stderr);
    const [one] = await listSnapshots(join(f.root, 'u3'));
    const metrics = readFileSync(textfile, 'utf8');
    assert.match(metrics, /^ssh_r_sync_restic_offsite_pending_snapshots\{host="u3",repository="offsite"\} 0$/m, metrics);
    const newest = /^ssh_r_sync_restic_offsite_newest_copy_timestamp_seconds\{host="u3",repository="offsite"\} (\S+)$/m.exec(metrics);
    assert.equal(Number(newest?.[1]), Date.parse(one!.done!.startedAt) / 1000, metrics);
  });

  test('a snapshot a rotation without holds deletes while it is copied does not count as copied', async () => {
    // restic's backup (only) waits: it has its snapshot's tree as working directory already when
    // the rotation deletes it.
    const f = await hangingCase('f2', 'u2', { keep: '1d', ignoreHolds: true }, 'backup');
    const { passwordFile, repository, hangFlag, waiting, run } = f;
    await writeFile(hangFlag, '');
    const first = run();
    await until('the first run\'s copy is at its backup', () => existsSync(waiting));
    const [one] = await listSnapshots(join(f.root, 'u2'));
    await writeFile(join(f.src, 'b.txt'), 'beta\n');
    const second = await run();
    assert.equal(second.code, 0, second.stderr);
    assert.match(second.stderr, /\[rotate\]: u2: 1 snapshots kept, 1 deleted/);
    await rm(hangFlag);
    const firstDone = await first;
    assert.equal(firstDone.code, 0, firstDone.stderr);
    assert.match(firstDone.stderr, new RegExp(`snapshot ${one!.id} was removed or rewritten while it was copied .*: that copy does not count`));
    const [two] = await listSnapshots(join(f.root, 'u2'));
    const copies = (JSON.parse(execFileSync('restic', ['-r', repository, '--password-file', passwordFile, 'snapshots', '--json', '--host', 'u2'], { encoding: 'utf8', timeout: 120_000 })) as { tags: string[] }[]).map((c) => c.tags.find((t) => t.startsWith('id:'))!.slice(3));
    assert.ok(!copies.includes(one!.id), `no copy passes for the deleted snapshot: ${copies}`);
    assert.ok(two && two.id !== one!.id);
  });
});
