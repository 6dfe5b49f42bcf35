// @ssh-r-sync/plugin-restic: after each committed backup, copies every complete snapshot of the
// host that a configured restic repository (S3, sftp, REST, a local disk) does not have yet into
// it, oldest first, with the snapshot's own time, the host's name and its id as a tag; keeps the
// snapshots still to copy out of local rotation (a hold) and applies the repository's retention.
// The work runs after the session: it never delays the client and never fails the backup; a
// failure is recorded (the host's record, ROOT/.ssh-r-sync/offsite/NAME.json) and the next run
// or `ssh-r-sync-admin offsite sync` catches up. See README.md and docs/offsite.md.
import { SshRSyncError, isLockBusy, oneLine, preparedSnapshot, runRetention, scheduleAfterSession, silentLogger, storedSnapshots, type Logger, type PipelineHooks, type Plugin, type StatusReport } from '@ssh-r-sync/core';
import { parseOptions, type ParsedOptions, type ResticOptions } from './options.js';
import { copyKey, forgetCopies, holdUncopied, listCopies, syncHost, type ForgetOptions, type ForgetResult, type RemoteCopy, type RepositoryResult, type SyncOptions } from './sync.js';
import { readOffsiteState, type OffsiteState } from './state.js';
import { checkRepository, restoreCopy } from './check.js';

export { parseOptions, checkPasswordFile, type ResticOptions, type RepositoryOptions, type ParsedOptions, type Repository } from './options.js';
export { resticCommand, runRestic, redactRepository, resticError, type ResticCommand, type ResticResult } from './restic.js';
export { syncHost, offsiteLockPath, holdUncopied, listCopies, backupArgs, forgetCopies, copyKey, resticTime, TAG, HOLDER, type RepositoryResult, type RemoteCopy, type SyncOptions, type ForgetOptions, type ForgetResult } from './sync.js';
export { readOffsiteState, offsiteStatePath, STATE_SCHEMA, type OffsiteState, type RepositoryState } from './state.js';
export { checkRepository, restoreCopy } from './check.js';

export const PLUGIN_NAME = 'restic';
/** Passes of one after-session copy: another while newer snapshots were committed during the last. */
const MAX_PASSES = 10;

// The id of the host's newest complete snapshot (or its start, for a mirror); null: none.
async function newestLocal(root: string, name: string): Promise<string | null> {
  const local = (await storedSnapshots(root, name)).filter((s) => !s.future);
  return local.length ? copyKey(local.at(-1)!) : null;
}

// syncHost, again while a run committed a newer snapshot during the last pass (up to MAX_PASSES):
// a run whose copy found this one at work left its snapshot to it. What each repository got is
// summed; what is still to copy and the error are the last pass's.
async function syncPasses(root: string, name: string, parsed: ParsedOptions, sync: SyncOptions = {}): Promise<RepositoryResult[]> {
  let total: RepositoryResult[] = [];
  for (let pass = 0; pass < MAX_PASSES; pass++) {
    const newest = await newestLocal(root, name);
    const results = await syncHost(root, name, parsed, sync);
    total = results.map((r) => {
      const before = total.find((t) => t.name === r.name);
      return before ? { ...r, copied: [...before.copied, ...r.copied], removed: before.removed + r.removed } : r;
    });
    // Newer snapshots came meanwhile: another pass, after a failure too (a copy that did not count
    // because the mirror's next run rewrote it; the next snapshots are still to copy).
    if ((await newestLocal(root, name)) === newest) break;
  }
  return total;
}

/** What `ssh-r-sync-admin offsite`, `verify --offsite` and `restore --from-offsite` use of a loaded plugin. */
export interface OffsiteApi {
  options: ParsedOptions;
  /** The catch-up copy of one host, as after a backup (hold it under the host's lock). */
  sync(root: string, name: string, options?: SyncOptions): Promise<RepositoryResult[]>;
  /** restic forget (+ prune) of one host's copies in one repository with its keep; the number removed. */
  forget(root: string, name: string, repository: string, options?: ForgetOptions): Promise<ForgetResult>;
  /** restic check, rereading `samplePercent` of the data; its last line. */
  check(repository: string, samplePercent: number, signal?: AbortSignal): Promise<string>;
  /** The copies of host `name` in a repository, oldest first. */
  copies(repository: string, name: string, signal?: AbortSignal): Promise<RemoteCopy[]>;
  /** restic restore of the copy of `id` ('latest', a local id or the copy's restic id) into an
   *  empty `target`, never one of `exclude` (restic ids of partial copies, from state()). */
  restore(repository: string, name: string, id: string, target: string, signal?: AbortSignal, exclude?: readonly string[]): Promise<RemoteCopy>;
  state(root: string, name: string): Promise<OffsiteState>;
}

