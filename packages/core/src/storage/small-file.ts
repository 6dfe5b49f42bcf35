// Reads a small file the receiver wrote under ROOT/.ssh-r-sync (a plugin's state, a record):
// never through a symlink, never waiting on a fifo, never more than a bound. ROOT belongs to the
// backup account; what lies there is read as data, and a file that is not a plain small one
// counts as absent.
import { constants } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';

// The file's text; null when it is missing, not a regular file, larger than `maxBytes`, or unreadable.
export async function readSmallFile(path: string, maxBytes: number): Promise<string | null> {
  let handle: FileHandle | undefined;
  try {
    handle = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
    const stats = await handle.stat();
    if (!stats.isFile() || stats.size > maxBytes) return null;
    const buffer = Buffer.alloc(maxBytes + 1);
    const { bytesRead } = await handle.read(buffer, 0, buffer.length, 0);
    return bytesRead > maxBytes ? null : buffer.subarray(0, bytesRead).toString('utf8');
  } catch {
    return null;
  } finally {
    await handle?.close().catch(() => {});
  }
}
