// A source tree with everything a backup must keep (odd names, links, holes, modes, owners,
// times, special files, xattrs and ACLs), and a comparer that walks two trees byte-exactly.
// Names are Buffers throughout: one of them is not UTF-8.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, existsSync } from 'node:fs';
import { chmod, chown, lchown, link, lstat, lutimes, mkdir, open, readdir, readlink, symlink, utimes, writeFile } from 'node:fs/promises';
import { delimiter, join } from 'node:path';

/** What the builder could make here; parts that need missing tools are left out and listed in `missing`. */
export interface TreeInfo {
  /** Created with user xattrs (user.test on xattr-file, user.dir on dir). */
  xattrs: boolean;
  /** acl-file has an access ACL (user 1234 may read). */
  acl: boolean;
  /** chardev is a character device (1,3). */
  device: boolean;
  /** Why a part is missing, for t.skip messages. */
  missing: string[];
}

/** The sparse file's apparent size. */
export const SPARSE_SIZE = 64 * 1024 * 1024;
/** The non-UTF-8 name ("f\xffo"). */
export const NON_UTF8_NAME = Buffer.from([0x66, 0xff, 0x6f]);
/** Owner and group given to the `owned*` entries. */
export const OTHER_UID = 1234;
export const OTHER_GID = 5678;

const at = (iso: string) => new Date(iso);

// An executable on PATH (or a fixed system path), or null.
export function which(command: string): string | null {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (dir && existsSync(join(dir, command))) return join(dir, command);
  }
  return null;
}

// The system python (not a pyenv shim, which is slow to start), used for xattrs when attr/acl tools are missing.
function python(): string | null {
  return existsSync('/usr/bin/python3') ? '/usr/bin/python3' : which('python3');
}

const SET_XATTR_PY = 'import os,sys; os.setxattr(sys.argv[1], sys.argv[2], bytes.fromhex(sys.argv[3]), follow_symlinks=False)';

// Sets one extended attribute (setfattr, else python3). Returns false when no tool can.
export function setXattr(path: string, name: string, value: Buffer): boolean {
  const setfattr = which('setfattr');
  if (setfattr) {
    execFileSync(setfattr, ['-h', '-n', name, '-v', `0x${value.toString('hex')}`, path]);
    return true;
  }
  const py = python();
  if (!py) return false;
  execFileSync(py, ['-c', SET_XATTR_PY, path, name, value.toString('hex')]);
  return true;
}

// A POSIX access ACL in the kernel's xattr format: owner rw, user OTHER_UID r, group r, mask r, other none.
function aclValue(): Buffer {
  const UNDEFINED = 0xffffffff;
  const entries: Array<[tag: number, perm: number, id: number]> = [
    [0x01, 6, UNDEFINED], // USER_OBJ
    [0x02, 4, OTHER_UID], // USER
    [0x04, 4, UNDEFINED], // GROUP_OBJ
    [0x10, 4, UNDEFINED], // MASK
    [0x20, 0, UNDEFINED], // OTHER
  ];
  const buf = Buffer.alloc(4 + entries.length * 8);
  buf.writeUInt32LE(2, 0);
  entries.forEach(([tag, perm, id], i) => {
    buf.writeUInt16LE(tag, 4 + i * 8);
    buf.writeUInt16LE(perm, 6 + i * 8);
    buf.writeUInt32LE(id, 8 + i * 8);
  });
  return buf;
}

// Sets the ACL (setfacl, else the raw system.posix_acl_access xattr). Returns false when no tool can.
function setAcl(path: string): boolean {
  const setfacl = which('setfacl');
  if (setfacl) {
    execFileSync(setfacl, ['-m', `u:${OTHER_UID}:r--,g::r--,o::---`, path]);
    return true;
  }
  if (which('setfattr') || python()) return setXattr(path, 'system.posix_acl_access', aclValue());
  return false;
}

