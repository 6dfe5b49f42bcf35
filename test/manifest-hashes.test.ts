// plugin-manifest hashes at the cost of the change: a file that is the same stored file as in the
// previous complete backup (same inode, size and mtime) takes its hash from that backup's
// committed manifest; everything else is read. Real runs of ssh-r-sync-recv --local with real
// rsync. Reuse is made visible by doctoring a committed manifest (and its done mark, so that it
// still reads as committed): a doctored hash that shows up in the next manifest was not reread.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, readFileSync, readdirSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { repoRoot, runRecv, tempDir, type RunResult } from './helpers/cli.js';

const LINK_DEST = '@ssh-r-sync/plugin-link-dest';
const MANIFEST = '@ssh-r-sync/plugin-manifest';
const SNAPSHOT_ID = /^\d{4}-\d{2}-\d{2}T\d{6}Z$/;
const PAST = '@1600000000.5';
/** A hash no file here has: if it appears in a new manifest, it was carried over, not computed. */
const DOCTORED = 'd0c7'.repeat(16);
const SHA256_FIELD = 9;

let tmp: { dir: string; cleanup: () => Promise<void> };
let fixtures = 0;
before(async () => {
  tmp = await tempDir('srs-hashes-');
});
after(() => tmp?.cleanup());

interface Fixture {
  src: string;
  root: string;
  name: string;
}

// A small source: files that stay, one that changes, one that another run copies; a fifo and a symlink.
async function fixture(): Promise<Fixture> {
  fixtures += 1;
  const base = join(tmp.dir, `f${fixtures}`);
  const src = join(base, 'src');
  const root = join(base, 'root');
  await mkdir(join(src, 'sub'), { recursive: true });
  await mkdir(root, { mode: 0o700 });
  await writeFile(join(src, 'unchanged.txt'), 'the same in every run\n');
  await writeFile(join(src, 'copied.txt'), 'same bytes, new inode\n');
  await writeFile(join(src, 'changed.txt'), 'version 1\n');
  await writeFile(join(src, 'sub', 'nested.txt'), 'nested\n');
  execFileSync('mkfifo', [join(src, 'fifo')]);
  execFileSync('ln', ['-s', 'sub/nested.txt', join(src, 'link')]);
  execFileSync('find', [src, '-exec', 'touch', '-h', '-d', PAST, '{}', '+']);
  return { src, root, name: `hashes${fixtures}` };
}

function recv(f: Fixture, plugins: string[], extra: string[] = []): Promise<RunResult> {
  return runRecv(['--local', f.src, '--name', f.name, ...plugins.flatMap((plugin) => ['--plugin', plugin]), ...extra, f.root], { cwd: repoRoot });
}

function assertExit(result: RunResult, code: number): void {
  assert.equal(result.code, code, `the run exited ${result.code}, not ${code}:\n${result.stderr}${result.stdout}`);
}

// The metadata directory of the newest snapshot (or of the mirror, for a mirror host).
function newestMeta(f: Fixture, mirror = false): string {
  if (mirror) return join(f.root, '.ssh-r-sync', 'mirror', f.name);
  const ids = readdirSync(join(f.root, f.name)).filter((entry) => SNAPSHOT_ID.test(entry)).sort();
  return join(f.root, f.name, `${ids.at(-1)!}.meta`);
}

// path → sha256 column of a manifest (plain names only in this fixture: no unescaping needed).
function hashes(metaDir: string): Map<string, string> {
  const lines = readFileSync(join(metaDir, 'manifest.tsv'), 'latin1').split('\n').slice(1, -1);
  return new Map(lines.map((line) => {
    const fields = line.split('\t');
    return [fields[0]!, fields[SHA256_FIELD]!];
  }));
}

function sha256(file: string): string {
  return createHash('sha256').update(readFileSync(file)).digest('hex');
}

interface HashCounts {
  read: number;
  readBytes: number;
  reused: number;
}

function counts(metaDir: string): HashCounts {
  return (JSON.parse(readFileSync(join(metaDir, 'done.json'), 'utf8')) as { extra: { manifest: { hashes: HashCounts } } }).extra.manifest.hashes;
}

// Rewrites a committed manifest with `edit`; with `commit`, its done mark then records the new
// bytes, as if the receiver had committed it so.
function doctor(metaDir: string, edit: (text: string) => string, commit = true): void {
  const file = join(metaDir, 'manifest.tsv');
  const text = edit(readFileSync(file, 'latin1'));
  writeFileSync(file, text, 'latin1');
  if (!commit) return;
  const markFile = join(metaDir, 'done.json');
  const mark = JSON.parse(readFileSync(markFile, 'utf8')) as { extra: { manifest: { bytes: number; sha256: string } } };
  mark.extra.manifest.bytes = Buffer.byteLength(text, 'latin1');
  mark.extra.manifest.sha256 = createHash('sha256').update(Buffer.from(text, 'latin1')).digest('hex');
  writeFileSync(markFile, `${JSON.stringify(mark)}\n`);
}

