// A host kept as a mirror (no snapshot plugin) is copied off-site from a view made under the
// host's lock (hard links), so a copy that hangs does not refuse the host's next backup, and the
// copy still holds the mirror as it was when its run committed. A mirror that rsync rewrites in
// its inodes (--inplace) has no such view: it is copied under the host's lock, as before.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, lstatSync, readdirSync, readFileSync } from 'node:fs';
import { chmod, mkdir, rm, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { readHostRecord } from '@ssh-r-sync/core';
import { backupCase, repoRoot, runNode, runRecv, tempDir, writeScript } from './helpers/cli.js';
import { initRepository } from './helpers/restic.js';
import { throwawayUser } from './helpers/users.js';

const adminBin = join(repoRoot, 'packages/cli/bin/ssh-r-sync-admin.js');

let tmp: Awaited<ReturnType<typeof tempDir>>;
before(async () => (tmp = await tempDir('srs-restic-mirror-')));
after(async () => tmp.cleanup());

// A mirror's copies are told apart by their run's start to the second (restic's --time): a test's
// next run starts in a later second than the one before, as any real next run does.
async function nextSecond(): Promise<void> {
  await sleep(1000 - (Date.now() % 1000) + 20);
}

async function until(what: string, check: () => boolean): Promise<void> {
  const deadline = Date.now() + 120_000;
  while (!check()) {
    assert.ok(Date.now() < deadline, `never: ${what}`);
    await sleep(50);
  }
}

// Host `name` kept as a mirror, copied by plugin-restic into a real repository through a `restic`
// whose `backup` waits while HANG exists (and says so in `waiting`).
async function mirrorCase(dir: string, name: string, recvArgs: string[] = []) {
  const f = await backupCase(join(tmp.dir, dir), ['core', 'plugin-restic']);
  await writeFile(join(f.src, 'same.txt'), 'kept by both runs\n');
  await writeFile(join(f.src, 'gone.txt'), 'only in the first run\n');
  const { passwordFile, repository } = await initRepository(f.base, 'mirror-secret');
  const hangFlag = join(f.base, 'HANG');
  const waiting = join(f.base, 'waiting');
  // Each backup's JSON output is kept too (its summary says how many files restic read again).
  const summaries = join(f.base, 'summaries');
  const restic = await writeScript(f.base, 'restic', `case " $* " in *" backup "*) if [ -e ${hangFlag} ]; then : > ${waiting}; fi; while [ -e ${hangFlag} ]; do sleep 0.1; done; out=$(restic "$@"); rc=$?; printf '%s\\n' "$out" >> ${summaries}; printf '%s\\n' "$out"; exit $rc;; esac\nexec restic "$@"\n`);
  const config = join(f.base, 'ssh-r-sync.config.json');
  await writeFile(config, JSON.stringify({ plugins: [['@ssh-r-sync/plugin-restic', { restic, repositories: [{ name: 'offsite', repository, passwordFile }] }]] }));
  const restic_ = (args: string[]) => execFileSync('restic', ['-r', repository, '--password-file', passwordFile, ...args], { encoding: 'utf8', timeout: 120_000 });
  return {
    ...f,
    config,
    passwordFile,
    repository,
    hangFlag,
    waiting,
    // restic's summary of each backup, in order: files_changed counts the files it read again.
    summaries: () => (existsSync(summaries) ? readFileSync(summaries, 'utf8') : '').split('\n').filter((l) => l.includes('"message_type":"summary"')).map((l) => JSON.parse(l) as { files_new: number; files_changed: number; files_unmodified: number }),
    view: join(f.root, '.ssh-r-sync', 'offsite', `${name}.view`),
    run: (more: string[] = []) => runRecv(['--config', config, ...recvArgs, ...more, '--local', f.src, '--name', name, f.root], { cwd: f.base, timeoutMs: 180_000 }),
    // The copies of the host, oldest first: [local id, restic id].
    copies: () =>
      (JSON.parse(restic_(['snapshots', '--json', '--host', name])) as { id: string; time: string; tags: string[] }[])
        .sort((a, b) => Date.parse(a.time) - Date.parse(b.time))
        .map((c) => [c.tags.find((t) => t.startsWith('id:'))!.slice(3), c.id] as const),
    files: (resticId: string) => restic_(['ls', '--json', resticId]).split('\n').filter(Boolean).map((l) => JSON.parse(l) as { path?: string; struct_type?: string }).filter((e) => e.struct_type === 'node').map((e) => e.path!).sort(),
    dump: (resticId: string, path: string) => restic_(['dump', resticId, path]),
  };
}

// Paths under `dir` (itself included) whose owner is not `uid`.
function notOwnedBy(dir: string, uid: number): string[] {
  const out: string[] = [];
  const walk = (path: string) => {
    const stats = lstatSync(path);
    if (stats.uid !== uid) out.push(path);
    if (stats.isDirectory()) for (const name of readdirSync(path)) walk(join(path, name));
  };
  walk(dir);
  return out;
}

describe('an off-site copy of a mirror', () => {
  test('is made from a view: a repository that hangs does not refuse the next backup, and each copy holds its own run\'s files', async () => {
    const f = await mirrorCase('f1', 'm1');
    await writeFile(f.hangFlag, '');
    const first = f.run();
    await until("the first run's copy waits in restic backup", () => existsSync(f.waiting));
    assert.ok(existsSync(join(f.view, 'tree', 'gone.txt')), 'the copy reads a view of the mirror');

    // The client changes; its next backup rewrites the mirror while the copy still waits.
    await writeFile(join(f.src, 'a.txt'), 'alpha, as the second run found it\n');
    await rm(join(f.src, 'gone.txt'));
    await nextSecond();
    await writeFile(join(f.src, 'new.txt'), 'only in the second run\n');
    const second = await f.run();
    assert.equal(second.code, 0, `the mirror's next backup goes ahead: ${second.stderr}`);
    assert.match(second.stderr, /\[restic\]: an off-site copy of m1 is running already/);
    assert.ok(!existsSync(join(f.root, 'm1', 'gone.txt')) && existsSync(join(f.root, 'm1', 'new.txt')), 'the mirror was rewritten');

    await rm(f.hangFlag);
    const firstDone = await first;
    assert.equal(firstDone.code, 0, firstDone.stderr);
    assert.doesNotMatch(firstDone.stderr, /failed|could not/);
    const copies = f.copies();
    assert.equal(copies.length, 2, `the first run's copy copied both states of the mirror: ${JSON.stringify(copies)}`);
    const [[, one], [, two]] = copies as [[string, string], [string, string]];
    assert.deepEqual(f.files(one), ['/a.txt', '/gone.txt', '/same.txt']);
    assert.equal(f.dump(one, '/a.txt'), 'alpha\n');
    assert.deepEqual(f.files(two), ['/a.txt', '/new.txt', '/same.txt']);
    assert.equal(f.dump(two, '/a.txt'), 'alpha, as the second run found it\n');
    assert.ok(!existsSync(f.view), 'the view is gone once copied');
    const record = await readHostRecord(f.root, 'm1');
    assert.deepEqual(record?.afterSession?.tasks.map((t) => [t.name, t.outcome]), [['restic', 'ok']]);
  });

  test('reads again only what changed: a file the next run left alone is not read from the view again (restic compares its inode, not its ctime, which the view\'s hard links bump)', async () => {
    const f = await mirrorCase('f3', 'm3');
    const first = await f.run();
    assert.equal(first.code, 0, first.stderr);
    await writeFile(join(f.src, 'new.txt'), 'only in the second run\n');
    await nextSecond();
    const second = await f.run();
    assert.equal(second.code, 0, second.stderr);
    assert.doesNotMatch(second.stderr, /failed|could not/);
    assert.equal(f.copies().length, 2);
    const [, again] = f.summaries();
    // a.txt, same.txt and gone.txt are the first copy's: only new.txt is read.
    assert.deepEqual(again && [again.files_new, again.files_changed, again.files_unmodified], [1, 0, 3], JSON.stringify(f.summaries()));
  });

  test('of a store the backup account owns, by `offsite sync` run as root, is made from a view too (made as that account)', { skip: process.getuid?.() !== 0 && 'needs root' }, async (t) => {
    const { uid } = throwawayUser(t);
    const f = await mirrorCase('f4', 'm4');
    // The account's own run made the mirror (and its off-site folder); then root copies it by hand.
    const plain = join(f.base, 'plain.json');
    await writeFile(plain, '{"plugins":[]}');
    assert.equal((await runRecv(['--config', plain, '--local', f.src, '--name', 'm4', f.root], { cwd: f.base })).code, 0);
    await mkdir(join(f.root, '.ssh-r-sync', 'offsite'), { mode: 0o700 });
    // The store, the repository and its password file are the account's (docs/offsite.md).
    execFileSync('chown', ['-R', `${uid}:${uid}`, f.root, f.repository, f.passwordFile]);
    for (const dir of [tmp.dir, f.base]) await chmod(dir, 0o755);
    const synced = await runNode(adminBin, ['offsite', 'sync', '--config', f.config, f.root, 'm4'], { cwd: f.base, timeoutMs: 180_000 });
    assert.equal(synced.code, 0, synced.stderr + synced.stdout);
    assert.doesNotMatch(synced.stderr, /no view of the mirror could be made/);
    assert.match(synced.stdout, /^m4: offsite: 1 copied, 0 still to copy$/m);
    assert.deepEqual(f.files(f.copies()[0]![1]), ['/a.txt', '/gone.txt', '/same.txt']);
    assert.ok(!existsSync(f.view), 'the view is gone once copied');
    // Root's command became the account: whatever it wrote under the root is the account's.
    assert.deepEqual(notOwnedBy(join(f.root, '.ssh-r-sync'), uid), []);
  });

  test('root\'s `offsite sync` runs as the store\'s account: a view that account swaps for a symlink to a root-only folder copies nothing of it', { skip: process.getuid?.() !== 0 && 'needs root' }, async (t) => {
    const { uid } = throwawayUser(t);
    const f = await mirrorCase('f5', 'm5');
    const secret = join(tmp.dir, 'secret-m5');
    await mkdir(secret, { mode: 0o700 });
    await writeFile(join(secret, 'shadow.txt'), 'root only\n', { mode: 0o600 });
    const plain = join(f.base, 'plain.json');
    await writeFile(plain, '{"plugins":[]}');
    assert.equal((await runRecv(['--config', plain, '--local', f.src, '--name', 'm5', f.root], { cwd: f.base })).code, 0);
    await mkdir(join(f.root, '.ssh-r-sync', 'offsite'), { mode: 0o700 });
    // The account's restic (what the admin runs: the config's) swaps the view for a symlink while
    // the repository is listed, after the view was made and before restic backs it up.
    const uids = join(f.base, 'uids');
    const swap = join(f.base, 'SWAP');
    const view = join(f.root, '.ssh-r-sync', 'offsite', 'm5.view');
    const restic = await writeScript(f.base, 'swapping-restic', `id -u >> ${uids}\ncase " $* " in *" snapshots "*) if [ -e ${swap} ]; then rm ${swap}; mv ${view}/tree ${view}/moved && ln -s ${secret} ${view}/tree; fi;; esac\nexec restic "$@"\n`);
    const config = join(f.base, 'swapping.json');
    await writeFile(config, JSON.stringify({ plugins: [['@ssh-r-sync/plugin-restic', { restic, repositories: [{ name: 'offsite', repository: f.repository, passwordFile: f.passwordFile }] }]] }));
    await writeFile(swap, '');
    execFileSync('chown', ['-R', `${uid}:${uid}`, f.root, f.repository, f.passwordFile, f.base]);
    for (const dir of [tmp.dir, f.base]) await chmod(dir, 0o755);
    const synced = await runNode(adminBin, ['offsite', 'sync', '--config', config, f.root, 'm5'], { cwd: f.base, timeoutMs: 180_000 });
    assert.ok(!existsSync(swap), 'the swap was made');
    assert.equal(synced.code, 1, synced.stdout + synced.stderr);
    assert.match(synced.stdout, /^m5: offsite: 0 copied, 1 still to copy \(failed: /m);
    assert.deepEqual(f.copies(), [], 'no copy of the root-only folder passes for the mirror');
    assert.deepEqual([...new Set(readFileSync(uids, 'utf8').trim().split('\n'))], [String(uid)], 'every restic ran as the account');
    assert.deepEqual(notOwnedBy(join(f.root, '.ssh-r-sync'), uid), []);
  });

  test('does not count when the next run rewrites the mirror in place (--inplace) while its view is copied: the files it shares with the view changed', async () => {
    const hook = join(tmp.dir, 'inplace-next.sh');
    await writeFile(hook, "#!/bin/sh\nprintf -- '--inplace\\0'\n", { mode: 0o755 });
    const f = await mirrorCase('f6', 'm6');
    await writeFile(f.hangFlag, '');
    const first = f.run();
    await until("the first run's copy waits in restic backup", () => existsSync(f.waiting));
    // Same size, another mtime: rsync --inplace writes the new bytes into the inode the view links.
    await writeFile(join(f.src, 'a.txt'), 'ALPHA\n');
    await utimes(join(f.src, 'a.txt'), new Date('2020-01-01'), new Date('2020-01-01'));
    await nextSecond();
    const second = await f.run(['-x', `rsync.pre:${hook}`]);
    assert.equal(second.code, 0, second.stderr);
    assert.equal(readFileSync(join(f.view, 'tree', 'a.txt'), 'utf8'), 'ALPHA\n', 'the view shares the rewritten inode');
    await rm(f.hangFlag);
    const firstDone = await first;
    assert.equal(firstDone.code, 0, firstDone.stderr);
    assert.match(firstDone.stderr, /was removed or rewritten while it was copied \(.*writing in place\): that copy does not count/);
    // What is there is the second run's mirror, copied once, under the host's lock.
    const copies = f.copies();
    assert.equal(copies.length, 1, JSON.stringify(copies));
    assert.equal(f.dump(copies[0]![1], '/a.txt'), 'ALPHA\n');
  });

  test('still counts after a run that wrote in place left its record torn (a crash, a full disk): a later run\'s view is copied, not skipped', async () => {
    const hook = join(tmp.dir, 'inplace-torn.sh');
    await writeFile(hook, "#!/bin/sh\nprintf -- '--inplace\\0'\n", { mode: 0o755 });
    const f = await mirrorCase('f9', 'm9');
    assert.equal((await f.run(['-x', `rsync.pre:${hook}`])).code, 0);
    // What writeFile leaves when the disk fills or the power goes between its truncate and its write.
    const record = join(f.root, '.ssh-r-sync', 'mirror', 'm9', 'in-place-run.json');
    assert.ok(existsSync(record), 'the in-place run left its record');
    await writeFile(record, '');
    await writeFile(join(f.src, 'new.txt'), 'only in the second run\n');
    await nextSecond();
    const second = await f.run();
    assert.equal(second.code, 0, second.stderr);
    assert.doesNotMatch(second.stderr, /gone \(or rewritten\)|does not count/);
    const copies = f.copies();
    assert.equal(copies.length, 2, second.stderr);
    assert.deepEqual(f.files(copies[1]![1]), ['/a.txt', '/gone.txt', '/new.txt', '/same.txt']);
  });

  test('by `offsite sync` (the -offsite unit\'s command) ends within the plugin\'s timeout when the repository hangs, like the copy after a backup', async () => {
    const f = await mirrorCase('f10', 'm10');
    const plain = join(f.base, 'plain.json');
    await writeFile(plain, '{"plugins":[]}');
    assert.equal((await runRecv(['--config', plain, '--local', f.src, '--name', 'm10', f.root], { cwd: f.base })).code, 0);
    const config = JSON.parse(readFileSync(f.config, 'utf8')) as { plugins: [string, { timeout?: number }][] };
    config.plugins[0]![1].timeout = 2;
    const bounded = join(f.base, 'bounded.json');
    await writeFile(bounded, JSON.stringify(config));
    await writeFile(f.hangFlag, '');
    const synced = await runNode(adminBin, ['offsite', 'sync', '--config', bounded, f.root, 'm10'], { cwd: f.base, timeoutMs: 150_000 });
    assert.ok(existsSync(f.waiting), 'the copy reached restic backup');
    await rm(f.hangFlag);
    assert.equal(synced.code, 1, synced.stdout + synced.stderr);
    assert.match(synced.stdout, /^m10: offsite: 0 copied, 1 still to copy \(failed: .*2 s/m);
    assert.ok(!existsSync(f.view), 'the view is gone');
  });

  test('whose view cannot be made (its off-site folder on another file system) is copied under the host\'s lock, saying why', { skip: process.getuid?.() !== 0 && 'needs root (a tmpfs mount)' }, async (t) => {
    const f = await mirrorCase('f7', 'm7');
    const offsite = join(f.root, '.ssh-r-sync', 'offsite');
    await mkdir(offsite, { recursive: true, mode: 0o700 });
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=4m,mode=0700', 'srs-offsite', offsite]);
    t.after(() => execFileSync('umount', [offsite]));
    const run = await f.run();
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stderr, /m7: no view of the mirror could be made for its off-site copy \(.*[Cc]ross-device.*\): it is copied under the host's lock/);
    assert.deepEqual(f.files(f.copies()[0]![1]), ['/a.txt', '/gone.txt', '/same.txt']);
    assert.ok(!existsSync(f.view), 'no half-made view is left');
  });

  test('after a copy that was killed: the view it left goes first, and none of it reaches the next copy', async () => {
    const f = await mirrorCase('f8', 'm8');
    // What a SIGKILLed copy leaves: a view, half made or read, of an older mirror.
    await mkdir(join(f.view, 'tree'), { recursive: true });
    await writeFile(join(f.view, 'tree', 'stale.txt'), 'from a copy that was killed\n');
    const run = await f.run();
    assert.equal(run.code, 0, run.stderr);
    assert.doesNotMatch(run.stderr, /no view of the mirror could be made/);
    assert.deepEqual(f.files(f.copies()[0]![1]), ['/a.txt', '/gone.txt', '/same.txt']);
    assert.ok(!existsSync(f.view), 'no view is left');
  });

  test('written in place (--inplace) is copied under the host\'s lock, so the next backup waits for it', async () => {
    const hook = join(tmp.dir, 'inplace.sh');
    await writeFile(hook, "#!/bin/sh\nprintf -- '--inplace\\0'\n", { mode: 0o755 });
    const f = await mirrorCase('f2', 'm2', ['-x', `rsync.pre:${hook}`]);
    await writeFile(f.hangFlag, '');
    const first = f.run();
    await until("the first run's copy waits in restic backup", () => existsSync(f.waiting));
    assert.ok(!existsSync(f.view), 'no view of a mirror written in place');
    const second = await f.run();
    assert.notEqual(second.code, 0);
    assert.match(second.stderr, /another backup of m2 is already running/, 'refused while the copy holds the host\'s lock');
    await rm(f.hangFlag);
    const firstDone = await first;
    assert.equal(firstDone.code, 0, firstDone.stderr);
    assert.equal(f.copies().length, 1);
  });
});
