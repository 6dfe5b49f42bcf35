// What `versions` and `diff` share: the host's snapshots that have a manifest, names printed on
// one line whatever their bytes, entries as JSON and in words, a shell word for the restore hint,
// and stdout written in chunks that wait for a slow reader.
import { lstat } from 'node:fs/promises';
import { SshRSyncError, storedSnapshots, type StoredSnapshot } from '@ssh-r-sync/core/internal';
import { escapeName, seconds, unescapeName, type Entry, type EntryType } from '@ssh-r-sync/plugin-manifest';

/** A complete backup, and whether its manifest is there to be read. */
export interface Searchable {
  snapshot: StoredSnapshot;
  /** Its id, or "mirror" for a plain mirror. */
  label: string;
  hasManifest: boolean;
}

// Every complete backup of the host, oldest first, each with whether it has a manifest (a
// backup made without @ssh-r-sync/plugin-manifest has none, and cannot be searched).
export async function searchableSnapshots(root: string, name: string): Promise<Searchable[]> {
  const snapshots = await storedSnapshots(root, name);
  const out: Searchable[] = [];
  for (const snapshot of snapshots) {
    const info = await lstat(snapshot.paths.manifest).catch(() => null);
    out.push({ snapshot, label: labelOf(snapshot), hasManifest: Boolean(info?.isFile()) });
  }
  return out;
}

// A backup as people name it: its id, or "mirror".
export function labelOf(snapshot: StoredSnapshot): string {
  return snapshot.kind === 'mirror' ? 'mirror' : snapshot.id;
}

/** Valid UTF-8 that escapeName keeps but that can move a terminal's cursor or reorder a line:
 *  C1 controls (U+0080-009F), LRM/RLM, line and paragraph separators, bidi embeddings and isolates. */
const INVISIBLE = /\xc2[\x80-\x9f]|\xe2\x80[\x8e\x8f\xa8-\xae]|\xe2\x81[\xa6-\xa9]/g;

// A path (bytes as latin1) as printed: the manifest's escaping (`\\`, `\t`, `\n`, `\xHH`), and the
// invisible characters above as `\xHH` bytes too. One line, no terminal controls; unescapeName
// (and `--escaped`) turn it back into the same bytes.
export function displayName(bytes: string): string {
  const escaped = escapeName(bytes).replace(INVISIBLE, (sequence) => [...sequence].map((c) => `\\x${c.charCodeAt(0).toString(16)}`).join(''));
  return Buffer.from(escaped, 'latin1').toString('utf8'); // what is left is valid UTF-8
}

// PATH as given on the command line, as the bytes (latin1) a manifest keys it by: relative to the
// backed-up top, "./" and trailing "/" dropped, "." for the top itself. With `escaped`, PATH is
// spelt as the manifest (and this command's output) spell names: `line\nbreak`, `f\xffo`.
export function pathArgument(argument: string, escaped: boolean): string {
  const utf8 = Buffer.from(argument, 'utf8').toString('latin1');
  const bytes = escaped ? unescapeName(utf8) : utf8;
  if (bytes === '') throw new SshRSyncError('EUSAGE', 'PATH is empty: give a path relative to the backed-up top, e.g. etc/passwd, or . for the top itself');
  if (bytes.startsWith('/')) {
    throw new SshRSyncError(
      'EUSAGE',
      `PATH ${JSON.stringify(argument)} is absolute: paths are relative to the backup's top, as its manifest lists them (e.g. etc/passwd, not /etc/passwd, when / was backed up)`,
    );
  }
  const parts = bytes.split('/').filter((part) => part !== '' && part !== '.');
  if (parts.includes('..')) throw new SshRSyncError('EUSAGE', `PATH ${JSON.stringify(argument)} has a ".." component: give the path as the manifest lists it, relative to the backed-up top`);
  return parts.length ? parts.join('/') : '.';
}

// A hint for a name that was not found: argv is decoded as UTF-8, so bytes that are not UTF-8
// cannot arrive as they are (they become U+FFFD); the escaped spelling can.
export function notUtf8Hint(argument: string, escaped: boolean): string {
  return !escaped && argument.includes('\ufffd') ? '; a name that is not UTF-8 must be given with --escaped, spelt as the output spells it (e.g. f\\xffo)' : '';
}

