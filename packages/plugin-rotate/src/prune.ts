// Applies the retention plan to one host's directory: lists its snapshots, plans, and deletes
// what the plan deletes, logging each one with its reason. Shared by the plugin (after every
// successful run) and `ssh-r-sync-admin prune`.
import { basename, dirname } from 'node:path';
import { MIRROR_KIND, SshRSyncError, newestComplete, oneLine, openHostStore, readHolds, silentLogger, type Logger, type SnapshotInfo } from '@ssh-r-sync/core';
import { plan, type RetentionPlan } from './plan.js';
import type { RetentionPolicy } from './policy.js';

export interface PruneOptions {
  policy: RetentionPolicy;
  /** The time the plan is made for (default: now). */
  now?: Date;
  /** Plan and log, delete nothing. */
  dryRun?: boolean;
  /** Parallel `rm` processes per delete. */
  jobs?: number;
  signal?: AbortSignal;
  logger?: Logger;
  /** Delete held snapshots too (see core's readHolds): the policy says a copy still to be made does not matter. */
  ignoreHolds?: boolean;
}

export interface PruneResult {
  snapshots: SnapshotInfo[];
  plan: RetentionPlan;
  /** Ids deleted in this call (none in a dry run). */
  deleted: string[];
  /** Deletes that failed, with rm's message. */
  failed: { id: string; error: string }[];
}

// Plans the host in `hostDir` and, unless dry-run, deletes what the plan deletes (oldest first).
export async function pruneHost(hostDir: string, options: PruneOptions): Promise<PruneResult> {
  const logger = options.logger ?? silentLogger;
  // Through the host's store, whatever its kind. A mirror's files are the client's: whatever
  // their names, they are never snapshots to delete.
  const { store, kind } = await openHostStore({ root: dirname(hostDir), name: basename(hostDir), dir: hostDir });
  const now = options.now ?? new Date();
  const snapshots = kind === MIRROR_KIND || kind === 'new' ? [] : await store.list(now);
  const problems: string[] = [];
  const holds = options.ignoreHolds || snapshots.length === 0 ? new Map<string, string[]>() : await readHolds(dirname(hostDir), basename(hostDir), problems);
  for (const problem of problems) logger.warn(`a hold could not be read, it holds nothing: ${problem}`);
  const decided = plan(snapshots.map((s) => (holds.has(s.id) ? { ...s, held: holds.get(s.id) } : s)), options.policy, now);
  const newest = newestComplete(snapshots);
  if (newest && decided.delete.some((d) => d.id === newest.id)) {
    throw new SshRSyncError('EINTERNAL', `refusing to delete ${newest.id}: it is the newest complete snapshot (a bug in the plan)`);
  }
  const result: PruneResult = { snapshots, plan: decided, deleted: [], failed: [] };
  if (options.dryRun) return result;
  const byId = new Map(snapshots.map((s) => [s.id, s]));
  for (const decision of decided.delete) {
    options.signal?.throwIfAborted();
    logger.info(`deleting ${decision.id}: ${decision.reason}`);
    const started = performance.now();
    try {
      await store.remove(byId.get(decision.id)!, { jobs: options.jobs, signal: options.signal });
      result.deleted.push(decision.id);
      logger.debug(`deleted ${decision.id} in ${((performance.now() - started) / 1000).toFixed(1)} s`);
    } catch (error) {
      if (options.signal?.aborted) throw error;
      logger.error(`could not delete ${decision.id}: ${oneLine(error)}`);
      result.failed.push({ id: decision.id, error: oneLine(error) });
    }
  }
  return result;
}
