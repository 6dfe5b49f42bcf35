// `ssh-r-sync-admin restore`: the awkward tree backed up through a NON-ROOT fake-super receiver
// (and a privileged one) comes back identical, owners, ACLs, xattrs, hard links and holes
// included, restoring as root to a directory, `--to` over ssh, and from the client through its own
// key (`ssh-r-sync restore`); and what a restore refuses:
// DEST inside ROOT, a non-empty DEST, symlinks and ".." in --path, incomplete snapshots.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, lstatSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { mkdir, readdir, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { clientBin, repoRoot, runNode, runRecv, tempDir } from './helpers/cli.js';
import { LINK_DEST_DIST, MANIFEST_DIST, startNonRootServer, startRootLogin, type NonRootServer, type RootLogin } from './helpers/nonroot-server.js';
import { SPARSE_SIZE, buildTree, compareTrees } from './helpers/tree.js';

const adminBin = join(repoRoot, 'packages/cli/bin/ssh-r-sync-admin.js');
const HOST = 'restore-fs';
// TMPDIR: where a --to restore as root over the account's store stages (removed with tmp).
const admin = (args: string[]) => runNode(adminBin, args, { timeoutMs: 120_000, env: { TMPDIR: join(tmp.dir, 'temp') } });
/** The tree comes back as it was; the top is DEST's own (see docs/restore.md). */
const SAME = { xattrs: true, top: false } as const;

let tmp: { dir: string; cleanup: () => Promise<void> };
let src: string;
let server: NonRootServer;
let login: RootLogin;
/** A privileged store of the same tree, made with ssh-r-sync-recv --local as root. */
let privilegedRoot: string;

before(async () => {
  tmp = await tempDir('srs-restore-');
  await mkdir(join(tmp.dir, 'temp'), { mode: 0o700 });
  src = join(tmp.dir, 'src');
  await mkdir(src);
  const info = await buildTree(src);
  assert.deepEqual(info.missing, [], 'the awkward tree needs setfacl/setfattr and mknod here');
  server = await startNonRootServer({
    recvArgs: ['--name', HOST, '--mode', 'fake-super', '--plugin', MANIFEST_DIST, '--plugin', LINK_DEST_DIST],
  });
  login = await startRootLogin();
  const run = await server.backup(src, ['-n', HOST], { timeoutMs: 120_000 });
  assert.equal(run.code, 0, `the backup through the non-root receiver failed: ${run.stderr}`);
  privilegedRoot = join(tmp.dir, 'privileged-root');
  await mkdir(privilegedRoot, { mode: 0o700 });
  const local = await runRecv(['--local', src, '--name', HOST, '--mode', 'privileged', '--plugin', MANIFEST_DIST, '--plugin', LINK_DEST_DIST, privilegedRoot]);
  assert.equal(local.code, 0, `the privileged backup failed: ${local.stderr}`);
});

after(async () => {
  await login?.stop();
  await server?.stop();
  await tmp?.cleanup();
});

// The id of the one snapshot under ROOT/HOST.
function snapshotOf(root: string): string {
  return readdirSync(join(root, HOST)).find((name) => /^\d{4}-.*Z$/.test(name))!;
}

async function assertSparse(file: string): Promise<void> {
  const stats = await stat(file);
  assert.equal(stats.size, SPARSE_SIZE);
  assert.ok(stats.blocks * 512 <= 1024 * 1024, `the sparse file stays sparse (${stats.blocks} blocks of 512 bytes for ${SPARSE_SIZE} bytes)`);
}

