// Writes that a "this backup is complete" claim can rest on: every write checked, files and
// their directories fsynced, and the backup's filesystem flushed before the claim is made.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { open, rename, rm } from 'node:fs/promises';
import { basename, dirname } from 'node:path';
import { SshRSyncError } from '../errors.js';
import { killGroup } from '../exec/process-group.js';

// Writes all of `data` at the handle's start; a write that makes no progress is an error.
export async function writeFully(handle: import('node:fs/promises').FileHandle, data: Buffer): Promise<void> {
  let offset = 0;
  while (offset < data.length) {
    const { bytesWritten } = await handle.write(data, offset, data.length - offset, offset);
    if (bytesWritten <= 0) throw new SshRSyncError('ESTORAGE', `short write: ${offset} of ${data.length} bytes written`);
    offset += bytesWritten;
  }
}

// fsyncs a directory, so that a rename or unlink in it survives a crash.
export async function fsyncDir(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

// Writes `content` to `path` atomically and durably: a temporary file written in full and
// fsynced, checked for its size, renamed over `path`, and the directory fsynced.
export async function writeAtomic(path: string, content: string | Buffer): Promise<void> {
  const data = typeof content === 'string' ? Buffer.from(content) : content;
  const temporary = `${dirname(path)}/.${basename(path)}.${randomBytes(6).toString('hex')}.part`;
  const handle = await open(temporary, 'wx', 0o600);
  try {
    await writeFully(handle, data);
    await handle.sync();
    const { size } = await handle.stat();
    if (size !== data.length) throw new SshRSyncError('ESTORAGE', `${temporary} has ${size} bytes after writing ${data.length}`);
  } catch (error) {
    await handle.close().catch(() => {});
    await rm(temporary, { force: true });
    throw error;
  }
  await handle.close();
  await rename(temporary, path);
  await fsyncDir(dirname(path));
}

// Flushes the filesystem that holds `path` to disk (syncfs, through coreutils' `sync -f`):
// rsync wrote the data through the page cache, and a done mark must not outlive it in a crash.
export function flushFilesystem(path: string, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn('sync', ['-f', '--', path], { stdio: ['ignore', 'ignore', 'pipe'], detached: true });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => {
      if (stderr.length < 4096) stderr += chunk.toString('utf8');
    });
    const stop = () => killGroup(child.pid, 'SIGKILL');
    signal?.addEventListener('abort', stop, { once: true });
    child.once('error', (error) => {
      signal?.removeEventListener('abort', stop);
      reject(new SshRSyncError('ESPAWN', `cannot run sync to flush ${path}: ${(error as NodeJS.ErrnoException).code}`, { cause: error }));
    });
    child.once('close', (code, killedBy) => {
      signal?.removeEventListener('abort', stop);
      if (code === 0) return resolve();
      const why = killedBy ? `was killed by ${killedBy}` : `exited with code ${code}: ${stderr.trim().split('\n')[0] ?? ''}`;
      reject(new SshRSyncError('ESTORAGE', `could not flush ${path} to disk: sync ${why}`));
    });
  });
}

// Says in words what a failed write to BACKUP_ROOT means, and what to do.
export function storageError(root: string, what: string, error: unknown): SshRSyncError {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  if (code === 'ENOSPC' || code === 'EDQUOT') {
    return new SshRSyncError('ESTORAGE', `no space left on BACKUP_ROOT (${root}) while ${what}: free space (e.g. ssh-r-sync-admin prune) and run the backup again`, { cause: error });
  }
  if (code === 'EROFS') return new SshRSyncError('ESTORAGE', `BACKUP_ROOT (${root}) is read-only: cannot finish ${what}`, { cause: error });
  if (code === 'EIO') return new SshRSyncError('ESTORAGE', `I/O error on BACKUP_ROOT (${root}) while ${what}: check the disk`, { cause: error });
  const message = error instanceof Error ? error.message : String(error);
  return new SshRSyncError('ESTORAGE', `${what} failed: ${message}`, { cause: error });
}
