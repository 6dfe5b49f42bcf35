// `ssh-r-sync restore` and `ssh-r-sync snapshots` from the client, through the same key and forced
// command as the backup: the real sshd, the real receiver in fake-super mode (run as root here;
// the non-root receiver is covered where its fixture lives), link-dest and manifest plugins, and
// the awkward tree restored as root and compared byte for byte, owners and xattrs included.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { lstatSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { startBackupServer, type BackupServer } from './helpers/backup-server.js';
import { clientBin, processesMatching, repoRoot, runNode, tempDir } from './helpers/cli.js';
import { buildTree, compareTrees, OTHER_UID } from './helpers/tree.js';

const HOST = 'crestore-host';
/** A host without snapshot plugins: a plain mirror in ROOT/NAME. */
const MIRROR = 'crestore-mirror';
const LINK_DEST_DIST = join(repoRoot, 'packages/plugin-link-dest/dist/index.js');
const MANIFEST_DIST = join(repoRoot, 'packages/plugin-manifest/dist/index.js');
const ROOT_ONLY = process.getuid?.() !== 0 ? 'restoring owners and devices needs root' : false;
const LIMIT = { timeout: 180_000 };

let work: { dir: string; cleanup: () => Promise<void> };
let server: BackupServer;
let src: string;
/** Snapshot ids, oldest first: the first has small.txt's old content, the second the new. */
let ids: string[] = [];
let destCount = 0;

function run(args: string[], timeoutMs = 120_000) {
  return runNode(clientBin, args, { timeoutMs });
}

// `ssh-r-sync restore [server's options] ARGS… user@127.0.0.1 DEST`.
function restore(dest: string, args: string[] = []) {
  return run(['restore', ...server.clientArgs(), ...args, `${server.sshd.user}@127.0.0.1`, dest]);
}

function snapshots(args: string[] = []) {
  return run(['snapshots', ...server.clientArgs(), ...args, `${server.sshd.user}@127.0.0.1`], 60_000);
}

async function freshDest(): Promise<string> {
  destCount += 1;
  const dest = join(work.dir, `dest-${destCount}`);
  await mkdir(dest);
  return dest;
}

function oneErrorLine(stderr: string, pattern: RegExp): void {
  assert.doesNotMatch(stderr, /^\s{4}at /m, `stack trace:\n${stderr}`);
  const errors = stderr.split('\n').filter((line) => line.startsWith('ssh-r-sync: error: '));
  assert.equal(errors.length, 1, `expected one error line:\n${stderr}`);
  assert.match(errors[0]!, pattern);
}

before(async () => {
  if (ROOT_ONLY) return;
  work = await tempDir('srs-crestore-');
  src = join(work.dir, 'src');
  await mkdir(src);
  await buildTree(src);
  server = await startBackupServer({
    recvArgs: ['--name', HOST, '--mode', 'fake-super', '--plugin', MANIFEST_DIST, '--plugin', LINK_DEST_DIST],
    extraKeys: { mirror: ['--name', MIRROR, '--mode', 'fake-super'] },
  });
  for (const content of [null, 'changed after the first backup\n']) {
    if (content) await writeFile(join(src, 'small.txt'), content);
    const backup = await server.backup(src, ['-n', HOST], { timeoutMs: 120_000 });
    assert.equal(backup.code, 0, `backup failed: ${backup.stderr}`);
  }
  ids = readdirSync(join(server.root, HOST)).filter((name) => /^\d{4}-\d\d-\d\dT\d{6}Z$/.test(name)).sort();
  assert.equal(ids.length, 2);
});

after(async () => {
  await server?.stop();
  await work?.cleanup();
});

