// plugin-manifest tells the client's truth in every storage mode: in fake-super mode rsync keeps
// the client's type, mode, owner and device numbers in user.rsync.%stat and symlinks, fifos and
// devices as regular files; the manifest must list what lstat says of the SOURCE, as it does in
// privileged mode. Runs as root (mknod, chown, setfacl, setfattr).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { closeSync, lchownSync, lstatSync, openSync, readFileSync, readdirSync, readlinkSync, writeFileSync } from 'node:fs';
import { chown, mkdir, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { readManifest, type Entry } from '@ssh-r-sync/plugin-manifest';
import { startBackupServer } from './helpers/backup-server.js';
import { repoRoot, runRecv, tempDir } from './helpers/cli.js';

const LINK_DEST = '@ssh-r-sync/plugin-link-dest';
const MANIFEST = '@ssh-r-sync/plugin-manifest';
/** The forced command runs in root's home: plugins are named by their built files there. */
const LINK_DEST_DIST = join(repoRoot, 'packages/plugin-link-dest/dist/index.js');
const MANIFEST_DIST = join(repoRoot, 'packages/plugin-manifest/dist/index.js');
const NON_UTF8 = Buffer.from([0x66, 0xff, 0x6f]);
const latin1 = (path: string) => Buffer.from(path, 'latin1');

let tmp: { dir: string; cleanup: () => Promise<void> };
before(async () => {
  tmp = await tempDir('srs-manifest-truth-');
});
after(async () => tmp.cleanup());

// A source with every kind of entry fake-super has to disguise.
async function source(dir: string): Promise<void> {
  await mkdir(join(dir, 'sub'), { recursive: true });
  await writeFile(join(dir, 'plain.txt'), 'plain\n');
  await writeFile(join(dir, 'setuid'), '#!/bin/sh\n', { mode: 0o4755 });
  await writeFile(join(dir, 'owned'), 'someone else\n');
  await chown(join(dir, 'owned'), 1234, 5678);
  await chown(join(dir, 'sub'), 1234, 5678);
  await writeFile(join(dir, 'line\nbreak\tand tab'), 'odd name\n');
  // Names that are not UTF-8, with a %stat to read in fake-super mode and an xattr.
  const odd = Buffer.concat([Buffer.from(`${dir}/`), NON_UTF8]);
  writeFileSync(odd, 'not utf-8\n');
  lchownSync(odd, 4321, 8765);
  const fd = openSync(odd, 'r'); // argv is UTF-8: setfattr reaches the file through its descriptor
  try {
    execFileSync('setfattr', ['-n', 'user.odd', '-v', 'yes', '/proc/self/fd/3'], { stdio: ['ignore', 'ignore', 'inherit', fd] });
  } finally {
    closeSync(fd);
  }
  await symlink('sub/../plain.txt', join(dir, 'link'));
  await symlink(Buffer.concat([Buffer.from('nowhere\t'), NON_UTF8]), Buffer.concat([Buffer.from(`${dir}/dangling`), NON_UTF8]));
  execFileSync('mkfifo', ['-m', '640', join(dir, 'fifo')]);
  execFileSync('mknod', ['-m', '600', join(dir, 'null-dev'), 'c', '1', '3']);
  execFileSync('mknod', ['-m', '660', join(dir, 'block-dev'), 'b', '7', '200']);
  await writeFile(join(dir, 'acl'), 'acl\n');
  execFileSync('setfacl', ['-m', 'u:1234:r', join(dir, 'acl')]);
  await writeFile(join(dir, 'xattr'), 'xattr\n');
  execFileSync('setfattr', ['-n', 'user.test', '-v', 'value', join(dir, 'xattr')]);
  execFileSync('find', [dir, '-exec', 'touch', '-h', '-d', '2020-01-02 03:04:05.123456789', '{}', '+']);
}

const FLAGS: Record<string, string> = { acl: 'a', xattr: 'x', [NON_UTF8.toString('latin1')]: 'x' };

// What lstat says of every source entry, as manifest entries (the top's mode and owner aside).
// In a --local fake-super run rsync's sender runs with --fake-super too and reads ACLs from
// user.rsync.%aacl, not the real one, so no ACL reaches the backup (rsync(1), --fake-super):
// that manifest truthfully has none. Through a client's daemon (`remote`) the ACL travels.
function expected(dir: string, mode: string): Map<string, Entry> {
  const out = new Map<string, Entry>();
  const walk = (rel: string) => {
    const abs = rel === '.' ? dir : `${Buffer.from(dir).toString('latin1')}/${rel}`;
    const st = lstatSync(rel === '.' ? dir : latin1(abs), { bigint: true });
    const type = st.isFile() ? 'f' : st.isDirectory() ? 'd' : st.isSymbolicLink() ? 'l' : st.isFIFO() ? 'p' : st.isCharacterDevice() ? 'c' : 'b';
    const device = type === 'c' || type === 'b';
    out.set(rel, {
      type, mode: Number(st.mode & 0o7777n), uid: Number(st.uid), gid: Number(st.gid),
      size: type === 'd' ? -1n : st.size, mtimeNs: st.mtimeNs,
      target: type === 'l' ? readlinkSync(latin1(abs), { encoding: 'latin1' }) : '',
      rdev: device ? [Number(st.rdev >> 8n & 0xfffn), Number(st.rdev & 0xffn)] : null,
      flags: (mode === 'fake-super' && rel === 'acl' ? undefined : FLAGS[rel]) ?? '-',
      sha256: type === 'f' ? createHash('sha256').update(readFileSync(latin1(abs))).digest('hex') : null,
    });
    if (type === 'd') for (const name of readdirSync(latin1(abs), { encoding: 'latin1' })) walk(rel === '.' ? name : `${rel}/${name}`);
  };
  walk('.');
  return out;
}

function comparable(entries: Map<string, Entry>): Map<string, Entry> {
  const out = new Map<string, Entry>();
  for (const [path, entry] of entries) {
    const copy = { ...entry, size: entry.type === 'd' ? -1n : entry.size };
    if (path === '.') Object.assign(copy, { mode: 0, uid: 0, gid: 0 });
    out.set(path, copy);
  }
  return out;
}

// The manifest of the one snapshot under ROOT/h, checked against lstat of `src`.
function checkManifest(root: string, src: string, mode: string): Map<string, Entry> {
  const meta = readdirSync(join(root, 'h')).filter((name) => name.endsWith('.meta'));
  assert.equal(meta.length, 1);
  const manifest = readManifest(join(root, 'h', meta[0]!, 'manifest.tsv'));
  assert.equal(manifest.version, 4);
  assert.deepEqual(comparable(manifest.entries), comparable(expected(src, mode)), `the ${mode} manifest lists the source as lstat sees it`);
  return manifest.entries;
}

async function backup(mode: string): Promise<Map<string, Entry>> {
  const base = join(tmp.dir, mode);
  const src = join(base, 'src');
  const root = join(base, 'root');
  await mkdir(src, { recursive: true });
  await mkdir(root, { mode: 0o700 });
  await source(src);
  const run = await runRecv(['--local', src, '--name', 'h', '--mode', mode, '--plugin', MANIFEST, '--plugin', LINK_DEST, root], { cwd: repoRoot });
  assert.equal(run.code, 0, `ssh-r-sync-recv --mode ${mode} failed: ${run.stderr}`);
  return checkManifest(root, src, mode);
}

describe('manifest entries are the client\'s truth', { concurrency: 1 }, () => {
  test('fake-super: type, mode, owner, devices, link targets and ACL/xattr flags are the source\'s, not the on-disk stand-ins\'', async () => {
    const entries = await backup('fake-super');
    // What is on disk really is a stand-in: the manifest did not just lstat it.
    const tree = readdirSync(join(tmp.dir, 'fake-super/root/h')).find((name) => !name.endsWith('.meta') && name !== 'latest')!;
    assert.ok(lstatSync(join(tmp.dir, 'fake-super/root/h', tree, 'link')).isFile());
    assert.equal(entries.get('link')?.type, 'l');
  });

  test('privileged: the same tree gives the same entries', async () => {
    await backup('privileged');
  });

  test('fake-super through a client\'s rsync daemon over the real sshd: the ACL is kept too, and listed', async () => {
    const server = await startBackupServer({ recvArgs: ['--name', 'h', '--mode', 'fake-super', '--plugin', MANIFEST_DIST, '--plugin', LINK_DEST_DIST] });
    try {
      const src = join(tmp.dir, 'remote-src');
      await mkdir(src);
      await source(src);
      const run = await server.backup(src, ['-n', 'h'], { timeoutMs: 60_000 });
      assert.equal(run.code, 0, `the backup failed: ${run.stderr}`);
      const entries = checkManifest(server.root, src, 'remote');
      assert.equal(entries.get('acl')?.flags, 'a');
    } finally {
      await server.stop();
    }
  });

  test('a version 2 manifest still parses, without hashes', () => {
    const file = join(tmp.dir, 'v2.tsv');
    writeFileSync(file, '#ssh-r-sync-manifest/2\tpath\ttype\tmode\tuid:gid\tsize\tmtime\ttarget\trdev\tflags\n.\td\t755\t0:0\t4096\t1600000000.500000000\t\t-\t-\nf\tf\t644\t1:2\t3\t1.000000001\t\t-\tx\n');
    const manifest = readManifest(file);
    assert.equal(manifest.version, 2);
    assert.deepEqual(manifest.entries.get('f'), { type: 'f', mode: 0o644, uid: 1, gid: 2, size: 3n, mtimeNs: 1_000_000_001n, target: '', rdev: null, flags: 'x', sha256: null });
  });

  test('a version 1 manifest still parses', () => {
    const file = join(tmp.dir, 'v1.tsv');
    writeFileSync(file, '#ssh-r-sync-manifest/1\tpath\ttype\tmode\tuid:gid\tsize\tmtime\ttarget\n.\td\t755\t0:0\t4096\t1600000000.500000000\t\nf\\xffo\tl\t777\t1:2\t3\t-1.000000001\tt\\tx\n');
    const manifest = readManifest(file);
    assert.equal(manifest.version, 1);
    assert.deepEqual(manifest.entries.get('f\xffo'), { type: 'l', mode: 0o777, uid: 1, gid: 2, size: 3n, mtimeNs: -1_000_000_001n, target: 't\tx', rdev: null, flags: null, sha256: null });
    assert.equal(manifest.entries.size, 2);
  });
});
