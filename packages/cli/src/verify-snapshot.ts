// Verifies one stored backup against its manifest: the tree and the manifest are walked side by
// side in the manifest's order (bounded memory for any size), every difference is reported as it
// is found, and with --data/--sample regular files are reread and their SHA-256 compared.
import { setImmediate as nextTurn } from 'node:timers/promises';
import { escapeText, type StoredSnapshot } from '@ssh-r-sync/core/internal';
import { compareManifestPaths, type Entry, type StreamedEntry } from '@ssh-r-sync/plugin-manifest';
import type { ManifestModule } from './manifest-module.js';
import { fileSha256, NotRegularFile } from './verify-hash.js';
import { pathShower, type ShowPath } from './verify-text.js';
import { TreeCursor, isInside } from './verify-tree.js';
import { plural } from './format.js';

export interface VerifySnapshotOptions {
  /** Reread every regular file. */
  data: boolean;
  /** Reread each regular file with probability sample/100; null: no sample. */
  sample: number | null;
  signal: AbortSignal;
  /** A uniform number in [0, 1): which files the sample takes. */
  random: () => number;
}

/** What one backup's verify found (its problems went to `report` as they were found). */
export interface SnapshotVerdict {
  checked: number;
  /** Regular files whose metadata matched and whose manifest line has a hash: what --data rereads. */
  regularFiles: number;
  read: { files: number; bytes: number };
  problems: number;
  manifestVersion: number | null;
  /** Said once, not problems: e.g. no content hashes in an old manifest. */
  notes: string[];
}

/** Reports one problem: the path concerned (escaped for showing) or null for the backup as a whole. */
export type Report = (path: string | null, what: string) => void;

/** Entries compared between two turns of the event loop (signals are handled in between). */
const BATCH = 256;

const TYPE_NAMES: Record<Entry['type'], string> = {
  f: 'regular file', d: 'directory', l: 'symlink', p: 'fifo', s: 'socket', c: 'character device', b: 'block device',
};

// Compares `snapshot`'s tree with its manifest, reporting each problem through `report`.
export async function verifySnapshot(snapshot: StoredSnapshot, manifest: ManifestModule, options: VerifySnapshotOptions, report: Report): Promise<SnapshotVerdict> {
  const verdict: SnapshotVerdict = { checked: 0, regularFiles: 0, read: { files: 0, bytes: 0 }, problems: 0, manifestVersion: null, notes: [] };
  const show = pathShower(manifest.escapeName);
  const problem: Report = (path, what) => {
    verdict.problems += 1;
    // `what` may quote stored bytes (a %stat value, a manifest line): one line, whatever they hold.
    report(path === null ? null : show(path), escapeText(what));
  };
  const file = snapshot.paths.manifest;
  const recorded = (snapshot.done.extra?.manifest as { sha256?: unknown } | undefined)?.sha256;
  let actual: string;
  try {
    actual = await fileSha256(file, options.signal).then((hashed) => hashed.sha256);
  } catch (error) {
    if (options.signal.aborted) throw error;
    const code = (error as NodeJS.ErrnoException).code;
    problem(null, code === 'ENOENT' ? `no manifest (${file}): it was made without @ssh-r-sync/plugin-manifest, or removed; nothing to compare with` : `cannot read the manifest ${file}: ${code ?? (error as Error).message}`);
    return verdict;
  }
  if (typeof recorded === 'string' && recorded !== actual) {
    problem(null, `the manifest ${file} is not the one its done mark recorded (sha256 ${actual.slice(0, 12)}…, recorded ${recorded.slice(0, 12)}…): it changed after the backup`);
  }

  const entries = new ManifestCursor(manifest.streamManifest(file, { signal: options.signal }), options.signal);
  await entries.next();
  const version = entries.current?.version ?? null;
  verdict.manifestVersion = version;
  // A version 1 manifest listed the on-disk entries; later ones the client's (plugin-manifest README).
  const fakeSuper = snapshot.mode === 'fake-super' && version !== null && version >= 2;
  if (snapshot.mode === null && version !== null && version >= 2) {
    verdict.notes.push('the done mark does not say how the files were stored (an older receiver): compared as stored on disk (privileged or plain mode)');
  }
  if ((options.data || options.sample !== null) && version !== null && version < 3) verdict.notes.push(`no content hashes in this manifest (version ${version}): metadata only`);

  const root = Buffer.from(snapshot.paths.tree).toString('latin1');
  const tree = new TreeCursor(root, manifest.describeEntry, fakeSuper);
  // Consumes the manifest's entries inside `dir` (not compared: their directory is not one on disk).
  const skipInside = async (dir: string): Promise<number> => {
    let skipped = 0;
    while (entries.current && isInside(entries.current.path, dir)) {
      skipped += 1;
      await entries.next();
    }
    return skipped;
  };
  const notCompared = (count: number) => (count ? `; the ${plural(count, 'entry', 'entries')} the manifest lists in it were not compared` : '');

  let turn = 0;
  while ((tree.current || entries.current) && entries.error === null) {
    if (++turn % BATCH === 0) await nextTurn();
    options.signal.throwIfAborted();
    const disk = tree.current;
    const listed = entries.current;
    const order = !disk ? 1 : !listed ? -1 : compareManifestPaths(disk.rel, listed.path);
    verdict.checked += 1;
    if (order < 0) {
      const type = disk!.described ? TYPE_NAMES[disk!.described.type] : `unreadable (${show(disk!.error!)})`;
      problem(disk!.rel, `extra: a ${type} the manifest does not list${disk!.described?.type === 'd' ? ' (its contents not listed)' : ''}`);
      tree.next(false);
      continue;
    }
    if (order > 0) {
      await entries.next();
      const skipped = listed!.entry.type === 'd' ? await skipInside(listed!.path) : 0;
      problem(listed!.path, `missing: the manifest lists a ${TYPE_NAMES[listed!.entry.type]}${skipped ? ` with ${plural(skipped, 'entry', 'entries')} in it` : ''}`);
      continue;
    }
    await entries.next();
    const path = listed!.path;
    if (disk!.error) {
      problem(path, `cannot read it on disk: ${show(disk!.error)}${notCompared(listed!.entry.type === 'd' ? await skipInside(path) : 0)}`);
      tree.next(false);
      continue;
    }
    const found = disk!.described!.entry;
    const differences = compareEntry(found, listed!.entry, listed!.version, path === '.', show);
    const descend = found.type === 'd' && listed!.entry.type === 'd';
    if (!descend && listed!.entry.type === 'd') differences[0] += notCompared(await skipInside(path));
    if (differences.length) problem(path, differences.join('; '));
    else if (found.type === 'f' && listed!.entry.sha256) {
      verdict.regularFiles += 1;
      if (options.data || (options.sample !== null && options.random() < options.sample / 100)) {
        await compareContent(disk!.abs, path, listed!.entry.sha256, options.signal, verdict, problem);
      }
    }
    const unlisted = tree.next(descend);
    if (unlisted) problem(path, `cannot list the directory: ${unlisted}${notCompared(await skipInside(path))}`);
  }
  if (entries.error) problem(null, `the manifest cannot be read to its end: ${entries.error}`);
  return verdict;
}

