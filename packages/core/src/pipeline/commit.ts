// The commit point: the one step that makes a run's backup complete. It runs after rsync and
// after the taps that vouch for the data (beforeCommit: the manifest), before the peer is told
// anything: through the run's store, the data made durable and permanent, then the done mark
// written atomically and fsynced, the in-progress marker removed, `latest` moved
// (markComplete). Until it has run, nothing is complete.
import type { Outcome, RunContext } from './context.js';
import { storageError } from '../storage/durable.js';
import { SshRSyncError, isSshRSyncError, oneLine } from '../errors.js';
import { doneMarkExtra, isUndurableMark, readDoneMark, type DoneMark, type SnapshotPaths } from '../storage/snapshots.js';
import { preparedSnapshot, runStore } from '../storage/current.js';

// Commits this run's backup (a snapshot, or the mirror) and returns its done mark.
export async function commitRun(ctx: RunContext, outcome: Outcome): Promise<DoneMark> {
  const store = runStore(ctx);
  const prepared = preparedSnapshot(ctx);
  if (!store || !prepared) throw new SshRSyncError('EINTERNAL', 'nothing to commit: no snapshot was prepared');
  const mark: DoneMark = {
    version: 1,
    host: ctx.name,
    snapshot: prepared.id || null,
    completedAt: new Date().toISOString(),
    startedAt: ctx.startedAt.toISOString(),
    rsyncExitCode: outcome.rsync?.exitCode ?? null,
    originalExitCode: outcome.rsync?.originalExitCode ?? null,
    files: outcome.rsync?.files ?? null,
    bytes: outcome.rsync?.bytes ?? null,
    durationMs: outcome.durationMs,
    mode: ctx.mode,
    inPlace: prepared.inPlace,
    hooks: ctx.taps.map((tap) => ({ ...tap })),
    extra: doneMarkExtra(ctx),
  };
  const what = prepared.id ? `snapshot ${prepared.id}` : 'the mirror';
  try {
    const result = await store.commit(prepared, mark, ctx.signal);
    for (const warning of result?.warnings ?? []) ctx.logger.warn(`${what} is committed, but ${warning}`);
  } catch (error) {
    // A store that fails after it wrote this run's done mark has committed all the same: the
    // mark alone makes the snapshot complete, so the run is not reported as failed. Not a mark
    // markComplete could not sync: that one may be in the page cache only.
    if (!isUndurableMark(error) && (await isOurMark(prepared.paths, mark))) {
      ctx.logger.warn(`${what} is committed (its done mark is written), but its store then failed: ${oneLine(error)}`);
      return mark;
    }
    if (ctx.signal.aborted) throw ctx.signal.reason;
    throw isSshRSyncError(error) && error.code !== 'ESTORAGE' ? error : storageError(ctx.root, 'committing the backup', error);
  }
  return mark;
}

// The done mark at `paths` is the one this run wrote (not one left there before).
async function isOurMark(paths: SnapshotPaths, mark: DoneMark): Promise<boolean> {
  const found = await readDoneMark(paths).catch(() => null);
  return found !== null && found.completedAt === mark.completedAt && found.startedAt === mark.startedAt && found.host === mark.host && found.snapshot === mark.snapshot;
}
