// Rereads a stored file for verify: only a regular file is ever opened (a fifo would block the
// read forever, a device node may act on being opened), never through a symlink. Small files are
// read synchronously (the thread pool's round trips cost more than the reading: 20 s instead of
// about 2 for 50 000 small files here), large ones in chunks that let the event loop turn and a
// stop end the read.
import { createHash } from 'node:crypto';
import { closeSync, constants, fstatSync, lstatSync, openSync, readSync, type Stats } from 'node:fs';
import { open } from 'node:fs/promises';

/** Files up to this size are read in one synchronous go. */
const SMALL = 256 * 1024;
const CHUNK = 1024 * 1024;
/** O_NONBLOCK: should the entry have been swapped for a fifo since lstat, open does not wait for a writer. */
const FLAGS = constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK;

/** The entry on disk is not a regular file (`what` says what it is). */
export class NotRegularFile extends Error {
  constructor(readonly what: string) {
    super(`not a regular file but a ${what}`);
  }
}

// Shared by the synchronous path only (no two calls can use it at once).
let small: Buffer | undefined;

// The hex SHA-256 of the regular file at `path` and how many bytes were read.
export async function fileSha256(path: string | Buffer, signal?: AbortSignal): Promise<{ sha256: string; bytes: number }> {
  const before = lstatSync(path);
  if (!before.isFile()) throw new NotRegularFile(kindOf(before));
  const hash = createHash('sha256');
  let bytes = 0;
  if (before.size <= SMALL) {
    const fd = openSync(path, FLAGS);
    try {
      const stats = fstatSync(fd);
      if (!stats.isFile()) throw new NotRegularFile(kindOf(stats));
      small ??= Buffer.allocUnsafe(SMALL + 1);
      for (let got = readSync(fd, small, 0, small.length, null); got > 0; got = readSync(fd, small, 0, small.length, null)) {
        hash.update(small.subarray(0, got));
        bytes += got;
      }
    } finally {
      closeSync(fd);
    }
    return { sha256: hash.digest('hex'), bytes };
  }
  const handle = await open(path, FLAGS);
  try {
    const stats = await handle.stat();
    if (!stats.isFile()) throw new NotRegularFile(kindOf(stats));
    const buffer = Buffer.allocUnsafe(CHUNK);
    for (;;) {
      signal?.throwIfAborted();
      const { bytesRead } = await handle.read(buffer, 0, CHUNK, null);
      if (bytesRead === 0) break;
      hash.update(buffer.subarray(0, bytesRead));
      bytes += bytesRead;
    }
  } finally {
    await handle.close();
  }
  return { sha256: hash.digest('hex'), bytes };
}

function kindOf(stats: Stats): string {
  if (stats.isDirectory()) return 'directory';
  if (stats.isSymbolicLink()) return 'symlink';
  if (stats.isFIFO()) return 'fifo';
  if (stats.isSocket()) return 'socket';
  if (stats.isCharacterDevice()) return 'character device';
  if (stats.isBlockDevice()) return 'block device';
  return 'special file';
}
