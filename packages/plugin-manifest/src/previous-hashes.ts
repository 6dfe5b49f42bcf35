// The previous complete snapshot's hashes, for the files that did not change since: its committed
// manifest read alongside the new walk (both are in walk order), one entry at a time, so memory
// stays bounded. A hash is reused only for the same path, still a regular file, the same stored
// inode (st_dev:st_ino), size and mtime; anything else is read again. A previous manifest that is
// not the one its done mark names, older than version 4, torn or unreadable means "read
// everything", never a failed run.
import { createHash } from 'node:crypto';
import { constants } from 'node:fs';
import { open } from 'node:fs/promises';
import type { Entry } from './entry.js';
import { streamManifest, type StreamedEntry } from './stream-manifest.js';

/** A manifest the receiver committed: its file and what its done mark says of it. */
export interface CommittedManifest {
  /** The manifest file. */
  file: string;
  /** Its size and SHA-256 as the done mark recorded them (`extra.manifest`). */
  bytes: number;
  sha256: string;
  /** Which backup it lists, for messages: a snapshot id, or '' for a mirror. */
  id: string;
}

/** Chunk size for checking the previous manifest's SHA-256 against its done mark. */
const CHUNK = 256 * 1024;

// Whether `file` is exactly the manifest the done mark recorded (size and SHA-256). Opened without
// following a symlink and without waiting on a fifo; read at most `bytes` + 1 bytes.
export async function matchesDoneMark(previous: CommittedManifest, signal?: AbortSignal): Promise<boolean> {
  const handle = await open(previous.file, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  try {
    const stats = await handle.stat();
    if (!stats.isFile() || stats.size !== previous.bytes) return false;
    const hash = createHash('sha256');
    const buffer = Buffer.allocUnsafe(CHUNK);
    let total = 0;
    for (;;) {
      signal?.throwIfAborted();
      const { bytesRead } = await handle.read(buffer, 0, CHUNK, null);
      if (bytesRead === 0) break;
      total += bytesRead;
      if (total > previous.bytes) return false;
      hash.update(buffer.subarray(0, bytesRead));
    }
    return total === previous.bytes && hash.digest('hex') === previous.sha256;
  } finally {
    await handle.close();
  }
}

// The order of the walk: the top '.' first, then depth first with each directory's names sorted
// by their bytes, so a directory's contents come before a sibling that sorts after it ('a/b' before
// 'a.txt'): bytewise, with '/' lower than any byte of a name. Paths are latin1 strings of bytes.
export function walkOrder(a: string, b: string): number {
  if (a === b) return 0;
  if (a === '.') return -1;
  if (b === '.') return 1;
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x !== y) return x === 0x2f ? -1 : y === 0x2f ? 1 : x - y;
  }
  return a.length - b.length;
}

/** How the new manifest's hashes were found. */
export interface HashCounts {
  /** Regular files read and hashed. */
  read: number;
  /** Their bytes (lstat's sizes). */
  readBytes: number;
  /** Hashes taken from the previous manifest. */
  reused: number;
}

// Looks up the previous manifest's entries in walk order. `find` must be called with paths in
// increasing walk order; it returns the previous entry for that path, if any.
export class PreviousHashes {
  private readonly entries: AsyncGenerator<StreamedEntry> | undefined;
  private head: StreamedEntry | undefined;
  private done: boolean;
  /** Why reuse stopped or never started, for the log; null while it works. */
  problem: string | null;

  private constructor(entries: AsyncGenerator<StreamedEntry> | undefined, problem: string | null) {
    this.entries = entries;
    this.done = entries === undefined;
    this.problem = problem;
  }

  /** No previous manifest: every file is read. */
  static none(why: string | null = null): PreviousHashes {
    return new PreviousHashes(undefined, why);
  }

  // Opens a committed manifest for reuse, after checking it is the one its done mark names. Never
  // throws for the manifest's sake (only when `signal` aborts): a bad one gives none().
  static async open(previous: CommittedManifest, signal?: AbortSignal): Promise<PreviousHashes> {
    const what = previous.id ? `snapshot ${previous.id}'s manifest` : "the mirror's previous manifest";
    try {
      if (!(await matchesDoneMark(previous, signal))) return PreviousHashes.none(`${what} is not the one its done mark records`);
    } catch (error) {
      signal?.throwIfAborted();
      return PreviousHashes.none(`${what} cannot be read (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`);
    }
    const reuse = new PreviousHashes(streamManifest(previous.file, signal ? { signal } : {}), null);
    await reuse.advance();
    if (reuse.head && reuse.head.version < 4) {
      const version = reuse.head.version;
      await reuse.close();
      return PreviousHashes.none(`${what} is version ${version}, without inodes`);
    }
    return reuse;
  }

  // The previous entry at `path` when it may lend its hash to `entry` (stored as `inode`): the same
  // regular file by identity, size and mtime, with a hash; otherwise undefined.
  async hashFor(path: string, entry: Entry, inode: string): Promise<string | undefined> {
    while (!this.done && this.head && walkOrder(this.head.path, path) < 0) await this.advance();
    const previous = this.head;
    if (!previous || previous.path !== path) return undefined;
    const same = previous.entry.type === 'f' && entry.type === 'f' && previous.inode === inode
      && previous.entry.size === entry.size && previous.entry.mtimeNs === entry.mtimeNs && previous.entry.sha256 !== null;
    return same ? previous.entry.sha256! : undefined;
  }

  // Stops reading the previous manifest (at the end of the walk, or when the walk fails).
  async close(): Promise<void> {
    this.done = true;
    this.head = undefined;
    await this.entries?.return(undefined).catch(() => {});
  }

  private async advance(): Promise<void> {
    try {
      const next = await this.entries!.next();
      this.head = next.done ? undefined : next.value;
      if (next.done) this.done = true;
    } catch (error) {
      // A torn or malformed line: what came before it was committed; nothing after it is used.
      this.problem = `the previous manifest stopped being readable: ${(error as Error).message}`;
      this.head = undefined;
      this.done = true;
    }
  }
}
