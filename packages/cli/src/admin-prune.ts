// `ssh-r-sync-admin prune ROOT [NAME]`: applies a retention policy to the hosts' snapshots, with
// the same plan and reasons as @ssh-r-sync/plugin-rotate; --dry-run only shows them.
import { realpath, stat } from 'node:fs/promises';
import { sep } from 'node:path';
import { Command, InvalidArgumentError } from 'commander';
import { SshRSyncError, UsageError, createLogger, isSshRSyncError, lockHost, oneLine, type Logger } from '@ssh-r-sync/core/internal';
import { defaultJobs, parsePolicy, pruneHost, type PruneResult, type RetentionPolicy } from '@ssh-r-sync/plugin-rotate';
import { onSignals, seconds } from './common.js';
import { ADMIN_PREFIX, backupRoot, becomeOwnerOf, columns, hostDir, hostNames, isoTime, positiveInteger, subCommand, type ExitCodeHolder } from './admin-shared.js';
import { JSON_SCHEMA, plural } from './format.js';

interface PruneOptions {
  keep: string;
  keepLast?: number;
  maxDeletes?: number;
  minAge?: string;
  dryRun?: boolean;
  json?: boolean;
  now?: Date;
  jobs?: number;
  lockWait?: number;
  debug?: boolean;
}

/** One host, as `prune --json` prints it. */
export interface HostPrune {
  name: string;
  snapshots: { id: string; complete: boolean; action: 'keep' | 'delete'; reasons: string[] }[];
  deleted: string[];
  failed: { id: string; error: string }[];
  /** Why the host was not pruned (e.g. a backup of it is running); null when it was. */
  error: string | null;
}

// The `prune` sub-command.
export function pruneCommand(result: ExitCodeHolder): Command {
  return subCommand(new Command('prune'))
    .usage('[options] BACKUP_ROOT [NAME]')
    .summary('apply a retention policy: KEEP or DELETE per snapshot with reasons, then delete (unless --dry-run)')
    .description(
      "Apply a retention policy to a host's snapshots (or every host's): print each snapshot with KEEP or DELETE and " +
        'the reasons, then delete what the policy no longer keeps. With --dry-run nothing is deleted. The plan is the one ' +
        '@ssh-r-sync/plugin-rotate applies after each backup: count-based periods (a host that was offline keeps its ' +
        'history), incomplete snapshots never count, the newest complete snapshot is never deleted, and at most ' +
        '--max-deletes snapshots go per host and run.',
    )
    .argument('<BACKUP_ROOT>', 'directory that holds one sub-directory per host')
    .argument('[NAME]', 'only this host')
    .requiredOption('--keep <PERIODS>', "periods to keep, e.g. '14d 4w 6m 2y': the newest complete snapshot of each of the last 14 days, 4 weeks … that have one (h, d, w, m, y; '*' = all)")
    .option('--keep-last <N>', 'also keep the N newest complete snapshots (default 1)', positiveInteger)
    .option('--max-deletes <N>', "delete at most N snapshots per host (default 10); 'all' for no cap", maxDeletes)
    .option('--min-age <DURATION>', 'keep every snapshot younger than this, e.g. 36h or 2d')
    .option('--dry-run', 'show what would be kept and deleted, delete nothing')
    .option('--json', 'print one JSON object on stdout: { root, now, dryRun, policy, hosts: [{ name, snapshots, deleted, failed, error }] }')
    .option('--now <ISO_TIME>', 'plan as if it were this time (min-age, and snapshots dated after it are kept)', isoTime)
    .option('--jobs <N>', `parallel rm processes per delete (default ${defaultJobs()} here: the CPU count, at most 4)`, positiveInteger)
    .option('--lock-wait <SECONDS>', 'wait this long for a running backup of a host to end; 0 = skip that host at once (default)', seconds)
    .option('--debug', 'log how long each delete took')
    .addHelpText(
      'after',
      '\nReasons read like: "newest complete", "keep-last 2/3", "daily 3/14 (2026-11-20)", "weekly 1/4 (2026-W47)",\n' +
        '"monthly 2/6 (2026-10)", "incomplete, newer than the newest complete"; and for deletes: "expired: beyond 14d 4w;\n' +
        'not the newest of its month 2026-08, year 2026", "incomplete, superseded by 2026-11-22T024512Z". Periods are\n' +
        'UTC calendar periods (ISO weeks). A snapshot is deleted done mark first, so a half-deleted one never looks complete.\n' +
        'Run as root over a BACKUP_ROOT that another account owns (a non-root receiver\'s), it runs as that account; over root\'s\n' +
        'own one reached through a folder another account owns or may write, it refuses (exit 2).\n' +
        '\nExamples:\n' +
        "  ssh-r-sync-admin prune /srv/backup --keep '14d 4w 6m 2y' --dry-run\n" +
        "  ssh-r-sync-admin prune /srv/backup laptop --keep '7d 8w *y' --keep-last 3 --max-deletes all\n" +
        "  ssh-r-sync-admin prune /srv/backup --keep '14d 4w' --dry-run --now 2027-06-01T00:00:00Z --json\n" +
        '\nExit codes: 0 done, 1 a delete failed or a host was busy, 2 usage error or unreadable policy.',
    )
    .action(async (root: string, name: string | undefined, options: PruneOptions) => {
      result.code = await prune(root, name, options);
    });
}

