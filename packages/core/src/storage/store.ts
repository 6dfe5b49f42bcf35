// The snapshot store: the one way anything touches a host's stored backups. A store kind (a
// mirror, hard-linked snapshots, btrfs subvolumes, …) comes from a plugin's `store`; the
// pipeline prepares, commits and abandons a run's snapshot through it, and rotation, status,
// verify, restore and the manifest list, open and remove snapshots through it. None of them knows
// paths inside a host's directory or how a snapshot is deleted.
//
// The layout every snapshot store shares (snapshots.ts): ROOT/NAME/ID/ (the tree),
// ROOT/NAME/ID.meta/ (in-progress, manifest.tsv, done.json), ROOT/NAME/latest. A store may keep
// more in ROOT/NAME (a working subvolume) under a name that is never a snapshot id.
import type { Logger } from '../logger.js';
import type { Mode, RsyncCommand } from '../pipeline/context.js';
import type { DeleteOptions } from './delete-tree.js';
import type { DoneMark, SnapshotInfo, SnapshotPaths } from './snapshots.js';

/** Where a host's backups are: real paths. `dir` is ROOT/NAME. */
export interface HostLocation {
  readonly root: string;
  readonly name: string;
  readonly dir: string;
}

/** What `prepare` gets: the run's rsync command (after every rsync.pre tap) to add to. */
export interface PrepareRequest {
  /** Edited in place: the store sets `destination` and adds the options it needs. */
  readonly command: RsyncCommand;
  /** When the run began. */
  readonly now: Date;
  readonly mode: Mode;
  readonly logger: Logger;
  readonly signal: AbortSignal;
}

/** The snapshot a run writes, from `prepare` to its commit or abandon. */
export interface PreparedSnapshot {
  /** The snapshot's id; '' for a mirror. */
  readonly id: string;
  /** Where the committed snapshot lives (its `tree` is read by restore and verify). */
  readonly paths: SnapshotPaths;
  /** Where rsync writes and the manifest describes before the commit (the tree itself, or a
   *  working copy that the commit turns into it). */
  readonly workTree: string;
  /** rsync may rewrite a file of workTree in place (same inode, new content): an inode that is
   *  the previous backup's is not proof of the same content unless its ctime is older than that
   *  backup's run. */
  readonly inPlace: boolean;
  /** workTree was created empty by this run at this time (--link-dest: whatever is the previous
   *  backup's inode got there through rsync's link); null otherwise. */
  readonly createdEmptyAt: Date | null;
  /** The complete backup this run continues from (its manifest may lend hashes), if any. */
  readonly previous: { readonly paths: SnapshotPaths; readonly done: DoneMark } | null;
}

/** One host's stored backups, of one kind. */
export interface SnapshotStore {
  /** The kind recorded for the host ('mirror', 'snapshots', 'btrfs', …): a host never changes it silently. */
  readonly kind: string;
  readonly location: HostLocation;
  /** Every snapshot of the host, complete or not, oldest first (a mirror: the mirror, once committed). */
  list(now?: Date): Promise<SnapshotInfo[]>;
  /** Makes the run's snapshot ready for rsync; called after every rsync.pre tap, so nothing is
   *  created for a skipped run. */
  prepare(request: PrepareRequest): Promise<PreparedSnapshot>;
  /** The storage half of the commit point: the data made durable and permanent, then `mark`
   *  written (its presence alone makes the snapshot complete) and `latest` moved. It throws only
   *  while the snapshot is not complete; what fails after the done mark is durable (core's
   *  markComplete: the in-progress marker, `latest`) comes back as warnings. */
  commit(prepared: PreparedSnapshot, mark: DoneMark, signal: AbortSignal): Promise<void | CommitResult>;
  /** A prepared snapshot that was not committed: kept to be continued, or removed if empty. */
  abandon(prepared: PreparedSnapshot, logger: Logger): Promise<void>;
  /** After a commit: what it superseded (interrupted runs), as work to run after the session
   *  (never delaying the client; it throws to have its failure recorded, and the next run
   *  retries), or null when there is nothing to remove. */
  tidy(prepared: PreparedSnapshot, logger: Logger): Promise<((signal: AbortSignal) => Promise<void>) | null>;
  /** Deletes one snapshot, done mark first (a half-deleted snapshot never looks complete). */
  remove(snapshot: SnapshotInfo, options?: DeleteOptions): Promise<void>;
}

/** What a plugin offers as its `store`: a kind and how to open a host's store of that kind. */
export interface StoreProvider {
  readonly kind: string;
  /** How the admin tools load this provider for a host of its kind without the receiver's
   *  config: the plugin's package name, resolved from the commands' install only (a path in a
   *  record is never imported: ROOT is the backup account's). Recorded in the host's record. */
  readonly module: string;
  /** Opens (never creates) the store of one host. */
  open(location: HostLocation): SnapshotStore;
}

/** The kind of a host whose backups are a plain mirror (no store plugin). */
export const MIRROR_KIND = 'mirror';
/** The kind plugin-link-dest records (the name older records have). */
export const LINK_DEST_KIND = 'snapshots';

/** What a commit reports beside success. */
export interface CommitResult {
  /** What failed after the done mark was written and synced: the snapshot is complete; each is logged as a warning. */
  warnings: string[];
}
