// `ssh-r-sync-admin restore ROOT NAME DEST` (or `--to [user@]host[:port]:DIR`): writes a complete
// snapshot, or some paths of it, back as the client had it. The work is @ssh-r-sync/core's
// restoreSnapshot; this file is the command line, the printing and the exit code.
import { realpath } from 'node:fs/promises';
import { basename, dirname, join, resolve, sep } from 'node:path';
import { Command, Option } from 'commander';
import { SshRSyncError, UsageError, restoreSnapshot, type Mode, type RestoreSummary } from '@ssh-r-sync/core/internal';
import { collect, onSignals, seconds } from './common.js';
import { ADMIN_PREFIX, subCommand, type ExitCodeHolder } from './admin-shared.js';
import { unescapeName } from '@ssh-r-sync/plugin-manifest';
import { JSON_SCHEMA, counts, plural } from './format.js';
import { stageOffsiteCopy, type StagedCopy } from './admin-offsite.js';

interface RestoreCliOptions {
  snapshot: string;
  path: string[];
  escaped?: boolean;
  dryRun?: boolean;
  overwrite?: boolean;
  to?: string;
  sshKey?: string;
  sshOption: string[];
  sshOpts: boolean;
  storedMode?: Mode;
  ioTimeout: number;
  json?: boolean;
  fromOffsite?: string;
  config?: string;
  stage?: string;
}

/** Itemized lines a --json dry run carries; the count is always complete. */
const JSON_ITEMS = 1000;

// The `restore` sub-command.
export function restoreCommand(result: ExitCodeHolder): Command {
  return subCommand(new Command('restore'))
    .usage('[options] BACKUP_ROOT NAME DEST  |  [options] --to [user@]host[:port]:DIR BACKUP_ROOT NAME')
    .summary('write a complete snapshot (or --path parts of it) back with owners, modes, devices, ACLs, xattrs, hard links, holes and times')
    .description(
      "Write host NAME's newest complete snapshot (or --snapshot ID) back into DEST, or with --to over ssh into DIR on " +
        'another machine, as the client had it: owner, group, mode, devices, ACLs, xattrs, hard links, sparse files and ' +
        'mtimes, in every storage mode (a fake-super store is read back through rsync --fake-super on the sending side; the ' +
        'receiving rsync runs with --super and sets real owners: run as root, and log in as root with --to). Symlinks in ' +
        'the snapshot are restored as symlinks and never followed. Root restoring a backup another account owns reads it as ' +
        'that account (with --to: staged first in a private folder in $TMPDIR; docs/restore.md). DEST keeps its own owner and mode (a new DEST is made ' +
        "0700); nothing in DEST is deleted. Everything is checked before anything is written.",
    )
    .argument('<BACKUP_ROOT>', 'the receiver\'s backup root')
    .argument('<NAME>', 'the host')
    .argument('[DEST]', 'local directory to write into (made if missing; its parent must exist); not with --to')
    .option('--snapshot <ID|latest>', 'which complete snapshot (default: latest); `ssh-r-sync-admin status` shows them', 'latest')
    .option('--path <P>', 'restore only P, a file or directory relative to the backed-up top as the manifest spells it (e.g. etc/hosts), at its place under DEST; repeatable', collect, [])
    .option('--escaped', 'each --path is spelt as manifests and `versions` print names: \\n newline, \\t tab, \\\\ backslash, \\xHH any byte (for names that are not UTF-8)')
    .option('--dry-run', 'list what would be written (rsync -n --itemize-changes), write nothing')
    .option('--overwrite', 'write into a DEST that is not empty (same names are replaced, others left alone)')
    .option('--to <[user@]host[:port]:DIR>', 'push over ssh (rsync -e ssh, BatchMode) to DIR, an absolute directory, instead of DEST')
    .option('-k, --ssh-key <FILE>', 'with --to: ssh private key (ssh -i, IdentitiesOnly)')
    .option('-o, --ssh-option <KEY=VALUE>', 'with --to: passed to ssh as -o KEY=VALUE; repeatable', collect, [])
    .option('--no-ssh-opts', "with --to: drop the default ssh options (BatchMode=yes, ConnectTimeout, keepalives, no multiplexing)")
    .addOption(
      new Option('--stored-mode <MODE>', 'how the snapshot was stored, for a done mark that predates the record (default: guessed from who owns its metadata)').choices([
        'privileged',
        'fake-super',
        'plain',
      ]),
    )
    .option('--io-timeout <SECONDS>', 'stop when no data moved for this long (rsync --timeout); 0 = never', seconds, 600)
    .option('--json', 'print one JSON object on stdout: { host, kind, snapshot, mode, modeSource, target, paths, dryRun, owners, items, files, bytes, durationMs[, itemized] }')
    .option('--from-offsite <REPO>', "restore from the copy in off-site repository REPO (plugin-restic, by its name in the receiver's config): restic restores it into a private staging folder (see --stage), which is then restored as a local snapshot and removed; --snapshot names the local id the copy was made of")
    .option('--config <FILE>', "with --from-offsite: the receiver's config that names the repository")
    .option('--stage <DIR>', "with --from-offsite: stage the copy in a private folder in DIR (default: under BACKUP_ROOT/.ssh-r-sync/; run as root over a backup root another account owns: in the system's temporary folder, $TMPDIR or /tmp, where that account cannot redirect root's writes; give DIR when that is too small; as root, a DIR another account could swap, e.g. in its backup root, is refused)")
    .addHelpText(
      'after',
      '\nExamples:\n' +
        '  # one file back, beside the original place, to look at it first\n' +
        '  ssh-r-sync-admin restore --path etc/fstab /srv/backup laptop /tmp/restore\n' +
        '  # a directory from an older snapshot, into the live tree (files of the same name are replaced)\n' +
        '  ssh-r-sync-admin restore --snapshot 2026-11-22T024512Z --path home/alice --overwrite /srv/backup laptop /\n' +
        '  # what a whole-host restore would write, without writing\n' +
        '  ssh-r-sync-admin restore --dry-run /srv/backup laptop /mnt/newdisk\n' +
        '  # the whole host onto a new machine (booted from a rescue system, its disk mounted at /mnt)\n' +
        '  ssh-r-sync-admin restore --to root@newbox:/mnt /srv/backup laptop\n' +
        '\nRefused (exit 2, nothing written): a DEST inside BACKUP_ROOT or holding it, a non-empty DEST without --overwrite,\n' +
        'a --path that is absolute, has "..", goes through a symlink of the snapshot or is not in it, a snapshot that is\n' +
        'not complete. A --to DIR is checked for emptiness over the same ssh (rsync --list-only). See docs/restore.md.\n' +
        '\nExit codes: 0 restored (or listed), 1 the restore failed (rsync\'s error in words), 2 usage error or refused.',
    )
    .action(async (root: string, name: string, dest: string | undefined, options: RestoreCliOptions) => {
      result.code = await restore(root, name, dest, options);
    });
}