// Replaces the hash of `paths` in a manifest's text with DOCTORED.
function withDoctoredHashes(paths: string[]): (text: string) => string {
  return (text) => text.split('\n').map((line) => {
    const fields = line.split('\t');
    if (!paths.includes(fields[0]!)) return line;
    fields[SHA256_FIELD] = DOCTORED;
    return fields.join('\t');
  }).join('\n');
}

// Every regular file of the tree has its true hash in the manifest.
function assertTrueHashes(tree: string, metaDir: string): void {
  const listed = hashes(metaDir);
  for (const path of ['unchanged.txt', 'copied.txt', 'changed.txt', 'sub/nested.txt']) {
    assert.equal(listed.get(path), sha256(join(tree, path)), `${path} has its true hash`);
  }
  assert.equal(listed.get('fifo'), '-');
  assert.equal(listed.get('link'), '-');
}

function changeSource(f: Fixture): void {
  writeFileSync(join(f.src, 'changed.txt'), 'version 2, longer\n');
  execFileSync('touch', ['-d', '@1700000000', join(f.src, 'changed.txt')]);
  execFileSync('touch', ['-d', PAST, f.src]);
}

describe('manifest hashes are read only for new data', { concurrency: 1 }, () => {
  test('snapshots: an unchanged file takes its hash from the previous manifest; a changed or re-stored one is read', async () => {
    const f = await fixture();
    assertExit(await recv(f, [LINK_DEST, MANIFEST]), 0);
    const first = newestMeta(f);
    assert.deepEqual(counts(first), { read: 4, readBytes: statSize(f.src, ['unchanged.txt', 'copied.txt', 'changed.txt', 'sub/nested.txt']), reused: 0 });
    doctor(first, withDoctoredHashes(['unchanged.txt', 'copied.txt']));
    // The stored copy of copied.txt becomes another inode with the same bytes, size and mtime:
    // the next snapshot links against that one, whose hash the manifest did not record.
    const stored = join(first.replace(/\.meta$/, ''), 'copied.txt');
    copyFileSync(stored, `${stored}.new`);
    execFileSync('touch', ['-r', stored, `${stored}.new`]);
    renameSync(`${stored}.new`, stored);
    changeSource(f);

    assertExit(await recv(f, [LINK_DEST, MANIFEST]), 0);
    const second = newestMeta(f);
    assert.notEqual(second, first);
    const tree = second.replace(/\.meta$/, '');
    const listed = hashes(second);
    assert.equal(listed.get('unchanged.txt'), DOCTORED, 'the unchanged file\'s hash came from the previous manifest, unread');
    assert.equal(listed.get('copied.txt'), sha256(join(tree, 'copied.txt')), 'another inode is read, whatever its size and mtime');
    assert.equal(listed.get('changed.txt'), sha256(join(tree, 'changed.txt')), 'the changed file has its new hash');
    assert.equal(listed.get('changed.txt'), createHash('sha256').update('version 2, longer\n').digest('hex'));
    assert.equal(listed.get('sub/nested.txt'), sha256(join(tree, 'sub/nested.txt')), 'an unchanged file keeps its (true) recorded hash');
    assert.deepEqual(counts(second), { read: 2, readBytes: statSize(tree, ['copied.txt', 'changed.txt']), reused: 2 });
  });

  test('a previous manifest that is not the committed one, torn, old or missing: every file is read, the run succeeds', async () => {
    const f = await fixture();
    assertExit(await recv(f, [LINK_DEST, MANIFEST]), 0);
    const cases: [string, (meta: string) => void, RegExp | null][] = [
      ['not the one its done mark records', (meta) => doctor(meta, withDoctoredHashes(['unchanged.txt']), false), /is not the one its done mark records: hashing every file/],
      ['version 2 (no hashes, no inodes)', (meta) => doctor(meta, toVersion2), /is version 2, without inodes: hashing every file/],
      ['torn after its header, done mark matching', (meta) => doctor(meta, (text) => text.slice(0, text.indexOf('\n') + 12)), /stopped being readable: .*does not end with a newline.*: hashing every file/],
      ['garbage, done mark matching', (meta) => doctor(meta, () => 'not a manifest\n'), /cannot be read|stopped being readable: .*not a manifest this version can read/],
      ['missing', (meta) => execFileSync('rm', [join(meta, 'manifest.tsv')]), /cannot be read \(ENOENT\)/],
    ];
    for (const [what, damage, warning] of cases) {
      damage(newestMeta(f));
      const run = await recv(f, [LINK_DEST, MANIFEST]);
      assertExit(run, 0);
      if (warning) assert.match(run.stderr, warning, `${what}: the receiver says why it reads everything`);
      const meta = newestMeta(f);
      assertTrueHashes(meta.replace(/\.meta$/, ''), meta);
      assert.equal(counts(meta).reused, 0, `${what}: nothing reused`);
      assert.equal(counts(meta).read, 4, `${what}: every file read`);
    }
    // And the manifest these runs wrote lends its hashes again.
    assertExit(await recv(f, [LINK_DEST, MANIFEST]), 0);
    assert.deepEqual(counts(newestMeta(f)), { read: 0, readBytes: 0, reused: 4 });
  });

  test('a mirror reuses its own last committed manifest, and keeps no copy of it afterwards', async () => {
    const f = await fixture();
    assertExit(await recv(f, [MANIFEST]), 0);
    const meta = newestMeta(f, true);
    doctor(meta, withDoctoredHashes(['unchanged.txt', 'changed.txt']));
    changeSource(f);
    assertExit(await recv(f, [MANIFEST]), 0);
    const tree = join(f.root, f.name);
    const listed = hashes(meta);
    assert.equal(listed.get('unchanged.txt'), DOCTORED, 'the unchanged file\'s hash came from the mirror\'s previous manifest');
    assert.equal(listed.get('changed.txt'), sha256(join(tree, 'changed.txt')), 'the rewritten file has its new hash');
    assert.equal(listed.get('copied.txt'), sha256(join(tree, 'copied.txt')));
    assert.deepEqual(counts(meta), { read: 1, readBytes: statSize(tree, ['changed.txt']), reused: 3 });
    assert.deepEqual(readdirSync(meta).sort(), ['done.json', 'manifest.tsv'], 'the kept manifest is gone after the run');
    assert.ok(!existsSync(join(tree, 'previous-manifest.tsv')), 'nothing written into the client\'s tree');
  });

  test('a mirror lends nothing after a failed run, nor when rsync writes files in place', async () => {
    const f = await fixture();
    assertExit(await recv(f, [MANIFEST]), 0);
    const meta = newestMeta(f, true);
    doctor(meta, withDoctoredHashes(['unchanged.txt']));
    // A run that fails after rsync rewrote the mirror (an rsync.post hook turns its exit code
    // into 23): the mirror's old done mark is gone, nothing was committed.
    const fail = join(f.root, '..', 'fail.sh');
    writeFileSync(fail, '#!/bin/sh\necho 23\n', { mode: 0o755 });
    assertExit(await recv(f, [MANIFEST], ['-x', `rsync.post:${fail}`]), 1);
    assert.ok(!existsSync(join(meta, 'done.json')), 'the failed run left the mirror without a done mark');
    assertExit(await recv(f, [MANIFEST]), 0);
    assert.equal(hashes(meta).get('unchanged.txt'), sha256(join(f.root, f.name, 'unchanged.txt')), 'no hash from before the failed run');
    assert.deepEqual(counts(meta), { read: 4, readBytes: statSize(f.src, ['unchanged.txt', 'copied.txt', 'changed.txt', 'sub/nested.txt']), reused: 0 });

    // rsync --inplace (here from an rsync.pre hook) may rewrite a file and keep its inode.
    doctor(meta, withDoctoredHashes(['unchanged.txt']));
    const hook = join(f.root, '..', 'inplace.sh');
    writeFileSync(hook, "#!/bin/sh\nprintf -- '--inplace\\0'\n", { mode: 0o755 });
    assertExit(await recv(f, [MANIFEST], ['-x', `rsync.pre:${hook}`]), 0);
    assert.equal(hashes(meta).get('unchanged.txt'), sha256(join(f.root, f.name, 'unchanged.txt')), 'no hash reused when rsync writes in place');
    assert.equal(counts(meta).reused, 0);
  });
});

