// One manifest line per tree entry, and the header that names the columns.
import { escapeName } from './escape.js';

export const FORMAT_VERSION = 4;
export const COLUMNS = ['path', 'type', 'mode', 'uid:gid', 'size', 'mtime', 'target', 'rdev', 'flags', 'sha256', 'dev:ino'] as const;
/** Where each column is in a line of the current version: FIELD.sha256 is 9. */
export const FIELD = Object.fromEntries(COLUMNS.map((name, index) => [name, index])) as { readonly [K in (typeof COLUMNS)[number]]: number };
/** Version 1 had no `rdev` and `flags`; readers still accept it. */
export const COLUMNS_V1 = ['path', 'type', 'mode', 'uid:gid', 'size', 'mtime', 'target'] as const;
/** Version 2 had no `sha256`; readers still accept it. */
export const COLUMNS_V2 = ['path', 'type', 'mode', 'uid:gid', 'size', 'mtime', 'target', 'rdev', 'flags'] as const;
/** Version 3 had no `dev:ino`; readers still accept it. */
export const COLUMNS_V3 = ['path', 'type', 'mode', 'uid:gid', 'size', 'mtime', 'target', 'rdev', 'flags', 'sha256'] as const;
/** The versions a reader knows. */
export type FormatVersion = 1 | 2 | 3 | 4;
/** The first line: a `#`, the format and its version, then the column names, tab-separated. */
export const HEADER = `#ssh-r-sync-manifest/${FORMAT_VERSION}\t${COLUMNS.join('\t')}\n`;

/** find(1)'s letters: regular file, directory, symlink, fifo, socket, character and block device. */
export type EntryType = 'f' | 'd' | 'l' | 'p' | 's' | 'c' | 'b';

/** What a manifest line says of an entry: the client's view (in fake-super mode, rsync's %stat). */
export interface Entry {
  type: EntryType;
  /** Permission bits with setuid/setgid/sticky (mode & 07777). */
  mode: number;
  uid: number;
  gid: number;
  size: bigint;
  mtimeNs: bigint;
  /** Link target's bytes (latin1); '' for other types. */
  target: string;
  /** `major,minor` of a device; null for other types. */
  rdev: [number, number] | null;
  /** `a`: an ACL, `x`: other xattrs, `-`: neither; null: not known (a version 1 line). */
  flags: string | null;
  /** SHA-256 of a regular file's content, lower-case hex; null for other types and before version 3. */
  sha256: string | null;
}

const TYPE_OF_FORMAT: Record<number, EntryType> = {
  0o100000: 'f', 0o040000: 'd', 0o120000: 'l', 0o010000: 'p', 0o140000: 's', 0o020000: 'c', 0o060000: 'b',
};

// The type letter of a full st_mode (S_IFMT bits), or null for none known.
export function typeOfMode(mode: number): EntryType | null {
  return TYPE_OF_FORMAT[mode & 0o170000] ?? null;
}

// A version 4 manifest line: path and link target are bytes (latin1 strings), escaped here;
// `inode` is the stored entry's `dev:ino` on the receiver ('-' when not known).
export function entryLine(path: string, entry: Entry, inode: string | null = null): string {
  const rdev = entry.rdev ? `${entry.rdev[0]},${entry.rdev[1]}` : '-';
  return `${escapeName(path)}\t${entry.type}\t${entry.mode.toString(8)}\t${entry.uid}:${entry.gid}\t${entry.size}\t${seconds(entry.mtimeNs)}\t${escapeName(entry.target)}\t${rdev}\t${entry.flags ?? '-'}\t${entry.sha256 ?? '-'}\t${inode ?? '-'}\n`;
}

// Nanoseconds since the epoch as seconds with nine decimals (exact, also before 1970).
export function seconds(ns: bigint): string {
  const sign = ns < 0n ? '-' : '';
  const abs = ns < 0n ? -ns : ns;
  return `${sign}${abs / 1_000_000_000n}.${(abs % 1_000_000_000n).toString().padStart(9, '0')}`;
}