async function restore(root: string, name: string, dest: string | undefined, options: RestoreCliOptions): Promise<number> {
  if (options.to && dest !== undefined) throw new UsageError('give DEST or --to, not both');
  if (!options.to && dest === undefined) throw new UsageError('missing DEST (or --to [user@]host[:port]:DIR)');
  if (!options.to && (options.sshKey || options.sshOption.length || !options.sshOpts)) throw new UsageError('-k, -o and --no-ssh-opts are for --to');
  const controller = new AbortController();
  const stopSignals = onSignals(
    (signal) => controller.abort(new SshRSyncError('EINTERNAL', `stopped by ${signal}`)),
    () => process.exit(130),
  );
  const itemized: string[] = [];
  let summary: RestoreSummary;
  let staged: StagedCopy | null = null;
  try {
    if (options.fromOffsite) {
      const real = await realpath(root).catch(() => root);
      if (dest !== undefined) await refuseInside(dest, real);
      staged = await stageOffsiteCopy(real, name, options.fromOffsite, options.snapshot, options.config, controller.signal, options.stage === undefined ? undefined : resolve(options.stage));
    } else if (options.config || options.stage !== undefined) throw new UsageError('--config and --stage are for --from-offsite');
    summary = await restoreSnapshot({
      root: staged?.root ?? root,
      name,
      snapshot: staged?.id ?? options.snapshot,
      paths: options.escaped ? options.path.map((path) => unescapeName(Buffer.from(path, 'utf8').toString('latin1'))) : options.path,
      pathBytes: Boolean(options.escaped),
      target: options.to ? { to: options.to } : { dest: dest! },
      dryRun: Boolean(options.dryRun),
      overwrite: Boolean(options.overwrite),
      storedMode: options.storedMode,
      ssh: { identityFile: options.sshKey, sshOptions: options.sshOption, sshDefaults: options.sshOpts },
      ioTimeoutSeconds: options.ioTimeout,
      signal: controller.signal,
      onItem: (line) => {
        if (!options.json) process.stdout.write(`${line}\n`);
        else if (itemized.length < JSON_ITEMS) itemized.push(line);
      },
      onWarning: (message) => process.stderr.write(`${ADMIN_PREFIX}: warning: ${message}\n`),
    });
  } finally {
    await staged?.cleanup();
    stopSignals();
  }
  if (options.json) process.stdout.write(`${JSON.stringify({ schema: JSON_SCHEMA, ...summary, ...(summary.dryRun ? { itemized } : {}) })}\n`);
  process.stderr.write(`${ADMIN_PREFIX}: ${describe(summary)}\n`);
  return 0;
}

// A DEST inside BACKUP_ROOT is refused for an off-site restore too (the staging root is not the backups').
async function refuseInside(dest: string, root: string): Promise<void> {
  const absolute = resolve(dest);
  const real = await realpath(absolute).catch(async () => join(await realpath(dirname(absolute)).catch(() => dirname(absolute)), basename(absolute)));
  if (real === root || real.startsWith(root + sep)) throw new UsageError(`DEST ${dest} is inside BACKUP_ROOT ${root}: a restore never writes into the backups; restore into a directory beside it`);
}

// The outcome in one line for people.
function describe(summary: RestoreSummary): string {
  const what = summary.kind === 'mirror' ? `the mirror of ${summary.host}` : `${summary.host} snapshot ${summary.snapshot}`;
  const parts = summary.paths.length ? ` (${summary.paths.length === 1 ? summary.paths[0] : `${summary.paths.length} paths`})` : '';
  const how = `${summary.mode}${summary.modeSource === 'done mark' ? '' : `, ${summary.modeSource}`}`;
  if (summary.dryRun) return `dry run: ${plural(summary.items, 'entry', 'entries')} of ${what}${parts} would be written to ${summary.target} (stored ${how}); nothing was written`;
  return `restored ${what}${parts} to ${summary.target} (stored ${how})${counts(summary.files, summary.bytes)} in ${(summary.durationMs / 1000).toFixed(1)} s`;
}
