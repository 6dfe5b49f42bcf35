// plugin-restic with the real restic: copies of successive snapshots into a local repository, a
// repository that is down for two runs and then catches up (oldest first, the snapshots held from
// rotation meanwhile), forget with the repository's policy, the xattrs of a fake-super store
// surviving the round trip, no password in any argv while restic runs, the config checks, and the
// command line built for an s3: repository (no S3 server runs here).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { chmod, mkdir, readFile, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { hostStatus, listSnapshots, readHolds, readHostRecord, type Logger } from '@ssh-r-sync/core';
import restic, { readOffsiteState, resticCommand, backupArgs, type ParsedOptions } from '@ssh-r-sync/plugin-restic';
import { processesMatching, repoRoot, runNode, runRecv, tempDir, writeScript } from './helpers/cli.js';
import { render } from '@ssh-r-sync/plugin-prometheus';
import { readXattrs } from './helpers/tree.js';

const PASSWORD = `srs-restic-secret-${process.pid}-${Date.now()}`;
let tmp: Awaited<ReturnType<typeof tempDir>>;
before(async () => {
  tmp = await tempDir('srs-restic-');
});
after(async () => {
  await tmp.cleanup();
});

let fixtures = 0;
// A source, a root, a password file (0600) and a node_modules with the workspace's plugins beside the config.
async function resticFixture() {
  const base = join(tmp.dir, `f${++fixtures}`);
  const src = join(base, 'src');
  await mkdir(join(src, 'sub'), { recursive: true });
  await mkdir(join(base, 'root'), { mode: 0o700 });
  await mkdir(join(base, 'node_modules', '@ssh-r-sync'), { recursive: true });
  for (const plugin of ['core', 'plugin-restic', 'plugin-rotate', 'plugin-link-dest']) await symlink(join(repoRoot, 'packages', plugin), join(base, 'node_modules', '@ssh-r-sync', plugin));
  await writeFile(join(src, 'a.txt'), 'alpha\n');
  await writeFile(join(src, 'sub', 'b.txt'), 'beta\n');
  const passwordFile = join(base, 'restic.pass');
  await writeFile(passwordFile, `${PASSWORD}\n`, { mode: 0o600 });
  const config = join(base, 'ssh-r-sync.config.json');
  const root = join(base, 'root');
  return {
    base,
    src,
    root,
    host: join(root, 'host1'),
    config,
    passwordFile,
    writeConfig: (plugins: unknown[]) => writeFile(config, JSON.stringify({ plugins })),
    run: (...extra: string[]) => runRecv(['--config', config, '--local', src, '--name', 'host1', ...extra, root], { cwd: base, timeoutMs: 120_000 }),
  };
}

// restic as the admin runs it (init, snapshots), with the fixture's password file.
function resticCli(passwordFile: string, repository: string, args: string[], options: string[] = []): string {
  return execFileSync('restic', ['-r', repository, '--password-file', passwordFile, ...options.flatMap((o) => ['-o', o]), ...args], { encoding: 'utf8', env: { ...process.env, TZ: 'UTC' }, stdio: ['ignore', 'pipe', 'pipe'], timeout: 120_000 });
}

interface Copy {
  id: string;
  time: string;
  hostname: string;
  tags: string[];
  paths: string[];
}
function copies(passwordFile: string, repository: string, options: string[] = []): Copy[] {
  return (JSON.parse(resticCli(passwordFile, repository, ['snapshots', '--json'], options)) as Copy[]).sort((a, b) => Date.parse(a.time) - Date.parse(b.time));
}
const idTag = (c: Copy) => c.tags.find((t) => t.startsWith('id:'))!.slice(3);
const readFileSyncSafe = (path: string) => {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return null;
  }
};
const completeIds = async (host: string) => (await listSnapshots(host)).filter((s) => s.complete).map((s) => s.id);

