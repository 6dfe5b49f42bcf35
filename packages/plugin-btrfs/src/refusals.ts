// The one-line refusals of plugin-btrfs that say what to do: a ROOT that is not on btrfs, and a
// non-root receiver that the kernel does not let delete subvolumes.
import { SshRSyncError, isSshRSyncError } from '@ssh-r-sync/core';
import { BtrfsCommandError } from './btrfs-command.js';
import { filesystemType, mountOf, type MountInfo } from './filesystem.js';

/** The mount option that lets a non-root user delete the subvolumes it may write to. */
export const USER_RM_OPTION = 'user_subvol_rm_allowed';

// Throws ECONFIG unless `root` is on btrfs.
export async function assertOnBtrfs(root: string): Promise<void> {
  const { btrfs, name } = await filesystemType(root);
  if (btrfs) return;
  throw new SshRSyncError(
    'ECONFIG',
    `${root} is on ${name}, not btrfs: plugin-btrfs needs BACKUP_ROOT on a btrfs file system (mkfs.btrfs, see @ssh-r-sync/plugin-btrfs's README), or use @ssh-r-sync/plugin-link-dest there instead`,
  );
}

// Whether this process may delete subvolumes it owns at `path`: root may; anyone else only on
// a btrfs mounted with user_subvol_rm_allowed. Returns the refusal, or null when it may.
export async function deleteRefusal(path: string): Promise<SshRSyncError | null> {
  if (process.getuid?.() === 0) return null;
  const mount = await mountOf(path);
  if (!mount || mount.type !== 'btrfs' || mount.options.includes(USER_RM_OPTION)) return null;
  return notPermitted(path, mount);
}

// The refusal for a delete the kernel did not permit (EPERM), naming the mount when known.
export function notPermitted(path: string, mount: MountInfo | null, cause?: unknown): SshRSyncError {
  const where = mount ? `the btrfs file system ${mount.source} mounted at ${mount.point}` : 'the btrfs file system that holds it';
  const remount = mount ? ` (mount -o remount,${USER_RM_OPTION} ${mount.point}, and in /etc/fstab)` : '';
  return new SshRSyncError(
    'ECONFIG',
    `cannot delete btrfs snapshot ${path}: a non-root receiver needs the mount option ${USER_RM_OPTION} on ${where}${remount}, or run the receiver as root`,
    { cause },
  );
}

// What a failed `btrfs subvolume delete` of `path` means, in words.
export async function explainDeleteFailure(path: string, error: unknown): Promise<unknown> {
  if (!(error instanceof BtrfsCommandError)) return error;
  if (/Operation not permitted/i.test(error.reason)) return notPermitted(path, await mountOf(path), error);
  if (/Permission denied/i.test(error.reason)) {
    return new SshRSyncError('ESTORAGE', `cannot delete btrfs snapshot ${path}: ${error.reason}: the receiver's user needs write access to it and to its parent directory`, { cause: error });
  }
  return error;
}

// Wraps a file-system error once as ESTORAGE saying what was being done; ours pass unchanged.
export function storageFailure(what: string, error: unknown): unknown {
  if (isSshRSyncError(error)) return error;
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  const hint = code === 'ENOSPC' || code === 'EDQUOT' ? ': free space (ssh-r-sync-admin prune) and run the backup again' : code === 'EROFS' ? ': the file system is read-only' : '';
  const message = error instanceof Error ? error.message : String(error);
  return new SshRSyncError('ESTORAGE', `${what} failed: ${message}${hint}`, { cause: error });
}
