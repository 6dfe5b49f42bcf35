// `ssh-r-sync-admin versions` and `diff` on real histories: four runs of `ssh-r-sync-recv --local`
// with plugin-link-dest and plugin-manifest, in which a file changes twice, a file becomes a
// symlink, goes away and comes back as it was, a file is deleted, and names hold a newline and
// bytes that are not UTF-8. What is checked is what a user reads: lines, JSON, exit codes.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync, readdirSync, utimesSync, writeFileSync } from 'node:fs';
import { mkdir, rm, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { repoRoot, runNode, runRecv, tempDir, type RunResult } from './helpers/cli.js';

const adminBin = join(repoRoot, 'packages/cli/bin/ssh-r-sync-admin.js');
const admin = (args: string[]) => runNode(adminBin, args);
const PLUGINS = ['--plugin', '@ssh-r-sync/plugin-link-dest', '--plugin', '@ssh-r-sync/plugin-manifest'];
const NAME = 'vd-host';
const SNAPSHOT_ID = /^\d{4}-\d{2}-\d{2}T\d{6}Z$/;
const PAST = '@1600000000.5';
const NON_UTF8 = Buffer.from([0x66, 0xff, 0x6f]); // "f\xffo"
/** Valid UTF-8 a terminal may act on: NEL (a C1 control), LINE SEPARATOR, RIGHT-TO-LEFT OVERRIDE. */
const INVISIBLE = 'odd\u0085\u2028\u202ename';
const INVISIBLE_SHOWN = 'odd\\xc2\\x85\\xe2\\x80\\xa8\\xe2\\x80\\xaename';
const NOTES = ['notes v1\n', 'notes v2\n', 'notes v3, longer\n'];
const NOTES_MTIME = ['@1700000001.25', '@1700000002.5', '@1700000003.75'];

let tmp: { dir: string; cleanup: () => Promise<void> };
let root: string;
let src: string;
let ids: string[];
before(async () => {
  tmp = await tempDir('srs-versions-');
  root = join(tmp.dir, 'root');
  src = join(tmp.dir, 'src');
  await mkdir(root, { mode: 0o700 });
  await mkdir(join(src, 'sub'), { recursive: true });
  ids = await history();
});
after(() => tmp?.cleanup());

const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');
const touch = (time: string, ...paths: string[]) => execFileSync('touch', ['-h', '-d', time, ...paths]);

function assertExit(result: RunResult, code: number, what: string): void {
  assert.equal(result.code, code, `${what} exited ${result.code}, not ${code}:\n${result.stderr}${result.stdout}`);
}

// One line of stderr, the command's prefix first.
function assertOneLine(result: RunResult, pattern: RegExp): void {
  assert.match(result.stderr, /^ssh-r-sync-admin: [^\n]*\n$/, `one line on stderr: ${JSON.stringify(result.stderr)}`);
  assert.match(result.stderr, pattern);
}

async function backup(): Promise<void> {
  // The top keeps its time: its mtime would otherwise change with every name added or removed.
  touch(PAST, src);
  assertExit(await runRecv(['--local', src, '--name', NAME, ...PLUGINS, root], { cwd: repoRoot }), 0, 'the backup');
}

// Four backups; returns their snapshot ids, oldest first.
//   notes.txt   v1 → v2 (same size) → v3 (longer) → v3
//   shape       a file → a symlink → gone → the same file again (content, mode, mtime)
//   doomed.txt  only in the first
//   line\nbreak changes in the third; f\xffo and new.txt are added in the second
async function history(): Promise<string[]> {
  const notes = join(src, 'notes.txt');
  await writeFile(notes, NOTES[0]!);
  touch(NOTES_MTIME[0]!, notes);
  await writeFile(join(src, 'stable.txt'), 'the same in every run\n');
  await writeFile(join(src, 'shape'), 'a file\n', { mode: 0o644 });
  await writeFile(join(src, 'doomed.txt'), 'soon gone\n');
  await writeFile(join(src, 'line\nbreak'), 'one\n');
  await writeFile(join(src, 'sub', 'inner'), 'inner\n');
  await writeFile(join(src, INVISIBLE), 'cursor games\n');
  touch(PAST, join(src, INVISIBLE), join(src, 'stable.txt'), join(src, 'shape'), join(src, 'doomed.txt'), join(src, 'line\nbreak'), join(src, 'sub', 'inner'), join(src, 'sub'));
  await backup();

  await writeFile(notes, NOTES[1]!);
  touch(NOTES_MTIME[1]!, notes);
  await rm(join(src, 'shape'));
  await symlink('stable.txt', join(src, 'shape'));
  await rm(join(src, 'doomed.txt'));
  await writeFile(join(src, 'new.txt'), 'new in the second\n');
  const odd = Buffer.concat([Buffer.from(`${src}/`), NON_UTF8]);
  await writeFile(odd, 'not utf-8\n');
  utimesSync(odd, 1600000000.5, 1600000000.5); // touch(1) cannot be handed these bytes
  touch(PAST, join(src, 'shape'), join(src, 'new.txt'));
  await backup();

  await writeFile(notes, NOTES[2]!);
  touch(NOTES_MTIME[2]!, notes);
  await rm(join(src, 'shape'));
  await writeFile(join(src, 'line\nbreak'), 'two\n');
  touch('@1600000100', join(src, 'line\nbreak')); // a new mtime: rsync skips a file whose size and mtime are the same
  await backup();

  await writeFile(join(src, 'shape'), 'a file\n', { mode: 0o644 });
  touch(PAST, join(src, 'shape'));
  await backup();

  const found = readdirSync(join(root, NAME)).filter((entry) => SNAPSHOT_ID.test(entry)).sort();
  assert.equal(found.length, 4, `four snapshots: ${found.join(' ')}`);
  return found;
}

interface VersionOut {
  version: number;
  type: string;
  sha256: string | null;
  size: number;
  mtime: string;
  first: string;
  last: string;
  snapshots: number;
  sameAs: number | null;
  identity: string;
  target: string | null;
  restore: string;
}

async function versionsJson(args: string[]): Promise<{ path: string; searched: number; versions: VersionOut[]; absent: { first: string; last: string; snapshots: number }[] }> {
  const run = await admin(['versions', ...args, '--json']);
  assertExit(run, 0, `versions ${args.join(' ')}`);
  return JSON.parse(run.stdout);
}

describe('ssh-r-sync-admin versions', () => {
  test("three runs that changed a file twice: its three versions, each with its hash and the first and last snapshot holding it", async () => {
    const json = await versionsJson([root, NAME, 'notes.txt']);
    assert.equal(json.path, 'notes.txt');
    assert.equal(json.searched, 4);
    assert.deepEqual(
      json.versions.map((v) => [v.version, v.type, v.sha256, v.size, v.mtime, v.first, v.last, v.snapshots, v.sameAs, v.identity]),
      [
        [1, 'f', sha256(NOTES[0]!), 9, '1700000001.250000000', ids[0], ids[0], 1, null, 'sha256'],
        [2, 'f', sha256(NOTES[1]!), 9, '1700000002.500000000', ids[1], ids[1], 1, null, 'sha256'],
        [3, 'f', sha256(NOTES[2]!), 17, '1700000003.750000000', ids[2], ids[3], 2, null, 'sha256'],
      ],
    );
    assert.deepEqual(json.absent, []);
    assert.equal(json.versions[2]!.restore, `ssh-r-sync-admin restore --snapshot ${ids[3]} --path notes.txt ${root} ${NAME} DEST`);

    const text = await admin(['versions', root, NAME, './notes.txt']);
    assertExit(text, 0, 'versions ./notes.txt');
    const lines = text.stdout.split('\n');
    assert.equal(lines[0], `${NAME}: notes.txt: 3 versions in 4 of 4 backups searched`);
    assert.match(lines[2]!, new RegExp(`^1 +${ids[0]} +${ids[0]} +1 +file +9 +0644 +0:0 +2023-11-14T22:13:21\\.250000000Z +${sha256(NOTES[0]!)}$`));
    assert.match(lines[4]!, new RegExp(`^3 +${ids[2]} +${ids[3]} +2 +file +17 `));
    assert.ok(lines.includes(`  2: ssh-r-sync-admin restore --snapshot ${ids[1]} --path notes.txt ${root} ${NAME} DEST`), text.stdout);

    const stable = await versionsJson([root, NAME, 'stable.txt']);
    assert.deepEqual(stable.versions.map((v) => [v.first, v.last, v.snapshots]), [[ids[0], ids[3], 4]]);
  });

  test('a file that became a symlink, went away and came back as it was: four runs, three versions and a gone run', async () => {
    const json = await versionsJson([root, NAME, 'shape']);
    assert.deepEqual(
      json.versions.map((v) => [v.version, v.type, v.first, v.last, v.sameAs, v.target, v.sha256]),
      [
        [1, 'f', ids[0], ids[0], null, null, sha256('a file\n')],
        [2, 'l', ids[1], ids[1], null, 'stable.txt', null],
        [3, 'f', ids[3], ids[3], 1, null, sha256('a file\n')],
      ],
    );
    assert.deepEqual(json.absent, [{ first: ids[2], last: ids[2], snapshots: 1 }]);
    const text = (await admin(['versions', root, NAME, 'shape'])).stdout;
    assert.match(text, new RegExp(`^- +${ids[2]} +${ids[2]} +1 +gone$`, 'm'));
    assert.match(text, /^2 .* symlink .* -> stable\.txt$/m);
    assert.match(text, /\(same as 1\)$/m);
  });

  test('a deleted file: its one version, then gone until the newest backup', async () => {
    const json = await versionsJson([root, NAME, 'doomed.txt']);
    assert.deepEqual(json.versions.map((v) => [v.first, v.last]), [[ids[0], ids[0]]]);
    assert.deepEqual(json.absent, [{ first: ids[1], last: ids[3], snapshots: 3 }]);
  });

  test('a directory: versions of its own metadata', async () => {
    const json = await versionsJson([root, NAME, 'sub/']);
    assert.deepEqual(json.versions.map((v) => [v.type, v.first, v.last, v.identity]), [['d', ids[0], ids[3], 'metadata']]);
    const top = await versionsJson([root, NAME, '.']);
    assert.equal(top.versions[0]!.type, 'd');
  });

  test('a newline and bytes that are not UTF-8 in a name: printed on one line, asked for as they are or escaped', async () => {
    const raw = await admin(['versions', root, NAME, 'line\nbreak']);
    assertExit(raw, 0, 'versions with a newline in PATH');
    const lines = raw.stdout.split('\n');
    assert.equal(lines[0], `${NAME}: line\\nbreak: 2 versions in 4 of 4 backups searched`);
    // head, column titles, two versions, blank, restore title, two hints, and the final newline
    assert.equal(lines.length, 9, raw.stdout);
    assert.match(raw.stdout, / --escaped --path 'line\\nbreak' /);
    const escaped = await versionsJson(['--escaped', root, NAME, 'line\\nbreak']);
    assert.deepEqual(escaped.versions.map((v) => v.sha256), [sha256('one\n'), sha256('two\n')]);

    const bytes = await versionsJson(['--escaped', root, NAME, 'f\\xffo']);
    assert.equal(bytes.path, 'f\\xffo');
    assert.deepEqual(bytes.versions.map((v) => [v.first, v.last, v.sha256]), [[ids[1], ids[3], sha256('not utf-8\n')]]);
    assert.match(bytes.versions[0]!.restore, / --escaped --path 'f\\xffo' /);
    // The hint works: restore takes the escaped spelling and writes the name's real bytes.
    const dest = join(tmp.dir, 'escaped-restore');
    const back = await admin(['restore', '--snapshot', ids[1]!, '--escaped', '--path', 'f\\xffo', root, NAME, dest]);
    assertExit(back, 0, 'restore --escaped of a name that is not UTF-8');
    assert.equal(readFileSync(Buffer.concat([Buffer.from(`${dest}/`), Buffer.from([0x66, 0xff, 0x6f])]), 'utf8'), 'not utf-8\n');
    // argv is UTF-8: the byte 0xff arrives as U+FFFD, which no manifest name holds.
    const lossy = await admin(['versions', root, NAME, 'f\ufffdo']);
    assertExit(lossy, 1, 'versions with U+FFFD');
    assertOneLine(lossy, /with --escaped/);
  });

  test('characters that can move the cursor or reorder a line are printed as their \\xHH bytes, and can be asked for so', async () => {
    const raw = await admin(['versions', root, NAME, INVISIBLE]);
    assertExit(raw, 0, 'versions of a name with invisible characters');
    assert.equal(raw.stdout.split('\n')[0], `${NAME}: ${INVISIBLE_SHOWN}: 1 version in 4 of 4 backups searched`);
    assert.doesNotMatch(raw.stdout, /[\u0080-\u009f\u2028\u2029\u202a-\u202e]/);
    const escaped = await versionsJson(['--escaped', root, NAME, INVISIBLE_SHOWN]);
    assert.equal(escaped.path, INVISIBLE_SHOWN);
    assert.equal(escaped.versions[0]!.sha256, sha256('cursor games\n'));
  });

  test('a fake-super receiver: the manifests tell the client\'s types, so a file that became a symlink is two versions', async () => {
    const fakeRoot = join(tmp.dir, 'fake-root');
    const fakeSrc = join(tmp.dir, 'fake-src');
    await mkdir(fakeRoot, { mode: 0o700 });
    await mkdir(fakeSrc);
    await writeFile(join(fakeSrc, 'shape'), 'a file\n');
    const run = () => runRecv(['--local', fakeSrc, '--name', 'vd-fake', '--mode', 'fake-super', ...PLUGINS, fakeRoot], { cwd: repoRoot });
    assertExit(await run(), 0, 'the first fake-super backup');
    await rm(join(fakeSrc, 'shape'));
    await symlink('elsewhere', join(fakeSrc, 'shape'));
    assertExit(await run(), 0, 'the second fake-super backup');
    const json = await versionsJson([fakeRoot, 'vd-fake', 'shape']);
    assert.deepEqual(json.versions.map((v) => [v.type, v.target]), [['f', null], ['l', 'elsewhere']]);
    const diff = await admin(['diff', fakeRoot, 'vd-fake', 'previous', 'latest']);
    assert.match(diff.stdout, /^M shape \(type file -> symlink, mode/m);
  });

  test('a path in no backup: exit 1, one line naming the host and the backups searched', async () => {
    const missing = await admin(['versions', root, NAME, 'no/such/file']);
    assertExit(missing, 1, 'versions of a missing path');
    assertOneLine(missing, new RegExp(`^ssh-r-sync-admin: ${NAME}: no/such/file is in none of the 4 backups searched: PATH is relative`));
    assert.equal(missing.stdout, '');
    const json = await admin(['versions', root, NAME, 'no/such/file', '--json']);
    assertExit(json, 1, 'versions --json of a missing path');
    assert.deepEqual(JSON.parse(json.stdout).versions, []);
  });

  test('usage errors exit 2 with one line: an absolute path, "..", a missing argument, an unknown host', async () => {
    const absolute = await admin(['versions', root, NAME, '/notes.txt']);
    assertExit(absolute, 2, 'an absolute PATH');
    assertOneLine(absolute, /is absolute: paths are relative to the backup's top.*e\.g\. etc\/passwd/);
    const dotdot = await admin(['versions', root, NAME, 'sub/../../x']);
    assertExit(dotdot, 2, 'a PATH with ..');
    assertOneLine(dotdot, /"\.\." component/);
    const short = await admin(['versions', root, NAME]);
    assertExit(short, 2, 'no PATH');
    assertOneLine(short, /missing required argument 'PATH'/);
    const host = await admin(['versions', root, 'vd-nobody', 'notes.txt']);
    assertExit(host, 2, 'an unknown host');
    assertOneLine(host, /no host "vd-nobody"/);
  });
});

interface ChangeOut {
  change: string;
  path: string;
  changes: string[];
  before: { type: string; size: number } | null;
  after: { type: string; size: number } | null;
}

describe('ssh-r-sync-admin diff', () => {
  test('added, removed and changed paths with what changed, and a summary with counts and bytes', async () => {
    const run = await admin(['diff', root, NAME, ids[0]!, ids[1]!]);
    assertExit(run, 0, 'diff of the first two');
    const lines = run.stdout.split('\n');
    assert.equal(lines.pop(), '');
    const summary = lines.pop();
    const removed = 'soon gone\n'.length + 'a file\n'.length + NOTES[0]!.length;
    const added = 'not utf-8\n'.length + 'new in the second\n'.length + NOTES[1]!.length;
    assert.equal(summary, `${NAME} ${ids[0]} -> ${ids[1]}: 2 added, 1 removed, 2 changed, 6 unchanged; +${added} bytes, -${removed} bytes`);
    // In manifest order: names sorted by their bytes.
    assert.deepEqual(lines.slice(0, 3), ['D doomed.txt', 'A f\\xffo', 'A new.txt']);
    assert.equal(lines[3], 'M notes.txt (content, mtime)');
    assert.match(lines[4]!, /^M shape \(type file -> symlink, mode(, mtime)?\)$/);
    assert.equal(lines.length, 5, run.stdout);

    const hostile = await admin(['diff', root, NAME, ids[1]!, ids[2]!]);
    assertExit(hostile, 0, 'diff of the second and third');
    assert.deepEqual(hostile.stdout.split('\n').slice(0, 3), ['M line\\nbreak (content, mtime)', 'M notes.txt (content, size, mtime)', 'D shape']);
  });

  test("'previous' and 'latest' name the two newest; the same snapshot twice has no differences; exit 0 either way", async () => {
    const named = await admin(['diff', root, NAME, ids[2]!, ids[3]!]);
    const relative = await admin(['diff', root, NAME, 'previous', 'latest']);
    assertExit(relative, 0, 'diff previous latest');
    assert.equal(relative.stdout, named.stdout);
    assert.equal(relative.stdout, `A shape\n${NAME} ${ids[2]} -> ${ids[3]}: 1 added, 0 removed, 0 changed, 9 unchanged; +7 bytes, -0 bytes\n`);
    const same = await admin(['diff', root, NAME, 'latest', ids[3]!]);
    assertExit(same, 0, 'diff of a snapshot with itself');
    assert.match(same.stdout, /^vd-host \S+ -> \S+: 0 added, 0 removed, 0 changed, 10 unchanged; \+0 bytes, -0 bytes\n$/);
  });

  test('--json: one object with both sides, every change with its entries before and after, and the summary', async () => {
    const run = await admin(['diff', root, NAME, ids[0]!, ids[1]!, '--json']);
    assertExit(run, 0, 'diff --json');
    const json = JSON.parse(run.stdout) as { root: string; host: string; a: { id: string }; b: { id: string }; changes: ChangeOut[]; summary: Record<string, number> };
    assert.deepEqual([json.root, json.host, json.a.id, json.b.id], [root, NAME, ids[0], ids[1]]);
    assert.deepEqual(json.changes.map((c) => [c.change, c.path]), [['D', 'doomed.txt'], ['A', 'f\\xffo'], ['A', 'new.txt'], ['M', 'notes.txt'], ['M', 'shape']]);
    const shape = json.changes.find((c) => c.path === 'shape')!;
    assert.deepEqual([shape.before?.type, shape.after?.type, shape.changes[0]], ['f', 'l', 'type']);
    const doomed = json.changes[0]!;
    assert.deepEqual([doomed.before?.size, doomed.after], [10, null]);
    assert.deepEqual(json.changes[3]!.changes, ['content', 'mtime']);
    assert.deepEqual(json.summary, { added: 2, removed: 1, changed: 2, unchanged: 6, bytesAdded: 37, bytesRemoved: 26 });
  });

  test('usage errors exit 2 with one line: an unknown snapshot, a missing argument, a mirror host', async () => {
    const unknown = await admin(['diff', root, NAME, '2001-01-01T000000Z', 'latest']);
    assertExit(unknown, 2, 'an unknown snapshot');
    assertOneLine(unknown, /has no complete snapshot 2001-01-01T000000Z \(complete ones: /);
    const bad = await admin(['diff', root, NAME, 'yesterday', 'latest']);
    assertExit(bad, 2, 'a snapshot that is not an id');
    assertOneLine(bad, /give a snapshot id like/);
    const short = await admin(['diff', root, NAME, 'latest']);
    assertExit(short, 2, 'no B');
    assertOneLine(short, /missing required argument 'B'/);

    const mirrorRoot = join(tmp.dir, 'mirror-root');
    await mkdir(mirrorRoot, { mode: 0o700 });
    assertExit(await runRecv(['--local', src, '--name', 'vd-mirror', '--plugin', '@ssh-r-sync/plugin-manifest', mirrorRoot], { cwd: repoRoot }), 0, 'the mirror backup');
    const mirror = await admin(['diff', mirrorRoot, 'vd-mirror', 'previous', 'latest']);
    assertExit(mirror, 2, 'diff of a mirror host');
    assertOneLine(mirror, /is a mirror .*nothing to diff/);
    // versions still reads the mirror's one manifest, and its restore hint names no snapshot.
    const versions = await versionsJson([mirrorRoot, 'vd-mirror', 'notes.txt']);
    assert.deepEqual(versions.versions.map((v) => [v.first, v.last]), [['mirror', 'mirror']]);
    assert.equal(versions.versions[0]!.restore, `ssh-r-sync-admin restore --path notes.txt ${mirrorRoot} vd-mirror DEST`);
  });

  test('a manifest from before content hashes (format 2): a file told by size and mtime, diff compares what both record', async () => {
    // Rewrite the first snapshot's manifest as the version 2 writer wrote it: no sha256 column.
    const copy = join(tmp.dir, 'v2-root');
    execFileSync('cp', ['-a', root, copy]);
    const manifest = join(copy, NAME, `${ids[0]}.meta`, 'manifest.tsv');
    const lines = readFileSync(manifest, 'latin1').split('\n');
    lines[0] = lines[0]!.replace('/4\t', '/2\t').replace(/\tsha256\tdev:ino$/, '');
    writeFileSync(manifest, lines.map((line, i) => (i === 0 || line === '' ? line : line.replace(/\t[^\t]*\t[^\t]*$/, ''))).join('\n'), 'latin1');
    const json = await versionsJson([copy, NAME, 'notes.txt']);
    assert.deepEqual(json.versions.map((v) => [v.identity, v.sha256]).slice(0, 2), [['size+mtime', null], ['sha256', sha256(NOTES[1]!)]]);
    const text = await admin(['versions', copy, NAME, 'notes.txt']);
    assert.match(text.stdout, /^1 .* no hash \(manifest before format 3\): size\+mtime$/m);
    const diff = await admin(['diff', copy, NAME, ids[0]!, ids[1]!]);
    assertExit(diff, 0, 'diff of a format 2 and a format 3 manifest');
    assert.match(diff.stdout, /^M notes\.txt \(mtime\)$/m);
  });

  test('a backup without a manifest: versions skips it and says so, diff refuses it with exit 1', async () => {
    const copy = join(tmp.dir, 'bare-root');
    execFileSync('cp', ['-a', root, copy]);
    await rm(join(copy, NAME, `${ids[1]}.meta`, 'manifest.tsv'));
    const run = await admin(['versions', copy, NAME, 'notes.txt', '--json']);
    assertExit(run, 0, 'versions with a backup that has no manifest');
    assertOneLine(run, new RegExp(`^ssh-r-sync-admin: ${NAME}: 1 backup without a manifest not searched: ${ids[1]}\n$`));
    const json = JSON.parse(run.stdout) as { searched: number; unsearched: string[]; versions: VersionOut[] };
    assert.deepEqual([json.searched, json.unsearched, json.versions.map((v) => v.first)], [3, [ids[1]], [ids[0], ids[2]]]);
    const diff = await admin(['diff', copy, NAME, ids[0]!, ids[1]!]);
    assertExit(diff, 1, 'diff against a backup without a manifest');
    assertOneLine(diff, new RegExp(`snapshot ${ids[1]} of "${NAME}" has no manifest`));
  });
});
