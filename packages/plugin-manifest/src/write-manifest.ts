// Walks a tree and streams its manifest to a file, in bounded memory: one directory's names at a
// time per level of the current path, never the whole tree. Order: depth first, each directory's
// entries sorted by their bytes, a directory right before its contents. A regular file's hash is
// taken from the previous complete snapshot's manifest when it is the same stored file
// (previous-hashes.ts); only new data is read.
import { createHash } from 'node:crypto';
import { lstatSync, readdirSync, type BigIntStats } from 'node:fs';
import { open, rename, rm } from 'node:fs/promises';
import { setImmediate as nextTurn } from 'node:timers/promises';
import type { Mode } from '@ssh-r-sync/core';
import { mayCarry, type CarryRule } from './carry-entry.js';
import { describeStats, type Described } from './describe-entry.js';
import { HEADER, entryLine, type EntryType } from './entry.js';
import { hashFile } from './hash-file.js';
import { PreviousHashes, recordedHash, type CommittedManifest, type HashCounts } from './previous-hashes.js';

/** What the done mark records about a manifest. */
export interface ManifestSummary {
  /** Lines after the header: every entry of the tree, its top directory (`.`) included. */
  entries: number;
  /** The manifest file's size. */
  bytes: number;
  /** SHA-256 of the manifest file, hex. */
  sha256: string;
  /** How many regular files were read to hash them, and how many hashes were reused. */
  hashes: HashCounts;
  /** Entries taken over whole from the previous manifest (the same inode, unchanged: carry-entry.ts);
   *  logged, not recorded in the done mark. */
  carried: number;
}

export interface WriteManifestOptions {
  /** Stops the walk (the tap's timeout, the run's stop); the partial file is removed. */
  signal?: AbortSignal;
  /** How rsync stored the tree: in 'fake-super' the client's metadata is in `user.rsync.%stat`. */
  mode?: Mode;
  /** The previous complete backup's manifest: unchanged files (same inode, size, mtime) reuse its hashes. */
  previous?: CommittedManifest | null;
  /** Told why hashes could not be reused (a bad or old previous manifest); the walk goes on. */
  onReuseProblem?: (why: string) => void;
  /** rsync may have rewritten files of `tree` in place (--inplace, a btrfs working subvolume):
   *  the same inode, size and mtime then prove nothing; a hash is reused only for an inode whose
   *  ctime is older than the previous backup's run. */
  inPlace?: boolean;
  /** Set when `tree` is a new snapshot this run created empty, to when the run began: an entry
   *  that is the previous backup's inode is then there only through rsync's --link-dest. */
  newSnapshotSince?: Date;
}


/** Entries described between two turns of the event loop. lstat is called synchronously: three
 *  times faster than through the thread pool (bench/manifest.mts), and a batch blocks ~2 ms. */
const STAT_BATCH = 256;
const NOT_ASCII = /[^\x00-\x7f]/;
/** Output is written in chunks of about this many bytes, each write awaited. */
const CHUNK = 256 * 1024;


/** An entry lstat'ed but not described yet. */
interface Listed {
  abs: string;
  rel: string;
  stats: BigIntStats;
}

/** A directory being listed: its sorted names, and the ones already lstat'ed but not yet written. */
interface Frame {
  rel: string;
  abs: string;
  names: string[];
  next: number;
  batch: Listed[];
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
  const hashes: HashCounts = { read: 0, readBytes: 0, reused: 0 };
  let carried = 0;
  let reuse = PreviousHashes.none();
  const fakeSuper = options.mode === 'fake-super';
  const ns = (date: Date | undefined) => (date ? BigInt(date.getTime()) * 1_000_000n : null);
  const rule: CarryRule = { previousStartNs: ns(options.previous?.startedAt), linkedSinceNs: ns(options.newSnapshotSince), fakeSuper };
  const flush = async () => {
    const buffer = Buffer.from(pending, 'latin1');
    pending = '';
    hash.update(buffer);
    bytes += buffer.length;
    await handle.write(buffer);
  };
  // This entry's line: the previous manifest's when it stands for it unchanged (carry-entry.ts),
  // else written from a fresh description. Returns the entry's type.
  const emit = async ({ abs, rel, stats }: Listed): Promise<EntryType> => {
    const inode = `${stats.dev}:${stats.ino}`;
    const fields = await reuse.lookup(rel);
    let type: EntryType;
    if (fields && mayCarry(fields, stats, inode, rule)) {
      type = fields[1] as EntryType;
      carried += 1;
      if (type === 'f') hashes.reused += 1;
      pending += `${reuse.currentLine}\n`;
    } else {
      const described = await describe(abs, rel, stats, inode, fields);
      type = described.type;
      pending += entryLine(rel, described.entry, inode);
    }
    entries += 1;
    if (pending.length >= CHUNK) await flush();
    return type;
  };
  const describe = async (abs: string, rel: string, stats: BigIntStats, inode: string, fields: readonly string[] | undefined): Promise<Described> => {
    const described = describeStats(abs, rel, stats, fakeSuper);
    if (described.type !== 'f') return described;
    const untouched = !options.inPlace || (rule.previousStartNs !== null && stats.ctimeNs < rule.previousStartNs);
    const known = fields && untouched ? recordedHash(fields, described.entry, inode) : undefined;
    if (known) {
      described.entry.sha256 = known;
      hashes.reused += 1;
    } else {
      described.entry.sha256 = await hashFile(abs, described.entry.size, options.signal);
      hashes.read += 1;
      hashes.readBytes += Number(described.entry.size);
    }
    return described;
  };
  try {
    if (options.previous) reuse = await PreviousHashes.open(options.previous, options.signal);
    pending = HEADER;
    // Paths are handled as latin1 strings of their bytes; fs calls get them back as Buffers.
    const root = Buffer.from(tree).toString('latin1');
    if ((await emit(listed(root, '.'))) !== 'd') throw new Error(`${tree} is not a directory`);
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
        frame.batch = names.map((name) => listed(`${frame.abs}/${name}`, frame.rel + name));
        frame.batchNext = 0;
      }
      const entry = frame.batch[frame.batchNext]!;
      frame.batchNext += 1;
      if ((await emit(entry)) === 'd') stack.push(openFrame(`${entry.rel}/`, entry.abs));
    }
    await flush();
    await handle.sync();
  } catch (error) {
    await reuse.close();
    await handle.close();
    await rm(part, { force: true });
    throw error;
  }
  await reuse.close();
  if (reuse.problem) options.onReuseProblem?.(reuse.problem);
  await handle.close();
  await rename(part, file);
  return { entries, bytes, sha256: hash.digest('hex'), hashes, carried };
}

// lstat of one entry (bytes as latin1), never following a symlink.
function listed(abs: string, rel: string): Listed {
  // An ASCII path is the same bytes as a string (fewer Buffers to collect); any other goes as its bytes.
  const path = NOT_ASCII.test(abs) ? Buffer.from(abs, 'latin1') : abs;
  return { abs, rel, stats: lstatSync(path, { bigint: true }) };
}

// Lists a directory's names (as latin1 strings of their bytes), sorted bytewise. One directory's
// names are all in memory at once (they must be, to be sorted), so they are read in one call:
// iterating an opendir handle through the thread pool made the whole walk nearly twice as slow.
function openFrame(rel: string, abs: string): Frame {
  const names = readdirSync(Buffer.from(abs, 'latin1'), { encoding: 'latin1' }).sort();
  return { rel, abs, names, next: 0, batch: [], batchNext: 0 };
}