describe('plugin-restic copies committed snapshots off-site', () => {
  test('successive snapshots become restic snapshots of the host, with the snapshot\'s time, id tag and the client\'s paths', async () => {
    const f = await resticFixture();
    const repository = join(f.base, 'repo');
    resticCli(f.passwordFile, repository, ['init']);
    await f.writeConfig(['@ssh-r-sync/plugin-link-dest', ['@ssh-r-sync/plugin-restic', { repositories: [{ name: 'offsite', repository, passwordFile: f.passwordFile }] }]]);

    const first = await f.run();
    assert.equal(first.code, 0, first.stderr);
    const [id1] = await completeIds(f.host);
    assert.match(first.stderr, new RegExp(`\\[restic\\]: host1: copied ${id1} to offsite as restic snapshot [0-9a-f]{8}`));
    await writeFile(join(f.src, 'sub', 'c.txt'), 'gamma\n');
    const second = await f.run();
    assert.equal(second.code, 0, second.stderr);
    const ids = await completeIds(f.host);
    assert.equal(ids.length, 2);
    // The second run copies only its own snapshot: the first is there.
    assert.doesNotMatch(second.stderr, new RegExp(`copied ${id1}`));
    assert.match(second.stderr, new RegExp(`copied ${ids[1]} to offsite`));

    const list = copies(f.passwordFile, repository);
    assert.deepEqual(list.map(idTag), ids);
    for (const [i, c] of list.entries()) {
      assert.equal(c.hostname, 'host1');
      assert.ok(c.tags.includes('ssh-r-sync'));
      // The snapshot's start (its id) is the copy's time.
      assert.equal(new Date(c.time).toISOString().replace(/[-:]|\.\d+/g, ''), ids[i]!.replace(/-/g, ''));
    }
    // Paths inside the copy are the client's: a.txt at the top, not root/host1/ID/a.txt.
    const files = resticCli(f.passwordFile, repository, ['ls', '--json', list[1]!.id]).split('\n').filter(Boolean).map((l) => JSON.parse(l) as { path?: string }).map((e) => e.path).filter(Boolean);
    assert.deepEqual(files.sort(), ['/a.txt', '/sub', '/sub/b.txt', '/sub/c.txt']);

    const state = await readOffsiteState(f.root, 'host1');
    assert.equal(state.repositories.offsite?.newest?.id, ids[1]);
    assert.deepEqual(state.repositories.offsite?.pending, []);
    assert.equal(state.repositories.offsite?.lastFailure, null);
    assert.equal((await readHolds(f.root, 'host1')).size, 0, 'nothing held: everything is off-site');
    const record = await readHostRecord(f.root, 'host1');
    assert.deepEqual(record?.afterSession?.tasks.map((t) => [t.name, t.outcome]), [['restic', 'ok']]);
  });

  test('a repository that is down for two runs: backups succeed, the snapshots are held from rotation, then the third run copies all three oldest first', async () => {
    const f = await resticFixture();
    const repository = join(f.base, 'later');
    // Rotation first in the list and keeping only the newest: without the hold it would delete each older snapshot.
    await f.writeConfig([
      ['@ssh-r-sync/plugin-rotate', { keep: '1d', keepLast: 1 }],
      '@ssh-r-sync/plugin-link-dest',
      ['@ssh-r-sync/plugin-restic', { repositories: [{ name: 'offsite', repository, passwordFile: f.passwordFile }] }],
    ]);
    for (let i = 1; i <= 2; i++) {
      await writeFile(join(f.src, `run${i}.txt`), `${i}\n`);
      const r = await f.run();
      assert.equal(r.code, 0, `the backup is not failed by the copy: ${r.stderr}`);
      assert.match(r.stderr, new RegExp(`after the backup, restic failed: offsite: ${i} snapshots? not copied: offsite \\(${repository}\\): restic snapshots exited with code 1: .*create it once with \`restic -r ${repository} init\``));
      const record = await readHostRecord(f.root, 'host1');
      assert.equal(record?.lastRun?.status, 'success');
      assert.deepEqual(record?.afterSession?.tasks.map((t) => [t.name, t.outcome]), [['rotate', 'ok'], ['restic', 'failed']]);
    }
    const ids = await completeIds(f.host);
    assert.equal(ids.length, 2, 'rotation kept the snapshot on its way off-site');
    assert.deepEqual([...(await readHolds(f.root, 'host1')).keys()].sort(), ids);
    let state = await readOffsiteState(f.root, 'host1');
    assert.deepEqual(state.repositories.offsite?.pending, ids);
    assert.match(state.repositories.offsite?.lastFailure?.error ?? '', /restic -r .* init/);
    // status (for people and for machines) and the Prometheus file show the copies' state.
    const admin = join(repoRoot, 'packages/cli/bin/ssh-r-sync-admin.js');
    const shown = await runNode(admin, ['status', f.root, 'host1']);
    assert.match(shown.stdout, /^ {2}host1: restic: off-site offsite: newest copy none, 2 to copy, last failure \S+: offsite \(.*\): restic snapshots exited with code 1: /m);
    const lagging = JSON.parse((await runNode(admin, ['status', '--json', f.root, 'host1'])).stdout).hosts[0];
    const pendingGauge = lagging.facts.restic.gauges.find((g: { name: string }) => g.name === 'offsite_pending_snapshots');
    assert.deepEqual([pendingGauge.labels, pendingGauge.value], [{ repository: 'offsite' }, 2]);
    const metrics = render([{ host: 'host1', kind: 'snapshots', store: 'snapshots', lastRun: null, lastSuccess: null, complete: 2, incomplete: 0, newestComplete: null, lastVerify: null, lockHeld: false, stale: false, maxAgeSeconds: null, facts: lagging.facts }]);
    assert.match(metrics, /^ssh_r_sync_restic_offsite_pending_snapshots\{host="host1",repository="offsite"\} 2$/m);
    assert.match(metrics, /^# TYPE ssh_r_sync_restic_offsite_lag_seconds gauge$/m);

    // The admin creates the repository; the next run copies what is missing, oldest first.
    resticCli(f.passwordFile, repository, ['init']);
    await writeFile(join(f.src, 'run3.txt'), '3\n');
    const third = await f.run();
    assert.equal(third.code, 0, third.stderr);
    const all = await completeIds(f.host);
    const order = [...third.stderr.matchAll(/copied (\S+) to offsite/g)].map((m) => m[1]);
    assert.deepEqual(order, all.slice(-3));
    assert.deepEqual(copies(f.passwordFile, repository).map(idTag), all.slice(-3));
    state = await readOffsiteState(f.root, 'host1');
    assert.deepEqual(state.repositories.offsite?.pending, []);
    assert.equal(state.repositories.offsite?.lastFailure, null);
    assert.equal((await readHolds(f.root, 'host1')).size, 0);
    const caughtUp = JSON.parse((await runNode(admin, ['status', '--json', f.root, 'host1'])).stdout).hosts[0];
    assert.match(caughtUp.facts.restic.lines[0], new RegExp(`^off-site offsite: newest copy ${all.at(-1)}, 0 s behind the newest local snapshot, 0 to copy$`));

    // No longer held: the next run's rotation thins out the local snapshots as its policy says.
    const fourth = await f.run();
    assert.equal(fourth.code, 0, fourth.stderr);
    assert.equal((await completeIds(f.host)).length, 1);
    assert.equal(copies(f.passwordFile, repository).length, 4);
  });

  test('snapshots from before the plugin, with rotation listed first: each is held before rotation runs, then copied oldest first', async () => {
    const f = await resticFixture();
    const repository = join(f.base, 'repo');
    resticCli(f.passwordFile, repository, ['init']);
    await f.writeConfig(['@ssh-r-sync/plugin-link-dest']);
    for (let i = 0; i < 2; i++) assert.equal((await f.run()).code, 0);
    const before = await completeIds(f.host);
    await f.writeConfig([
      ['@ssh-r-sync/plugin-rotate', { keep: '1d', keepLast: 1 }],
      '@ssh-r-sync/plugin-link-dest',
      ['@ssh-r-sync/plugin-restic', { repositories: [{ name: 'offsite', repository, passwordFile: f.passwordFile }] }],
    ]);
    const r = await f.run();
    assert.equal(r.code, 0, r.stderr);
    const all = await completeIds(f.host);
    assert.deepEqual(all.slice(0, 2), before, 'rotation kept the two older snapshots: held');
    assert.deepEqual(copies(f.passwordFile, repository).map(idTag), all);
  });

  test('forget with the repository\'s policy: keep 1d thins the copies off-site, and forgotten copies are not sent again', async () => {
    const f = await resticFixture();
    const repository = join(f.base, 'thin');
    resticCli(f.passwordFile, repository, ['init']);
    await f.writeConfig(['@ssh-r-sync/plugin-link-dest', ['@ssh-r-sync/plugin-restic', { repositories: [{ name: 'thin', repository, passwordFile: f.passwordFile, keep: '1d' }] }]]);
    for (let i = 0; i < 3; i++) {
      await writeFile(join(f.src, 'n.txt'), `${i}\n`);
      const r = await f.run();
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stderr, new RegExp(`\\[restic\\]: host1: thin: forgot ${i === 0 ? 0 : 1} cop(y|ies) \\(1d\\)`));
    }
    const ids = await completeIds(f.host);
    assert.equal(ids.length, 3);
    assert.deepEqual(copies(f.passwordFile, repository).map(idTag), [ids[2]], 'one copy of the day: the newest');
    assert.equal((await readOffsiteState(f.root, 'host1')).repositories.thin?.lastForget?.removed, 1);
  });

  test('a fake-super store round trip: the copy restored by restic carries the same files and user.rsync.%stat xattrs', async () => {
    const f = await resticFixture();
    const repository = join(f.base, 'repo');
    resticCli(f.passwordFile, repository, ['init']);
    const owned = join(f.src, 'owned');
    await writeFile(owned, 'belongs to 1234\n');
    execFileSync('chown', ['1234:5678', owned]);
    await symlink('a.txt', join(f.src, 'link'));
    await f.writeConfig(['@ssh-r-sync/plugin-link-dest', ['@ssh-r-sync/plugin-restic', { repositories: [{ name: 'offsite', repository, passwordFile: f.passwordFile }] }]]);
    const r = await f.run('--mode', 'fake-super');
    assert.equal(r.code, 0, r.stderr);
    const [id] = await completeIds(f.host);
    const out = join(f.base, 'out');
    resticCli(f.passwordFile, repository, ['restore', 'latest', '--target', out]);
    const stored = readXattrs(join(f.host, id!));
    const back = readXattrs(out);
    if (!stored || !back) return;
    const stat = (m: Map<string, Record<string, string>>, name: string) => m.get(Buffer.from(name).toString('hex'))?.['user.rsync.%stat'];
    assert.ok(stat(stored, 'owned'), 'the fake-super store keeps the owner in user.rsync.%stat');
    assert.equal(stat(back, 'owned'), stat(stored, 'owned'));
    assert.equal(stat(back, 'link'), stat(stored, 'link'));
    assert.equal(await readFile(join(out, 'link'), 'utf8'), await readFile(join(f.host, id!, 'link'), 'utf8'));
  });

  test('no password on any command line while restic runs: a password file by name, the rest in its environment', async () => {
    const f = await resticFixture();
    const repository = join(f.base, 'repo');
    resticCli(f.passwordFile, repository, ['init']);
    // A restic that tells what it was started with, then is restic (exec keeps the pid).
    const seen = join(f.base, 'seen');
    const wrapper = await writeScript(f.base, 'restic-seen', `printf '%s\\n' "$*" >> ${seen}; env >> ${seen}.env; sleep 0.3; exec restic "$@"\n`);
    await f.writeConfig(['@ssh-r-sync/plugin-link-dest', ['@ssh-r-sync/plugin-restic', { restic: wrapper, repositories: [{ name: 'offsite', repository, passwordFile: f.passwordFile, env: { AWS_SECRET_ACCESS_KEY: PASSWORD } }] }]]);
    const running = f.run();
    const found: string[] = [];
    let sawRestic = false;
    let done = false;
    void running.then(() => (done = true));
    while (!done) {
      found.push(...(await processesMatching(PASSWORD)));
      if ((await processesMatching('--password-file')).some((l) => l.includes(f.passwordFile))) sawRestic = true;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    const r = await running;
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(found, []);
    assert.ok(sawRestic, 'restic was seen running');
    const argvs = await readFile(seen, 'utf8');
    assert.match(argvs, new RegExp(`--password-file ${f.passwordFile}`));
    assert.doesNotMatch(argvs, new RegExp(PASSWORD));
    const env = await readFile(`${seen}.env`, 'utf8');
    assert.match(env, new RegExp(`^AWS_SECRET_ACCESS_KEY=${PASSWORD}$`, 'm'), 'the env option reaches restic');
    assert.doesNotMatch(env, /^RESTIC_PASSWORD=/m);
    assert.doesNotMatch(r.stderr, new RegExp(PASSWORD));
    assert.doesNotMatch(await readFile(join(f.root, '.ssh-r-sync', 'offsite', 'host1.json'), 'utf8'), new RegExp(PASSWORD));
  });
});

describe('plugin-restic bounds', () => {
  test('a restic that hangs is killed with its process group when the plugin\'s timeout passes; the backup stands and nothing is left running', async () => {
    const f = await resticFixture();
    // A "restic" that never answers, with a child of its own (restic's ssh would be one); it tells their pids.
    const pids = join(f.base, 'pids');
    const hang = await writeScript(f.base, 'restic-hang', `sleep 300 &\necho $! >> ${pids}\necho $$ >> ${pids}\nexec sleep 301\n`);
    await f.writeConfig(['@ssh-r-sync/plugin-link-dest', ['@ssh-r-sync/plugin-restic', { restic: hang, timeout: 2, repositories: [{ name: 'offsite', repository: join(f.base, 'repo'), passwordFile: f.passwordFile }] }]]);
    const r = await f.run();
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /after the backup, restic failed: timed out after 2 s \(the backup itself is complete\)/);
    const started = (await readFile(pids, 'utf8')).trim().split('\n').map(Number);
    assert.ok(started.length >= 2, 'restic ran');
    // SIGKILLed before the task ended; gone once reaped.
    const alive = () => started.filter((pid) => (readFileSyncSafe(`/proc/${pid}/stat`) ?? ') Z').split(') ')[1]![0] !== 'Z');
    for (let i = 0; i < 100 && alive().length; i++) await new Promise((resolve) => setTimeout(resolve, 50));
    assert.deepEqual(alive(), []);
    const record = await readHostRecord(f.root, 'host1');
    assert.equal(record?.lastRun?.status, 'success');
    assert.deepEqual(record?.afterSession?.tasks.map((t) => [t.name, t.outcome]), [['restic', 'timed out']]);
  });

  test('status(): per host and repository the newest copy and the lag; a host with copies to make is a warning', async () => {
    const f = await resticFixture();
    const repository = join(f.base, 'repo');
    resticCli(f.passwordFile, repository, ['init']);
    const options = { repositories: [{ name: 'offsite', repository, passwordFile: f.passwordFile }] };
    await f.writeConfig(['@ssh-r-sync/plugin-link-dest', ['@ssh-r-sync/plugin-restic', options]]);
    assert.equal((await f.run()).code, 0);
    const [id] = await completeIds(f.host);
    const lines: string[] = [];
    const logger = { debug() {}, info: (m: string) => lines.push(`info ${m}`), warn: (m: string) => lines.push(`warn ${m}`), error: (m: string) => lines.push(`error ${m}`), scope: () => logger } as unknown as Logger;
    const report = async () => ({ root: f.root, at: new Date().toISOString(), hosts: [{ ...(await hostStatus(f.root, 'host1', {})), maxAgeSeconds: null }] });
    await restic(options).status!(await report(), logger);
    assert.deepEqual(lines, [`info host1: offsite: newest copy ${id}, lag 0 s, 0 to copy`]);
  });
});