// What differs between an entry on disk and its manifest line, in words; [] when nothing does.
// The top directory's mode and owner are the receiver's (it makes it 0700), a directory's size is
// the file system's; device numbers and ACL/xattr flags are compared where the manifest has them.
export function compareEntry(found: Entry, listed: Entry, version: number, top: boolean, showPath: ShowPath): string[] {
  if (found.type !== listed.type) return [`a ${TYPE_NAMES[found.type]} on disk, the manifest lists a ${TYPE_NAMES[listed.type]}`];
  const out: string[] = [];
  if (!top && found.mode !== listed.mode) out.push(`mode ${found.mode.toString(8)} (manifest ${listed.mode.toString(8)})`);
  if (!top && (found.uid !== listed.uid || found.gid !== listed.gid)) out.push(`owner ${found.uid}:${found.gid} (manifest ${listed.uid}:${listed.gid})`);
  if (found.type !== 'd' && found.size !== listed.size) out.push(`size ${found.size} (manifest ${listed.size})`);
  if (found.mtimeNs !== listed.mtimeNs) out.push(`mtime ${isoNs(found.mtimeNs)} (manifest ${isoNs(listed.mtimeNs)})`);
  if (found.type === 'l' && found.target !== listed.target) out.push(`link target ${showPath(found.target)} (manifest ${showPath(listed.target)})`);
  if (version >= 2 && String(found.rdev) !== String(listed.rdev)) out.push(`device ${found.rdev?.join(',') ?? '-'} (manifest ${listed.rdev?.join(',') ?? '-'})`);
  if (listed.flags !== null && found.flags !== listed.flags) out.push(`ACL/xattr flags ${found.flags} (manifest ${listed.flags})`);
  return out;
}

// Rereads one regular file and compares its hash; a file that is no longer a regular file on
// disk (a fifo or device disguised by a planted %stat) is named, never opened.
async function compareContent(abs: string, path: string, expected: string, signal: AbortSignal, verdict: SnapshotVerdict, problem: Report): Promise<void> {
  try {
    const { sha256, bytes } = await fileSha256(Buffer.from(abs, 'latin1'), signal);
    verdict.read.files += 1;
    verdict.read.bytes += bytes;
    if (sha256 !== expected) problem(path, `content differs (sha256 ${sha256.slice(0, 16)}…, manifest ${expected.slice(0, 16)}…)`);
  } catch (error) {
    if (signal.aborted) throw error;
    if (error instanceof NotRegularFile) problem(path, `not read: it is a ${error.what} on disk, not the regular file its metadata claims`);
    else problem(path, `cannot reread it: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
  }
}

// Nanoseconds since the epoch as an ISO time with nine decimals (what a person compares).
function isoNs(ns: bigint): string {
  let whole = ns / 1_000_000_000n;
  if (ns < 0n && ns % 1_000_000_000n !== 0n) whole -= 1n;
  const fraction = (ns - whole * 1_000_000_000n).toString().padStart(9, '0');
  const date = new Date(Number(whole) * 1000);
  return Number.isNaN(date.getTime()) ? `${ns} ns` : `${date.toISOString().slice(0, 19)}.${fraction}Z`;
}

/** The manifest one entry ahead; a read error ends it (kept in `error`), a stop is thrown. */
class ManifestCursor {
  current: StreamedEntry | null = null;
  error: string | null = null;

  constructor(
    private readonly stream: AsyncGenerator<StreamedEntry>,
    private readonly signal: AbortSignal,
  ) {}

  async next(): Promise<void> {
    if (this.error !== null) return;
    try {
      const step = await this.stream.next();
      this.current = step.done ? null : step.value;
    } catch (error) {
      if (this.signal.aborted) throw error;
      this.current = null;
      this.error = error instanceof Error ? error.message : String(error);
    }
  }
}
