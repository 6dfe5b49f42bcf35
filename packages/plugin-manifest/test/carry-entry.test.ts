// A whole entry is taken from the previous committed manifest (not read again: no xattrs, no
// %stat, no symlink stand-in) only for the same inode, size and mtime whose ctime says nothing
// changed its metadata since: older than the previous run's start, or (in a new snapshot) moved
// by this run's link. Made visible by doctoring the previous manifest: a doctored field that shows
// up in the next manifest was carried over; a true one was read again.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { lstatSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeManifest, type CommittedManifest, type ManifestSummary } from '../src/index.js';

const FLAGS = 8;
const OWNER = 3;
const TARGET = 6;

function withDir(run: (dir: string) => Promise<void>): () => Promise<void> {
  return async () => {
    const dir = mkdtempSync(join(tmpdir(), 'srs-carry-'));
    try {
      await run(dir);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  };
}

// Waits until the clock reads later than every ctime in `tree`: a run "starting" now is after them.
async function clockPast(tree: string): Promise<Date> {
  const newest = execFileSync('find', [tree, '-printf', '%C@\n'], { encoding: 'utf8' }).trim().split('\n').map(Number).reduce((a, b) => Math.max(a, b));
  while (Date.now() <= newest * 1000 + 1) await new Promise((resolve) => setImmediate(resolve));
  return new Date();
}

// path → fields of a manifest's lines (plain names only here).
function lines(file: string): Map<string, string[]> {
  return new Map(readFileSync(file, 'latin1').split('\n').slice(1, -1).map((line) => [line.split('\t')[0]!, line.split('\t')]));
}

// Rewrites field `index` of `path`'s line and returns the manifest as committed (its new size and hash).
function doctor(file: string, path: string, index: number, value: string, startedAt: Date | undefined): CommittedManifest {
  const text = readFileSync(file, 'latin1').split('\n').map((line) => {
    const fields = line.split('\t');
    if (fields[0] !== path) return line;
    fields[index] = value;
    return fields.join('\t');
  }).join('\n');
  writeFileSync(file, text, 'latin1');
  const bytes = Buffer.from(text, 'latin1');
  return { file, bytes: bytes.length, sha256: createHash('sha256').update(bytes).digest('hex'), id: 'previous', ...(startedAt ? { startedAt } : {}) };
}

function tree(dir: string): string {
  const root = join(dir, 'tree');
  mkdirSync(join(root, 'sub'), { recursive: true });
  writeFileSync(join(root, 'a.txt'), 'a\n');
  writeFileSync(join(root, 'sub', 'b.txt'), 'b\n');
  return root;
}

test('an untouched inode (ctime older than the previous run) is carried over whole; a setfattr or chmod since is read again', withDir(async (dir) => {
  const root = tree(dir);
  const first = join(dir, 'm1.tsv');
  await writeManifest(root, first, { mode: 'privileged' });
  const startedAt = await clockPast(root);
  let previous = doctor(first, 'a.txt', FLAGS, 'x', startedAt);
  previous = doctor(first, 'sub/b.txt', FLAGS, 'x', startedAt);
  const second = join(dir, 'm2.tsv');
  const summary: ManifestSummary = await writeManifest(root, second, { mode: 'privileged', previous });
  assert.equal(lines(second).get('a.txt')![FLAGS], 'x', 'the doctored flags were carried over, the xattrs not listed');
  assert.ok(summary.carried >= 3, `every entry carried (${summary.carried})`);
  assert.deepEqual(summary.hashes, { read: 0, readBytes: 0, reused: 2 });

  // After that run began: an xattr on one inode, a chmod on the other (ctime moves).
  execFileSync('setfattr', ['-n', 'user.later', '-v', '1', join(root, 'a.txt')]);
  execFileSync('chmod', ['600', join(root, 'sub', 'b.txt')]);
  previous = doctor(first, 'a.txt', FLAGS, 'a', startedAt);
  const third = join(dir, 'm3.tsv');
  await writeManifest(root, third, { mode: 'privileged', previous });
  assert.equal(lines(third).get('a.txt')![FLAGS], 'x', 'a.txt read again: its new xattr, not the doctored "a"');
  assert.deepEqual(lines(third).get('sub/b.txt')!.slice(2, 3).concat(lines(third).get('sub/b.txt')![FLAGS]!), ['600', '-'], 'b.txt read again');
  // Without the previous run's start nothing can be trusted by ctime: everything is read.
  const unknown = doctor(first, 'a.txt', FLAGS, 'a', undefined);
  assert.equal((await writeManifest(root, join(dir, 'm4.tsv'), { mode: 'privileged', previous: unknown })).carried, 0);
}));

test('fake-super: %stat and a symlink stand-in\'s content are carried over for an untouched inode, read again after a setfattr or chmod', withDir(async (dir) => {
  const root = tree(dir);
  // What rsync --fake-super leaves: a symlink stored as a file holding its target, a %stat saying so.
  writeFileSync(join(root, 'link'), 'sub/b.txt');
  execFileSync('setfattr', ['-n', 'user.rsync.%stat', '-v', '120777 0,0 1234:5678', join(root, 'link')]);
  execFileSync('setfattr', ['-n', 'user.rsync.%stat', '-v', '100644 0,0 1234:5678', join(root, 'a.txt')]);
  const first = join(dir, 'm1.tsv');
  await writeManifest(root, first, { mode: 'fake-super' });
  assert.deepEqual([lines(first).get('link')![1], lines(first).get('link')![TARGET]], ['l', 'sub/b.txt']);
  const startedAt = await clockPast(root);
  doctor(first, 'link', TARGET, 'sub/B.txt', startedAt);
  const previous = doctor(first, 'a.txt', OWNER, '4321:8765', startedAt);
  const second = join(dir, 'm2.tsv');
  await writeManifest(root, second, { mode: 'fake-super', previous });
  assert.equal(lines(second).get('link')![TARGET], 'sub/B.txt', 'the stand-in was not read');
  assert.equal(lines(second).get('a.txt')![OWNER], '4321:8765', '%stat was not read');

  execFileSync('setfattr', ['-n', 'user.rsync.%stat', '-v', '100600 0,0 1111:2222', join(root, 'a.txt')]);
  execFileSync('chmod', ['600', join(root, 'link')]);
  const third = join(dir, 'm3.tsv');
  await writeManifest(root, third, { mode: 'fake-super', previous });
  assert.deepEqual(lines(third).get('a.txt')!.slice(2, 4), ['600', '1111:2222'], 'the new %stat is read');
  assert.equal(lines(third).get('link')![TARGET], 'sub/b.txt', 'the stand-in is read again');
}));

test('a new snapshot (hard links made by this run) carries entries over only with newSnapshotSince', withDir(async (dir) => {
  const root = tree(dir);
  const first = join(dir, 'm1.tsv');
  await writeManifest(root, first, { mode: 'plain' });
  const startedAt = await clockPast(root);
  const previous = doctor(first, 'a.txt', FLAGS, 'x', startedAt);
  const runStart = await clockPast(root);
  // What --link-dest leaves: new names of the same inodes (the link moves their ctime).
  const snapshot = join(dir, 'snapshot');
  execFileSync('cp', ['-al', root, snapshot]);
  assert.ok(lstatSync(join(snapshot, 'a.txt')).ctimeMs >= startedAt.getTime() - 1);
  const carried = join(dir, 'm2.tsv');
  await writeManifest(snapshot, carried, { mode: 'plain', previous, newSnapshotSince: runStart });
  assert.equal(lines(carried).get('a.txt')![FLAGS], 'x', 'carried over: rsync linked an unchanged inode');
  const read = join(dir, 'm3.tsv');
  await writeManifest(snapshot, read, { mode: 'plain', previous });
  assert.equal(lines(read).get('a.txt')![FLAGS], '-', 'not a new snapshot: its ctime is newer than the previous run, read again');
}));