describe('restore round trips', { concurrency: 1 }, () => {
  test('the store really is fake-super: a symlink is a regular file there, owned by the backup user', () => {
    const tree = join(server.root, HOST, snapshotOf(server.root));
    const stored = lstatSync(join(tree, 'link-rel'));
    assert.ok(stored.isFile());
    assert.equal(stored.uid, server.user.uid);
    assert.equal(lstatSync(join(tree, 'owned')).uid, server.user.uid);
  });

  test('server-side, to a directory: identical to the source, owners, ACLs, xattrs, hard links and holes included', async () => {
    const dest = join(tmp.dir, 'back-local');
    const run = await admin(['restore', '--json', server.root, HOST, dest]);
    assert.equal(run.code, 0, run.stderr);
    const summary = JSON.parse(run.stdout);
    assert.equal(summary.mode, 'fake-super');
    assert.equal(summary.modeSource, 'done mark');
    assert.match(run.stderr, /restored restore-fs snapshot \S+ to .* \(stored fake-super\)/);
    assert.deepEqual(await compareTrees(src, dest, SAME), []);
    await assertSparse(join(dest, 'sparse.img'));
    // A new DEST is the restorer's private directory, not the receiver's or the client's top.
    const top = lstatSync(dest);
    assert.equal(top.mode & 0o7777, 0o700);
    assert.equal(top.uid, 0);
  });

  test('client-initiated (ssh-r-sync restore through the same key and forced command, run as root): identical too', async () => {
    const dest = join(tmp.dir, 'back-client');
    await mkdir(dest, { mode: 0o750 });
    const run = await runNode(clientBin, ['restore', ...server.clientArgs(), `${server.user.name}@127.0.0.1`, dest], { timeoutMs: 120_000 });
    assert.equal(run.code, 0, run.stderr);
    assert.deepEqual(await compareTrees(src, dest, SAME), []);
    await assertSparse(join(dest, 'sparse.img'));
    assert.equal(lstatSync(dest).mode & 0o7777, 0o750, 'DEST keeps its own mode: the receiver\'s private top is not applied');
    // The listing through the same key names the one snapshot, stored fake-super.
    const list = await runNode(clientBin, ['snapshots', ...server.clientArgs(), '--json', `${server.user.name}@127.0.0.1`], { timeoutMs: 60_000 });
    assert.equal(list.code, 0, list.stderr);
    const listing = JSON.parse(list.stdout) as { host: string; snapshots: { id: string; mode: string }[] };
    assert.deepEqual(listing.snapshots.map((s) => [s.id, s.mode]), [[snapshotOf(server.root), 'fake-super']]);
  });

  test('server-side --to root@127.0.0.1:PORT:DIR over ssh: identical too; DIR keeps its own mode', async () => {
    const dir = join(tmp.dir, 'back-remote');
    await mkdir(dir, { mode: 0o751 });
    const run = await admin(['restore', '--to', login.to(dir), ...login.restoreArgs(), server.root, HOST]);
    assert.equal(run.code, 0, run.stderr);
    assert.deepEqual(await compareTrees(src, dir, SAME), []);
    await assertSparse(join(dir, 'sparse.img'));
    assert.equal(lstatSync(dir).mode & 0o7777, 0o751);
    // Not empty now: a second restore there needs --overwrite, and says so.
    const again = await admin(['restore', '--to', login.to(dir), ...login.restoreArgs(), server.root, HOST]);
    assert.equal(again.code, 2);
    assert.match(again.stderr, /DEST is not empty: add --overwrite to write into it/);
    const overwrite = await admin(['restore', '--overwrite', '--to', login.to(dir), ...login.restoreArgs(), server.root, HOST]);
    assert.equal(overwrite.code, 0, overwrite.stderr);
    assert.deepEqual(await compareTrees(src, dir, SAME), []);
  });

  test('--to a DIR that does not exist yet: rsync makes it; a wrong key fails in words, exit 1', async () => {
    const dir = join(tmp.dir, 'back-remote-new');
    const run = await admin(['restore', '--to', login.to(dir), ...login.restoreArgs(), server.root, HOST]);
    assert.equal(run.code, 0, run.stderr);
    assert.deepEqual(await compareTrees(src, dir, SAME), []);
    const wrong = await admin(['restore', '--to', login.to(join(tmp.dir, 'never')), ...login.restoreArgs().map((arg) => arg.replace(login.key, server.key)), server.root, HOST]);
    assert.equal(wrong.code, 1);
    assert.match(wrong.stderr, /^ssh-r-sync-admin: error: .*Permission denied/m);
    assert.equal(existsSync(join(tmp.dir, 'never')), false);
  });

  test('privileged store: the same round trip', async () => {
    const dest = join(tmp.dir, 'back-privileged');
    const run = await admin(['restore', '--json', privilegedRoot, HOST, dest]);
    assert.equal(run.code, 0, run.stderr);
    assert.equal(JSON.parse(run.stdout).mode, 'privileged');
    assert.deepEqual(await compareTrees(src, dest, SAME), []);
    await assertSparse(join(dest, 'sparse.img'));
  });

  test('--path: a file and a directory land at their place under DEST, nothing else', async () => {
    const dest = join(tmp.dir, 'back-paths');
    const run = await admin(['restore', '--path', 'dir/sub', '--path', 'owned', server.root, HOST, dest]);
    assert.equal(run.code, 0, run.stderr);
    assert.deepEqual(readdirSync(dest).sort(), ['dir', 'owned']);
    assert.deepEqual(readdirSync(join(dest, 'dir')), ['sub']);
    const only = (name: Buffer) => !['dir', 'dir/sub', 'owned'].some((keep) => name.toString() === keep || name.toString().startsWith('dir/sub/'));
    assert.deepEqual(await compareTrees(src, dest, { ...SAME, ignore: only }), []);
  });

  test('a done mark without the mode record: a non-root receiver\'s store is read as fake-super, and says it guessed', async () => {
    // A copy of the fake-super store with owners and xattrs: cp, as rsync -X leaves rsync's own
    // user.rsync.%stat behind.
    const root = join(tmp.dir, 'old-mark-root');
    execFileSync('cp', ['-a', '--preserve=all', server.root, root]);
    const id = snapshotOf(root);
    const mark = join(root, HOST, `${id}.meta`, 'done.json');
    const done = JSON.parse(readFileSync(mark, 'utf8'));
    delete done.mode;
    await writeFile(mark, JSON.stringify(done));
    const dest = join(tmp.dir, 'back-old-mark');
    const run = await admin(['restore', root, HOST, dest]);
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stderr, /stored fake-super, guessed: its done mark predates the mode record/);
    assert.deepEqual(await compareTrees(src, dest, SAME), []);
  });
});

