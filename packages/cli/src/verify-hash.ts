// Rereads a stored file for verify: only a regular file is ever opened (a fifo would block the
// read forever, a device node may act on being opened), never through a symlink, in chunks that
// let the event loop turn and a stop end the read.
import { createHash } from 'node:crypto';
import { constants } from 'node:fs';
import { lstat, open } from 'node:fs/promises';

const CHUNK = 1024 * 1024;

/** The entry on disk is not a regular file (`what` says what it is). */
export class NotRegularFile extends Error {
  constructor(readonly what: string) {
    super(`not a regular file but a ${what}`);
  }
}

// The hex SHA-256 of the regular file at `path` and how many bytes were read.
export async function fileSha256(path: string | Buffer, signal?: AbortSignal): Promise<{ sha256: string; bytes: number }> {
  const before = await lstat(path);
  if (!before.isFile()) throw new NotRegularFile(kindOf(before));
  // O_NONBLOCK: should the entry have been swapped for a fifo since, open does not wait for a writer.
  const handle = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  try {
    const stats = await handle.stat();
    if (!stats.isFile()) throw new NotRegularFile(kindOf(stats));
    const hash = createHash('sha256');
    const buffer = Buffer.allocUnsafe(CHUNK);
    let bytes = 0;
    for (;;) {
      signal?.throwIfAborted();
      const { bytesRead } = await handle.read(buffer, 0, CHUNK, null);
      if (bytesRead === 0) break;
      hash.update(buffer.subarray(0, bytesRead));
      bytes += bytesRead;
    }
    return { sha256: hash.digest('hex'), bytes };
  } finally {
    await handle.close();
  }
}

function kindOf(stats: import('node:fs').Stats): string {
  if (stats.isDirectory()) return 'directory';
  if (stats.isSymbolicLink()) return 'symlink';
  if (stats.isFIFO()) return 'fifo';
  if (stats.isSocket()) return 'socket';
  if (stats.isCharacterDevice()) return 'character device';
  if (stats.isBlockDevice()) return 'block device';
  return 'special file';
}
