// One entry of a stored backup as the client has it: lstat of the on-disk entry, corrected in
// fake-super mode by rsync's user.rsync.%stat xattr. The manifest writer and verify both use it,
// so what verify compares is exactly what the manifest was written from.
import { closeSync, constants, lstatSync, openSync, readSync, readlinkSync, type BigIntStats } from 'node:fs';
import { typeOfMode, type Entry, type EntryType } from './entry.js';
import { readXattrs } from './xattrs.js';

/** A symlink's target is at most PATH_MAX bytes (in fake-super mode: the stand-in file's content). */
const TARGET_MAX = 4096;
const STAT_XATTR = 'user.rsync.%stat';

/** An entry found on disk: its absolute and relative paths (bytes as latin1 strings) and what it is. */
export interface Described {
  abs: string;
  rel: string;
  type: EntryType;
  entry: Entry;
  /** The stored entry's identity on the receiver, `st_dev:st_ino` (not the client's). */
  inode: string;
}

// `abs` (bytes as latin1) as the client has it: lstat, corrected in fake-super mode by rsync's %stat xattr
// ("octal-mode major,minor uid:gid"; rsync removes it when the on-disk file already tells the truth).
export function describeEntry(abs: string, rel: string, fakeSuper: boolean): Described {
  return describeStats(abs, rel, lstatSync(Buffer.from(abs, 'latin1'), { bigint: true }), fakeSuper);
}

// The rest of describeEntry, for an entry already lstat'ed (`stats`): its xattrs, %stat and target.
export function describeStats(abs: string, rel: string, stats: BigIntStats, fakeSuper: boolean): Described {
  const path = Buffer.from(abs, 'latin1');
  const xattrs = readXattrs(abs);
  const entry: Entry = {
    type: typeOfMode(Number(stats.mode))!,
    mode: Number(stats.mode & 0o7777n),
    uid: Number(stats.uid),
    gid: Number(stats.gid),
    size: stats.size,
    mtimeNs: stats.mtimeNs,
    target: '',
    rdev: null,
    flags: flagsOf(xattrs.names, fakeSuper),
    sha256: null,
  };
  if (entry.type === 'c' || entry.type === 'b') entry.rdev = splitDevice(stats.rdev);
  const stat = fakeSuper ? xattrs.get(STAT_XATTR) : null;
  if (stat) {
    const match = /^([0-7]+) (\d+),(\d+) (\d+):(\d+)$/.exec(stat.toString('latin1'));
    const type = match ? typeOfMode(parseInt(match[1]!, 8)) : null;
    if (!match || !type) throw new Error(`${abs}: corrupt ${STAT_XATTR} ${JSON.stringify(stat.toString('latin1'))}`);
    entry.type = type;
    entry.mode = parseInt(match[1]!, 8) & 0o7777;
    entry.uid = Number(match[4]);
    entry.gid = Number(match[5]);
    entry.rdev = type === 'c' || type === 'b' ? [Number(match[2]), Number(match[3])] : null;
    if (type === 'l') entry.target = readStandIn(path, abs);
  } else if (entry.type === 'l') {
    entry.target = readlinkSync(path, { encoding: 'latin1' });
  }
  return { abs, rel, type: entry.type, entry, inode: `${stats.dev}:${stats.ino}` };
}

// `a`: an ACL, `x`: other xattrs, `-`: neither. In fake-super mode rsync keeps ACLs as
// user.rsync.%aacl/%dacl and its own %stat beside the client's (user.-prefixed) xattrs.
function flagsOf(names: string[], fakeSuper: boolean): string {
  const acl = fakeSuper ? (name: string) => name === 'user.rsync.%aacl' || name === 'user.rsync.%dacl'
    : (name: string) => name === 'system.posix_acl_access' || name === 'system.posix_acl_default';
  const own = (name: string) => acl(name) || (fakeSuper && name.startsWith('user.rsync.%'));
  const flags = (names.some(acl) ? 'a' : '') + (names.some((name) => !own(name)) ? 'x' : '');
  return flags || '-';
}

// Linux's dev_t encoding (glibc gnu_dev_major/minor).
export function splitDevice(rdev: bigint): [number, number] {
  const major = Number(((rdev >> 8n) & 0xfffn) | ((rdev >> 32n) & ~0xfffn));
  const minor = Number((rdev & 0xffn) | ((rdev >> 12n) & ~0xffn));
  return [major, minor];
}

// A fake-super symlink's target: the content of the regular file rsync stored in its place.
function readStandIn(path: Buffer, abs: string): string {
  const fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW);
  try {
    const buffer = Buffer.alloc(TARGET_MAX + 1);
    let length = 0;
    for (let got = 1; got > 0 && length < buffer.length; length += got) got = readSync(fd, buffer, length, buffer.length - length, null);
    if (length > TARGET_MAX) throw new Error(`${abs}: a symlink's stored target is longer than ${TARGET_MAX} bytes`);
    return buffer.toString('latin1', 0, length);
  } finally {
    closeSync(fd);
  }
}