// Bytes that look random but are reproducible (so a test can rewrite a file with the same content).
export function pseudoRandom(size: number, seed: string): Buffer {
  const out = Buffer.alloc(size);
  let block = createHash('sha256').update(seed).digest();
  for (let offset = 0; offset < size; offset += block.length) {
    block.copy(out, offset);
    block = createHash('sha256').update(block).digest();
  }
  return out;
}

// Builds the full tree under `root` (which must exist and be empty). Must run as root (chown, mknod).
export async function buildTree(root: string): Promise<TreeInfo> {
  const p = (...parts: string[]) => join(root, ...parts);
  const missing: string[] = [];

  // Regular files of varied sizes and contents.
  await writeFile(p('small.txt'), 'hello world\n');
  await utimes(p('small.txt'), at('2001-02-03T04:05:06Z'), at('2001-02-03T04:05:06Z'));
  await writeFile(p('medium.bin'), pseudoRandom(64 * 1024, 'medium'));
  await mkdir(p('dir', 'sub'), { recursive: true });
  await writeFile(p('dir', 'sub', 'deep.txt'), 'line of text\n'.repeat(15_000));
  await writeFile(p('dir', 'sub', 'big.bin'), pseudoRandom(700 * 1024, 'big'));
  await writeFile(p('empty'), '');

  // Links: relative symlinks, a dangling one, a hard-linked pair.
  await symlink('small.txt', p('link-rel'));
  await symlink('../small.txt', p('dir', 'up-link'));
  await symlink('no/such/target', p('dangling'));
  await lutimes(p('link-rel'), at('2005-06-07T08:09:10Z'), at('2005-06-07T08:09:10Z'));
  await writeFile(p('hard-a'), 'two names, one inode\n');
  await link(p('hard-a'), p('dir', 'hard-b'));

  // A sparse file: 64 MiB apparent, one 4 KiB block written at the end.
  const sparse = await open(p('sparse.img'), 'w');
  await sparse.write(pseudoRandom(4096, 'sparse'), 0, 4096, SPARSE_SIZE - 4096);
  await sparse.close();

  // Awkward names.
  await writeFile(p('with space.txt'), 'spaces\n');
  await writeFile(p('new\nline'), 'newline in the name\n');
  await writeFile(Buffer.concat([Buffer.from(`${root}/`), NON_UTF8_NAME]), 'not utf-8\n');
  await writeFile(p('-rf'), 'looks like an option\n');
  await writeFile(p('--delete'), 'looks like an option too\n');
  await mkdir(p('-dash-dir'));
  await writeFile(p('-dash-dir', '--inside'), 'x\n');

  // Special modes.
  await writeFile(p('setuid'), '#!/bin/sh\n');
  await chmod(p('setuid'), 0o4755);
  await mkdir(p('setgid-dir'));
  await writeFile(p('setgid-dir', 'f'), 'in a setgid dir\n');
  await chmod(p('setgid-dir'), 0o2775);
  await mkdir(p('sticky'));
  await chmod(p('sticky'), 0o1777);
  await writeFile(p('private'), 'owner only\n');
  await chmod(p('private'), 0o600);
  await writeFile(p('nothing'), 'no permissions at all\n');
  await chmod(p('nothing'), 0o000);

  // Another owner and group (numeric ids that exist nowhere).
  await writeFile(p('owned'), 'not root\n');
  await chown(p('owned'), OTHER_UID, OTHER_GID);
  await mkdir(p('owned-dir'));
  await chown(p('owned-dir'), OTHER_UID, OTHER_GID);
  await symlink('owned', p('owned-link'));
  await lchown(p('owned-link'), OTHER_UID, OTHER_GID);

  // Special files.
  execFileSync('mkfifo', [p('fifo')]);
  let device = false;
  try {
    execFileSync('mknod', [p('chardev'), 'c', '1', '3'], { stdio: 'pipe' });
    device = true;
  } catch (error) {
    missing.push(`mknod failed (${(error as Error).message.split('\n')[0]})`);
  }

  // Extended attributes and an ACL.
  await writeFile(p('xattr-file'), 'has an xattr\n');
  const xattrs = setXattr(p('xattr-file'), 'user.test', Buffer.from('hello')) && setXattr(p('dir'), 'user.dir', Buffer.from('on a directory'));
  if (!xattrs) missing.push('no setfattr and no python3 to set xattrs');
  await writeFile(p('acl-file'), 'has an ACL\n');
  await chmod(p('acl-file'), 0o640);
  const acl = setAcl(p('acl-file'));
  if (!acl) missing.push('no setfacl, setfattr or python3 to set an ACL');

  // Times last, so that creating children does not change them.
  await utimes(p('dir', 'sub'), at('1999-12-31T23:59:58Z'), at('1999-12-31T23:59:58Z'));
  await mkdir(p('dated-dir'));
  await writeFile(p('dated-dir', 'f'), 'x\n');
  await utimes(p('dated-dir', 'f'), at('2010-01-01T00:00:00Z'), at('2010-01-01T00:00:00Z'));
  await utimes(p('dated-dir'), at('1999-12-31T23:59:59Z'), at('1999-12-31T23:59:59Z'));
  return { xattrs, acl, device, missing };
}

