// Which committed manifest lends its hashes to this run: for snapshots, the newest complete one
// (the one plugin-link-dest links against); for a mirror, the mirror's own manifest as it was
// committed, kept aside before the core removes it (beginMirror) and rsync rewrites the tree.
import { copyFile, link, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { listSnapshots, newestComplete, readDoneMark, type DoneMark, type SnapshotPaths } from '@ssh-r-sync/core';
import type { CommittedManifest } from './previous-hashes.js';

/** Where a mirror's committed manifest is kept during the run that rewrites the mirror. */
export const MIRROR_PREVIOUS = 'previous-manifest.tsv';

/** rsync options that write into existing files: a rewritten file would keep its inode. */
const IN_PLACE = /^--(inplace|append|append-verify)$/;

// The manifest summary a done mark records (extra.manifest), when it has the expected shape.
function summaryOf(done: DoneMark | null): { file: string; bytes: number; sha256: string } | null {
  const value = done?.extra?.manifest as { file?: unknown; bytes?: unknown; sha256?: unknown } | undefined;
  if (!value || value.file !== 'manifest.tsv' || !Number.isSafeInteger(value.bytes) || typeof value.sha256 !== 'string' || !/^[0-9a-f]{64}$/.test(value.sha256)) return null;
  return { file: value.file, bytes: value.bytes as number, sha256: value.sha256 };
}

// When the backup's run began, for comparing ctimes with (carry-entry.ts); nothing when its done
// mark does not say, or when the clock now reads earlier than its commit (set back since: a ctime
// stamped now could then look older than that run).
function startedAtOf(done: DoneMark | null): { startedAt?: Date } {
  const started = Date.parse(done?.startedAt ?? '');
  const completed = Date.parse(done?.completedAt ?? '');
  if (!Number.isFinite(started) || !Number.isFinite(completed) || completed > Date.now()) return {};
  return { startedAt: new Date(started) };
}

// The previous complete snapshot's manifest, for a run that writes snapshot `current` of the host
// in `hostDir`; null when there is none with a manifest summary in its done mark.
export async function previousSnapshotManifest(hostDir: string, current: SnapshotPaths): Promise<CommittedManifest | null> {
  const complete = (await listSnapshots(hostDir)).filter((snapshot) => snapshot.complete && snapshot.id !== current.id);
  // As plugin-link-dest chooses its basis: the newest not dated in the future, else any.
  const previous = newestComplete(complete) ?? complete.at(-1);
  const summary = previous ? summaryOf(previous.done) : null;
  if (!previous || !summary) return null;
  return { file: previous.paths.manifest, bytes: summary.bytes, sha256: summary.sha256, id: previous.id, ...startedAtOf(previous.done) };
}

// Before a mirror is rewritten: keeps its committed manifest (hard-linked, else copied) as
// MIRROR_PREVIOUS beside it, and says what its done mark recorded. A mirror without a done mark
// (never committed, or a failed run since) has nothing to lend; neither has one that rsync will
// rewrite in place (the same inode would then hold new content).
export async function keepMirrorManifest(paths: SnapshotPaths, rsyncArgs: readonly string[]): Promise<CommittedManifest | null> {
  const kept = join(paths.meta, MIRROR_PREVIOUS);
  await rm(kept, { force: true });
  if (rsyncArgs.some((arg) => IN_PLACE.test(arg))) return null;
  const done = await readDoneMark(paths);
  const summary = summaryOf(done);
  if (!summary) return null;
  await link(paths.manifest, kept).catch(async (error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') throw error;
    await copyFile(paths.manifest, kept);
  });
  return { file: kept, bytes: summary.bytes, sha256: summary.sha256, id: '', ...startedAtOf(done) };
}
