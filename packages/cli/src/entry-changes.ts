// What differs between two manifest entries of one path: the one comparison `diff` reports and
// `versions` starts a new version on, so both commands agree on what "changed" means.
import type { Entry, FormatVersion } from '@ssh-r-sync/plugin-manifest';

/** The words a change is named by, in the order they are printed. */
export type Change = 'type' | 'content' | 'size' | 'target' | 'rdev' | 'mode' | 'owner' | 'mtime' | 'flags';

// The fields in which `b` differs from `a`; empty when the entries are the same. Only what both
// manifests record is compared: an older format (1: no rdev/flags, 1 and 2: no sha256) leaves its
// fields out. A file's content is its sha256; without hashes, size and mtime are all there is.
// When the type changed, only the fields every type has (mode, owner, mtime, flags) follow it.
export function entryChanges(a: Entry, b: Entry, versionA: FormatVersion, versionB: FormatVersion): Change[] {
  const changes: Change[] = [];
  const sameType = a.type === b.type;
  if (!sameType) changes.push('type');
  if (sameType && a.type === 'f' && a.sha256 !== null && b.sha256 !== null && a.sha256 !== b.sha256) changes.push('content');
  // A directory's size is the file system's, a symlink's its target's length (compared as target).
  if (sameType && a.type !== 'd' && a.type !== 'l' && a.size !== b.size) changes.push('size');
  if (sameType && a.target !== b.target) changes.push('target');
  if (sameType && versionA >= 2 && versionB >= 2 && !sameRdev(a.rdev, b.rdev)) changes.push('rdev');
  if (a.mode !== b.mode) changes.push('mode');
  if (a.uid !== b.uid || a.gid !== b.gid) changes.push('owner');
  if (a.mtimeNs !== b.mtimeNs) changes.push('mtime');
  if (a.flags !== null && b.flags !== null && a.flags !== b.flags) changes.push('flags');
  return changes;
}

function sameRdev(a: [number, number] | null, b: [number, number] | null): boolean {
  return a === b || (a !== null && b !== null && a[0] === b[0] && a[1] === b[1]);
}
