// SHA-256 of a regular file of the backup, read without following a symlink. Small files are read
// synchronously (one open, read, close: the thread pool's round trips would cost more than the
// reading); large ones in chunks through the thread pool, so the event loop keeps turning.
// Opened O_NONBLOCK and checked with fstat: an entry swapped for a fifo or a device since its
// lstat is refused, never read (opening a fifo for reading would wait for a writer forever).
import { createHash } from 'node:crypto';
import { closeSync, constants, fstatSync, openSync, readSync } from 'node:fs';
import { open } from 'node:fs/promises';

/** Files up to this size are read in one synchronous call. */
const SMALL = 256 * 1024;
/** Chunk size for larger files. */
const CHUNK = 1024 * 1024;

// Shared by the synchronous path only (no two calls can use it at once).
let small: Buffer | undefined;

/** Read-only, never through a symlink, never waiting for a fifo's writer. */
const FLAGS = constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK;

function notRegular(abs: string): Error {
  return new Error(`${Buffer.from(abs, 'latin1').toString()} is not a regular file (changed while the manifest was written?)`);
}

// The hex SHA-256 of the file at `abs` (its bytes as a latin1 string); `size` is lstat's, a hint.
export async function hashFile(abs: string, size: bigint, signal?: AbortSignal): Promise<string> {
  const path = Buffer.from(abs, 'latin1');
  const hash = createHash('sha256');
  if (size <= BigInt(SMALL)) {
    const fd = openSync(path, FLAGS);
    try {
      if (!fstatSync(fd).isFile()) throw notRegular(abs);
      small ??= Buffer.allocUnsafe(SMALL + 1);
      let got = 0;
      for (;;) {
        got = readSync(fd, small, 0, small.length, null);
        if (got === 0) break;
        hash.update(small.subarray(0, got));
      }
    } finally {
      closeSync(fd);
    }
    return hash.digest('hex');
  }
  const handle = await open(path, FLAGS);
  try {
    if (!(await handle.stat()).isFile()) throw notRegular(abs);
    const large = Buffer.allocUnsafe(CHUNK);
    for (;;) {
      signal?.throwIfAborted();
      const { bytesRead } = await handle.read(large, 0, CHUNK, null);
      if (bytesRead === 0) break;
      hash.update(large.subarray(0, bytesRead));
    }
  } finally {
    await handle.close();
  }
  return hash.digest('hex');
}
