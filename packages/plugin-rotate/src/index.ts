// @ssh-r-sync/plugin-rotate: after each successful run, deletes the host's snapshots that the
// retention policy no longer keeps ('14d 4w 6m 2y', a keep-last floor, a cap per run), and
// logs every deletion with its reason. See README.md.
import { SshRSyncError, preparedSnapshot, oneLine, scheduleAfterSession, type Logger, type PipelineHooks, type Plugin, type Retention } from '@ssh-r-sync/core';
import { plan } from './plan.js';
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
  /** Seconds the pruning after a backup may take before it is stopped (default 3600; 0 = no limit). */
  timeout?: number;
  /** Delete snapshots another plugin holds (plugin-restic: not yet copied off-site); default false. */
  ignoreHolds?: boolean;
}

// Creates the plugin; an unreadable policy throws here, when the config is loaded, not after a backup.
export default function rotate(options: RotateOptions = {} as RotateOptions): Plugin {
  const { jobs, dryRun, timeout = 3600, ignoreHolds = false, ...policy } = options;
  let parsed: ParsedPolicy;
  try {
    parsed = parsePolicy(policy);
    if (jobs !== undefined && (!Number.isSafeInteger(jobs) || jobs < 1)) throw new SshRSyncError('ECONFIG', `jobs must be a whole number >= 1, got ${JSON.stringify(jobs)}`);
    if (typeof ignoreHolds !== 'boolean') throw new SshRSyncError('ECONFIG', `ignoreHolds must be true or false, got ${JSON.stringify(ignoreHolds)}`);
    if (typeof timeout !== 'number' || !Number.isFinite(timeout) || timeout < 0) throw new SshRSyncError('ECONFIG', `timeout must be a number of seconds >= 0, got ${JSON.stringify(timeout)}`);
  } catch (error) {
    throw new SshRSyncError('ECONFIG', `@ssh-r-sync/plugin-rotate: ${oneLine(error)}`, { cause: error });
  }
  return {
    name: PLUGIN_NAME,
    retention: retentionOf(policy, dryRun === true),
    apply(hooks: PipelineHooks) {
      // The run's snapshot is committed before done taps run, so it counts as the newest
      // complete one. Pruning itself waits until after the session: it never delays the client's
      // answer nor turns a committed backup into a failure; its errors go to the log and the
      // host's record.
      hooks.done.tapPromise(PLUGIN_NAME, async (outcome, ctx) => {
        const logger = ctx.logger.scope(PLUGIN_NAME);
        if (!outcome.committed) {
          logger.debug(`run ended as ${outcome.status}: nothing rotated`);
          return;
        }
        if (!preparedSnapshot(ctx)?.id) {
          logger.warn(`${ctx.name} is kept as a mirror, not as snapshots (load a snapshot store such as @ssh-r-sync/plugin-link-dest): nothing to rotate`);
          return;
        }
        scheduleAfterSession(ctx, { name: PLUGIN_NAME, timeoutMs: timeout * 1000, run: (signal) => prune(ctx.dir, ctx.name, signal, logger) });
      });

      async function prune(hostDir: string, name: string, signal: AbortSignal, logger: Logger): Promise<void> {
        const result = await pruneHost(hostDir, {
          policy,
          dryRun,
          jobs,
          ignoreHolds,
          signal,
          logger,
        });
        for (const keep of result.plan.keep) logger.debug(`keeping ${keep.id}: ${keep.reasons.join('; ')}`);
        if (dryRun) for (const d of result.plan.delete) logger.info(`would delete ${d.id}: ${d.reason}`);
        const capped = result.plan.keep.filter((k) => k.reasons.some((r) => r.startsWith('deletion cap reached'))).length;
        logger.info(
          `${name}: ${result.plan.keep.length} snapshots kept, ${dryRun ? `${result.plan.delete.length} would be deleted` : `${result.deleted.length} deleted`}` +
            `${capped ? `, ${capped} more expired (deletion cap)` : ''} (${parsed.summary})`,
        );
        if (result.failed.length) {
          throw new Error(
            `the backup is complete, but ${result.failed.length} expired snapshot${result.failed.length === 1 ? '' : 's'} could not be deleted: ` +
              result.failed.map((f) => `${f.id} (${f.error})`).join('; '),
          );
        }
      }
    },
  };
}

// The policy for others to apply (plugin-restic's keep: "rotate"): the same plan as the local
// rotation, without the per-run deletion cap, which bounds local deletion time, not what is kept;
// a dry run here is a dry run there too.
export function retentionOf(policy: RetentionPolicy, dryRun = false): Retention {
  const uncapped = { ...policy, maxDeletes: Infinity };
  const { summary } = parsePolicy({ ...policy, maxDeletes: Infinity });
  return {
    summary: summary.replace(/, no deletion cap$/, ''),
    dryRun,
    plan(snapshots, now) {
      const result = plan(snapshots.map((s) => ({ id: s.id, date: s.date, complete: true })), uncapped, now);
      return { keep: result.keep.map((k) => k.id), delete: result.delete.map((d) => d.id) };
    },
  };
}
