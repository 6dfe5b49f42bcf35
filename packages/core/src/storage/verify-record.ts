// The result of the last `ssh-r-sync-admin verify` of one backup, kept beside its done mark
// (`<meta>/verify.json`), so that `status` and the client's `snapshots` can say when a backup was
// last checked and how it went. It is written by root or the backup account, never by the
// client, but read like a done mark all the same: bounded, never through a symlink.
import { constants } from 'node:fs';
import { lchown, open, stat, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { writeAtomic } from './durable.js';
import { SshRSyncError } from '../errors.js';
import type { DoneMark, SnapshotPaths } from './snapshots.js';

/** What one verify found; `first` holds the first problem lines as they were printed. */
export interface VerifyRecord {
  version: 1;
  /** When the verify ended. */
  at: string;
  /** Every regular file was reread (--data). */
  data: boolean;
  /** --sample PCT: the percentage of regular files reread; null without --sample. */
  sample: number | null;
  /** Entries compared (the tree's and the manifest's, each path once). */
  checked: number;
  /** Regular files reread and their bytes. */
  read: { files: number; bytes: number };
  problems: number;
  ok: boolean;
  /** Up to FIRST_PROBLEMS problem lines. */
  first: string[];
  /** The verified backup's done mark `completedAt`: a mirror rewritten since has a new one. */
  completedAt?: string;
  /** The manifest's format version (1 and 2 have no content hashes). */
  manifestVersion?: number;
}

/** How many problem lines a record keeps. */
export const FIRST_PROBLEMS = 20;
const MAX_RECORD_BYTES = 256 * 1024;
const FILE = 'verify.json';
/** Errors that mean "no record of ours here". */
const NO_RECORD = new Set(['ENOENT', 'ENOTDIR', 'ELOOP', 'ENXIO', 'EISDIR']);

// Where the verify record of a backup lives: in its metadata directory.
export function verifyRecordPath(paths: Pick<SnapshotPaths, 'meta'>): string {
  return join(paths.meta, FILE);
}

// The last verify of a backup, or null (never verified, a foreign or torn file, or — given its
// done mark — a record of an earlier state of a mirror). Throws only when looking failed (EIO, EMFILE).
export async function readVerifyRecord(paths: Pick<SnapshotPaths, 'meta'>, done?: Pick<DoneMark, 'completedAt'> | null): Promise<VerifyRecord | null> {
  const path = verifyRecordPath(paths);
  let handle: FileHandle | undefined;
  try {
    handle = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
    const stats = await handle.stat();
    if (!stats.isFile() || stats.size > MAX_RECORD_BYTES) return null;
    const record = JSON.parse(await handle.readFile('utf8')) as VerifyRecord;
    if (!isRecord(record)) return null;
    if (done && record.completedAt !== undefined && record.completedAt !== done.completedAt) return null;
    return record;
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === undefined || NO_RECORD.has(code)) return null;
    throw new SshRSyncError('ESTORAGE', `cannot read ${path}: ${code}: is the disk healthy, or the open-file limit (ulimit -n) too low?`, { cause: error });
  } finally {
    await handle?.close().catch(() => {});
  }
}

// Stores a verify record atomically and durably. As root, the file is given to the owner of the
// metadata directory (the backup account, in fake-super mode), who must be able to read it.
export async function writeVerifyRecord(paths: Pick<SnapshotPaths, 'meta'>, record: VerifyRecord): Promise<void> {
  const path = verifyRecordPath(paths);
  await writeAtomic(path, `${JSON.stringify(record, null, 2)}\n`);
  if (process.getuid?.() === 0) {
    const owner = await stat(paths.meta);
    if (owner.uid !== 0 || owner.gid !== 0) await lchown(path, owner.uid, owner.gid);
  }
}

function isRecord(value: VerifyRecord): boolean {
  return (
    typeof value === 'object' && value !== null && value.version === 1 && typeof value.at === 'string' && typeof value.data === 'boolean'
    && (value.sample === null || typeof value.sample === 'number') && typeof value.checked === 'number' && typeof value.problems === 'number'
    && typeof value.ok === 'boolean' && Array.isArray(value.first) && typeof value.read === 'object' && value.read !== null
  );
}
