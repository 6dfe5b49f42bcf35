// One manifest line per tree entry, and the header that names the columns.
import type { BigIntStats } from 'node:fs';
import { escapeName } from './escape.js';

export const FORMAT_VERSION = 1;
export const COLUMNS = ['path', 'type', 'mode', 'uid:gid', 'size', 'mtime', 'target'] as const;
/** The first line: a `#`, the format and its version, then the column names, tab-separated. */
export const HEADER = `#ssh-r-sync-manifest/${FORMAT_VERSION}\t${COLUMNS.join('\t')}\n`;

/** find(1)'s letters: regular file, directory, symlink, fifo, socket, character and block device. */
export type EntryType = 'f' | 'd' | 'l' | 'p' | 's' | 'c' | 'b';

// The type letter of an lstat result.
export function entryType(stats: BigIntStats): EntryType {
  if (stats.isFile()) return 'f';
  if (stats.isDirectory()) return 'd';
  if (stats.isSymbolicLink()) return 'l';
  if (stats.isFIFO()) return 'p';
  if (stats.isSocket()) return 's';
  if (stats.isCharacterDevice()) return 'c';
  return 'b';
}

// A manifest line: path and link target are bytes (latin1 strings), escaped here.
export function entryLine(path: string, type: EntryType, stats: BigIntStats, target: string): string {
  const mode = (stats.mode & 0o7777n).toString(8);
  return `${escapeName(path)}\t${type}\t${mode}\t${stats.uid}:${stats.gid}\t${stats.size}\t${seconds(stats.mtimeNs)}\t${escapeName(target)}\n`;
}

// Nanoseconds since the epoch as seconds with nine decimals (exact, also before 1970).
export function seconds(ns: bigint): string {
  const sign = ns < 0n ? '-' : '';
  const abs = ns < 0n ? -ns : ns;
  return `${sign}${abs / 1_000_000_000n}.${(abs % 1_000_000_000n).toString().padStart(9, '0')}`;
}
