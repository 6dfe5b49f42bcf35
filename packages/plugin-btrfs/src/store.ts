// The btrfs snapshot store. ROOT/NAME is a subvolume; ROOT/NAME/.work is the working subvolume
// that every run rsyncs into in place (it persists: an interrupted run leaves it to be
// continued, and after a commit it already holds the next run's starting point); the commit is a
// read-only snapshot ROOT/NAME/ID of it, then core's done mark. The ID.meta directories, the
// done marks and `latest` are core's shared layout (snapshots.ts), so every admin tool reads
// these snapshots as any other.
import { chmod, lstat, readdir, rm, rmdir } from 'node:fs/promises';
import { join } from 'node:path';
import {
  SshRSyncError,
  beginSnapshot,
  flushFilesystem,
  keepPrivate,
  listSnapshots,
  markComplete,
  newestComplete,
  readDoneMark,
  type DeleteOptions,
  type CommitResult,
  type DoneMark,
  type HostLocation,
  type Logger,
  type PreparedSnapshot,
  type PrepareRequest,
  type SnapshotInfo,
  type SnapshotStore,
  type StoreProvider,
} from '@ssh-r-sync/core';
import { btrfsProgram } from './btrfs-command.js';
import { addInPlaceArgs } from './rsync-options.js';
import { assertOnBtrfs, deleteRefusal, explainDeleteFailure, storageFailure } from './refusals.js';
import { createSubvolume, deleteSubvolume, describeShape, isReadOnly, makeWritable, shapeOf, snapshotSubvolume } from './subvolume.js';

/** The kind recorded for a host kept by this store. */
export const BTRFS_KIND = 'btrfs';
/** The working subvolume's name in ROOT/NAME: a leading dot, so never a snapshot id. */
export const WORK_NAME = '.work';
/** The package the admin tools load this store from (recorded in the host's record). */
export const MODULE = '@ssh-r-sync/plugin-btrfs';

// Opens the btrfs store of one host (nothing is created until a run prepares).
export const btrfsStoreProvider: StoreProvider = {
  kind: BTRFS_KIND,
  module: MODULE,
  open: (location) => new BtrfsStore(location),
};

/** One host's snapshots as btrfs subvolumes. */
export class BtrfsStore implements SnapshotStore {
  readonly kind = BTRFS_KIND;
  /** Where rsync writes: ROOT/NAME/.work. */
  readonly workTree: string;

  constructor(readonly location: HostLocation) {
    this.workTree = join(location.dir, WORK_NAME);
  }

  list(now?: Date): Promise<SnapshotInfo[]> {
    return listSnapshots(this.location.dir, now);
  }

  async prepare({ command, now, logger, signal }: PrepareRequest): Promise<PreparedSnapshot> {
    const { root, dir } = this.location;
    addInPlaceArgs(command.args); // refused before anything is made
    await assertOnBtrfs(root);
    btrfsProgram();
    try {
      await this.ensureHostSubvolume(logger, signal);
      const newest = newestComplete(await this.list(now));
      await this.ensureWorkTree(newest, logger, signal);
      const paths = await beginSnapshot(dir, now, { tree: false });
      command.destination = `${this.workTree}/`;
      return {
        id: paths.id,
        paths,
        workTree: this.workTree,
        inPlace: true,
        // Never set, not even for a .work made empty: plugin-manifest reads it as "an inode that
        // is the previous backup's got here through rsync's --link-dest, unchanged", and a new
        // subvolume's inode numbers (and, once the old one is gone, its device number) repeat
        // the old ones' without any link.
        createdEmptyAt: null,
        previous: newest?.done ? { paths: newest.paths, done: newest.done } : null,
      };
    } catch (error) {
      if (signal.aborted) throw signal.reason;
      throw storageFailure(`preparing the btrfs snapshot of ${this.location.name}`, error);
    }
  }

  async commit(prepared: PreparedSnapshot, mark: DoneMark, signal: AbortSignal): Promise<CommitResult> {
    const { tree } = prepared.paths;
    try {
      const work = await shapeOf(prepared.workTree);
      if (work !== 'subvolume') throw new SshRSyncError('ESTORAGE', `cannot commit snapshot ${prepared.id}: ${prepared.workTree} ${describeShape(work)} now`);
      // The snapshot takes the working subvolume's top directory as it is: private first.
      await keepPrivate(prepared.workTree);
      // Snapshot creation writes out the source's data and commits a transaction itself; the
      // flush before it is the same rule as every store's (a done mark never outlives its data).
      await flushFilesystem(prepared.workTree, signal);
      signal.throwIfAborted();
      // btrfs would put the snapshot inside a directory that is already there (or one a symlink
      // points at): the id must be free.
      const target = await shapeOf(tree);
      if (target !== 'missing') throw new SshRSyncError('ESTORAGE', `cannot commit snapshot ${prepared.id}: ${tree} ${describeShape(target)} already; nothing of plugin-btrfs makes it: move it away`);
      await snapshotSubvolume(prepared.workTree, tree, true, { signal });
      return await markComplete(prepared.paths, mark, this.location.dir);
    } catch (error) {
      if (signal.aborted) throw signal.reason;
      throw storageFailure('committing the btrfs snapshot', error);
    }
  }

  async abandon(prepared: PreparedSnapshot, logger: Logger): Promise<void> {
    if (await readDoneMark(prepared.paths)) return; // committed after all
    // A commit that made the snapshot but not its done mark: the snapshot is not trusted.
    if ((await shapeOf(prepared.paths.tree)) === 'subvolume') await this.deleteTree(prepared.paths.tree);
    await rm(prepared.paths.meta, { recursive: true, force: true });
    logger.debug(`${prepared.workTree} kept as it is: the next run continues it`);
  }

