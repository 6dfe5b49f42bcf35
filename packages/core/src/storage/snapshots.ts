// The one snapshot layout that plugins agree on (link-dest, manifest, rotate, and the admin
// command). Owned here so that no plugin copies it and no plugin imports another.
//
//   ROOT/NAME/2026-11-22T024512Z/          a snapshot: exactly the client's files
//   ROOT/NAME/2026-11-22T024512Z.meta/     its metadata, beside it:
//       in-progress                        while the run is going (or after it was interrupted)
//       manifest.tsv                       the file list (plugin-manifest)
//       done.json                          the done mark, written atomically; its presence alone
//                                          makes the snapshot complete
//   ROOT/NAME/latest -> 2026-11-22T024512Z the newest complete snapshot
//
// Without snapshots (a plain mirror in ROOT/NAME) the metadata lives in ROOT/.ssh-r-sync/mirror/NAME/.
import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { mkdir, open, readdir, rename, rm, symlink, writeFile, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import type { Mode, RunContext } from '../pipeline/context.js';
import { deleteTree, type DeleteOptions } from './delete-tree.js';
import { flushFilesystem, fsyncDir, writeAtomic } from './durable.js';
import { SshRSyncError, oneLine } from '../errors.js';
import type { CommitResult } from './store.js';

export { writeAtomic } from './durable.js';

/** Sortable UTC time, no colons: 2026-11-22T024512Z. */
export const SNAPSHOT_ID = /^(\d{4})-(\d{2})-(\d{2})T(\d{2})(\d{2})(\d{2})Z$/;
export const LATEST_LINK = 'latest';
const META_SUFFIX = '.meta';

// The id of a snapshot started at `date`.
export function snapshotId(date: Date): string {
  return date.toISOString().replace(/\.\d{3}Z$/, 'Z').replace(/:/g, '');
}

// The start time encoded in an id; null when it is not one.
export function snapshotDate(id: string): Date | null {
  const m = SNAPSHOT_ID.exec(id);
  if (!m) return null;
  const date = new Date(Date.UTC(+m[1]!, +m[2]! - 1, +m[3]!, +m[4]!, +m[5]!, +m[6]!));
  return snapshotId(date) === id ? date : null;
}

export interface SnapshotPaths {
  id: string;
  /** The snapshot's tree: restore from here. */
  tree: string;
  /** Its metadata directory. */
  meta: string;
  inProgress: string;
  manifest: string;
  doneMark: string;
}

// Where everything of snapshot `id` of the host in `hostDir` lives.
export function snapshotPaths(hostDir: string, id: string): SnapshotPaths {
  const meta = join(hostDir, `${id}${META_SUFFIX}`);
  return {
    id,
    tree: join(hostDir, id),
    meta,
    inProgress: join(meta, 'in-progress'),
    manifest: join(meta, 'manifest.tsv'),
    doneMark: join(meta, 'done.json'),
  };
}

// Metadata paths of a plain mirror (no snapshots): ROOT/.ssh-r-sync/mirror/NAME/.
export function mirrorPaths(root: string, name: string, hostDir: string): SnapshotPaths {
  const meta = join(root, '.ssh-r-sync', 'mirror', name);
  return { id: '', tree: hostDir, meta, inProgress: join(meta, 'in-progress'), manifest: join(meta, 'manifest.tsv'), doneMark: join(meta, 'done.json') };
}

/** The done mark: what made the snapshot complete, and how the run went. */
export interface DoneMark {
  version: 1;
  host: string;
  snapshot: string | null;
  completedAt: string;
  startedAt: string;
  rsyncExitCode: number | null;
  /** rsync's own code, before an rsync.post hook mapped it. */
  originalExitCode: number | null;
  files: number | null;
  bytes: number | null;
  durationMs: number;
  /** How rsync stored the files (`fake-super`: owners, devices and links in user.rsync.%stat);
   *  absent in done marks written before it was recorded. */
  mode?: Mode;
  /** rsync rewrote files in their own inodes (--inplace, --append; a btrfs working subvolume):
   *  a hard link to one of them changes with the next run. Absent in older done marks. */
  inPlace?: boolean;
  /** Every hook that ran, with how it ended. */
  hooks: { point: string; tap: string; outcome: string; durationMs: number }[];
  /** What plugins added (e.g. the manifest's entry count and hash). */
  extra: Record<string, unknown>;
}

export interface SnapshotInfo {
  id: string;
  date: Date;
  paths: SnapshotPaths;
  complete: boolean;
  /** Dated after the time of listing (the clock went back, or it was put there): never the newest. */
  future: boolean;
  /** The done mark of a complete snapshot. */
  done: DoneMark | null;
}

/** Ids of runs in quick succession step a few seconds ahead of the clock; beyond this, a date is in the future. */
export const FUTURE_TOLERANCE_MS = 60 * 60 * 1000;

// Every snapshot of a host, oldest first, complete or not; anything else in the folder is ignored.
// `now` tells which are dated in the future.
export async function listSnapshots(hostDir: string, now: Date = new Date()): Promise<SnapshotInfo[]> {
  let entries: string[];
  try {
    entries = await readdir(hostDir);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw error;
  }
  const ids = new Set<string>();
  for (const entry of entries) {
    const id = entry.endsWith(META_SUFFIX) ? entry.slice(0, -META_SUFFIX.length) : entry;
    if (snapshotDate(id)) ids.add(id);
  }
  const info = async (id: string): Promise<SnapshotInfo> => {
    const paths = snapshotPaths(hostDir, id);
    const done = await readDoneMark(paths);
    const date = snapshotDate(id)!;
    return { id, date, paths, complete: done !== null && entries.includes(id), future: date.getTime() > now.getTime() + FUTURE_TOLERANCE_MS, done };
  };
  // A few done marks at a time: hundreds at once can run out of file descriptors.
  const sorted = [...ids].sort();
  const infos: SnapshotInfo[] = [];
  for (let i = 0; i < sorted.length; i += READ_AT_ONCE) infos.push(...(await Promise.all(sorted.slice(i, i + READ_AT_ONCE).map(info))));
  return infos;
}

/** Done marks read at once by listSnapshots. */
const READ_AT_ONCE = 16;

// The newest complete snapshot that is not dated in the future: what "the latest backup" means.
export function newestComplete<T extends Pick<SnapshotInfo, 'complete' | 'future'>>(snapshots: readonly T[]): T | undefined {
  return snapshots.findLast((snapshot) => snapshot.complete && !snapshot.future);
}

/** A done mark is a few KiB; anything much larger is not one of ours. */
const MAX_DONE_MARK_BYTES = 1024 * 1024;

/** Errors that mean "no done mark of ours here"; any other (EMFILE, EIO, …) is not an answer. */
const NO_MARK = new Set(['ENOENT', 'ENOTDIR', 'ELOOP', 'ENXIO', 'EISDIR']);

// The done mark if it is there and readable; a torn or foreign file counts as absent. Never
// follows a symlink and reads a bounded amount: a planted file is data, not metadata. A failure
// to look (out of file descriptors, an I/O error) throws: a complete snapshot taken for an
// incomplete one would be named stale, or deleted as superseded.
export async function readDoneMark(paths: SnapshotPaths): Promise<DoneMark | null> {
  let handle: FileHandle | undefined;
  try {
    handle = await open(paths.doneMark, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
    const stats = await handle.stat();
    if (!stats.isFile() || stats.size > MAX_DONE_MARK_BYTES) return null;
    const mark = JSON.parse(await handle.readFile('utf8')) as DoneMark;
    return mark && typeof mark === 'object' && mark.version === 1 ? mark : null;
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === undefined || NO_MARK.has(code)) return null; // not JSON, or nothing there
    throw new SshRSyncError('ESTORAGE', `cannot read ${paths.doneMark}: ${code}: is the disk healthy, or the open-file limit (ulimit -n) too low?`, { cause: error });
  } finally {
    await handle?.close().catch(() => {});
  }
}

// Creates a new snapshot's metadata folder, marked in progress, and (unless `tree: false`, for a
// store whose commit makes the tree) its empty tree.
export async function beginSnapshot(hostDir: string, now: Date, options: { tree?: boolean } = {}): Promise<SnapshotPaths> {
  // Ids sort in run order: after the newest existing one, even in the same second or if the
  // clock went back a little. One dated in the future does not drag every later id into the
  // future with it (rotation counts days by id): ids then follow the clock, and skip taken ones.
  const snapshots = await listSnapshots(hostDir, now);
  const taken = new Set(snapshots.map((snapshot) => snapshot.id));
  const newest = snapshots.filter((snapshot) => !snapshot.future).at(-1);
  let time = Math.max(Math.floor(now.getTime() / 1000) * 1000, newest ? newest.date.getTime() + 1000 : 0);
  while (taken.has(snapshotId(new Date(time)))) time += 1000;
  const id = snapshotId(new Date(time));
  const paths = snapshotPaths(hostDir, id);
  await mkdir(paths.meta, { recursive: true, mode: 0o700 });
  await writeFile(paths.inProgress, `${JSON.stringify({ pid: process.pid, startedAt: now.toISOString() })}\n`, { mode: 0o600 });
  if (options.tree !== false) await mkdir(paths.tree, { mode: 0o700 });
  return paths;
}

// The commit of a store whose snapshot stays where rsync wrote it (hard links, a mirror): the
// tree's file system flushed, then markComplete.
export async function commitInPlace(prepared: { paths: SnapshotPaths; workTree: string }, mark: DoneMark, hostDir: string | null, signal: AbortSignal): Promise<CommitResult> {
  await flushFilesystem(prepared.workTree, signal);
  signal.throwIfAborted();
  return markComplete(prepared.paths, mark, hostDir);
}

// The last step of every store's commit, once its data is durable: the done mark written
// atomically and fsynced (from here on the snapshot is complete), the in-progress marker removed,
// and `latest` in `hostDir` pointed at the snapshot (not for a mirror: hostDir null). A done mark
// that could not be made durable is taken away again (it throws: not complete); a failure after
// it only tidies and comes back as a warning, never as a failed backup of a complete snapshot.
export async function markComplete(paths: SnapshotPaths, mark: DoneMark, hostDir: string | null): Promise<CommitResult> {
  try {
    await writeAtomic(paths.doneMark, `${JSON.stringify(mark, null, 2)}\n`);
  } catch (error) {
    // Renamed into place but not synced, the mark may still be there (when its removal fails
    // too, a disk gone read-only): the error says so, and the pipeline never trusts that mark.
    if (typeof error === 'object' && error !== null) undurableMarks.add(error);
    await rm(paths.doneMark, { force: true })
      .then(() => fsyncDir(paths.meta))
      .catch(() => {});
    throw error;
  }
  const warnings: string[] = [];
  await rm(paths.inProgress, { force: true }).catch((error: unknown) => warnings.push(`its in-progress marker ${paths.inProgress} could not be removed: ${oneLine(error)}`));
  await fsyncDir(paths.meta).catch((error: unknown) => warnings.push(`${paths.meta} could not be synced after removing its in-progress marker: ${oneLine(error)}`));
  if (hostDir !== null && paths.id) {
    await pointLatest(hostDir, paths.id).catch((error: unknown) => warnings.push(`${join(hostDir, LATEST_LINK)} could not be pointed at it (${(error as NodeJS.ErrnoException).code ?? oneLine(error)}): the next run moves it (ssh-r-sync's own commands list the snapshots and never read it)`));
  }
  return { warnings };
}

const UNDURABLE = Symbol.for('ssh-r-sync.undurable-done-marks');
const undurableMarks = ((globalThis as Record<symbol, unknown>)[UNDURABLE] ??= new WeakSet<object>()) as WeakSet<object>;

// Whether `error` (or what it was caused by) is markComplete's failure to make a done mark durable.
export function isUndurableMark(error: unknown): boolean {
  let e = error;
  for (let depth = 0; typeof e === 'object' && e !== null && depth < 10; depth++, e = (e as { cause?: unknown }).cause) if (undurableMarks.has(e)) return true;
  return false;
}

// Marks a mirror as being rewritten: its old done mark and manifest stop being true now.
export async function beginMirror(paths: SnapshotPaths): Promise<void> {
  await mkdir(paths.meta, { recursive: true, mode: 0o700 });
  await rm(paths.doneMark, { force: true });
  await rm(paths.manifest, { force: true });
  await writeFile(paths.inProgress, `${JSON.stringify({ pid: process.pid, startedAt: new Date().toISOString() })}\n`, { mode: 0o600 });
  await fsyncDir(paths.meta);
}

// Points ROOT/NAME/latest at a snapshot, replacing the link atomically.
export async function pointLatest(hostDir: string, id: string): Promise<void> {
  const temporary = join(hostDir, `.${LATEST_LINK}.${randomBytes(6).toString('hex')}`);
  await symlink(id, temporary);
  try {
    await rename(temporary, join(hostDir, LATEST_LINK));
  } catch (error) {
    await rm(temporary, { force: true }).catch(() => {});
    throw error;
  }
  await fsyncDir(hostDir);
}

// Removes a snapshot: the done mark first, so a half-deleted snapshot never looks complete
// (a later plan sees it as incomplete and superseded); then its tree, with `rm -rf` (node's
// fs.rm is 2-4x slower on hard-link farms, see bench/prune); then the rest of its metadata.
export async function removeSnapshot(paths: SnapshotPaths, options: DeleteOptions = {}): Promise<void> {
  await rm(paths.doneMark, { force: true });
  await deleteTree(paths.tree, options);
  await rm(paths.meta, { recursive: true, force: true }); // a few files: not worth a process
}

// ---- what plugins add to this run's done mark ----

const EXTRA = 'ssh-r-sync:done-mark-extra';

// Adds a field to the done mark this run will write at its commit (e.g. the manifest's summary).
export function contributeToDoneMark(ctx: RunContext, key: string, value: unknown): void {
  const extra = doneMarkExtra(ctx);
  extra[key] = value;
  ctx.data.set(EXTRA, extra);
}

// What plugins contributed to this run's done mark so far.
export function doneMarkExtra(ctx: RunContext): Record<string, unknown> {
  return (ctx.data.get(EXTRA) as Record<string, unknown> | undefined) ?? {};
}
