// Subvolumes as plugin-btrfs meets them in ROOT/NAME, where anything the receiver did not make
// itself may have any shape: each path is looked at with lstat (never through a symlink) before
// btrfs is given it, and btrfs is given it only when it is a subvolume of its own right there.
import { lstat } from 'node:fs/promises';
import { runBtrfs, type BtrfsRunOptions } from './btrfs-command.js';
import { filesystemType } from './filesystem.js';

/** The inode number of every subvolume's top directory on btrfs (BTRFS_FIRST_FREE_OBJECTID);
 *  no other directory has it, so it tells a subvolume without a privileged btrfs call. */
const SUBVOLUME_INODE = 256;

export type Shape = 'missing' | 'symlink' | 'not a directory' | 'plain directory' | 'subvolume';

// What `path` itself is (a symlink is reported, never followed).
export async function shapeOf(path: string): Promise<Shape> {
  const stats = await lstat(path, { bigint: true }).catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') return null;
    throw error;
  });
  if (!stats) return 'missing';
  if (stats.isSymbolicLink()) return 'symlink';
  if (!stats.isDirectory()) return 'not a directory';
  if (stats.ino !== BigInt(SUBVOLUME_INODE)) return 'plain directory';
  // lstat found a directory: statfs of the same path cannot be sent elsewhere by a symlink.
  return (await filesystemType(path)).btrfs ? 'subvolume' : 'plain directory';
}

// Words for a shape in a refusal: "is a symlink", "is a plain directory, not a subvolume".
export function describeShape(shape: Shape): string {
  switch (shape) {
    case 'missing':
      return 'does not exist';
    case 'symlink':
      return 'is a symlink';
    case 'not a directory':
      return 'is not a directory';
    case 'plain directory':
      return 'is a plain directory, not a btrfs subvolume';
    case 'subvolume':
      return 'is a btrfs subvolume';
  }
}

// Whether the subvolume at `path` is read-only (its `ro` property; a non-root user may read it).
export async function isReadOnly(path: string, options: BtrfsRunOptions = {}): Promise<boolean> {
  const out = await runBtrfs(['property', 'get', '-ts', path, 'ro'], options);
  return /^ro=true$/m.test(out);
}

// Makes a subvolume writable again (a non-root user's delete needs it: btrfs refuses write
// access to a read-only subvolume's top directory, and deleting needs write access there).
export async function makeWritable(path: string, options: BtrfsRunOptions = {}): Promise<void> {
  await runBtrfs(['property', 'set', '-ts', path, 'ro', 'false'], options);
}

// Creates an empty subvolume at `path` (which must not exist).
export async function createSubvolume(path: string, options: BtrfsRunOptions = {}): Promise<void> {
  await runBtrfs(['subvolume', 'create', path], options);
}

// Snapshots the subvolume `source` as `target` (which must not exist: btrfs would put the
// snapshot inside an existing directory), read-only or writable.
export async function snapshotSubvolume(source: string, target: string, readOnly: boolean, options: BtrfsRunOptions = {}): Promise<void> {
  await runBtrfs(['subvolume', 'snapshot', ...(readOnly ? ['-r'] : []), source, target], options);
}

// Deletes the subvolume at `path`.
export async function deleteSubvolume(path: string, options: BtrfsRunOptions = {}): Promise<void> {
  await runBtrfs(['subvolume', 'delete', path], options);
}
