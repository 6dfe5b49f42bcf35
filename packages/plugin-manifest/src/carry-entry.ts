// When a stored entry may be described from the previous committed manifest's line instead of
// being read again (its xattrs; in fake-super mode its %stat and a symlink stand-in's content).
// The line must be of the same path and the same stored inode (dev:ino), size and mtime, and the
// inode's metadata must not have changed since that line was written, which its ctime tells:
// - older than the previous run's start: nothing changed it since (a mirror's untouched file);
// - or, in a new snapshot (created empty by this run), no older than this run's start: it got
//   here through rsync's --link-dest, and rsync links an entry only when its size, mtime, mode,
//   owner, ACLs, xattrs (in fake-super mode: %stat and the stand-in's target) equal the client's
//   (generator.c try_dests_reg/try_dests_non, unchanged_attrs), and never changes a linked one
//   (but for --atimes, which the manifest does not record). The link itself moves the ctime.
// What lstat tells anyway (privileged and plain modes: type, mode, owner, device) must agree too.
import type { BigIntStats } from 'node:fs';
import { splitDevice } from './describe-entry.js';
import { seconds, typeOfMode, type Entry, type EntryType } from './entry.js';
import { unescapeName } from './escape.js';

/** Columns of a version 4 line (see entry.ts's COLUMNS). */
const TYPE = 1;
const MODE = 2;
const OWNER = 3;
const SIZE = 4;
const MTIME = 5;
const TARGET = 6;
const RDEV = 7;
const FLAGS = 8;
const HASH = 9;
const INODE = 10;
const TYPES = new Set(['f', 'd', 'l', 'p', 's', 'c', 'b']);
const SHA256 = /^[0-9a-f]{64}$/;

/** What makes an inode's ctime say "not changed since the previous manifest described it". */
export interface CarryRule {
  /** The previous backup's run start (ns since the epoch), or null when not known. */
  previousStartNs: bigint | null;
  /** This run's start (ns), when the tree is a new snapshot this run created empty; else null. */
  linkedSinceNs: bigint | null;
  fakeSuper: boolean;
}

// The previous line's entry for the stored entry `stats` (stored as `inode`), or null when it must
// be read again.
export function carriedEntry(fields: readonly string[], stats: BigIntStats, inode: string, rule: CarryRule): Entry | null {
  if (fields[INODE] !== inode || fields[SIZE] !== String(stats.size) || fields[MTIME] !== seconds(stats.mtimeNs)) return null;
  const untouched = rule.previousStartNs !== null && stats.ctimeNs < rule.previousStartNs;
  const linked = rule.linkedSinceNs !== null && stats.ctimeNs >= rule.linkedSinceNs;
  if (!untouched && !linked) return null;
  const type = fields[TYPE]!;
  const owner = /^(\d+):(\d+)$/.exec(fields[OWNER]!);
  const rdev = /^(\d+),(\d+)$/.exec(fields[RDEV]!);
  const device = type === 'c' || type === 'b';
  const hash = fields[HASH]!;
  if (!TYPES.has(type) || !/^[0-7]{1,5}$/.test(fields[MODE]!) || !owner || !/^(-|a|x|ax)$/.test(fields[FLAGS]!)) return null;
  if (device ? !rdev : fields[RDEV] !== '-') return null;
  if (type === 'f' ? !SHA256.test(hash) : hash !== '-') return null;
  const entry: Entry = {
    type: type as EntryType,
    mode: parseInt(fields[MODE]!, 8),
    uid: Number(owner[1]),
    gid: Number(owner[2]),
    size: stats.size,
    mtimeNs: stats.mtimeNs,
    target: type === 'l' ? unescapeName(fields[TARGET]!) : '',
    rdev: device ? [Number(rdev![1]), Number(rdev![2])] : null,
    flags: fields[FLAGS]!,
    sha256: type === 'f' ? hash : null,
  };
  const onDisk = typeOfMode(Number(stats.mode));
  if (rule.fakeSuper) {
    // rsync stores what it cannot create as a regular file (its %stat says what it is).
    return onDisk === type || (onDisk === 'f' && type !== 'd') ? entry : null;
  }
  const stored = onDisk === type && entry.mode === Number(stats.mode & 0o7777n) && entry.uid === Number(stats.uid) && entry.gid === Number(stats.gid);
  if (!stored) return null;
  if (device) {
    const [major, minor] = splitDevice(stats.rdev);
    if (major !== entry.rdev![0] || minor !== entry.rdev![1]) return null;
  }
  return entry;
}