function maxDeletes(value: string): number {
  if (value === 'all') return Infinity;
  try {
    return positiveInteger(value);
  } catch {
    throw new InvalidArgumentError("expected a whole number >= 1, or 'all'");
  }
}

async function prune(rootArgument: string, name: string | undefined, options: PruneOptions): Promise<number> {
  const policy: RetentionPolicy = { keep: options.keep, keepLast: options.keepLast, maxDeletes: options.maxDeletes, minAge: options.minAge };
  const { summary } = parsePolicy(policy); // a bad policy stops here, before any host is touched
  const root = await backupRoot(rootArgument);
  const logger = createLogger({ prefix: ADMIN_PREFIX, debug: Boolean(options.debug) });
  becomeOwnerOf(root, logger);
  const names = await hostNames(root, name ? [name] : []);
  if (name && !(await stat(hostDir(root, name)).catch(() => null))?.isDirectory()) throw new UsageError(`no host ${name} under ${root}`);
  const now = options.now ?? new Date();
  const controller = new AbortController();
  const stopSignals = onSignals(
    (signal) => controller.abort(new SshRSyncError('EINTERNAL', `stopped by ${signal}`)),
    () => process.exit(130),
  );
  const hosts: HostPrune[] = [];
  try {
    for (const host of names) {
      hosts.push(await pruneOne(root, host, policy, now, options, logger, controller.signal));
      if (!options.json) process.stdout.write(describe(hosts.at(-1)!, Boolean(options.dryRun)));
    }
  } finally {
    stopSignals();
  }
  if (options.json) process.stdout.write(`${JSON.stringify({ schema: JSON_SCHEMA, root, now: now.toISOString(), dryRun: Boolean(options.dryRun), policy: summary, hosts })}\n`);
  else if (!names.length) process.stdout.write(`no hosts under ${root}\n`);
  const failed = hosts.filter((h) => h.error || h.failed.length);
  return failed.length ? 1 : 0;
}

async function pruneOne(
  root: string,
  name: string,
  policy: RetentionPolicy,
  now: Date,
  options: PruneOptions,
  logger: Logger,
  signal: AbortSignal,
): Promise<HostPrune> {
  const scoped = logger.scope(name);
  const dir = hostDir(root, name);
  const record: HostPrune = { name, snapshots: [], deleted: [], failed: [], error: null };
  let release: (() => Promise<void>) | undefined;
  try {
    // Deleting follows the host directory: it must not lead out of BACKUP_ROOT.
    const real = await realpath(dir);
    if (!real.startsWith((await realpath(root)) + sep)) throw new SshRSyncError('ENAME', `refused ${dir}: it resolves to ${real}, outside ${root}`);
    // Not while a backup of this host runs (a dry run only reads).
    if (!options.dryRun) release = await lockHost({ root, name, waitSeconds: options.lockWait ?? 0, logger: scoped, signal });
    const pruned: PruneResult = await pruneHost(dir, { policy, now, dryRun: options.dryRun, jobs: options.jobs, signal, logger: scoped });
    const deletes = new Map(pruned.plan.delete.map((d) => [d.id, d.reason]));
    const keeps = new Map(pruned.plan.keep.map((k) => [k.id, k.reasons]));
    record.snapshots = pruned.snapshots.map((s) => ({
      id: s.id,
      complete: s.complete,
      action: deletes.has(s.id) ? ('delete' as const) : ('keep' as const),
      reasons: deletes.has(s.id) ? [deletes.get(s.id)!] : keeps.get(s.id)!,
    }));
    record.deleted = pruned.deleted;
    record.failed = pruned.failed;
  } catch (error) {
    if (signal.aborted) throw error;
    if (isSshRSyncError(error) && (error.code === 'ECONFIG' || error.code === 'EUSAGE')) throw error;
    record.error = oneLine(error);
    scoped.error(record.error);
  } finally {
    await release?.();
  }
  return record;
}

// The plan of one host for people: one line per snapshot, oldest first, and what happened.
function describe(host: HostPrune, dryRun: boolean): string {
  if (host.error) return `${host.name}: not pruned: ${host.error}\n`;
  if (!host.snapshots.length) return `${host.name}: no snapshots (a plain mirror, or no backup yet): nothing to prune\n`;
  const deletes = host.snapshots.filter((s) => s.action === 'delete').length;
  const rows = host.snapshots.map((s) => [`  ${s.action === 'delete' ? 'DELETE' : 'KEEP'}`, s.id, s.reasons.join('; ')]);
  const outcome = dryRun
    ? `dry run: ${deletes} would be deleted, nothing was`
    : `${host.deleted.length} deleted${host.failed.length ? `, ${host.failed.length} could not be deleted` : ''}`;
  return `${host.name}: ${plural(host.snapshots.length, 'snapshot')}, ${host.snapshots.length - deletes} kept; ${outcome}\n${columns(rows)}`;
}