  async tidy(prepared: PreparedSnapshot, logger: Logger): Promise<((signal: AbortSignal) => Promise<void>) | null> {
    // Interrupted runs leave their data in .work, and nothing to supersede: only the metadata of
    // runs killed before they could abandon (in-progress, perhaps a manifest) with no snapshot
    // beside it. Snapshots without a done mark (a remove or a commit cut short) are rotation's.
    const stale: SnapshotInfo[] = [];
    for (const snapshot of await this.list()) {
      if (!snapshot.complete && snapshot.id < prepared.id && (await shapeOf(snapshot.paths.tree)) === 'missing') stale.push(snapshot);
    }
    if (stale.length === 0) return null;
    return async (signal) => {
      const failed: string[] = [];
      for (const snapshot of stale) {
        signal.throwIfAborted();
        await rm(snapshot.paths.meta, { recursive: true, force: true }).then(
          () => logger.debug(`removed ${snapshot.paths.meta} of a run that never became a snapshot`),
          (error: NodeJS.ErrnoException) => failed.push(`${snapshot.paths.meta} (${error.code ?? error.message})`),
        );
      }
      if (failed.length) throw new SshRSyncError('ESTORAGE', `could not remove ${failed.join('; ')}; the next run retries`);
    };
  }

  async remove(snapshot: SnapshotInfo, options: DeleteOptions = {}): Promise<void> {
    const { tree } = snapshot.paths;
    // Everything that could refuse is asked before the done mark goes: a snapshot that cannot
    // be deleted stays complete.
    const shape = await shapeOf(tree);
    if (shape !== 'missing' && shape !== 'subvolume') {
      throw new SshRSyncError('ESTORAGE', `not deleting ${tree}: it ${describeShape(shape)}, which plugin-btrfs never makes there: look at it and remove it by hand`);
    }
    if (shape === 'subvolume') {
      const refusal = await deleteRefusal(tree);
      if (refusal) throw refusal;
    }
    await rm(snapshot.paths.doneMark, { force: true });
    if (shape === 'subvolume') await this.deleteTree(tree, options.signal);
    await rm(snapshot.paths.meta, { recursive: true, force: true });
  }

  // Makes ROOT/NAME a subvolume: new or empty, it becomes one; anything else is refused.
  private async ensureHostSubvolume(logger: Logger, signal: AbortSignal): Promise<void> {
    const { dir } = this.location;
    const shape = await shapeOf(dir);
    if (shape === 'subvolume') return;
    if (shape === 'plain directory') {
      if ((await readdir(dir)).length > 0) {
        throw new SshRSyncError(
          'ECONFIG',
          `${dir} is a plain directory with files in it, not a btrfs subvolume: plugin-btrfs keeps each host in a subvolume of its own; move it aside (mv ${dir} ${join(this.location.root, `.${this.location.name}.old`)}) and run again`,
        );
      }
      await rmdir(dir);
    } else if (shape !== 'missing') {
      throw new SshRSyncError('ECONFIG', `${dir} ${describeShape(shape)}: plugin-btrfs needs a subvolume there; move it aside and run again`);
    }
    await createSubvolume(dir, { signal });
    await chmod(dir, 0o700);
    logger.info(`${dir} is a new btrfs subvolume`);
  }

  // Makes sure .work is the working subvolume: kept as it is (to be continued), else a writable
  // snapshot of the newest complete snapshot, else empty.
  private async ensureWorkTree(newest: SnapshotInfo | undefined, logger: Logger, signal: AbortSignal): Promise<void> {
    const work = this.workTree;
    const shape = await shapeOf(work);
    if (shape === 'subvolume') {
      if (await isReadOnly(work, { signal })) {
        throw new SshRSyncError('ECONFIG', `${work} is a read-only subvolume, and rsync writes there: btrfs property set -ts ${work} ro false, or delete it (btrfs subvolume delete ${work}) to start again from the newest snapshot`);
      }
      return;
    }
    if (shape !== 'missing') {
      throw new SshRSyncError('ECONFIG', `${work} ${describeShape(shape)}: plugin-btrfs keeps its working subvolume there and writes into nothing else; remove it (it is not a snapshot) and run again`);
    }
    // Only a snapshot of our own: a symlink or a plain directory under a snapshot's name is not
    // copied from (it could lead anywhere).
    if (newest && (await shapeOf(newest.paths.tree)) === 'subvolume') {
      await snapshotSubvolume(newest.paths.tree, work, false, { signal });
      logger.debug(`${work} started from snapshot ${newest.id}`);
      return;
    }
    await createSubvolume(work, { signal });
    await chmod(work, 0o700);
    logger.debug(`${work} started empty`);
  }

  // Deletes the subvolume at `tree` (checked to be one by the caller). A non-root user must make
  // it writable first: btrfs refuses write access to a read-only subvolume's top directory, and
  // the kernel's permission check for a user's delete asks for exactly that.
  private async deleteTree(tree: string, signal?: AbortSignal): Promise<void> {
    try {
      if (process.getuid?.() !== 0) {
        if (await isReadOnly(tree, { signal })) await makeWritable(tree, { signal });
        const { mode } = await lstat(tree);
        if ((mode & 0o300) !== 0o300) await chmod(tree, (mode & 0o7777) | 0o700);
      }
      await deleteSubvolume(tree, { signal });
    } catch (error) {
      throw await explainDeleteFailure(tree, error);
    }
  }
}

