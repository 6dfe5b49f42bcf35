// The --path values of a restore: spelled as the manifest spells them (relative to the backed-up
// top, no "." or ".." parts), and present in the snapshot on disk without passing through a
// symlink. The snapshot is client data: a symlink in it is restored as a symlink, never traversed
// (rsync would follow one in the middle of a --files-from path, so it is refused here first).
import { lstat } from 'node:fs/promises';
import { join } from 'node:path';
import { SshRSyncError } from '../errors.js';

/** Longest --path accepted (PATH_MAX). */
const MAX_PATH_BYTES = 4096;

// `spec` as the relative path rsync gets; throws a usage error naming it when it is not one.
export function normalizeRestorePath(spec: string): string {
  const shown = JSON.stringify(spec.slice(0, 200));
  if (spec === '' || Buffer.byteLength(spec) > MAX_PATH_BYTES || spec.includes('\0')) throw new SshRSyncError('EUSAGE', `--path ${shown}: not a path`);
  if (spec.startsWith('/')) throw new SshRSyncError('EUSAGE', `--path ${shown}: absolute paths are refused; give it relative to the backed-up top, as the manifest spells it (e.g. etc/hosts)`);
  const path = spec.replace(/\/+$/, '');
  const parts = path.split('/');
  if (parts.some((part) => part === '..')) throw new SshRSyncError('EUSAGE', `--path ${shown}: ".." is refused: a restore never leaves the snapshot`);
  if (path === '' || path === '.' || parts.some((part) => part === '' || part === '.')) {
    throw new SshRSyncError('EUSAGE', `--path ${shown}: give a path without "." or empty parts, relative to the backed-up top (omit --path to restore everything)`);
  }
  return path;
}

// Checks that every path is in the snapshot `tree`, reached through real directories only.
// Throws a one-line usage error naming the first that is not, before anything is written.
export async function checkRestorePaths(tree: string, paths: readonly string[]): Promise<void> {
  for (const path of paths) {
    const parts = path.split('/');
    for (let i = 1; i <= parts.length; i += 1) {
      const prefix = parts.slice(0, i).join('/');
      const stats = await lstat(join(tree, prefix)).catch((error: NodeJS.ErrnoException) => error);
      if (stats instanceof Error) {
        const why = stats.code === 'ENOENT' || stats.code === 'ENOTDIR' ? 'is not in the snapshot' : `cannot be read there (${stats.code ?? stats.message})`;
        throw new SshRSyncError('EUSAGE', `--path ${path}: ${prefix === path ? path : prefix} ${why}`);
      }
      if (i === parts.length) break;
      if (stats.isSymbolicLink()) throw new SshRSyncError('EUSAGE', `--path ${path}: ${prefix} is a symlink in the snapshot: refused, a restore never follows one (restore ${prefix} itself, or the path it points to)`);
      if (!stats.isDirectory()) throw new SshRSyncError('EUSAGE', `--path ${path}: ${prefix} is not a directory in the snapshot, so ${path} is not in it`);
    }
  }
}
