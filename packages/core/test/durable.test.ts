// The writes a done mark rests on, on a real full filesystem (a small tmpfs): a write that does
// not fit is an error, the old file is untouched, no temporary file is left, and the error says
// what happened in words.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { flushFilesystem, storageError, writeAtomic } from '../src/storage/durable.js';

let mount: string;
let mounted = false;

before(() => {
  mount = mkdtempSync(join(tmpdir(), 'srs-durable-'));
  mounted = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=1m,mode=0700', 'tmpfs', mount]).status === 0;
});
after(() => {
  if (mounted) execFileSync('umount', [mount]);
  rmSync(mount, { recursive: true, force: true });
});

test('writeAtomic on a full disk fails with ENOSPC, keeps the old file and leaves no temporary file', async (t) => {
  if (!mounted) return t.skip('cannot mount a tmpfs here (needs root)');
  const mark = join(mount, 'done.json');
  await writeAtomic(mark, '{"old":true}\n');
  // Fill the filesystem to the last block.
  spawnSync('dd', ['if=/dev/zero', `of=${join(mount, 'filler')}`, 'bs=4096'], { stdio: 'ignore' });
  await assert.rejects(writeAtomic(mark, 'x'.repeat(64 * 1024)), (error: NodeJS.ErrnoException) => {
    assert.equal(error.code, 'ENOSPC');
    const words = storageError('/srv/backups', 'committing the backup', error);
    assert.equal(words.message, 'no space left on BACKUP_ROOT (/srv/backups) while committing the backup: free space (e.g. ssh-r-sync-admin prune) and run the backup again');
    return true;
  });
  assert.equal(readFileSync(mark, 'utf8'), '{"old":true}\n');
  assert.deepEqual(readdirSync(mount).sort(), ['done.json', 'filler']);
});

test('flushFilesystem flushes the filesystem of a path, and names a path that is not there', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'srs-flush-'));
  try {
    writeFileSync(join(dir, 'f'), 'data');
    await flushFilesystem(dir);
    await assert.rejects(flushFilesystem(join(dir, 'missing')), /could not flush .*missing to disk: sync exited with code 1: sync: error opening/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
