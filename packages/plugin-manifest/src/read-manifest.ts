// Reads a manifest back: version 4, version 3 (no dev:ino column), version 2 (no sha256 either)
// and version 1 (no rdev and flags either).
import { readFileSync } from 'node:fs';
import { COLUMNS, COLUMNS_V1, COLUMNS_V2, COLUMNS_V3, type Entry, type EntryType, type FormatVersion } from './entry.js';
import { unescapeName } from './escape.js';

/** A manifest's header version and its entries in file order, keyed by path bytes (latin1). */
export interface Manifest {
  version: FormatVersion;
  entries: Map<string, Entry>;
}

const TYPES = new Set(['f', 'd', 'l', 'p', 's', 'c', 'b']);

// The format version a header line names; throws for one this reader does not know.
export function parseHeader(line: string): FormatVersion {
  if (line === `#ssh-r-sync-manifest/1\t${COLUMNS_V1.join('\t')}`) return 1;
  if (line === `#ssh-r-sync-manifest/2\t${COLUMNS_V2.join('\t')}`) return 2;
  if (line === `#ssh-r-sync-manifest/3\t${COLUMNS_V3.join('\t')}`) return 3;
  if (line === `#ssh-r-sync-manifest/4\t${COLUMNS.join('\t')}`) return 4;
  throw new Error(`not a manifest this version can read: ${JSON.stringify(line.slice(0, 80))}`);
}

/** An entry line read back: the path (bytes as latin1), the entry, and (version 4 lines only)
 *  the stored entry's `dev:ino` on the receiver, null when not recorded. */
export interface ParsedLine {
  path: string;
  entry: Entry;
  inode?: string | null;
}

// One entry line of a manifest of `version`: its path (bytes as latin1), entry and inode.
export function parseEntryLine(line: string, version: FormatVersion): ParsedLine {
  const fields = line.split('\t');
  const want = version === 1 ? 7 : version === 2 ? 9 : version === 3 ? 10 : 11;
  if (fields.length !== want) throw new Error(`a version ${version} manifest line has ${want} fields: ${JSON.stringify(line.slice(0, 200))}`);
  const [path, type, mode, owner, size, mtime, target, rdev, flags, sha256, inode] = fields as string[];
  const ownerMatch = /^(\d+):(\d+)$/.exec(owner!);
  const time = /^(-?)(\d+)\.(\d{9})$/.exec(mtime!);
  const rdevMatch = version >= 2 && rdev !== '-' ? /^(\d+),(\d+)$/.exec(rdev!) : null;
  if (!TYPES.has(type!) || !/^[0-7]{1,4}$/.test(mode!) || !ownerMatch || !/^\d+$/.test(size!) || !time
    || (version >= 2 && ((rdev !== '-' && !rdevMatch) || !/^(-|a|x|ax)$/.test(flags!)))
    || (version >= 3 && !(type === 'f' ? /^[0-9a-f]{64}$/ : /^-$/).test(sha256!))
    || (version === 4 && !/^(-|\d+:\d+)$/.test(inode!))) {
    throw new Error(`a malformed manifest line: ${JSON.stringify(line.slice(0, 200))}`);
  }
  const ns = BigInt(time[2]!) * 1_000_000_000n + BigInt(time[3]!);
  const parsed: ParsedLine = {
    path: unescapeName(path!),
    entry: {
      type: type as EntryType,
      mode: parseInt(mode!, 8),
      uid: Number(ownerMatch[1]),
      gid: Number(ownerMatch[2]),
      size: BigInt(size!),
      mtimeNs: time[1] ? -ns : ns,
      target: unescapeName(target!),
      rdev: rdevMatch ? [Number(rdevMatch[1]), Number(rdevMatch[2])] : null,
      flags: version >= 2 ? flags! : null,
      sha256: version >= 3 && type === 'f' ? sha256! : null,
    },
  };
  if (version === 4) parsed.inode = inode === '-' ? null : inode!;
  return parsed;
}

// A whole manifest file (read at once: for tests and tools, not for the 200k-entry writer path).
export function readManifest(file: string): Manifest {
  const lines = readFileSync(file).toString('latin1').split('\n');
  if (lines.pop() !== '') throw new Error(`${file} does not end with a newline`);
  const version = parseHeader(lines.shift() ?? '');
  const entries = new Map<string, Entry>();
  for (const line of lines) {
    const { path, entry } = parseEntryLine(line, version);
    entries.set(path, entry);
  }
  return { version, entries };
}