const TYPE_WORDS: Record<EntryType, string> = { f: 'file', d: 'dir', l: 'symlink', p: 'fifo', s: 'socket', c: 'chardev', b: 'blockdev' };

// The type letter in a word: file, dir, symlink, fifo, socket, chardev, blockdev.
export function typeWord(type: EntryType): string {
  return TYPE_WORDS[type];
}

// Nanoseconds since the epoch as an ISO time exact to the nanosecond: 2020-09-13T12:26:40.500000000Z.
export function isoNs(ns: bigint): string {
  const ms = ns / 1_000_000n - (ns < 0n && ns % 1_000_000n !== 0n ? 1n : 0n);
  const fraction = ((ns % 1_000_000_000n) + 1_000_000_000n) % 1_000_000_000n;
  const date = new Date(Number(ms));
  if (Number.isNaN(date.getTime())) return `${seconds(ns)}s`;
  return date.toISOString().replace(/\.\d{3}Z$/, `.${fraction.toString().padStart(9, '0')}Z`);
}

/** An entry as --json prints it. Names and targets are spelt as displayName spells them. */
export interface EntryJson {
  type: EntryType;
  /** Octal, four digits: "0644", "4755". */
  mode: string;
  uid: number;
  gid: number;
  size: number;
  /** Seconds since the epoch with nine decimals, exact (as in the manifest). */
  mtime: string;
  /** The same time as ISO 8601, to the nanosecond. */
  mtimeIso: string;
  target: string | null;
  /** "major,minor" of a device. */
  rdev: string | null;
  /** "a" ACL, "x" other xattrs, "ax", "-" neither; null when the manifest (version 1) did not record it. */
  flags: string | null;
  sha256: string | null;
}

// A manifest entry for --json.
export function entryJson(entry: Entry): EntryJson {
  return {
    type: entry.type,
    mode: entry.mode.toString(8).padStart(4, '0'),
    uid: entry.uid,
    gid: entry.gid,
    size: Number(entry.size),
    mtime: seconds(entry.mtimeNs),
    mtimeIso: isoNs(entry.mtimeNs),
    target: entry.type === 'l' ? displayName(entry.target) : null,
    rdev: entry.rdev ? `${entry.rdev[0]},${entry.rdev[1]}` : null,
    flags: entry.flags,
    sha256: entry.sha256,
  };
}

const SAFE_WORD = /^[A-Za-z0-9_@%+=:,./-]+$/;

// `bytes` (latin1) as one shell word that gives the same bytes back in bash, zsh and ksh: as it
// is when it is plain, in single quotes when it is printable UTF-8, else in $'…' with \xHH.
export function shellWord(bytes: string): string {
  if (SAFE_WORD.test(bytes)) return bytes;
  const shown = displayName(bytes);
  if (!shown.includes('\\') && Buffer.from(shown, 'utf8').toString('latin1') === bytes) return `'${shown.replace(/'/g, `'\\''`)}'`;
  let out = '';
  for (let i = 0; i < bytes.length; i += 1) {
    const byte = bytes.charCodeAt(i);
    if (byte === 0x27 || byte === 0x5c) out += `\\${bytes[i]}`;
    else if (byte >= 0x20 && byte < 0x7f) out += bytes[i];
    else out += `\\x${byte.toString(16).padStart(2, '0')}`;
  }
  return `$'${out}'`;
}

// Sizes are printed by the one formatter of format.ts (human on a terminal, exact in a pipe).
export { formatBytes } from './format.js';

/** stdout in chunks of about this many characters. */
const CHUNK = 64 * 1024;

/** Writes to stdout in chunks and waits for a slow reader; `closed` once the reader has gone (`| head`). */
export class Output {
  private pending = '';

  get closed(): boolean {
    return process.stdout.destroyed || !process.stdout.writable;
  }

  // Adds text; writes once a chunk is full.
  async write(text: string): Promise<void> {
    this.pending += text;
    if (this.pending.length >= CHUNK) await this.flush();
  }

  // Writes what is pending, and waits until stdout takes more (or is gone).
  async flush(): Promise<void> {
    const text = this.pending;
    this.pending = '';
    if (!text || this.closed) return;
    if (process.stdout.write(text)) return;
    await new Promise<void>((resolve) => {
      const done = () => {
        process.stdout.off('drain', done).off('close', done).off('error', done);
        resolve();
      };
      process.stdout.on('drain', done).on('close', done).on('error', done);
    });
  }
}