export interface CompareOptions {
  /** Compare uid and gid (default true). */
  owner?: boolean;
  /** Compare permission bits (default true). */
  mode?: boolean;
  /** Compare the top directory's own attributes (default true). */
  top?: boolean;
  /** Compare extended attributes and ACLs through python3 (default false); throws if python3 is missing. */
  xattrs?: boolean;
  /** Relative names (Buffers) to leave out, with everything below them. */
  ignore?: (name: Buffer) => boolean;
}

interface Entry {
  type: string;
  fields: Record<string, string>;
  inode: string;
  nlink: number;
}

// Shows a Buffer name readably: printable ASCII as is, other bytes as \xNN.
export function showName(name: Buffer): string {
  let out = '';
  for (const byte of name) out += byte >= 0x20 && byte < 0x7f && byte !== 0x5c ? String.fromCharCode(byte) : `\\x${byte.toString(16).padStart(2, '0')}`;
  return out || '.';
}

function typeOf(stat: Awaited<ReturnType<typeof lstat>>): string {
  if (stat.isFile()) return 'file';
  if (stat.isDirectory()) return 'dir';
  if (stat.isSymbolicLink()) return 'symlink';
  if (stat.isFIFO()) return 'fifo';
  if (stat.isCharacterDevice()) return 'chardev';
  if (stat.isBlockDevice()) return 'blockdev';
  if (stat.isSocket()) return 'socket';
  return 'unknown';
}

function hashFile(path: Buffer): Promise<string> {
  return new Promise((resolve, reject) => {
    const hash = createHash('sha256');
    createReadStream(path)
      .on('data', (chunk) => hash.update(chunk))
      .on('error', reject)
      .on('end', () => resolve(hash.digest('hex').slice(0, 16)));
  });
}

const SLASH = Buffer.from('/');

// Every entry below `root` (and root itself as the empty name), keyed by the hex of its relative name.
export async function walkTree(root: string, options: CompareOptions = {}): Promise<Map<string, Entry>> {
  const entries = new Map<string, Entry>();
  const rootBuf = Buffer.from(root);
  const visit = async (rel: Buffer): Promise<void> => {
    if (rel.length && options.ignore?.(rel)) return;
    const abs = rel.length ? Buffer.concat([rootBuf, SLASH, rel]) : rootBuf;
    const stat = await lstat(abs);
    const type = typeOf(stat);
    const fields: Record<string, string> = { type };
    if (options.mode !== false) fields.mode = (stat.mode & 0o7777).toString(8).padStart(4, '0');
    if (options.owner !== false) fields.owner = `${stat.uid}:${stat.gid}`;
    if (type !== 'dir') fields.size = String(stat.size);
    fields.mtime = String(Math.floor(stat.mtimeMs / 1000));
    if (type === 'symlink') fields.target = showName(await readlink(abs, { encoding: 'buffer' }));
    if (type === 'file') fields.sha = await hashFile(abs);
    if (type === 'chardev' || type === 'blockdev') fields.rdev = String(stat.rdev);
    entries.set(rel.toString('hex'), { type, fields, inode: `${stat.dev}:${stat.ino}`, nlink: stat.nlink });
    if (type === 'dir') {
      const names = await readdir(abs, { encoding: 'buffer' });
      for (const name of names) await visit(rel.length ? Buffer.concat([rel, SLASH, name]) : name);
    }
  };
  await visit(Buffer.alloc(0));
  return entries;
}

