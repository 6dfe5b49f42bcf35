// The rsync options of a run into the working subvolume: files rewritten in place, only their
// changed blocks, so that every block rsync leaves alone stays shared with the snapshots before.
import { SshRSyncError } from '@ssh-r-sync/core';

/** --inplace: a changed file keeps its inode and its unchanged extents (rsync's default writes a
 *  whole new copy and renames it over, which unshares every block). --no-whole-file: the delta
 *  algorithm even where rsync would copy whole files (a local --local source), so that only the
 *  blocks that differ are written. bench/btrfs.mts measures both. */
export const IN_PLACE_ARGS = ['--inplace', '--no-whole-file'];

/** Options that need a fresh destination or a temporary copy, which writing in place has not:
 *  rsync refuses some with --inplace, and ignores or misuses the others. */
const CONFLICTING = /^--(link-dest|compare-dest|copy-dest|delay-updates|partial-dir|temp-dir|backup|backup-dir|write-devices)(=|$)|^-[A-Za-z]*[bT]/;

// Adds the in-place options to `args` (edited in place); refuses options that cannot go with them.
export function addInPlaceArgs(args: string[]): void {
  const conflicting = args.filter((arg) => CONFLICTING.test(arg));
  if (conflicting.length > 0) {
    throw new SshRSyncError(
      'ECONFIG',
      `plugin-btrfs writes each run in place into its working subvolume, so rsync cannot also use ${conflicting.join(' ')} (added by an rsync.pre hook or the config): remove ${conflicting.length === 1 ? 'it' : 'them'}`,
    );
  }
  // Last, so that they win over a hook's --whole-file (rsync takes the last of a pair).
  args.push(...IN_PLACE_ARGS);
}
