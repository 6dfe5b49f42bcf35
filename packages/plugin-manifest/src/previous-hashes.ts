// The previous complete backup's hashes, for the files that did not change since: its committed
// manifest read alongside the new walk (both are in walk order), a chunk at a time, so memory
// stays bounded. A hash is reused only for the same path, still a regular file, the same stored
// inode (st_dev:st_ino), size and mtime; anything else is read again. A previous manifest that is
// not the one its done mark names, older than version 4, torn or unreadable means "read
// everything", never a failed run. Lines are compared field by field as text with what the new
// line will say (no full parse: at 200 000 entries streamManifest's parse costs more than the walk).
import { createHash } from 'node:crypto';
import { constants } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { COLUMNS, FIELD, seconds, type Entry } from './entry.js';
import { unescapeName } from './escape.js';
import { parseHeader } from './read-manifest.js';
import { MAX_LINE_BYTES } from './stream-manifest.js';

/** A manifest the receiver committed: its file and what its done mark says of it. */
export interface CommittedManifest {
  /** The manifest file. */
  file: string;
  /** Its size and SHA-256 as the done mark recorded them (`extra.manifest`). */
  bytes: number;
  sha256: string;
  /** Which backup it lists, for messages: a snapshot id, or '' for a mirror. */
  id: string;
  /** When the run that wrote it began (its done mark's `startedAt`): an entry whose ctime is older
   *  was not changed since that manifest described it (carry-entry.ts). Absent: not known. */
  startedAt?: Date;
}

/** Bytes read at a time, for the check and for the lines. */
const CHUNK = 256 * 1024;
const SHA256 = /^[0-9a-f]{64}$/;
/** Fields of a version 4 line: path type mode uid:gid size mtime target rdev flags sha256 dev:ino. */
const FIELDS = COLUMNS.length;
const { type: TYPE, size: SIZE, mtime: MTIME, sha256: HASH, 'dev:ino': INODE } = FIELD;

// Whether the open file is exactly the manifest the done mark recorded (size and SHA-256); reads
// at most `bytes` + 1 bytes.
async function sameAsRecorded(handle: FileHandle, previous: CommittedManifest, signal?: AbortSignal): Promise<boolean> {
  const stats = await handle.stat();
  if (!stats.isFile() || stats.size !== previous.bytes) return false;
  const hash = createHash('sha256');
  const buffer = Buffer.allocUnsafe(CHUNK);
  let total = 0;
  for (;;) {
    signal?.throwIfAborted();
    const { bytesRead } = await handle.read(buffer, 0, CHUNK, total);
    if (bytesRead === 0) break;
    total += bytesRead;
    if (total > previous.bytes) return false;
    hash.update(buffer.subarray(0, bytesRead));
  }
  return total === previous.bytes && hash.digest('hex') === previous.sha256;
}

