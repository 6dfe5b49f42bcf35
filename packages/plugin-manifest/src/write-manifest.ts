// Walks a tree and streams its manifest to a file, in bounded memory: one directory's names at a
// time per level of the current path, never the whole tree. Order: depth first, each directory's
// entries sorted by their bytes, a directory right before its contents.
import { createHash } from 'node:crypto';
import { closeSync, constants, lstatSync, openSync, readSync, readdirSync, readlinkSync } from 'node:fs';
import { open, rename, rm } from 'node:fs/promises';
import { setImmediate as nextTurn } from 'node:timers/promises';
import type { Mode } from '@ssh-r-sync/core';
import { HEADER, entryLine, typeOfMode, type Entry, type EntryType } from './entry.js';
import { hashFile } from './hash-file.js';
import { readXattrs } from './xattrs.js';

/** What the done mark records about a manifest. */
export interface ManifestSummary {
  /** Lines after the header: every entry of the tree, its top directory (`.`) included. */
  entries: number;
  /** The manifest file's size. */
  bytes: number;
  /** SHA-256 of the manifest file, hex. */
  sha256: string;
}

export interface WriteManifestOptions {
  /** Stops the walk (the tap's timeout, the run's stop); the partial file is removed. */
  signal?: AbortSignal;
  /** How rsync stored the tree: in 'fake-super' the client's metadata is in `user.rsync.%stat`. */
  mode?: Mode;
}

/** A symlink's target is at most PATH_MAX bytes (in fake-super mode: the stand-in file's content). */
const TARGET_MAX = 4096;
const STAT_XATTR = 'user.rsync.%stat';

/** Entries described between two turns of the event loop. lstat is called synchronously: three
 *  times faster than through the thread pool (bench/manifest.mts), and a batch blocks ~2 ms. */
const STAT_BATCH = 256;
/** Output is written in chunks of about this many bytes, each write awaited. */
const CHUNK = 256 * 1024;

interface Described {
  abs: string;
  rel: string;
  type: EntryType;
  entry: Entry;
}

/** A directory being listed: its sorted names, and the ones already described but not yet written. */
interface Frame {
  rel: string;
  abs: string;
  names: string[];
  next: number;
  batch: Described[];
  batchNext: number;
}

// Writes the manifest of `tree` to `file` (through `file.part`, fsynced, then renamed).
export async function writeManifest(tree: string, file: string, options: WriteManifestOptions = {}): Promise<ManifestSummary> {
  const part = `${file}.part`;
  const handle = await open(part, 'w', 0o600);
  const hash = createHash('sha256');
  let bytes = 0;
  let entries = 0;
  let pending = '';
  const flush = async () => {
    const buffer = Buffer.from(pending, 'latin1');
    pending = '';
    hash.update(buffer);
    bytes += buffer.length;
    await handle.write(buffer);
  };
  const emit = async (entry: Described) => {
    if (entry.type === 'f') entry.entry.sha256 = await hashFile(entry.abs, entry.entry.size, options.signal);
    pending += entryLine(entry.rel, entry.entry);
    entries += 1;
    if (pending.length >= CHUNK) await flush();
  };
  try {
    pending = HEADER;
    // Paths are handled as latin1 strings of their bytes; fs calls get them back as Buffers.
    const root = Buffer.from(tree).toString('latin1');
    const fakeSuper = options.mode === 'fake-super';
    const top = describe(root, '.', fakeSuper);
    if (top.type !== 'd') throw new Error(`${tree} is not a directory`);
    await emit(top);
    const stack: Frame[] = [openFrame('', root)];
    while (stack.length > 0) {
      options.signal?.throwIfAborted();
      const frame = stack[stack.length - 1]!;
      if (frame.batchNext === frame.batch.length) {
        if (frame.next === frame.names.length) {
          stack.pop();
          continue;
        }
        const names = frame.names.slice(frame.next, frame.next + STAT_BATCH);
        frame.next += names.length;
        await nextTurn();
        frame.batch = names.map((name) => describe(`${frame.abs}/${name}`, frame.rel + name, fakeSuper));
        frame.batchNext = 0;
      }
      const entry = frame.batch[frame.batchNext]!;
      frame.batchNext += 1;
      await emit(entry);
      if (entry.type === 'd') stack.push(openFrame(`${entry.rel}/`, entry.abs));
    }
    await flush();
    await handle.sync();
  } catch (error) {
    await handle.close();
    await rm(part, { force: true });
    throw error;
  }
  await handle.close();
  await rename(part, file);
  return { entries, bytes, sha256: hash.digest('hex') };
}

// An entry as the client has it: lstat, corrected in fake-super mode by rsync's %stat xattr
// ("octal-mode major,minor uid:gid"; rsync removes it when the on-disk file already tells the truth).
function describe(abs: string, rel: string, fakeSuper: boolean): Described {
  const path = Buffer.from(abs, 'latin1');
  const stats = lstatSync(path, { bigint: true });
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
  return { abs, rel, type: entry.type, entry };
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
function splitDevice(rdev: bigint): [number, number] {
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

// Lists a directory's names (as latin1 strings of their bytes), sorted bytewise. One directory's
// names are all in memory at once (they must be, to be sorted), so they are read in one call:
// iterating an opendir handle through the thread pool made the whole walk nearly twice as slow.
function openFrame(rel: string, abs: string): Frame {
  const names = readdirSync(Buffer.from(abs, 'latin1'), { encoding: 'latin1' }).sort();
  return { rel, abs, names, next: 0, batch: [], batchNext: 0 };
}