describe('ssh-r-sync restore through the forced command', { skip: ROOT_ONLY, concurrency: 1 }, () => {
  test('the whole latest snapshot comes back identical: owners, modes, links, devices, ACLs, xattrs, sparse file, times', LIMIT, async () => {
    const dest = await freshDest();
    await chmod(dest, 0o751);
    const r = await restore(dest);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, new RegExp(`restored snapshot ${ids[1]} of ${HOST} into ${dest}`));
    const diffs = await compareTrees(src, dest, { top: false, xattrs: true });
    assert.deepEqual(diffs, [], 'the restored tree is the source');
    // The snapshot's top is the receiver's private folder, not the client's: DEST keeps its own.
    assert.equal(statSync(dest).mode & 0o7777, 0o751);
    assert.ok(lstatSync(join(dest, 'link-rel')).isSymbolicLink());
    assert.ok(lstatSync(join(dest, 'fifo')).isFIFO());
    assert.ok(lstatSync(join(dest, 'chardev')).isCharacterDevice());
    assert.equal(lstatSync(join(dest, 'owned')).uid, OTHER_UID);
    assert.equal(statSync(join(dest, 'setuid')).mode & 0o7777, 0o4755);
    assert.equal(statSync(join(dest, 'sparse.img')).blocks * 512 < 8 * 1024 * 1024, true, 'the sparse file stays sparse');
  });

  test('--snapshot restores an older one; --path one file and one directory land at DEST/PATH and nothing else comes', LIMIT, async () => {
    const dest = await freshDest();
    const r = await restore(dest, ['--snapshot', ids[0]!, '--path', 'small.txt', '--path', 'dir']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, new RegExp(`restored snapshot ${ids[0]} of ${HOST}`));
    assert.equal(await readFile(join(dest, 'small.txt'), 'utf8'), 'hello world\n', 'the first snapshot\'s content');
    assert.deepEqual(readdirSync(dest).sort(), ['dir', 'small.txt']);
    assert.deepEqual(await compareTrees(join(src, 'dir'), join(dest, 'dir'), { xattrs: true }), [], 'the directory, with its attributes and xattr');
    const [was, is] = [statSync(join(src, 'small.txt')), statSync(join(dest, 'small.txt'))];
    assert.deepEqual([is.mode, is.uid, is.gid], [was.mode, was.uid, was.gid]);
    assert.equal(is.mtimeMs, Date.parse('2001-02-03T04:05:06Z'), 'the first snapshot\'s time');
  });

  test('--escaped --path reaches a name that is not UTF-8 (argv cannot carry its bytes)', LIMIT, async () => {
    const dest = await freshDest();
    const r = await restore(dest, ['--escaped', '--path', 'f\\xffo']);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(readdirSync(dest, { encoding: 'buffer' }), [Buffer.from([0x66, 0xff, 0x6f])]);
    assert.equal(readFileSync(Buffer.from(`${dest}/f\xffo`, 'latin1'), 'utf8'), 'not utf-8\n');
  });

  test('a nested --path brings its parent directories with their own attributes', LIMIT, async () => {
    const dest = await freshDest();
    const r = await restore(dest, ['--path', 'dir/sub/deep.txt', '--path', './owned-dir/']);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(readdirSync(join(dest, 'dir')), ['sub']);
    assert.deepEqual(readdirSync(join(dest, 'dir', 'sub')), ['deep.txt']);
    assert.equal(readFileSync(join(dest, 'dir', 'sub', 'deep.txt'), 'utf8'), readFileSync(join(src, 'dir', 'sub', 'deep.txt'), 'utf8'));
    assert.equal(statSync(join(dest, 'dir', 'sub')).mtimeMs, statSync(join(src, 'dir', 'sub')).mtimeMs);
    assert.equal(statSync(join(dest, 'owned-dir')).uid, statSync(join(src, 'owned-dir')).uid);
  });

  test('a non-empty DEST is refused without --overwrite and written with it; --dry-run writes nothing', LIMIT, async () => {
    const dest = await freshDest();
    await writeFile(join(dest, 'mine'), 'keep\n');
    const refused = await restore(dest, ['--path', 'small.txt']);
    assert.equal(refused.code, 2, refused.stderr);
    oneErrorLine(refused.stderr, /DEST .* is not empty: add --overwrite to write into it/);
    assert.deepEqual(readdirSync(dest), ['mine']);

    const dry = await restore(dest, ['--overwrite', '--dry-run']);
    assert.equal(dry.code, 0, dry.stderr);
    assert.match(dry.stderr, /dry run: .* nothing was written/);
    assert.match(dry.stdout, /small\.txt/, 'the itemized list names what would come');
    assert.deepEqual(readdirSync(dest), ['mine'], 'a dry run writes nothing');

    const missing = join(work.dir, 'not-there');
    const dryMissing = await restore(missing, ['--dry-run']);
    assert.equal(dryMissing.code, 0, dryMissing.stderr);
    assert.throws(() => statSync(missing), 'a dry run does not even create DEST');

    const written = await restore(dest, ['--overwrite', '--path', 'small.txt', '--json']);
    assert.equal(written.code, 0, written.stderr);
    assert.deepEqual(readdirSync(dest).sort(), ['mine', 'small.txt'], 'other files are left alone');
    const result = JSON.parse(written.stdout) as { snapshot: string; host: string; dryRun: boolean };
    assert.equal(result.snapshot, ids[1]);
    assert.equal(result.host, HOST);
  });

  test('usage errors are one line and exit 2 before anything connects', LIMIT, async () => {
    const dest = await freshDest();
    for (const [args, pattern] of [
      [['--path', '../etc/passwd'], /refused --path "..\/etc\/passwd": ".." is not allowed/],
      [['--path', '/etc/passwd'], /refused --path "\/etc\/passwd": give it relative/],
      [['--snapshot', 'yesterday'], /--snapshot "yesterday": give a snapshot id/],
    ] as const) {
      const r = await restore(dest, [...args]);
      assert.equal(r.code, 2, r.stderr);
      oneErrorLine(r.stderr, pattern);
    }
    assert.deepEqual(readdirSync(dest), []);
  });

  test('a backup server literally named "restore" is reached after --: the backup\'s own command line reads it', LIMIT, async () => {
    const missing = join(work.dir, 'no-such-path');
    const r = await run(['-o', 'ConnectTimeout=1', '--', 'restore', missing]);
    assert.equal(r.code, 2, r.stderr);
    oneErrorLine(r.stderr, new RegExp(`${missing} does not exist`));
  });

  test('an unknown snapshot id is refused by the server in words naming what exists', LIMIT, async () => {
    const dest = await freshDest();
    const r = await restore(dest, ['--snapshot', '2001-01-01T000000Z']);
    assert.equal(r.code, 1, r.stderr);
    oneErrorLine(r.stderr, new RegExp(`the backup server refused the restore: host "${HOST}" has no complete snapshot 2001-01-01T000000Z \\(complete ones: ${ids[0]}, ${ids[1]}\\)`));
    assert.deepEqual(readdirSync(dest), []);
  });

  test('ssh-r-sync snapshots lists the host\'s complete snapshots, with entries and verify state; --json too', LIMIT, async () => {
    // A real verify of the first snapshot only, sampled: its record is what the listing shows.
    const verified = await runNode(join(repoRoot, 'packages/cli/bin/ssh-r-sync-admin.js'), ['verify', '--sample', '100', '--snapshot', ids[0]!, server.root, HOST]);
    assert.equal(verified.code, 0, verified.stderr + verified.stdout);
    const record = JSON.parse(await readFile(join(server.root, HOST, `${ids[0]}.meta`, 'verify.json'), 'utf8')) as { at: string; data: boolean; sample: number | null };
    const json = await snapshots(['--json']);
    assert.equal(json.code, 0, json.stderr);
    const listing = JSON.parse(json.stdout) as { host: string; kind: string; snapshots: Array<{ id: string; mode: string; entries: number; verify: unknown }> };
    assert.equal(listing.host, HOST);
    assert.equal(listing.kind, 'snapshots');
    assert.deepEqual(listing.snapshots.map((s) => s.id), ids);
    assert.ok(listing.snapshots.every((s) => s.mode === 'fake-super' && s.entries > 30), JSON.stringify(listing.snapshots));
    assert.deepEqual(listing.snapshots[0]!.verify, { at: record.at, data: record.data, sample: 100, problems: 0, ok: true });
    assert.equal(listing.snapshots[1]!.verify, null);

    const text = await snapshots();
    assert.equal(text.code, 0, text.stderr);
    const lines = text.stdout.trimEnd().split('\n');
    assert.equal(lines[0], `host ${HOST}`);
    assert.match(lines[1]!, /^ID\s+STARTED\s+MODE\s+ENTRIES\s+TRANSFERRED\s+VERIFY$/);
    assert.match(lines[2]!, new RegExp(`^${ids[0]}\\s.*fake-super.*ok \\(sample 100%, ${record.at.slice(0, 19)}Z\\)$`));
    assert.match(lines[3]!, new RegExp(`^${ids[1]}\\s.*never verified$`));
  });

  test('a mirror host (no snapshot plugins) restores its mirror as latest, and lists it', LIMIT, async () => {
    const key = server.keys.mirror!;
    const backup = await server.backup(join(src, 'dir'), ['-n', MIRROR], { timeoutMs: 120_000, key });
    assert.equal(backup.code, 0, backup.stderr);
    const dest = await freshDest();
    const r = await run(['restore', ...server.clientArgs(key), `${server.sshd.user}@127.0.0.1`, dest]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, new RegExp(`restored the mirror of ${MIRROR}`));
    assert.deepEqual(await compareTrees(join(src, 'dir'), dest, { top: false, xattrs: true }), []);
    const list = await run(['snapshots', ...server.clientArgs(key), '--json', `${server.sshd.user}@127.0.0.1`]);
    assert.equal(list.code, 0, list.stderr);
    const listing = JSON.parse(list.stdout) as { kind: string; snapshots: Array<{ id: string }> };
    assert.equal(listing.kind, 'mirror');
    assert.deepEqual(listing.snapshots.map((s) => s.id), ['']);
  });

  test('the backup itself still runs through the same key, and nothing of a restore is left running', LIMIT, async () => {
    const backup = await server.backup(src, ['-n', HOST], { timeoutMs: 120_000 });
    assert.equal(backup.code, 0, backup.stderr);
    assert.match(backup.stderr, /backup of crestore-host done/);
    // The serving rsync names the snapshot under ROOT, the local one DEST under the work folder.
    assert.deepEqual(await processesMatching(server.root), []);
    assert.deepEqual(await processesMatching(work.dir), []);
  });
});
