// @ssh-r-sync/plugin-rotate: after each successful run, deletes the host's snapshots that the
// retention policy no longer keeps ('14d 4w 6m 2y', a keep-last floor, a cap per run), and
// logs every deletion with its reason. See README.md.
import { dirname } from 'node:path';
import { SshRSyncError, currentSnapshot, currentTap, oneLine, type PipelineHooks, type Plugin } from '@ssh-r-sync/core';
import { parsePolicy, type ParsedPolicy, type RetentionPolicy } from './policy.js';
import { pruneHost } from './prune.js';

export * from './policy.js';
export { periodKey, isoWeek } from './periods.js';
export { plan, type SnapshotState, type RetentionPlan, type KeepDecision, type DeleteDecision } from './plan.js';
// The delete itself lives in core (removeSnapshot), shared with plugin-link-dest.
export { removeSnapshot as deleteSnapshot, deleteTree, defaultJobs, type DeleteOptions } from '@ssh-r-sync/core';
export { pruneHost, type PruneOptions, type PruneResult } from './prune.js';

export const PLUGIN_NAME = 'rotate';

/** The plugin's options: the policy, plus how it deletes. */
export interface RotateOptions extends RetentionPolicy {
  /** Parallel `rm` processes per delete (default: the CPU count, at most 4). */
  jobs?: number;
  /** Log what would be deleted, delete nothing. */
  dryRun?: boolean;
}

// Creates the plugin; an unreadable policy throws here, when the config is loaded, not after a backup.
export default function rotate(options: RotateOptions = {} as RotateOptions): Plugin {
  const { jobs, dryRun, ...policy } = options;
  let parsed: ParsedPolicy;
  try {
    parsed = parsePolicy(policy);
    if (jobs !== undefined && (!Number.isSafeInteger(jobs) || jobs < 1)) throw new SshRSyncError('ECONFIG', `jobs must be a whole number >= 1, got ${JSON.stringify(jobs)}`);
  } catch (error) {
    throw new SshRSyncError('ECONFIG', `@ssh-r-sync/plugin-rotate: ${oneLine(error)}`, { cause: error });
  }
  return {
    name: PLUGIN_NAME,
    apply(hooks: PipelineHooks) {
      // A late stage: the snapshot plugins write this run's done mark first, so the new
      // snapshot already counts as the newest complete one.
      hooks.done.tapPromise({ name: PLUGIN_NAME, stage: 100 }, async (outcome, ctx) => {
        const logger = ctx.logger.scope(PLUGIN_NAME);
        if (outcome.status !== 'success') {
          logger.debug(`run ended as ${outcome.status}: nothing rotated`);
          return;
        }
        const current = currentSnapshot(ctx);
        if (!current.id) {
          logger.warn(`${ctx.name} is kept as a mirror, not as snapshots (load @ssh-r-sync/plugin-link-dest): nothing to rotate`);
          return;
        }
        const result = await pruneHost(dirname(current.tree), {
          policy,
          dryRun,
          jobs,
          signal: currentTap()?.signal ?? ctx.signal,
          logger,
        });
        for (const keep of result.plan.keep) logger.debug(`keeping ${keep.id}: ${keep.reasons.join('; ')}`);
        if (dryRun) for (const d of result.plan.delete) logger.info(`would delete ${d.id}: ${d.reason}`);
        const capped = result.plan.keep.filter((k) => k.reasons.some((r) => r.startsWith('deletion cap reached'))).length;
        logger.info(
          `${ctx.name}: ${result.plan.keep.length} snapshots kept, ${dryRun ? `${result.plan.delete.length} would be deleted` : `${result.deleted.length} deleted`}` +
            `${capped ? `, ${capped} more expired (deletion cap)` : ''} (${parsed.summary})`,
        );
        if (result.failed.length) {
          throw new Error(
            `the backup is complete, but ${result.failed.length} expired snapshot(s) could not be deleted: ` +
              result.failed.map((f) => `${f.id} (${f.error})`).join('; '),
          );
        }
      });
    },
  };
}