function statSize(tree: string, paths: string[]): number {
  return paths.reduce((sum, path) => sum + statSync(join(tree, path)).size, 0);
}

// A version 4 manifest's text as version 2 would have written it (no sha256, no dev:ino).
function toVersion2(text: string): string {
  return text.split('\n').map((line, i) => {
    if (i === 0) return '#ssh-r-sync-manifest/2\tpath\ttype\tmode\tuid:gid\tsize\tmtime\ttarget\trdev\tflags';
    return line === '' ? line : line.split('\t').slice(0, 9).join('\t');
  }).join('\n');
}

const FLAGS_FIELD = 8;
const TARGET_FIELD = 6;

function manifestLines(metaDir: string): Map<string, string[]> {
  const lines = readFileSync(join(metaDir, 'manifest.tsv'), 'latin1').split('\n').slice(1, -1);
  return new Map(lines.map((line) => [line.split('\t')[0]!, line.split('\t')]));
}

// Sets field `index` of `path`'s line to `value`.
function withField(path: string, index: number, value: string): (text: string) => string {
  return (text) => text.split('\n').map((line) => {
    const fields = line.split('\t');
    if (fields[0] !== path) return line;
    fields[index] = value;
    return fields.join('\t');
  }).join('\n');
}

// Whole entries are copied from the previous manifest for unchanged inodes: a doctored flags
// column (from the xattr listing) and a doctored link target (a fake-super stand-in's content)
// are carried over; after a setfattr or chmod on the stored inode the entry is read again.
describe('unchanged entries are carried over whole, not read again', { concurrency: 1 }, () => {
  for (const mode of ['privileged', 'fake-super']) {
    test(`snapshots (${mode}): an inode rsync linked keeps its recorded line; one changed on the server since is read`, async () => {
      const f = await fixture();
      const args = ['--mode', mode];
      assertExit(await recv(f, [LINK_DEST, MANIFEST], args), 0);
      const first = newestMeta(f);
      doctor(first, (text) => withField('link', TARGET_FIELD, 'sub/nested.TXT')(withField('unchanged.txt', FLAGS_FIELD, 'x')(text)));
      assertExit(await recv(f, [LINK_DEST, MANIFEST], args), 0);
      const second = newestMeta(f);
      const listed = manifestLines(second);
      assert.equal(listed.get('unchanged.txt')![FLAGS_FIELD], 'x', 'the doctored flags came over: no xattr was listed');
      assert.equal(listed.get('link')![TARGET_FIELD], 'sub/nested.TXT', 'the doctored target came over: nothing was read');

      // On the server, after that commit: an xattr on one stored file, a chmod on another.
      const tree = second.replace(/\.meta$/, '');
      execFileSync('setfattr', ['-n', 'user.server', '-v', '1', join(tree, 'unchanged.txt')]);
      execFileSync('chmod', ['600', join(tree, 'sub', 'nested.txt')]);
      assertExit(await recv(f, [LINK_DEST, MANIFEST], args), 0);
      const third = manifestLines(newestMeta(f));
      assert.equal(third.get('unchanged.txt')![FLAGS_FIELD], '-', 'read again: the client has no xattr, and neither has the new stored file');
      assert.equal(third.get('sub/nested.txt')![2], manifestLines(first).get('sub/nested.txt')![2], 'read again: the client\'s mode, not the server\'s chmod');
      assert.equal(third.get('link')![TARGET_FIELD], 'sub/nested.TXT', 'the untouched link is still carried over');
    });
  }

  test('a mirror: an untouched file keeps its recorded line; a setfattr or chmod on the server is read again (its ctime moved)', async () => {
    const f = await fixture();
    assertExit(await recv(f, [MANIFEST]), 0);
    // The files rsync wrote in the first run changed after it began: that run's manifest lends them nothing.
    assertExit(await recv(f, [MANIFEST]), 0);
    const meta = newestMeta(f, true);
    doctor(meta, (text) => withField('sub/nested.txt', FLAGS_FIELD, 'x')(withField('unchanged.txt', FLAGS_FIELD, 'x')(text)));
    assertExit(await recv(f, [MANIFEST]), 0);
    assert.equal(manifestLines(meta).get('unchanged.txt')![FLAGS_FIELD], 'x', 'carried over: untouched since the previous run began');

    const tree = join(f.root, f.name);
    execFileSync('setfattr', ['-n', 'user.server', '-v', '1', join(tree, 'unchanged.txt')]);
    execFileSync('chmod', ['600', join(tree, 'sub', 'nested.txt')]);
    const inode = statSync(join(tree, 'unchanged.txt')).ino;
    assertExit(await recv(f, [MANIFEST]), 0);
    assert.equal(statSync(join(tree, 'unchanged.txt')).ino, inode, 'rsync fixed the attributes in place: the same inode');
    const listed = manifestLines(meta);
    assert.equal(listed.get('unchanged.txt')![FLAGS_FIELD], '-', 'read again after the setfattr');
    assert.deepEqual([listed.get('sub/nested.txt')![2], listed.get('sub/nested.txt')![FLAGS_FIELD]], ['644', '-'], 'read again after the chmod');
  });
});
