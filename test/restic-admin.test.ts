// The off-site copies through the admin commands, with the real restic: `offsite sync` catching up
// by hand, `offsite status`, `verify --offsite --sample`, `restore --from-offsite` of the awkward
// tree stored fake-super (owners, modes, devices, links, xattrs back as the client had them), and
// a repository on sftp through the throwaway sshd.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readdir, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { listSnapshots } from '@ssh-r-sync/core';
import { repoRoot, runNode, runRecv, tempDir } from './helpers/cli.js';
import { buildTree, compareTrees } from './helpers/tree.js';
import { makeKey, startSshd, type Sshd } from './helpers/sshd.js';

const adminBin = join(repoRoot, 'packages/cli/bin/ssh-r-sync-admin.js');
const admin = (args: string[]) => runNode(adminBin, args, { timeoutMs: 180_000 });
const PASSWORD = `srs-restic-admin-${process.pid}`;

let tmp: Awaited<ReturnType<typeof tempDir>>;
before(async () => (tmp = await tempDir('srs-restic-admin-')));
after(async () => tmp.cleanup());

let fixtures = 0;
async function fixture(repository: (base: string) => string, extra: Record<string, unknown> = {}) {
  const base = join(tmp.dir, `f${++fixtures}`);
  const src = join(base, 'src');
  await mkdir(src, { recursive: true });
  await mkdir(join(base, 'root'), { mode: 0o700 });
  await mkdir(join(base, 'node_modules', '@ssh-r-sync'), { recursive: true });
  for (const plugin of ['core', 'plugin-restic', 'plugin-link-dest']) await symlink(join(repoRoot, 'packages', plugin), join(base, 'node_modules', '@ssh-r-sync', plugin));
  const passwordFile = join(base, 'restic.pass');
  await writeFile(passwordFile, `${PASSWORD}\n`, { mode: 0o600 });
  const repo = { name: 'offsite', repository: repository(base), passwordFile, ...extra };
  const config = join(base, 'ssh-r-sync.config.json');
  await writeFile(config, JSON.stringify({ plugins: ['@ssh-r-sync/plugin-link-dest', ['@ssh-r-sync/plugin-restic', { repositories: [repo] }]] }));
  const root = join(base, 'root');
  const options = Object.entries((extra.options as Record<string, string> | undefined) ?? {}).flatMap(([k, v]) => ['-o', `${k}=${v}`]);
  return {
    base,
    src,
    root,
    config,
    init: () => execFileSync('restic', ['-r', repo.repository, '--password-file', passwordFile, ...options, 'init'], { stdio: 'pipe', timeout: 120_000 }),
    copies: () => JSON.parse(execFileSync('restic', ['-r', repo.repository, '--password-file', passwordFile, ...options, 'snapshots', '--json'], { encoding: 'utf8', timeout: 120_000 })) as { tags: string[] }[],
    run: (...extra: string[]) => runRecv(['--config', config, '--local', src, '--name', 'host1', ...extra, root], { cwd: base, timeoutMs: 180_000 }),
  };
}

