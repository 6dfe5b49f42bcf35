// Host names and their directories: the name is checked, and the directory must stay inside
// BACKUP_ROOT after every symlink is resolved (SPEC §4 rule 1).
import { mkdir, realpath } from 'node:fs/promises';
import { join, sep } from 'node:path';
import { SshRSyncError } from './errors.js';

export const NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

// Throws ENAME unless `name` is a safe host name.
export function validateName(name: string): string {
  if (!NAME_PATTERN.test(name)) {
    throw new SshRSyncError('ENAME', `refused host name ${JSON.stringify(name.slice(0, 80))}: names match ${NAME_PATTERN.source}`);
  }
  return name;
}

// Creates ROOT/NAME if needed (0700) and returns its real path, refusing anything outside ROOT.
export async function hostDirectory(root: string, name: string): Promise<string> {
  validateName(name);
  const realRoot = await realpath(root);
  const wanted = join(realRoot, name);
  await mkdir(wanted, { mode: 0o700 }).catch((error: NodeJS.ErrnoException) => {
    if (error.code !== 'EEXIST') throw new SshRSyncError('EINTERNAL', `cannot create ${wanted}: ${error.code}`, { cause: error });
  });
  const real = await realpath(wanted);
  if (!real.startsWith(realRoot + sep)) {
    throw new SshRSyncError('ENAME', `refused host directory ${wanted}: it resolves to ${real}, outside ${realRoot}`);
  }
  return real;
}
