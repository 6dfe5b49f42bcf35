// The pieces of hash reuse: the walk order the merge relies on is the writer's own order, a
// previous manifest is used only when it is the one its done mark names, and reading a file for
// its hash never waits on a fifo.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { hashFile, matchesDoneMark, streamManifest, walkOrder, writeManifest } from '../src/index.js';

function withDir(run: (dir: string) => Promise<void>): () => Promise<void> {
  return async () => {
    const dir = mkdtempSync(join(tmpdir(), 'srs-reuse-'));
    try {
      await run(dir);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  };
}

test('walkOrder sorts paths as the writer walks them: a directory\'s contents before a sibling that sorts after it', withDir(async (dir) => {
  const tree = join(dir, 'tree');
  for (const sub of ['a', 'a/b', 'a.d', 'a-', 'b\xff'.replace('\xff', 'é')]) mkdirSync(join(tree, sub), { recursive: true });
  for (const file of ['a/b/z', 'a/c', 'a.txt', 'a-/x', '-dash', '.hidden', 'A']) writeFileSync(join(tree, file), file);
  await writeManifest(tree, join(dir, 'manifest.tsv'));
  const written: string[] = [];
  for await (const { path } of streamManifest(join(dir, 'manifest.tsv'))) written.push(path);
  assert.deepEqual([...written].sort(walkOrder), written, 'the manifest is in walkOrder');
  assert.deepEqual(written.slice(0, 3), ['.', '-dash', '.hidden']);
  assert.ok(written.indexOf('a/c') < written.indexOf('a-'), 'a/… before a-');
}));

test('a previous manifest counts only when its size and SHA-256 are the done mark\'s', withDir(async (dir) => {
  const file = join(dir, 'manifest.tsv');
  writeFileSync(file, 'some bytes\n');
  const sha256 = createHash('sha256').update(readFileSync(file)).digest('hex');
  assert.equal(await matchesDoneMark({ file, bytes: 11, sha256, id: 'x' }), true);
  assert.equal(await matchesDoneMark({ file, bytes: 11, sha256: '0'.repeat(64), id: 'x' }), false);
  assert.equal(await matchesDoneMark({ file, bytes: 10, sha256, id: 'x' }), false);
  const fifo = join(dir, 'fifo.tsv');
  execFileSync('mkfifo', [fifo]);
  assert.equal(await matchesDoneMark({ file: fifo, bytes: 11, sha256, id: 'x' }), false, 'a fifo is not read (and not waited on)');
}));

test('hashFile refuses a fifo at once instead of waiting for a writer', withDir(async (dir) => {
  const fifo = join(dir, 'fifo');
  execFileSync('mkfifo', [fifo]);
  const abs = Buffer.from(fifo).toString('latin1');
  await assert.rejects(hashFile(abs, 0n), /is not a regular file/);
  await assert.rejects(hashFile(abs, 10n ** 9n), /is not a regular file/, 'the large-file path too');
  const file = join(dir, 'file');
  writeFileSync(file, 'content');
  assert.equal(await hashFile(Buffer.from(file).toString('latin1'), BigInt(statSync(file).size)), createHash('sha256').update('content').digest('hex'));
}));
