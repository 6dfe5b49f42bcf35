// The textfile on disk: written whole or not at all (a temporary file in the same directory,
// fsynced, renamed over the old one, the directory fsynced), mode 0644 because node_exporter runs
// as its own user; the temporary name does not end in .prom, so the collector never reads it
// half-written. The old file is read back (bounded) only for the limits it keeps.
import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { open, rename, rm, type FileHandle } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { fsyncDir, writeFully } from '@ssh-r-sync/core';

/** More than any ROOT's file (a host takes ~2.5 KiB): a larger one is not ours to read. */
const MAX_READ_BYTES = 4 * 1024 * 1024;

// Replaces `path` atomically and durably with `text`, readable by everyone (0644).
export async function writeTextfile(path: string, text: string): Promise<void> {
  const temporary = join(dirname(path), `.${basename(path)}.${randomBytes(6).toString('hex')}.part`);
  const handle = await open(temporary, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o644);
  try {
    await handle.chmod(0o644); // the umask may have taken the others' read bit
    await writeFully(handle, Buffer.from(text));
    await handle.sync();
    await handle.close();
    await rename(temporary, path);
  } catch (error) {
    await handle.close().catch(() => {});
    await rm(temporary, { force: true });
    throw error;
  }
  await fsyncDir(dirname(path));
}

// The current file's text; '' when there is none (or it is not a plain file, or too large).
export async function readTextfile(path: string): Promise<string> {
  let handle: FileHandle | undefined;
  try {
    handle = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
    const stats = await handle.stat();
    if (!stats.isFile() || stats.size > MAX_READ_BYTES) return '';
    const buffer = Buffer.alloc(Math.min(stats.size, MAX_READ_BYTES));
    const { bytesRead } = await handle.read(buffer, 0, buffer.length, 0);
    return buffer.subarray(0, bytesRead).toString('utf8');
  } catch {
    return '';
  } finally {
    await handle?.close().catch(() => {});
  }
}
