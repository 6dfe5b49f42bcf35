// The commit point: the one step that makes a run's backup complete. It runs after rsync and
// after the taps that vouch for the data (rsync.post: the manifest), before the peer is told
// anything: the data flushed to disk, the done mark written atomically and fsynced, the
// in-progress marker removed, `latest` moved. Until it has run, nothing is complete.
import { rm } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { Outcome, RunContext } from './context.js';
import { flushFilesystem, fsyncDir, storageError, writeAtomic } from './durable.js';
import { isSshRSyncError } from './errors.js';
import { currentSnapshot, doneMarkExtra, pointLatest, type DoneMark } from './snapshots.js';

// Commits this run's backup (a snapshot, or the mirror) and returns its done mark.
export async function commitRun(ctx: RunContext, outcome: Outcome): Promise<DoneMark> {
  const paths = currentSnapshot(ctx);
  const mark: DoneMark = {
    version: 1,
    host: ctx.name,
    snapshot: paths.id || null,
    completedAt: new Date().toISOString(),
    startedAt: ctx.startedAt.toISOString(),
    rsyncExitCode: outcome.rsync?.exitCode ?? null,
    originalExitCode: outcome.rsync?.originalExitCode ?? null,
    files: outcome.rsync?.files ?? null,
    bytes: outcome.rsync?.bytes ?? null,
    durationMs: outcome.durationMs,
    mode: ctx.mode,
    hooks: ctx.taps.map((tap) => ({ ...tap })),
    extra: doneMarkExtra(ctx),
  };
  try {
    await flushFilesystem(paths.tree, ctx.signal);
    ctx.signal.throwIfAborted();
    await writeAtomic(paths.doneMark, `${JSON.stringify(mark, null, 2)}\n`);
    await rm(paths.inProgress, { force: true });
    await fsyncDir(paths.meta);
    if (paths.id) await pointLatest(dirname(paths.tree), paths.id);
  } catch (error) {
    if (ctx.signal.aborted) throw ctx.signal.reason;
    throw isSshRSyncError(error) && error.code !== 'ESTORAGE' ? error : storageError(ctx.root, 'committing the backup', error);
  }
  return mark;
}
