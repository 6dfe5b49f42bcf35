// `ssh-r-sync restore`: get this host's files back from the backup server, through the same key
// and forced command as the backup; the server serves its own complete snapshots read-only, the
// local rsync writes DEST.
import { Command } from 'commander';
import { createLogger, escapeText, runRestore, type ClientRestoreResult as RestoreResult } from '@ssh-r-sync/core/internal';
import { unescapeName } from '@ssh-r-sync/plugin-manifest/escape';
import { addSshOptions, type SshCliOptions } from './client-ssh-options.js';
import { collect, configureProgram, onSignals, seconds } from './common.js';
import { JSON_SCHEMA, counts } from './format.js';

const PREFIX = 'ssh-r-sync';

interface RestoreCliOptions extends SshCliOptions {
  snapshot: string;
  path: string[];
  escaped?: boolean;
  dryRun?: boolean;
  overwrite?: boolean;
  rsync?: string;
  ioTimeout?: number;
  json?: boolean;
  debug?: boolean;
}

// The restore sub-command's command line.
export function restoreProgram(): Command {
  const program = new Command(`${PREFIX} restore`)
    .usage('[options] [user@]host[:port] DEST')
    .description(
      "Restore this machine's backup from the backup server into DEST, with owners, groups, modes, devices, ACLs, " +
        'xattrs, hard links, sparse files and times as they were backed up (run as root to restore owners and devices). ' +
        "It goes through the same key as the backup: the server serves only this key's host's complete snapshots, read-only.",
    )
    .argument('<destination>', '[user@]host[:port] of the backup server, as for the backup')
    .argument('<DEST>', 'directory to restore into (created if missing; must be empty unless --overwrite)')
    .option('--snapshot <ID>', 'which snapshot: an id from `ssh-r-sync snapshots`, or latest', 'latest')
    .option('--path <P>', 'restore only this file or directory, named from the snapshot\'s top (e.g. etc/hosts); it lands at DEST/P (repeatable)', collect, [])
    .option('--escaped', 'each --path is spelt as manifests and `ssh-r-sync-admin versions` print names: \\n newline, \\t tab, \\\\ backslash, \\xHH any byte (for names that are not UTF-8)')
    .option('--dry-run', 'show what would be restored (rsync\'s itemized list on stdout); write nothing')
    .option('--overwrite', 'write into a DEST that is not empty: files of the same name are replaced, others are left alone');
  addSshOptions(program)
    .option('-r, --rsync <PATH>', 'local rsync program (default: rsync from PATH)')
    .option('--io-timeout <SECONDS>', 'give up when no data moves for this long; 0 = never (default 600)', seconds)
    .option('--json', 'print the result as one JSON object on stdout')
    .option('--debug', 'log every step and rsync\'s output')
    .addHelpText(
      'after',
      '\nExamples:\n' +
        '  ssh-r-sync restore -k /etc/ssh-r-sync/key backup.example.org /srv/restore\n' +
        '  ssh-r-sync restore -k KEY --snapshot 2026-11-22T024512Z --path etc/hosts --path home/ann backup.example.org /tmp/r\n' +
        '  ssh-r-sync restore -k KEY --dry-run backup.example.org /\n' +
        '  ssh-r-sync restore -k KEY --overwrite --path etc backup.example.org /\n' +
        '\nThe snapshot\'s own top directory (the server\'s private folder) is not applied to DEST: DEST keeps its owner\n' +
        'and mode. Nothing in DEST is deleted. `ssh-r-sync snapshots` lists the snapshots to choose from.\n' +
        '\nExit codes: 0 restored, 1 the restore failed or was refused, 2 usage error.',
    );
  return configureProgram(program, PREFIX);
}

// Parses argv (after "restore") and restores; resolves to the exit code.
export async function restore(argv: string[]): Promise<number> {
  const program = restoreProgram();
  program.parse(argv, { from: 'user' });
  const options = program.opts<RestoreCliOptions>();
  const [destination, dest] = program.args as [string, string];
  const logger = createLogger({ prefix: PREFIX, debug: Boolean(options.debug) });
  const controller = new AbortController();
  const stopSignals = onSignals(
    (signal) => controller.abort(new Error(`stopped by ${signal}`)),
    (signal) => controller.abort(new Error(`killed by ${signal}`)),
  );
  try {
    const result = await runRestore({
      destination,
      port: options.port,
      identityFile: options.sshKey,
      sshOptions: options.sshOption,
      sshDefaults: options.sshOpts,
      snapshot: options.snapshot,
      paths: options.escaped ? options.path.map((path) => unescapeName(Buffer.from(path, 'utf8').toString('latin1'))) : options.path,
      pathBytes: Boolean(options.escaped),
      dest,
      dryRun: Boolean(options.dryRun),
      overwrite: Boolean(options.overwrite),
      rsyncProgram: options.rsync,
      ioTimeoutSeconds: options.ioTimeout ?? 600,
      onOutput: options.dryRun && !options.json ? (chunk) => process.stdout.write(chunk) : undefined,
      logger,
      signal: controller.signal,
    });
    print(result, Boolean(options.json));
    return 0;
  } finally {
    stopSignals();
  }
}

function print(result: RestoreResult, json: boolean): void {
  if (json) process.stdout.write(`${JSON.stringify({ schema: JSON_SCHEMA, ...result })}\n`);
  const what = result.snapshot === null ? 'the backup' : result.snapshot ? `snapshot ${escapeText(result.snapshot)}` : 'the mirror';
  const of = result.host ? ` of ${escapeText(result.host)}` : '';
  const seconds = (result.durationMs / 1000).toFixed(1);
  if (result.dryRun) {
    process.stderr.write(`${PREFIX}: dry run: ${what}${of} would be restored into ${result.dest}; nothing was written\n`);
  } else {
    process.stderr.write(`${PREFIX}: restored ${what}${of} into ${result.dest}${counts(result.files, result.bytes)} in ${seconds} s\n`);
  }
}
