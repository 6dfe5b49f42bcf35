// What the client checks before it starts ssh: the -k key file and its own rsync. Either missing
// is this machine's set-up, so a usage error (exit 2) that says what to fix, not ssh's or rsync's
// words about a failure they cannot explain.
import { accessSync, constants } from 'node:fs';
import { UsageError } from '../errors.js';
import { findProgram } from '../exec/find-program.js';

// Throws a UsageError naming the fix when the key file cannot be read or rsync cannot be run.
export function checkClientSetup(options: { identityFile?: string | undefined; rsyncProgram?: string | undefined }): void {
  if (options.identityFile) checkKeyFile(options.identityFile);
  const rsync = options.rsyncProgram ?? 'rsync';
  if (!findProgram(rsync)) {
    const what = rsync.includes('/') ? `cannot run ${rsync}` : 'no rsync on PATH';
    throw new UsageError(`${what} on this machine (the client): install rsync here (apt install rsync)${options.rsyncProgram ? ' or fix -r' : ' or give its path with -r'}`);
  }
}

// Throws a UsageError naming the fix when the -k key file cannot be read (ssh would only warn).
export function checkKeyFile(key: string): void {
  try {
    accessSync(key, constants.R_OK);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'no such file' : `cannot read it (${code})`;
    throw new UsageError(`-k ${key}: ${why}: give the private key whose .pub is in the server's authorized_keys (ssh-r-sync-admin authorize prints that line)`, { cause: error });
  }
}
