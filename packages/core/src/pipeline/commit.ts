// The commit point: the one step that makes a run's backup complete. It runs after rsync and
// after the taps that vouch for the data (beforeCommit: the manifest), before the peer is told
// anything: through the run's store, the data made durable and permanent, then the done mark
// written atomically and fsynced, the in-progress marker removed, `latest` moved
// (markComplete). Until it has run, nothing is complete.
import type { Outcome, RunContext } from './context.js';
import { storageError } from '../storage/durable.js';
import { SshRSyncError, isSshRSyncError } from '../errors.js';
import { doneMarkExtra, type DoneMark } from '../storage/snapshots.js';
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
    hooks: ctx.taps.map((tap) => ({ ...tap })),
    extra: doneMarkExtra(ctx),
  };
  try {
    await store.commit(prepared, mark, ctx.signal);
  } catch (error) {
    if (ctx.signal.aborted) throw ctx.signal.reason;
    throw isSshRSyncError(error) && error.code !== 'ESTORAGE' ? error : storageError(ctx.root, 'committing the backup', error);
  }
  return mark;
}
