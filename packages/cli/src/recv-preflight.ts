// What the receiver checks before a run: BACKUP_ROOT usable by this account, a privileged mode
// only as root, its rsync present. Each is the server's set-up, so a usage error (exit 2, which
// the client's ssh passes on) in one line that says what to fix, never a raw ENOENT later.
import { accessSync, constants, statSync } from 'node:fs';
import { UsageError, findProgram } from '@ssh-r-sync/core/internal';

export interface ReceiverSetup {
  root: string;
  mode: 'privileged' | 'fake-super' | 'plain';
  /** Where the mode came from, for the message: an option or the config file. */
  modeFrom: string;
  rsyncProgram: string;
}

// Throws a UsageError naming the fix for the first problem found.
export function checkReceiverSetup(setup: ReceiverSetup): void {
  const { root } = setup;
  const uid = process.getuid?.() ?? 0;
  let isDirectory: boolean;
  try {
    isDirectory = statSync(root).isDirectory();
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new UsageError(`BACKUP_ROOT ${root} does not exist: create it (mkdir -m 700 ${root}, owned by the backup account) or fix the path in the forced command`, { cause: error });
    throw new UsageError(`BACKUP_ROOT ${root} cannot be reached by this account (uid ${uid}, ${code}): let it reach ${root} (chmod/chown the directories above it)`, { cause: error });
  }
  if (!isDirectory) throw new UsageError(`BACKUP_ROOT ${root} is not a directory: give a directory (mkdir -m 700 DIR) in the forced command`);
  try {
    accessSync(root, constants.R_OK | constants.W_OK | constants.X_OK);
  } catch (error) {
    throw new UsageError(`BACKUP_ROOT ${root} is not readable and writable by this account (uid ${uid}): chown it to the backup account and chmod 700 it`, { cause: error });
  }
  if (setup.mode === 'privileged' && uid !== 0) {
    throw new UsageError(`mode privileged (${setup.modeFrom}) needs root, and this receiver runs as uid ${uid}: run it as root, or use --mode fake-super`);
  }
  if (!findProgram(setup.rsyncProgram)) {
    throw new UsageError(`cannot run ${setup.rsyncProgram} on the backup server: install rsync there (apt install rsync) or give its path with -r in the forced command`);
  }
}