describe('what restore refuses', { concurrency: 1 }, () => {
  test('DEST inside BACKUP_ROOT (also through a symlink), and BACKUP_ROOT inside DEST: exit 2, nothing written', async () => {
    const inside = join(privilegedRoot, 'restored-here');
    const run = await admin(['restore', privilegedRoot, HOST, inside]);
    assert.equal(run.code, 2);
    assert.match(run.stderr, /is inside BACKUP_ROOT .*: refused/);
    assert.equal(existsSync(inside), false);
    const link = join(tmp.dir, 'sneaky');
    await symlink(join(privilegedRoot, HOST), link);
    const through = await admin(['restore', '--overwrite', privilegedRoot, HOST, join(link, 'x')]);
    assert.equal(through.code, 2);
    assert.match(through.stderr, /is inside BACKUP_ROOT/);
    const holding = await admin(['restore', '--overwrite', privilegedRoot, HOST, tmp.dir]);
    assert.equal(holding.code, 2);
    assert.match(holding.stderr, /BACKUP_ROOT .* is inside DEST .*: refused/);
  });

  test('a non-empty DEST without --overwrite: exit 2 with what to do, nothing written', async () => {
    const dest = join(tmp.dir, 'not-empty');
    await mkdir(dest);
    await writeFile(join(dest, 'mine'), 'keep me\n');
    const run = await admin(['restore', privilegedRoot, HOST, dest]);
    assert.equal(run.code, 2);
    assert.equal(run.stderr.trim().split('\n').length, 1);
    assert.match(run.stderr, /DEST is not empty: add --overwrite to write into it/);
    assert.deepEqual(await readdir(dest), ['mine']);
    // With --overwrite: the snapshot is written, what was there and not in it stays.
    const overwrite = await admin(['restore', '--overwrite', '--path', 'small.txt', privilegedRoot, HOST, dest]);
    assert.equal(overwrite.code, 0, overwrite.stderr);
    assert.deepEqual((await readdir(dest)).sort(), ['mine', 'small.txt']);
  });

  test('a symlink to /etc in the snapshot: --path through it refused; restored as a symlink; nothing written outside DEST', async () => {
    const hostile = join(tmp.dir, 'hostile-src');
    const outside = join(tmp.dir, 'outside');
    await mkdir(hostile);
    await mkdir(outside);
    await symlink('/etc', join(hostile, 'etc-link'));
    await symlink(outside, join(hostile, 'out-link'));
    await mkdir(join(hostile, 'real'));
    await writeFile(join(hostile, 'real', 'file'), 'x\n');
    const root = join(tmp.dir, 'hostile-root');
    await mkdir(root, { mode: 0o700 });
    const backup = await runRecv(['--local', hostile, '--name', HOST, '--mode', 'privileged', '--plugin', MANIFEST_DIST, '--plugin', LINK_DEST_DIST, root]);
    assert.equal(backup.code, 0, backup.stderr);
    const dest = join(tmp.dir, 'hostile-back');
    for (const path of ['etc-link/passwd', 'out-link/x', 'out-link/']) {
      const run = await admin(['restore', '--path', path, root, HOST, dest]);
      assert.equal(run.code, path === 'out-link/' ? 0 : 2, `${path}: ${run.stderr}`);
      if (run.code === 2) assert.match(run.stderr, /is a symlink in the snapshot: a restore never follows one/);
      await rm(dest, { recursive: true, force: true });
    }
    const whole = await admin(['restore', root, HOST, dest]);
    assert.equal(whole.code, 0, whole.stderr);
    assert.equal(readlinkSync(join(dest, 'etc-link')), '/etc');
    assert.equal(readlinkSync(join(dest, 'out-link')), outside);
    assert.deepEqual(await readdir(outside), []);
    // In a fake-super store the link is a regular file: going through it is refused as well.
    const fake = await admin(['restore', '--path', 'link-rel/x', server.root, HOST, join(tmp.dir, 'never')]);
    assert.equal(fake.code, 2);
    assert.match(fake.stderr, /"link-rel" is not a directory in the snapshot/);
  });

  test('--path that is absolute, has "..", or is not in the snapshot: one line naming it, exit 2, nothing written', async () => {
    const dest = join(tmp.dir, 'bad-paths');
    const cases: Array<[string, RegExp]> = [
      ['../x', /--path "\.\.\/x": "\.\." is not allowed/],
      ['dir/../../x', /"\.\." is not allowed/],
      ['/etc/passwd', /absolute paths are refused/],
      ['no/such/file', /--path "no\/such\/file": "no" is not in the snapshot/],
      ['dir/nope', /--path "dir\/nope": "dir\/nope" is not in the snapshot/],
    ];
    for (const [path, message] of cases) {
      const run = await admin(['restore', '--path', 'small.txt', '--path', path, privilegedRoot, HOST, dest]);
      assert.equal(run.code, 2, `${path}: ${run.stderr}`);
      assert.equal(run.stderr.trim().split('\n').length, 1);
      assert.match(run.stderr, message);
      assert.equal(existsSync(dest), false);
    }
  });

  test('--dry-run lists what would be written and writes nothing', async () => {
    const dest = join(tmp.dir, 'dry');
    const run = await admin(['restore', '--dry-run', server.root, HOST, dest]);
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stdout, /^cd\+{9} dir\/$/m);
    assert.match(run.stdout, /^<f\+{9} small\.txt$/m);
    assert.match(run.stderr, /dry run: \d+ entries .* nothing was written/);
    assert.equal(existsSync(dest), false);
    await mkdir(dest);
    const json = await admin(['restore', '--dry-run', '--json', '--to', login.to(dest), ...login.restoreArgs(), server.root, HOST]);
    assert.equal(json.code, 0, json.stderr);
    const summary = JSON.parse(json.stdout);
    assert.equal(summary.dryRun, true);
    assert.ok(summary.items > 30 && summary.itemized.includes('cd+++++++++ dir/'), json.stdout);
    assert.deepEqual(await readdir(dest), []);
  });

  test('an incomplete snapshot is not restorable; an unknown id names the complete ones', async () => {
    const complete = snapshotOf(privilegedRoot);
    const incomplete = '2030-01-01T000000Z';
    await mkdir(join(privilegedRoot, HOST, incomplete, 'x'), { recursive: true });
    await mkdir(join(privilegedRoot, HOST, `${incomplete}.meta`));
    await writeFile(join(privilegedRoot, HOST, `${incomplete}.meta`, 'in-progress'), '{}\n');
    const dest = join(tmp.dir, 'incomplete');
    const run = await admin(['restore', '--snapshot', incomplete, privilegedRoot, HOST, dest]);
    assert.equal(run.code, 2);
    assert.match(run.stderr, new RegExp(`has no complete snapshot ${incomplete} \\(complete ones: ${complete}\\)`));
    const unknown = await admin(['restore', '--snapshot', '2001-01-01T000000Z', privilegedRoot, HOST, dest]);
    assert.equal(unknown.code, 2);
    assert.match(unknown.stderr, new RegExp(`complete ones: ${complete}`));
    assert.equal(existsSync(dest), false);
    await rm(join(privilegedRoot, HOST, incomplete), { recursive: true });
    await rm(join(privilegedRoot, HOST, `${incomplete}.meta`), { recursive: true });
  });

  test('a mirror is restored under the host\'s lock: while a backup of it runs, the restore is refused and writes nothing', async () => {
    // A backup rewrites a mirror in place: it could turn a directory rsync has listed into a
    // symlink out of the mirror before rsync reads the files in it.
    const mirrorRoot = join(tmp.dir, 'mirror-root');
    await mkdir(mirrorRoot, { mode: 0o700 });
    const name = 'restore-mirror';
    const local = await runRecv(['--local', src, '--name', name, '--mode', 'privileged', mirrorRoot]);
    assert.equal(local.code, 0, local.stderr);
    // The lock as a running backup holds it (flock(1) stands in for the receiver).
    const holder = spawn('flock', ['-x', join(mirrorRoot, '.ssh-r-sync', 'locks', `${name}.lock`), '-c', 'echo locked; exec cat'], { stdio: ['pipe', 'pipe', 'inherit'] });
    const exited = new Promise((resolve) => holder.on('close', resolve));
    try {
      await new Promise<void>((resolve, reject) => {
        holder.stdout.on('data', (chunk: Buffer) => chunk.toString().includes('locked') && resolve());
        holder.on('close', () => reject(new Error('flock ended')));
      });
      const dest = join(tmp.dir, 'mirror-busy');
      const run = await admin(['restore', mirrorRoot, name, dest]);
      assert.equal(run.code, 1, run.stderr);
      assert.match(run.stderr, new RegExp(`^ssh-r-sync-admin: error: another backup of ${name} is already running; try again later$`, 'm'));
      assert.equal(existsSync(dest), false, 'nothing written');
    } finally {
      holder.stdin.end();
      await exited;
    }
    const dest = join(tmp.dir, 'mirror-free');
    const run = await admin(['restore', mirrorRoot, name, dest]);
    assert.equal(run.code, 0, run.stderr);
    assert.ok(existsSync(join(dest, 'small.txt')));
  });

  test('usage: DEST and --to together, neither, a --to without an absolute DIR: exit 2', async () => {
    for (const args of [
      ['restore', '--to', 'root@127.0.0.1:/x', privilegedRoot, HOST, join(tmp.dir, 'y')],
      ['restore', privilegedRoot, HOST],
      ['restore', '--to', 'root@127.0.0.1:relative', privilegedRoot, HOST],
      ['restore', '-k', '/nope', privilegedRoot, HOST, join(tmp.dir, 'y')],
    ]) {
      const run = await admin(args);
      assert.equal(run.code, 2, `${args.join(' ')}: ${run.stderr}`);
      assert.equal(run.stderr.trim().split('\n').length, 1, run.stderr);
    }
  });
});