// Opens a manifest without following a symlink and without waiting on a fifo.
function openManifest(file: string): Promise<FileHandle> {
  return open(file, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
}

// Whether `file` is exactly the manifest the done mark recorded (size and SHA-256).
export async function matchesDoneMark(previous: CommittedManifest, signal?: AbortSignal): Promise<boolean> {
  const handle = await openManifest(previous.file);
  try {
    return await sameAsRecorded(handle, previous, signal);
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

// The hash a previous manifest's line (its fields) records for `entry`, stored as `inode`, when it
// is the same stored regular file: same dev:ino, size and mtime; otherwise undefined.
export function recordedHash(fields: readonly string[], entry: Entry, inode: string): string | undefined {
  const same = fields[TYPE] === 'f' && entry.type === 'f' && fields[INODE] === inode
    && fields[SIZE] === String(entry.size) && fields[MTIME] === seconds(entry.mtimeNs) && SHA256.test(fields[HASH]!);
  return same ? fields[HASH] : undefined;
}

// Looks up the previous manifest's entries in walk order. `hashFor` must be called with paths in
// increasing walk order.
export class PreviousHashes {
  private readonly handle: FileHandle | undefined;
  private readonly file: string;
  private readonly signal: AbortSignal | undefined;
  private readonly buffer = Buffer.allocUnsafe(CHUNK);
  private position = 0;
  private lines: string[] = [];
  private next = 0;
  private rest = '';
  private lineNo = 0;
  private ended: boolean;
  /** The current previous entry: its path (bytes as latin1) and its fields as written. */
  private headPath: string | undefined;
  private headFields: string[] = [];
  /** The current previous entry's line as written (without its newline). */
  currentLine = '';
  /** Why reuse stopped or never started, for the log; null while it works. */
  problem: string | null;

  private constructor(handle: FileHandle | undefined, file: string, signal: AbortSignal | undefined, problem: string | null) {
    this.handle = handle;
    this.file = file;
    this.signal = signal;
    this.ended = handle === undefined;
    this.problem = problem;
  }

  /** No previous manifest: every file is read. */
  static none(why: string | null = null): PreviousHashes {
    return new PreviousHashes(undefined, '', undefined, why);
  }

  // Opens a committed manifest for reuse, after checking it is the one its done mark names. Never
  // throws for the manifest's sake (only when `signal` aborts): a bad one gives none().
  static async open(previous: CommittedManifest, signal?: AbortSignal): Promise<PreviousHashes> {
    const what = previous.id ? `snapshot ${previous.id}'s manifest` : "the mirror's previous manifest";
    let handle: FileHandle | undefined;
    try {
      handle = await openManifest(previous.file);
      if (!(await sameAsRecorded(handle, previous, signal))) {
        await handle.close();
        return PreviousHashes.none(`${what} is not the one its done mark records`);
      }
    } catch (error) {
      await handle?.close().catch(() => {});
      signal?.throwIfAborted();
      return PreviousHashes.none(`${what} cannot be read (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`);
    }
    const reuse = new PreviousHashes(handle, previous.file, signal, null);
    try {
      const header = await reuse.line();
      const version = parseHeader(header ?? '');
      if (version !== 4) {
        await reuse.close();
        return PreviousHashes.none(`${what} is version ${version}, without inodes`);
      }
      await reuse.advance();
    } catch (error) {
      await reuse.close();
      signal?.throwIfAborted();
      return PreviousHashes.none(`${what} stopped being readable: ${(error as Error).message}`);
    }
    return reuse;
  }

  // The recorded hash of `path` when the previous manifest lists it as the same stored regular
  // file as `entry` (stored as `inode`): same dev:ino, size and mtime; otherwise undefined.
  async hashFor(path: string, entry: Entry, inode: string): Promise<string | undefined> {
    const fields = await this.lookup(path);
    return fields ? recordedHash(fields, entry, inode) : undefined;
  }

  // The previous manifest's line for `path` split into its fields as written (see FIELDS), or
  // undefined when it lists no such path. Paths must come in increasing walk order.
  async lookup(path: string): Promise<readonly string[] | undefined> {
    try {
      while (this.headPath !== undefined && walkOrder(this.headPath, path) < 0) await this.advance();
    } catch (error) {
      // A torn or malformed line: what came before it was committed; nothing after it is used.
      this.problem = `the previous manifest stopped being readable: ${(error as Error).message}`;
      await this.close();
      this.signal?.throwIfAborted();
      return undefined;
    }
    return this.headPath === path ? this.headFields : undefined;
  }

  // Stops reading the previous manifest (at the end of the walk, or when the walk fails).
  async close(): Promise<void> {
    this.ended = true;
    this.headPath = undefined;
    this.lines = [];
    await this.handle?.close().catch(() => {});
  }

  // Moves to the next entry line (headPath undefined at the end).
  private async advance(): Promise<void> {
    const line = await this.line();
    if (line === undefined) {
      this.headPath = undefined;
      return;
    }
    const fields = line.split('\t');
    if (fields.length !== FIELDS) throw new Error(`${this.file}, line ${this.lineNo}: a version 4 manifest line has ${FIELDS} fields`);
    const raw = fields[0]!;
    this.headPath = raw.includes('\\') ? unescapeName(raw) : raw;
    this.headFields = fields;
    this.currentLine = line;
  }

  // The next line of the file, undefined at its end; throws for a torn or overlong one.
  private async line(): Promise<string | undefined> {
    while (this.next >= this.lines.length) {
      if (this.ended) return undefined;
      this.signal?.throwIfAborted();
      const { bytesRead } = await this.handle!.read(this.buffer, 0, CHUNK, this.position);
      this.position += bytesRead;
      if (bytesRead === 0) {
        this.ended = true;
        if (this.rest !== '') throw new Error(`${this.file}, line ${this.lineNo + 1}: the manifest does not end with a newline (torn?)`);
        return undefined;
      }
      const lines = (this.rest + this.buffer.toString('latin1', 0, bytesRead)).split('\n');
      this.rest = lines.pop()!;
      if (this.rest.length > MAX_LINE_BYTES) throw new Error(`${this.file}, line ${this.lineNo + lines.length + 1}: a line longer than ${MAX_LINE_BYTES} bytes`);
      this.lines = lines;
      this.next = 0;
    }
    this.lineNo += 1;
    const line = this.lines[this.next++]!;
    if (line.length > MAX_LINE_BYTES) throw new Error(`${this.file}, line ${this.lineNo}: a line longer than ${MAX_LINE_BYTES} bytes`);
    return line;
  }
}