// Hard-link groups: sorted names of regular files sharing an inode, one string per group.
function linkGroups(entries: Map<string, Entry>): string[] {
  const byInode = new Map<string, string[]>();
  for (const [key, entry] of entries) {
    if (entry.type !== 'file' || entry.nlink < 2) continue;
    byInode.set(entry.inode, [...(byInode.get(entry.inode) ?? []), showName(Buffer.from(key, 'hex'))]);
  }
  return [...byInode.values()].filter((names) => names.length > 1).map((names) => names.sort().join(' = ')).sort();
}

const DUMP_XATTRS_PY = `
import os, sys, json
root = os.fsencode(sys.argv[1])
out = {}
def visit(rel):
    path = os.path.join(root, rel) if rel else root
    attrs = {}
    for name in os.listxattr(path, follow_symlinks=False):
        attrs[name] = os.getxattr(path, name, follow_symlinks=False).hex()
    if attrs:
        out[rel.hex()] = attrs
    if os.path.isdir(path) and not os.path.islink(path):
        for name in os.listdir(path):
            visit(os.path.join(rel, name) if rel else name)
visit(b'')
print(json.dumps(out))
`;

/** Every entry's extended attributes (ACLs included, as system.posix_acl_*), keyed like walkTree; null without python3. */
export function readXattrs(root: string): Map<string, Record<string, string>> | null {
  const py = python();
  if (!py) return null;
  const json = JSON.parse(execFileSync(py, ['-c', DUMP_XATTRS_PY, root], { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 })) as Record<string, Record<string, string>>;
  return new Map(Object.entries(json));
}

// Lists every difference between two trees, one readable line each; [] when they are the same.
export async function compareTrees(expected: string, actual: string, options: CompareOptions = {}): Promise<string[]> {
  const a = await walkTree(expected, options);
  const b = await walkTree(actual, options);
  const diffs: string[] = [];
  for (const [key, entry] of a) {
    const name = showName(Buffer.from(key, 'hex'));
    if (!key && options.top === false) continue;
    const other = b.get(key);
    if (!other) {
      diffs.push(`${name}: missing (${entry.type})`);
      continue;
    }
    for (const [field, value] of Object.entries(entry.fields)) {
      if (other.fields[field] !== value) diffs.push(`${name}: ${field} ${value} != ${other.fields[field] ?? '(none)'}`);
    }
  }
  for (const [key, entry] of b) if (!a.has(key)) diffs.push(`${showName(Buffer.from(key, 'hex'))}: unexpected (${entry.type})`);
  const groupsA = linkGroups(a);
  const groupsB = linkGroups(b);
  for (const group of groupsA) if (!groupsB.includes(group)) diffs.push(`hard links not kept: ${group}`);
  for (const group of groupsB) if (!groupsA.includes(group)) diffs.push(`unexpected hard links: ${group}`);
  if (options.xattrs) {
    const xa = readXattrs(expected);
    const xb = readXattrs(actual);
    if (!xa || !xb) throw new Error('comparing xattrs needs python3');
    const sorted = (attrs: Record<string, string> | undefined) => JSON.stringify(Object.entries(attrs ?? {}).sort(([x], [y]) => (x < y ? -1 : 1)));
    for (const key of new Set([...xa.keys(), ...xb.keys()])) {
      // Only entries the walk compared (ignored subtrees stay ignored).
      if (!(a.has(key) || b.has(key)) || (!key && options.top === false)) continue;
      const buf = Buffer.from(key, 'hex');
      const left = sorted(xa.get(key));
      const right = sorted(xb.get(key));
      if (left !== right) diffs.push(`${showName(buf)}: xattrs ${left} != ${right}`);
    }
  }
  return diffs;
}
