// The --path values of a restore (server-side, and the client's through the forced command): bytes
// (latin1 strings, so names that are not UTF-8 work), relative to the backed-up top, made
// canonical, and present in the snapshot on disk without passing through a symlink. The snapshot
// is client data: a symlink in it is restored as a symlink, never traversed (rsync would follow
// one in the middle of a path, so it is refused here first).
import { lstat } from 'node:fs/promises';
import { SshRSyncError } from '../errors.js';

/** Longest --path accepted, in bytes (Linux's PATH_MAX). */
export const MAX_PATH_BYTES = 4096;

const SLASH = Buffer.from('/');

// A path as shown in an error: its bytes read as UTF-8, quoted, cut short.
function shownPath(bytes: string): string {
  return JSON.stringify(Buffer.from(bytes, 'latin1').toString('utf8').slice(0, 200));
}

// `path` (bytes as a latin1 string) made canonical: no empty or "." parts, no trailing slash.
// Refuses what could leave the snapshot or mean nothing: absolute paths, "..", NUL bytes, the top
// itself, and paths longer than PATH_MAX. Throws a one-line usage error naming it.
export function normalizeRestorePath(path: string): string {
  const shown = shownPath(path);
  if (path.includes('\0')) throw new SshRSyncError('EUSAGE', `refused --path ${shown}: it contains a NUL byte`);
  if (path.startsWith('/')) throw new SshRSyncError('EUSAGE', `refused --path ${shown}: give it relative to the backed-up top (e.g. etc/hosts): absolute paths are refused`);
  const parts = path.split('/').filter((part) => part !== '' && part !== '.');
  if (parts.includes('..')) throw new SshRSyncError('EUSAGE', `refused --path ${shown}: ".." is not allowed: a restore never leaves the snapshot`);
  if (parts.length === 0) throw new SshRSyncError('EUSAGE', `refused --path ${shown}: it names the snapshot's top; leave out --path to restore everything`);
  const normal = parts.join('/');
  if (normal.length > MAX_PATH_BYTES) throw new SshRSyncError('EUSAGE', `refused --path: longer than ${MAX_PATH_BYTES} bytes`);
  return normal;
}

// Checks that every path (canonical, bytes as latin1) is in the snapshot `tree`, reached through
// real directories only. Throws a one-line usage error naming the first that is not, before
// anything is written.
export async function checkRestorePaths(tree: string, paths: readonly string[]): Promise<void> {
  for (const path of paths) {
    const parts = path.split('/');
    const shown = (count: number) => shownPath(parts.slice(0, count).join('/'));
    let at = Buffer.from(tree.replace(/\/+$/, ''));
    for (let i = 0; i < parts.length; i += 1) {
      at = Buffer.concat([at, SLASH, Buffer.from(parts[i]!, 'latin1')]);
      const stats = await lstat(at).catch((error: NodeJS.ErrnoException) => error);
      if (stats instanceof Error) {
        const why = stats.code === 'ENOENT' || stats.code === 'ENOTDIR' ? 'is not in the snapshot' : `cannot be read there (${stats.code ?? stats.message})`;
        throw new SshRSyncError('EUSAGE', `refused --path ${shown(parts.length)}: ${shown(i + 1)} ${why}`);
      }
      if (i === parts.length - 1) break;
      if (stats.isSymbolicLink()) {
        throw new SshRSyncError('EUSAGE', `refused --path ${shown(parts.length)}: ${shown(i + 1)} is a symlink in the snapshot: a restore never follows one (restore it by its own path, or the path it points to)`);
      }
      if (!stats.isDirectory()) {
        throw new SshRSyncError('EUSAGE', `refused --path ${shown(parts.length)}: ${shown(i + 1)} is not a directory in the snapshot (in fake-super storage a symlink is stored as a file)`);
      }
    }
  }
}
