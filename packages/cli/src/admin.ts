// `ssh-r-sync-admin`: looks at and maintains the backups on the server. One sub-command per
// file (admin-status.ts, admin-prune.ts); this file only assembles them.
import { Command } from 'commander';
import { configureProgram, runMain } from './common.js';
import { VERSION } from './version.js';
import { registerShippedStores } from './shipped-stores.js';
import { registerShippedPlugins } from './shipped-plugins.js';
import { ADMIN_PREFIX, type ExitCodeHolder } from './admin-shared.js';
import { statusCommand } from './admin-status.js';
import { pruneCommand } from './admin-prune.js';
import { authorizeCommand } from './admin-authorize.js';
import { systemdCommand } from './admin-systemd.js';
import { restoreCommand } from './admin-restore.js';
import { versionsCommand } from './admin-versions.js';
import { diffCommand } from './admin-diff.js';
import { verifyCommand } from './admin-verify.js';
import { logCommand } from './admin-log.js';
import { offsiteCommand } from './admin-offsite.js';

// The admin command line with its sub-commands; each action stores its exit code in `result`.
export function adminProgram(result: ExitCodeHolder): Command {
  registerShippedStores();
  registerShippedPlugins();
  const program = configureProgram(
    new Command(ADMIN_PREFIX)
      .usage('<command> [options]')
      .description('Look at, check, restore and maintain the backups under BACKUP_ROOT: which hosts are fresh, what changed, how to get files back, and what the retention policy keeps.')
      .addHelpText(
        'after',
        '\nExamples:\n' +
          '  ssh-r-sync-admin status /srv/backup --max-age 36h        # exit 1 when a host has been silent for 36 h\n' +
          "  ssh-r-sync-admin prune /srv/backup --keep '14d 4w 6m 2y' --dry-run\n" +
          '  ssh-r-sync-admin verify --sample 5 /srv/backup             # reread 5% of the files, compare their SHA-256\n' +
          '  ssh-r-sync-admin versions /srv/backup laptop etc/hosts     # which versions of a file the backups hold\n' +
          '  ssh-r-sync-admin restore --path etc/hosts /srv/backup laptop /tmp/back\n' +
          '  ssh-r-sync-admin offsite sync /srv/backup                  # copy what the restic repositories lack (plugin-restic)\n' +
          '\nExit codes: 0 fine, 1 something needs attention (a stale host, a failed delete, a verify problem), 2 usage error, 75 skipped (offsite sync: a host was busy).\n' +
          'Getting files back: docs/restore.md.',
      ),
    ADMIN_PREFIX,
  ).version(VERSION, '-V, --version', 'print the version and exit');
  // Without a sub-command commander prints the help on stderr: a usage error (exit 2).
  program.addCommand(statusCommand(result));
  program.addCommand(pruneCommand(result));
  program.addCommand(authorizeCommand(result));
  program.addCommand(systemdCommand(result));
  program.addCommand(restoreCommand(result));
  program.addCommand(versionsCommand(result));
  program.addCommand(diffCommand(result));
  program.addCommand(verifyCommand(result));
  program.addCommand(logCommand(result));
  program.addCommand(offsiteCommand(result));
  return program;
}

// Parses argv and runs the sub-command; resolves to the exit code.
export async function admin(argv: string[]): Promise<number> {
  const result: ExitCodeHolder = { code: 0 };
  await adminProgram(result).parseAsync(argv, { from: 'user' });
  return result.code;
}

// Entry point of the bin script.
export function main(): Promise<never> {
  return runMain(ADMIN_PREFIX, () => admin(process.argv.slice(2)));
}
