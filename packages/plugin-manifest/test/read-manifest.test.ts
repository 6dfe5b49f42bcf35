// Manifest readers: version 4 lines round-trip through entryLine; versions 1 to 3 still parse;
// anything else is refused with one line.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { HEADER, entryLine, parseEntryLine, parseHeader, type Entry } from '../src/index.js';

const entry: Entry = { type: 'c', mode: 0o4600, uid: 1234, gid: 5678, size: 0n, mtimeNs: -1_500_000_000n, target: '', rdev: [1, 3], flags: 'ax', sha256: null };

test('a version 4 line reads back as the entry it was written from, with its inode', () => {
  assert.equal(parseHeader(HEADER.trimEnd()), 4);
  const line = entryLine('dev\tn\xff', entry, '2049:131074').slice(0, -1);
  assert.equal(line, 'dev\\tn\\xff\tc\t4600\t1234:5678\t0\t-1.500000000\t\t1,3\tax\t-\t2049:131074');
  assert.deepEqual(parseEntryLine(line, 4), { path: 'dev\tn\xff', entry, inode: '2049:131074' });
  const link: Entry = { ...entry, type: 'l', mode: 0o777, size: 5n, target: 'a\nb\\c', rdev: null, flags: '-' };
  assert.deepEqual(parseEntryLine(entryLine('l', link).slice(0, -1), 4), { path: 'l', entry: link, inode: null });
  const file: Entry = { ...link, type: 'f', target: '', sha256: 'ab'.repeat(32) };
  assert.deepEqual(parseEntryLine(entryLine('f', file, '1:2').slice(0, -1), 4), { path: 'f', entry: file, inode: '1:2' });
});

test('a version 3 line parses as before, without an inode', () => {
  assert.equal(parseHeader('#ssh-r-sync-manifest/3\tpath\ttype\tmode\tuid:gid\tsize\tmtime\ttarget\trdev\tflags\tsha256'), 3);
  const file: Entry = { ...entry, type: 'f', rdev: null, sha256: 'ab'.repeat(32) };
  assert.deepEqual(parseEntryLine(`f\tf\t4600\t1234:5678\t0\t-1.500000000\t\t-\tax\t${'ab'.repeat(32)}`, 3), { path: 'f', entry: file });
});

test('a version 2 line parses, with no hash', () => {
  assert.equal(parseHeader('#ssh-r-sync-manifest/2\tpath\ttype\tmode\tuid:gid\tsize\tmtime\ttarget\trdev\tflags'), 2);
  assert.deepEqual(parseEntryLine('dev\tc\t4600\t1234:5678\t0\t-1.500000000\t\t1,3\tax', 2), { path: 'dev', entry });
});

test('a version 1 header and line parse, with rdev and flags unknown', () => {
  assert.equal(parseHeader('#ssh-r-sync-manifest/1\tpath\ttype\tmode\tuid:gid\tsize\tmtime\ttarget'), 1);
  assert.deepEqual(parseEntryLine('x\tf\t644\t0:0\t10\t1600000000.500000000\t', 1).entry,
    { type: 'f', mode: 0o644, uid: 0, gid: 0, size: 10n, mtimeNs: 1_600_000_000_500_000_000n, target: '', rdev: null, flags: null, sha256: null });
});

test('unknown versions, wrong field counts and malformed fields are refused', () => {
  assert.throws(() => parseHeader('#ssh-r-sync-manifest/5\tpath'), /not a manifest this version can read/);
  assert.throws(() => parseEntryLine(`x\tf\t644\t0:0\t10\t1600000000.500000000\t\t-\t-\t${'0'.repeat(64)}\t12`, 4), /malformed/);
  assert.throws(() => parseEntryLine(`x\tf\t644\t0:0\t10\t1600000000.500000000\t\t-\t-\t${'0'.repeat(64)}`, 4), /version 4 manifest line has 11 fields/);
  assert.throws(() => parseEntryLine('x\tf\t644\t0:0\t10\t1600000000.500000000\t\t-\t-\t-', 3), /malformed/);
  assert.throws(() => parseEntryLine(`x\td\t755\t0:0\t10\t1600000000.500000000\t\t-\t-\t${'0'.repeat(64)}`, 3), /malformed/);
  assert.throws(() => parseEntryLine(`x\tf\t644\t0:0\t10\t1600000000.500000000\t\t-\t-\t${'G'.repeat(64)}`, 3), /malformed/);
  assert.throws(() => parseEntryLine('x\tf\t644\t0:0\t10\t1600000000.500000000\t', 2), /version 2 manifest line has 9 fields/);
  assert.throws(() => parseEntryLine('x\tq\t644\t0:0\t10\t1600000000.500000000\t\t-\t-', 2), /malformed/);
  assert.throws(() => parseEntryLine('x\tc\t644\t0:0\t0\t1600000000.500000000\t\t1:3\t-', 2), /malformed/);
  assert.throws(() => parseEntryLine('x\tf\t644\t0:0\t10\t1600000000.500000000\t\t-\tz', 2), /malformed/);
});

test('streamManifest yields the entries in order and names the file and line of a bad one', async () => {
  const { mkdtempSync, writeFileSync, rmSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const { streamManifest } = await import('../src/index.js');
  const dir = mkdtempSync(join(tmpdir(), 'srs-stream-'));
  try {
    const good = join(dir, 'good.tsv');
    const file: Entry = { ...entry, type: 'f', mode: 0o644, rdev: null, flags: '-', sha256: 'cd'.repeat(32) };
    writeFileSync(good, HEADER + entryLine('.', { ...entry, type: 'd', rdev: null }) + entryLine('a\nb', file));
    const seen: string[] = [];
    for await (const item of streamManifest(good)) seen.push(`${item.version} ${item.path} ${item.entry.sha256}`);
    assert.deepEqual(seen, ['4 . null', `4 a\nb ${'cd'.repeat(32)}`]);
    const torn = join(dir, 'torn.tsv');
    writeFileSync(torn, HEADER + entryLine('.', { ...entry, type: 'd', rdev: null }).slice(0, -3));
    await assert.rejects(async () => { for await (const _ of streamManifest(torn)) void _; }, /torn\.tsv, line 2: the manifest does not end with a newline/);
    const bad = join(dir, 'bad.tsv');
    writeFileSync(bad, `${HEADER}x\tq\n`);
    await assert.rejects(async () => { for await (const _ of streamManifest(bad)) void _; }, /bad\.tsv, line 2: a version 4 manifest line has 11 fields/);
    const long = join(dir, 'long.tsv');
    writeFileSync(long, HEADER + 'y'.repeat(200_000));
    await assert.rejects(async () => { for await (const _ of streamManifest(long)) void _; }, /long\.tsv, line 2: a line longer than 65536 bytes/);
  } finally {
    rmSync(dir, { recursive: true });
  }
});