describe('plugin-restic options', () => {
  test('a password file others can read, a password in the config, or no password file: the receiver stops at load (exit 2) saying what to do', async () => {
    const f = await resticFixture();
    await chmod(f.passwordFile, 0o644);
    const repo = { name: 'offsite', repository: join(f.base, 'repo'), passwordFile: f.passwordFile };
    await f.writeConfig([['@ssh-r-sync/plugin-restic', { repositories: [repo] }]]);
    let r = await f.run();
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, new RegExp(`error: @ssh-r-sync/plugin-restic: repository "offsite": passwordFile ${f.passwordFile} can be read by others \\(mode 0644\\): chmod 600 ${f.passwordFile}`));
    await chmod(f.passwordFile, 0o600);
    await f.writeConfig([['@ssh-r-sync/plugin-restic', { repositories: [{ ...repo, env: { RESTIC_PASSWORD: 'x' } }] }]]);
    r = await f.run();
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /env RESTIC_PASSWORD would put the password in the config: write it to a file of mode 0600 and give "passwordFile"/);
    await f.writeConfig([['@ssh-r-sync/plugin-restic', { repositories: [{ name: 'offsite', repository: 'relative/path' }] }]]);
    r = await f.run();
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /"relative\/path" is neither an absolute path nor a restic backend/);
    assert.equal(existsSync(f.host), false, 'nothing was backed up');
  });

  test('an s3: repository (no S3 server here): the keys go to restic\'s environment, argv holds the address, the password file\'s name and -o options only', async () => {
    const f = await resticFixture();
    const plugin = restic({
      repositories: [
        {
          name: 's3',
          repository: 's3:https://s3.eu-central-1.example.com/bucket/host-backups',
          passwordFile: f.passwordFile,
          env: { AWS_ACCESS_KEY_ID: 'AKIAEXAMPLE', AWS_SECRET_ACCESS_KEY: 'secret/key', AWS_DEFAULT_REGION: 'eu-central-1' },
          options: { 's3.storage-class': 'STANDARD_IA' },
        },
      ],
    });
    const options = (plugin as unknown as { options: ParsedOptions }).options;
    const snapshot = { id: '2026-11-22T024512Z', date: new Date('2026-11-22T02:45:12Z'), done: { startedAt: '2026-11-22T02:45:12.345Z' } } as Parameters<typeof backupArgs>[1];
    const command = resticCommand(options, options.repositories[0]!, backupArgs('laptop', snapshot, 'abcd1234'));
    assert.equal(command.program, 'restic');
    assert.deepEqual(command.argv, [
      '-r', 's3:https://s3.eu-central-1.example.com/bucket/host-backups', '--password-file', f.passwordFile, '-o', 's3.storage-class=STANDARD_IA',
      'backup', '--json', '--quiet', '--host', 'laptop', '--time', '2026-11-22 02:45:12', '--tag', 'ssh-r-sync', '--tag', 'id:2026-11-22T024512Z', '--parent', 'abcd1234', '.',
    ]);
    assert.equal(command.env.AWS_ACCESS_KEY_ID, 'AKIAEXAMPLE');
    assert.equal(command.env.AWS_SECRET_ACCESS_KEY, 'secret/key');
    assert.equal(command.env.TZ, 'UTC');
    assert.equal(command.env.RESTIC_PASSWORD, undefined);
    assert.ok(!command.argv.join(' ').includes('secret/key'));
  });
});


