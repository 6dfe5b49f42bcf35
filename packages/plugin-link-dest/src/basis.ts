// Which earlier snapshots a new one is hard-linked against: the newest complete one, and the
// interrupted runs after it (their files were transferred already; rsync links what matches).
import { existsSync } from 'node:fs';
import { newestComplete, type SnapshotInfo } from '@ssh-r-sync/core';

/** rsync accepts at most 20 --link-dest, --compare-dest and --copy-dest directories in all. */
export const MAX_BASIS_DIRS = 20;

export interface Basis {
  /** The newest complete snapshot, if there is one. */
  complete: SnapshotInfo | undefined;
  /** Interrupted snapshots newer than it, newest first, that go in as extra --link-dest. */
  resumed: SnapshotInfo[];
  /** Every interrupted run (still marked in progress): a complete snapshot supersedes them all. */
  interrupted: SnapshotInfo[];
}

// Picks the link-dest sources among a host's snapshots (oldest first, as listSnapshots gives them).
export function chooseBasis(snapshots: readonly SnapshotInfo[], maxResume: number): Basis {
  // The newest that is not dated in the future, else any: hard links only need equal content.
  const complete = newestComplete(snapshots) ?? snapshots.findLast((snapshot) => snapshot.complete);
  // Only what a run of ours left marked in progress counts as interrupted: anything else that
  // merely looks like a snapshot is neither used nor ever removed.
  const interrupted = snapshots.filter((snapshot) => !snapshot.complete && existsSync(snapshot.paths.inProgress));
  const resumed = interrupted
    .filter((snapshot) => (!complete || snapshot.id > complete.id) && existsSync(snapshot.paths.tree))
    .reverse()
    .slice(0, maxResume);
  return { complete, resumed, interrupted };
}

// How many basis directories the rsync options name already (a hook may have added some).
export function countBasisDirs(args: readonly string[]): number {
  return args.filter((arg) => /^--(link|compare|copy)-dest(=|$)/.test(arg)).length;
}
