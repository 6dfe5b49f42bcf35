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
import { FIELD, seconds, typeOfMode } from './entry.js';

/** Columns of a version 4 line (entry.ts's COLUMNS). */
const { type: TYPE, mode: MODE, 'uid:gid': OWNER, size: SIZE, mtime: MTIME, target: TARGET, rdev: RDEV, flags: FLAGS, sha256: HASH, 'dev:ino': INODE } = FIELD;
const TYPES = new Set(['f', 'd', 'l', 'p', 's', 'c', 'b']);
const FLAG_VALUES = new Set(['-', 'a', 'x', 'ax']);
const SHA256 = /^[0-9a-f]{64}$/;
/** What a fake-super line's mode, owner and rdev look like (they come from %stat, unchecked by lstat). */
const MODE_FIELD = /^[0-7]{1,5}$/;
const OWNER_FIELD = /^\d+:\d+$/;
const RDEV_FIELD = /^\d+,\d+$/;

/** What makes an inode's ctime say "not changed since the previous manifest described it". */
export interface CarryRule {
  /** The previous backup's run start (ns since the epoch), or null when not known. */
  previousStartNs: bigint | null;
  /** This run's start (ns), when the tree is a new snapshot this run created empty; else null. */
  linkedSinceNs: bigint | null;
  fakeSuper: boolean;
}

// Whether the previous line (its `fields`, as written) stands for the stored entry `stats` (stored
// as `inode`) unchanged: then that line is this entry's line, byte for byte.
export function mayCarry(fields: readonly string[], stats: BigIntStats, inode: string, rule: CarryRule): boolean {
  if (fields[INODE] !== inode || fields[SIZE] !== String(stats.size) || fields[MTIME] !== seconds(stats.mtimeNs)) return false;
  const untouched = rule.previousStartNs !== null && stats.ctimeNs < rule.previousStartNs;
  const linked = rule.linkedSinceNs !== null && stats.ctimeNs >= rule.linkedSinceNs;
  if (!untouched && !linked) return false;
  const type = fields[TYPE]!;
  const device = type === 'c' || type === 'b';
  if (!TYPES.has(type) || !FLAG_VALUES.has(fields[FLAGS]!)) return false;
  if (type === 'f' ? !SHA256.test(fields[HASH]!) : fields[HASH] !== '-') return false;
  if (type !== 'l' && fields[TARGET] !== '') return false;
  const onDisk = typeOfMode(Number(stats.mode));
  if (rule.fakeSuper) {
    // rsync stores what it cannot create as a regular file (its %stat says what it is).
    if (!(onDisk === type || (onDisk === 'f' && type !== 'd'))) return false;
    return MODE_FIELD.test(fields[MODE]!) && OWNER_FIELD.test(fields[OWNER]!) && (device ? RDEV_FIELD.test(fields[RDEV]!) : fields[RDEV] === '-');
  }
  // What lstat says is the truth in these modes: the line must say the same.
  if (onDisk !== type || fields[MODE] !== (Number(stats.mode) & 0o7777).toString(8) || fields[OWNER] !== `${stats.uid}:${stats.gid}`) return false;
  if (!device) return fields[RDEV] === '-';
  const [major, minor] = splitDevice(stats.rdev);
  return fields[RDEV] === `${major},${minor}`;
}
