// In pull mode a long off-site copy never holds up the next pull (issue 13, item 2): with
// --defer-unlocked the receiver (`ssh-r-sync-recv --pull` through a real sshd and rrsync -ro) does
// not run plugin-restic's copy, which would keep its systemd unit active for as long as the
// repository hangs: it exits with the snapshot committed and held, no restic of it left, the
// copy recorded as "deferred" (not a failure in `status`); `ssh-r-sync-admin offsite sync` (what
// the -offsite unit runs) copies it. Without the flag the same pull waits for the copy.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { listSnapshots, readHolds, readHostRecord } from '@ssh-r-sync/core';
import { backupCase, processesMatching, repoRoot, runNode, runRecv, tempDir, writeScript, type RunResult } from './helpers/cli.js';
import { initRepository } from './helpers/restic.js';
import { makeKey, startSshd, type Sshd } from './helpers/sshd.js';

const NAME = 'pullhost';
const RRSYNC = '/usr/bin/rrsync';
const adminBin = join(repoRoot, 'packages/cli/bin/ssh-r-sync-admin.js');

async function until(what: string, check: () => boolean | Promise<boolean>): Promise<void> {
  const deadline = Date.now() + 120_000;
  while (!(await check())) {
    assert.ok(Date.now() < deadline, `never: ${what}`);
    await sleep(50);
  }
}

function assertExit(result: RunResult, code: number, what: string): void {
  assert.equal(result.code, code, `${what} (exit ${result.code}):\n${result.stderr}${result.stdout}`);
}

