// keepPrivate and assertPrivateRoot on real directories: what rsync leaves on a destination is
// taken back through one descriptor that never follows a symlink; a root others can open is refused.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, chownSync, mkdirSync, mkdtempSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { assertPrivateRoot, keepPrivate } from '../src/index.js';

function scratch(t: { after(fn: () => void): void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'srs-host-dir-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

test('keepPrivate: 0700 and our owner; a trailing slash, a missing directory and a relative path are fine', async (t) => {
  const dir = scratch(t);
  const wide = join(dir, 'wide');
  mkdirSync(wide);
  chmodSync(wide, 0o4777);
  if (process.getuid?.() === 0) chownSync(wide, 1234, 5678);
  await keepPrivate(`${wide}/`, join(dir, 'missing'), 'relative/path');
  const info = statSync(wide);
  assert.equal((info.mode & 0o7777).toString(8), '700');
  assert.equal(info.uid, process.getuid?.());
});

test('keepPrivate refuses a symlink (even written with a trailing slash) and a file, and leaves the target alone', async (t) => {
  const dir = scratch(t);
  const target = join(dir, 'target');
  mkdirSync(target, { mode: 0o755 });
  chmodSync(target, 0o755);
  symlinkSync(target, join(dir, 'link'));
  await assert.rejects(keepPrivate(join(dir, 'link')), { code: 'ENAME', message: `refused host directory ${join(dir, 'link')}: it is a symlink` });
  await assert.rejects(keepPrivate(`${join(dir, 'link')}//`), /it is a symlink/);
  assert.equal(statSync(target).mode & 0o7777, 0o755);
  writeFileSync(join(dir, 'file'), '');
  await assert.rejects(keepPrivate(join(dir, 'file')), /it is not a directory/);
});

test('assertPrivateRoot: a missing root is a configuration error; 0700 passes', async (t) => {
  const dir = scratch(t);
  await assert.rejects(assertPrivateRoot(join(dir, 'nope')), { code: 'ECONFIG', message: `BACKUP_ROOT ${join(dir, 'nope')} cannot be used: ENOENT` });
  const root = join(dir, 'root');
  mkdirSync(root, { mode: 0o700 });
  await assertPrivateRoot(root);
  chmodSync(root, 0o701);
  await assert.rejects(assertPrivateRoot(root), { code: 'ECONFIG', message: `refusing to back up into ${root}: it is searchable by other users (chmod 700 ${root})` });
});
