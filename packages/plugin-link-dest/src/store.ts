// The hard-link store: each run writes a new snapshot ROOT/NAME/<id>, hard-linked with rsync
// --link-dest against the newest complete snapshot, so unchanged files cost no space. An
// interrupted run stays marked in progress and feeds the next run as an extra --link-dest; once a
// run is committed, the interrupted ones are removed after the session (tidy).
import { existsSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import {
  LINK_DEST_KIND,
  beginSnapshot,
  commitInPlace,
  listSnapshots,
  removeSnapshot,
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
import { MAX_BASIS_DIRS, chooseBasis, countBasisDirs } from './basis.js';

/** The package the admin tools load this store from. */
export const MODULE = '@ssh-r-sync/plugin-link-dest';

// The provider of hard-link stores; `maxResume` interrupted snapshots go in as extra --link-dest.
export function linkDestStore(maxResume: number): StoreProvider {
  return { kind: LINK_DEST_KIND, module: MODULE, open: (location) => new LinkDestStore(location, maxResume) };
}

class LinkDestStore implements SnapshotStore {
  readonly kind = LINK_DEST_KIND;
  constructor(
    readonly location: HostLocation,
    private readonly maxResume: number,
  ) {}

  list(now?: Date): Promise<SnapshotInfo[]> {
    return listSnapshots(this.location.dir, now);
  }

  async prepare({ command, now, logger }: PrepareRequest): Promise<PreparedSnapshot> {
    const hostDir = this.location.dir;
    const basis = chooseBasis(await listSnapshots(hostDir), this.maxResume);
    const paths = await beginSnapshot(hostDir, new Date());
    // rsync takes at most 20 basis directories; a hook may have named some already.
    const room = Math.max(0, MAX_BASIS_DIRS - countBasisDirs(command.args));
    const sources = [...(basis.complete ? [basis.complete] : []), ...basis.resumed].slice(0, room);
    command.args.push(...sources.map((source) => `--link-dest=${source.paths.tree}`));
    command.destination = `${paths.tree}/`;
    const against = sources.length ? `linked against ${sources.map((source) => source.id + (source.complete ? '' : ' (interrupted)')).join(', ')}` : 'a full copy';
    logger.debug(`snapshot ${paths.id}: ${against}`);
    const previous = basis.complete?.done ? { paths: basis.complete.paths, done: basis.complete.done as DoneMark } : null;
    return { id: paths.id, paths, workTree: paths.tree, inPlace: false, createdEmptyAt: now, previous };
  }

  // Nothing to add to core's commit: the tree is where it stays.
  commit(prepared: PreparedSnapshot, mark: DoneMark, signal: AbortSignal): Promise<CommitResult> {
    return commitInPlace(prepared, mark, this.location.dir, signal);
  }

  async abandon(prepared: PreparedSnapshot, logger: Logger): Promise<void> {
    // Nothing transferred (skipped or failed before rsync wrote): nothing to resume from.
    if (await isEmpty(prepared.workTree)) await removeSnapshot(prepared.paths);
    else logger.debug(`snapshot ${prepared.id} stays incomplete; the next run resumes from it`);
  }

  // The interrupted runs a committed snapshot supersedes: whatever is still marked in progress
  // (only runs of ours leave that marker; the host's lock keeps other runs out meanwhile).
  async tidy(prepared: PreparedSnapshot, logger: Logger): Promise<((signal: AbortSignal) => Promise<void>) | null> {
    const interrupted = (await listSnapshots(this.location.dir)).filter((snapshot) => !snapshot.complete && snapshot.id !== prepared.id && existsSync(snapshot.paths.inProgress));
    if (interrupted.length === 0) return null;
    return async (signal) => {
      const failed: string[] = [];
      for (const old of interrupted) {
        signal.throwIfAborted();
        await removeSnapshot(old.paths, { signal }).then(
          () => logger.debug(`removed interrupted snapshot ${old.id}`),
          (error: Error) => failed.push(`${old.id} (${error.message})`),
        );
      }
      if (failed.length) throw new Error(`could not remove interrupted snapshot${failed.length === 1 ? '' : 's'} ${failed.join('; ')}; the next run retries`);
    };
  }

  remove(snapshot: SnapshotInfo, options?: DeleteOptions): Promise<void> {
    return removeSnapshot(snapshot.paths, options);
  }
}

async function isEmpty(dir: string): Promise<boolean> {
  const entries = await readdir(dir).catch(() => []);
  return entries.length === 0;
}