describe('ssh-r-sync-recv --pull --defer-unlocked with plugin-restic', { concurrency: 1 }, () => {
  let tmp: Awaited<ReturnType<typeof tempDir>>;
  let sshd: Sshd;
  let key: string;
  let publicKey: string;
  before(async () => {
    assert.ok(existsSync(RRSYNC), `${RRSYNC} is missing (apt-get install rsync)`);
    tmp = await tempDir('srs-restic-pull-');
    key = join(tmp.dir, 'recv_key');
    publicKey = await makeKey(key, 'receiver');
    sshd = await startSshd();
  });
  after(async () => {
    await sshd?.stop();
    await tmp?.cleanup();
  });

  test('the pull ends with its snapshot committed and held; the copy is deferred, not failed; offsite sync copies it; without the flag the pull waits for the copy', async () => {
    const f = await backupCase(join(tmp.dir, 'case'), ['core', 'plugin-restic', 'plugin-link-dest']);
    await sshd.setAuthorizedKeys([{ publicKey, options: `restrict,command="${RRSYNC} -ro ${f.src}"` }]);
    const { passwordFile, repository } = await initRepository(f.base, 'pull-secret');
    // While HANG exists the repository does not answer: every restic call waits (and says so).
    const hangFlag = join(f.base, 'HANG');
    const waiting = join(f.base, 'waiting');
    const restic = await writeScript(
      f.base,
      'restic',
      `if [ -e ${hangFlag} ]; then echo $$ > ${waiting}.part && mv ${waiting}.part ${waiting}; fi; while [ -e ${hangFlag} ]; do sleep 0.1; done\nexec restic "$@"\n`,
    );
    const config = join(f.base, 'ssh-r-sync.config.json');
    await writeFile(config, JSON.stringify({ plugins: ['@ssh-r-sync/plugin-link-dest', ['@ssh-r-sync/plugin-restic', { restic, repositories: [{ name: 'offsite', repository, passwordFile }] }]] }));
    const ssh = sshd.sshOptions(key).flatMap((value, i, all) => (all[i - 1] === '-o' && /^(UserKnownHostsFile|StrictHostKeyChecking|KexAlgorithms|IdentitiesOnly)=/.test(value) ? ['-o', value] : []));
    const pull = (extra: string[]) =>
      runRecv(['--config', config, '--pull', `${sshd.user}@127.0.0.1`, '-p', String(sshd.port), '-k', key, ...ssh, '--name', NAME, ...extra, f.root], { cwd: f.base, timeoutMs: 180_000 });
    const admin = (args: string[]) => runNode(adminBin, args, { cwd: f.base, timeoutMs: 180_000 });
    const copiesInRepository = () =>
      (JSON.parse(execFileSync('restic', ['-r', repository, '--password-file', passwordFile, 'snapshots', '--json'], { encoding: 'utf8', timeout: 120_000 })) as { time: string; tags: string[] }[])
        .sort((a, b) => Date.parse(a.time) - Date.parse(b.time))
        .map((c) => c.tags.find((t) => t.startsWith('id:'))!.slice(3));

    // Deferred: the repository hangs, yet the pull ends at once, its snapshot complete.
    await writeFile(hangFlag, '');
    const deferred = await pull(['--defer-unlocked']);
    assertExit(deferred, 0, 'the deferred pull');
    const [one] = await listSnapshots(join(f.root, NAME));
    assert.ok(one?.complete, 'the snapshot is committed');
    assert.ok(!existsSync(waiting), 'no restic of the pull ever ran');
    assert.deepEqual(await processesMatching(repository), [], 'no restic of the pull is left running');
    assert.equal(deferred.stderr.match(/restic: deferred \(--defer-unlocked\)/g)?.length, 1, deferred.stderr);
    assert.match(deferred.stderr, new RegExp(`restic: deferred \\(--defer-unlocked\\): it runs apart, e\\.g\\. ssh-r-sync-admin offsite sync \\[--config FILE\\] ${f.root} ${NAME}$`, 'm'));
    // Held (no rotation deletes it before its copy) and not copied: offsite status says so.
    assert.deepEqual([...(await readHolds(f.root, NAME)).keys()], [one!.id]);
    const uncopied = await admin(['offsite', 'status', '--config', config, '--json', f.root, NAME]);
    assertExit(uncopied, 1, 'offsite status before the copy');
    const [pending] = (JSON.parse(uncopied.stdout) as { hosts: { repositories: { newest: string | null }[] }[] }).hosts[0]!.repositories;
    assert.equal(pending!.newest, null, uncopied.stdout);
    // The host's record says "deferred", and status shows no failure for it.
    assert.deepEqual((await readHostRecord(f.root, NAME))?.afterSession?.tasks.map((t) => [t.name, t.outcome, t.error]), [['restic', 'deferred', null]]);
    const status = await admin(['status', '--json', f.root, NAME]);
    assertExit(status, 0, 'status');
    assert.deepEqual((JSON.parse(status.stdout) as { hosts: { warnings: string[] }[] }).hosts[0]!.warnings, []);
    assert.doesNotMatch(status.stderr, /restic|deferred/);

    // What the -offsite unit runs, once the repository answers: the deferred snapshot is copied.
    await rm(hangFlag);
    const sync = await admin(['offsite', 'sync', '--config', config, f.root, NAME]);
    assertExit(sync, 0, 'offsite sync');
    assert.deepEqual(copiesInRepository(), [one!.id]);
    assert.equal((await readHolds(f.root, NAME)).size, 0, 'nothing is held once copied');
    const copied = await admin(['offsite', 'status', '--config', config, '--json', f.root, NAME]);
    assertExit(copied, 0, 'offsite status after the copy');

    // Without the flag (today's behaviour): the pull's process waits while its copy waits.
    await writeFile(join(f.src, 'b.txt'), 'beta\n');
    await writeFile(hangFlag, '');
    let ended = false;
    const waited = pull([]).finally(() => (ended = true));
    await until('the pull\'s own copy waits for the repository', () => existsSync(waiting));
    assert.equal(ended, false, 'the pull ended while its copy was still waiting');
    const [, two] = await listSnapshots(join(f.root, NAME));
    assert.ok(two?.complete, 'its snapshot was committed before the copy');
    await rm(hangFlag);
    assertExit(await waited, 0, 'the pull that waited');
    assert.deepEqual(copiesInRepository(), [one!.id, two!.id]);
    assert.deepEqual(await processesMatching(repository), []);

    // A host that has copies: a deferred snapshot counts as one to copy, not only as lag.
    await writeFile(join(f.src, 'c.txt'), 'gamma\n');
    assertExit(await pull(['--defer-unlocked']), 0, 'a deferred pull of a host with copies');
    const behind = await admin(['offsite', 'status', '--config', config, '--json', f.root, NAME]);
    assertExit(behind, 1, 'offsite status with a deferred snapshot');
    assert.equal((JSON.parse(behind.stdout) as { hosts: { repositories: { pending: number }[] }[] }).hosts[0]!.repositories[0]!.pending, 1, behind.stdout);
  });
});
