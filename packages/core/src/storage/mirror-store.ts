// The store of a host kept without a snapshot plugin: ROOT/NAME is one plain mirror of the
// client, rewritten by each run (rsync --delete), its metadata outside the client's files in
// ROOT/.ssh-r-sync/mirror/NAME/. Its one backup is complete while its done mark is there, so a
// run removes that mark (and the manifest it vouches for) before rsync rewrites the tree; the
// manifest is kept aside as the previous backup's, to lend its hashes, until the run ends.
import { copyFile, link, lstat, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fsyncDir } from './durable.js';
import { beginMirror, commitInPlace, mirrorPaths, readDoneMark, type DoneMark, type SnapshotInfo, type SnapshotPaths } from './snapshots.js';
import { oneLine } from '../errors.js';
import { MIRROR_KIND, type CommitResult, type HostLocation, type PreparedSnapshot, type PrepareRequest, type SnapshotStore, type StoreProvider } from './store.js';

/** The committed manifest kept aside while the mirror is rewritten (ROOT/.ssh-r-sync/mirror/NAME/). */
export const MIRROR_PREVIOUS = 'previous-manifest.tsv';

/** When a run last began to rewrite the mirror in its inodes (ROOT/.ssh-r-sync/mirror/NAME/):
 *  a hard-link view of the mirror taken before then may have changed with it. */
export const MIRROR_IN_PLACE_RUN = 'in-place-run.json';

// What a view of the mirror compares to tell whether a run rewrote the mirror in place (--inplace,
// --append) since the view was made: the identity of the record such a run rewrites before rsync
// starts (in `meta`, the mirror's metadata folder), 'none' while there is none. Not its contents
// nor a clock: a torn record (a full disk, a crash in the write) would otherwise void every later
// view, and a clock set back would let a rewrite pass.
export async function mirrorInPlaceMark(meta: string): Promise<string> {
  const info = await lstat(join(meta, MIRROR_IN_PLACE_RUN), { bigint: true }).catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') return null;
    throw error;
  });
  return info ? `${info.dev}:${info.ino}:${info.size}:${info.mtimeNs}:${info.ctimeNs}` : 'none';
}

/** rsync options that write into existing files: a rewritten file keeps its inode. */
const IN_PLACE = /^--(inplace|append|append-verify)$/;

export const mirrorStoreProvider: StoreProvider = {
  kind: MIRROR_KIND,
  module: '@ssh-r-sync/core',
  open: (location) => new MirrorStore(location),
};

class MirrorStore implements SnapshotStore {
  readonly kind = MIRROR_KIND;
  constructor(readonly location: HostLocation) {}

  private get paths(): SnapshotPaths {
    return mirrorPaths(this.location.root, this.location.name, this.location.dir);
  }

  // The mirror once committed; while a run rewrites it (or after one failed), the mirror as incomplete.
  async list(): Promise<SnapshotInfo[]> {
    const paths = this.paths;
    const done = await readDoneMark(paths);
    if (done) {
      const date = new Date(done.completedAt);
      return [{ id: '', date: Number.isFinite(date.getTime()) ? date : new Date(0), paths, complete: true, future: false, done }];
    }
    const since = await lstat(paths.inProgress).catch(() => null);
    return since?.isFile() ? [{ id: '', date: since.mtime, paths, complete: false, future: false, done: null }] : [];
  }

  async prepare(request: PrepareRequest): Promise<PreparedSnapshot> {
    const paths = this.paths;
    request.command.destination = `${this.location.dir}/`;
    // A mirror rewritten in place lends nothing (a conservative choice kept from before stores).
    const inPlace = request.command.args.some((arg) => IN_PLACE.test(arg));
    const previous = inPlace ? (await rm(join(paths.meta, MIRROR_PREVIOUS), { force: true }), null) : await keepPrevious(paths);
    await beginMirror(paths);
    // Before rsync writes: whoever holds a hard-link view of the mirror (plugin-restic's copy)
    // learns that its files may change under it.
    if (inPlace) await writeFile(join(paths.meta, MIRROR_IN_PLACE_RUN), `${JSON.stringify({ startedAt: new Date().toISOString() })}\n`, { mode: 0o600 });
    return {
      id: '',
      paths,
      workTree: this.location.dir,
      inPlace,
      createdEmptyAt: null,
      previous,
    };
  }

  async commit(prepared: PreparedSnapshot, mark: DoneMark, signal: AbortSignal): Promise<CommitResult> {
    const result = await commitInPlace(prepared, mark, null, signal);
    await forgetPrevious(prepared).catch((error: unknown) => result.warnings.push(`the previous run's manifest copy could not be removed: ${oneLine(error)}`));
    return result;
  }

  async abandon(prepared: PreparedSnapshot): Promise<void> {
    await forgetPrevious(prepared);
  }

  async tidy(): Promise<null> {
    return null;
  }

  async remove(): Promise<void> {
    throw new Error(`${this.location.name} is kept as a mirror: its one backup is never deleted as a snapshot`);
  }
}

// Before the mirror is rewritten: its committed manifest kept aside (hard-linked, else copied)
// with the done mark that vouches for it; null when there is none (never committed, or a failed
// run since removed the mark).
async function keepPrevious(paths: SnapshotPaths): Promise<PreparedSnapshot['previous']> {
  const kept = join(paths.meta, MIRROR_PREVIOUS);
  await rm(kept, { force: true });
  const done = await readDoneMark(paths);
  if (!done) return null;
  const copied = await link(paths.manifest, kept).then(
    () => true,
    async (error: NodeJS.ErrnoException) => {
      if (error.code === 'ENOENT') return false;
      await copyFile(paths.manifest, kept);
      return true;
    },
  );
  return { paths: { ...paths, manifest: copied ? kept : paths.manifest }, done };
}

// The kept manifest is of no use once the run is over, whatever its end.
async function forgetPrevious(prepared: PreparedSnapshot): Promise<void> {
  if (!prepared.previous || prepared.previous.paths.manifest === prepared.paths.manifest) return;
  await rm(prepared.previous.paths.manifest, { force: true });
  await fsyncDir(prepared.paths.meta).catch(() => {});
}