describe('ssh-r-sync-admin and the off-site copies', () => {
  test('offsite sync catches up by hand, offsite status shows the newest copy, verify --offsite --sample checks the repository', async () => {
    const f = await fixture((base) => join(base, 'repo'));
    await writeFile(join(f.src, 'a.txt'), 'alpha\n');
    const backup = await f.run();
    assert.equal(backup.code, 0, backup.stderr);
    let status = await admin(['offsite', 'status', '--config', f.config, f.root]);
    assert.equal(status.code, 1, 'nothing copied yet: it lags');
    assert.match(status.stdout, /host1\s+offsite\s+-\s+-\s+1\s+\S+ offsite \(.*\): restic snapshots exited with code 1: .*restic -r .* init/);

    f.init();
    const sync = await admin(['offsite', 'sync', '--config', f.config, f.root]);
    assert.equal(sync.code, 0, sync.stderr);
    assert.equal(sync.stdout, 'host1: offsite: 1 copied, 0 still to copy\n');
    const [id] = (await listSnapshots(join(f.root, 'host1'))).map((s) => s.id);
    assert.deepEqual(f.copies().map((c) => c.tags.find((t) => t.startsWith('id:'))), [`id:${id}`]);
    const again = await admin(['offsite', 'sync', '--config', f.config, f.root, 'host1']);
    assert.equal(again.stdout, 'host1: offsite: 0 copied, 0 still to copy\n');

    status = await admin(['offsite', 'status', '--config', f.config, '--json', f.root]);
    assert.equal(status.code, 0, status.stderr);
    const parsed = JSON.parse(status.stdout) as { hosts: { name: string; repositories: { name: string; newest: string; lagSeconds: number; pending: number; lastFailure: unknown }[] }[] };
    assert.deepEqual(parsed.hosts[0]!.repositories[0], { ...parsed.hosts[0]!.repositories[0], name: 'offsite', newest: id, lagSeconds: 0, pending: 0, lastFailure: null });

    const verify = await admin(['verify', '--offsite', '--sample', '50', '--config', f.config, f.root]);
    assert.equal(verify.code, 0, verify.stderr);
    assert.match(verify.stdout, /^offsite: ok \(read 50% of the data\): /);
  });

  test('restore --from-offsite of a fake-super store: the client\'s tree comes back with owners, modes, devices, links and xattrs', async () => {
    const f = await fixture((base) => join(base, 'repo'));
    f.init();
    const info = await buildTree(f.src);
    const backup = await f.run('--mode', 'fake-super');
    assert.equal(backup.code, 0, backup.stderr);
    // A plain restic restore gives the stand-ins back: the owners are only in the xattrs.
    const dest = join(f.base, 'dest');
    const r = await admin(['restore', '--from-offsite', 'offsite', '--config', f.config, f.root, 'host1', dest]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /restored host1 snapshot \S+ to .* \(stored fake-super\)/);
    // The same as the local restore of the snapshot the copy was made of, xattrs and ACLs included …
    const local = join(f.base, 'local');
    const l = await admin(['restore', f.root, 'host1', local]);
    assert.equal(l.code, 0, l.stderr);
    assert.deepEqual(await compareTrees(local, dest, { xattrs: info.xattrs, top: false }), []);
    // … and the client's tree. (`--local --mode fake-super` as root keeps no ACL in its store: in a
    // local copy rsync's --fake-super applies to the sending side too, which then reads ACLs from
    // user.rsync.%aacl, absent in the source; so acl-file's ACL is not in the local snapshot either.
    // The non-root receiver over ssh keeps it: test/restic-nonroot.test.ts.)
    assert.deepEqual(await compareTrees(f.src, dest, { xattrs: info.xattrs, top: false, ignore: (name) => name.toString() === 'acl-file' }), []);
    assert.deepEqual(await compareTrees(f.src, dest, { top: false }), []);
    assert.deepEqual(await readdir(join(f.root, '.ssh-r-sync', 'offsite-restore')), [], 'the staging folder is gone');

    // Into the backups: refused before anything is restored.
    const inside = await admin(['restore', '--from-offsite', 'offsite', '--config', f.config, f.root, 'host1', join(f.root, 'x')]);
    assert.equal(inside.code, 2, inside.stderr);
    assert.match(inside.stderr, /is inside BACKUP_ROOT/);
    const unknown = await admin(['restore', '--from-offsite', 'offsite', '--config', f.config, '--snapshot', '2020-01-01T000000Z', f.root, 'host1', join(f.base, 'dest2')]);
    assert.equal(unknown.code, 2, unknown.stderr);
    assert.match(unknown.stderr, /offsite has no copy of host1 2020-01-01T000000Z \(copies: \S+\)/);
    assert.equal(existsSync(join(f.base, 'dest2')), false);
  });
});

describe('an sftp repository on the throwaway sshd', () => {
  let sshd: Sshd;
  let key: string;
  before(async () => {
    sshd = await startSshd({ extraConfig: ['Subsystem sftp internal-sftp'] });
    key = join(sshd.dir, 'client_key');
    await sshd.setAuthorizedKeys([{ publicKey: await makeKey(key) }]);
  });
  after(async () => sshd?.stop());

  test('successive snapshots are copied over sftp and restore from there', async () => {
    const command = ['ssh', ...sshd.sshArgs(key, ['-s']), 'sftp'].join(' ');
    const f = await fixture((base) => `sftp:${sshd.user}@127.0.0.1:${join(base, 'sftp-repo')}`, { options: { 'sftp.command': command } });
    f.init();
    await writeFile(join(f.src, 'a.txt'), 'one\n');
    assert.equal((await f.run()).code, 0);
    await writeFile(join(f.src, 'b.txt'), 'two\n');
    const second = await f.run();
    assert.equal(second.code, 0, second.stderr);
    assert.match(second.stderr, /\[restic\]: host1: copied \S+ to offsite/);
    assert.equal(f.copies().length, 2);
    const dest = join(f.base, 'dest');
    const r = await admin(['restore', '--from-offsite', 'offsite', '--config', f.config, f.root, 'host1', dest]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual((await readdir(dest)).sort(), ['a.txt', 'b.txt']);
  });
});