// Creates the plugin; a bad option (or a password file others can read) throws here, at load.
export default function restic(options: ResticOptions = {} as ResticOptions): Plugin & { options: ParsedOptions; offsite: OffsiteApi } {
  let parsed: ParsedOptions;
  try {
    parsed = parseOptions(options);
  } catch (error) {
    throw new SshRSyncError('ECONFIG', `@ssh-r-sync/plugin-restic: ${oneLine(error)}`, { cause: error });
  }
  const repo = (name: string) => {
    const found = parsed.repositories.find((r) => r.name === name);
    if (!found) throw new SshRSyncError('EUSAGE', `no repository "${name}" in the plugin's options (there are: ${parsed.repositories.map((r) => r.name).join(', ')})`);
    return found;
  };
  const offsite: OffsiteApi = {
    options: parsed,
    sync: (root, name, sync) => syncPasses(root, name, parsed, sync),
    forget: async (root, name, repository, o = {}) => {
      const r = repo(repository);
      if (!r.keep) throw new SshRSyncError('EUSAGE', `repository "${repository}" has no keep option: nothing to forget by`);
      return forgetCopies(root, name, parsed, r, o);
    },
    check: (repository, sample, signal) => checkRepository(parsed, repo(repository), sample, signal),
    copies: (repository, name, signal) => listCopies(parsed, repo(repository), name, signal),
    restore: (repository, name, id, target, signal, exclude) => restoreCopy(parsed, repo(repository), name, id, target, signal, exclude),
    state: (root, name) => readOffsiteState(root, name),
  };
  return {
    name: PLUGIN_NAME,
    options: parsed,
    offsite,
    apply(hooks: PipelineHooks) {
      hooks.done.tapPromise(PLUGIN_NAME, async (outcome, ctx) => {
        const logger = ctx.logger.scope(PLUGIN_NAME);
        try {
          if (ctx.role !== 'receiver' || !ctx.name) return;
          if (!outcome.committed) {
            logger.debug(`run ended as ${outcome.status}: nothing copied off-site`);
            return;
          }
          await holdUncopied(ctx.root, ctx.name, parsed, logger);
          const retention = runRetention(ctx);
          // A mirror that rsync rewrote in its inodes (--inplace) has no view to copy from: it is
          // copied under the run's lock. Any other mirror is copied from a view (mirror-view.ts).
          const prepared = preparedSnapshot(ctx);
          const inPlaceMirror = prepared !== undefined && !prepared.id && prepared.inPlace;
          // After the session, like rotation; a failed copy is this task's error, which core logs
          // once and keeps in the host's record (status shows it).
          // Without the host's lock (core's unlocked task): however long a copy takes (a first
          // copy, a repository that hangs), the host's next backup is not refused. The off-site
          // lock keeps one copy of the host at a time; the snapshots it copies are held, so no
          // run's rotation deletes them meanwhile; a run whose copy finds it busy leaves its
          // snapshot to the running copy, which looks again before it ends.
          scheduleAfterSession(ctx, {
            name: PLUGIN_NAME,
            timeoutMs: parsed.timeoutMs,
            unlocked: !inPlaceMirror,
            // Where the receiver defers it (--defer-unlocked: a pull unit), this does the copy.
            deferredHint: `ssh-r-sync-admin offsite sync [--config FILE] ${ctx.root} ${ctx.name}`,
            run: async (signal) => {
              let results: RepositoryResult[];
              try {
                results = await syncPasses(ctx.root, ctx.name, parsed, { signal, logger, retention, hostLocked: inPlaceMirror });
              } catch (error) {
                if (!isLockBusy(error)) throw error;
                logger.info(oneLine(error));
                return;
              }
              const failed = results.filter((r) => r.error);
              if (failed.length) throw new Error(failed.map((r) => `${r.name}: ${r.pending.length ? `${r.pending.length} snapshot${r.pending.length === 1 ? '' : 's'} not copied: ` : ''}${r.error}`).join('; '));
            },
          });
        } catch (error) {
          logger.warn(`${ctx.name}: off-site copy not scheduled: ${oneLine(error)} (the backup is not affected)`);
        }
      });
    },

    // From `ssh-r-sync-admin status --report`: one line per host and repository with the newest
    // copy and how far it lags behind the newest local snapshot; a lagging or failing one is a warning.
    async status(report: StatusReport, scoped: Logger): Promise<void> {
      for (const host of report.hosts) {
        const state = await readOffsiteState(report.root, host.name);
        const local = (await storedSnapshots(report.root, host.name).catch(() => [])).filter((s) => !s.future);
        for (const repo of parsed.repositories) {
          const r = state.repositories[repo.name];
          // What was committed since the last copy looked (a deferred copy) is to copy too.
          const pending = Math.max(r?.pending.length ?? 0, local.filter((s) => !r?.newest || s.done.startedAt > r.newest.startedAt).length);
          const newestLocal = host.newestComplete?.startedAt ?? null;
          const newestCopy = r?.newest?.startedAt ?? null;
          const lag = newestLocal && newestCopy ? Math.max(0, Math.round((Date.parse(newestLocal) - Date.parse(newestCopy)) / 1000)) : null;
          const line = `${host.name}: ${repo.name}: newest copy ${r?.newest?.id ?? 'none'}, lag ${lag === null ? '-' : `${lag} s`}, ${pending} to copy${r?.lastFailure ? `, last failure ${r.lastFailure.at}: ${r.lastFailure.error}` : ''}`;
          if (r?.lastFailure || pending > 0 || !r?.newest) scoped.warn(line);
          else scoped.info(line);
        }
      }
    },
  };
}
