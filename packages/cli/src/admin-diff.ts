// `ssh-r-sync-admin diff ROOT NAME A B`: the paths added, removed and changed between two of a
// host's backups, from their manifests read side by side in one pass (a merge: two entries in
// memory at a time, whatever the manifests' size), printed as they are found.
import { lstat } from 'node:fs/promises';
import { Command } from 'commander';
import { SshRSyncError, openStoredSnapshot, storedSnapshots, type StoredSnapshot } from '@ssh-r-sync/core/internal';
import type { Entry } from '@ssh-r-sync/plugin-manifest';
import { backupRoot, subCommand, type ExitCodeHolder } from './admin-shared.js';
import { entryChanges, type Change } from './entry-changes.js';
import { mergeManifests } from './manifest-merge.js';
import { Output, displayName, entryJson, formatBytes, typeWord, type EntryJson } from './history-shared.js';
import { JSON_SCHEMA } from './format.js';

interface DiffOptions {
  json?: boolean;
}

/** One added, removed or changed path, as --json prints it. */
export interface ChangeJson {
  change: 'A' | 'D' | 'M';
  path: string;
  /** What changed (M only): type, content, size, target, rdev, mode, owner, mtime, flags. */
  changes: Change[];
  before: EntryJson | null;
  after: EntryJson | null;
}

/** The counts `diff` ends with. Bytes are regular files' sizes: added files and the new content of
 *  changed ones are added, removed files and the old content of changed ones removed. */
export interface DiffSummary {
  added: number;
  removed: number;
  changed: number;
  unchanged: number;
  bytesAdded: number;
  bytesRemoved: number;
}

// The `diff` sub-command.
export function diffCommand(result: ExitCodeHolder): Command {
  return subCommand(new Command('diff'))
    .usage('[options] BACKUP_ROOT NAME A B')
    .summary('the paths added, removed and changed between two backups of a host, from their manifests')
    .description(
      "Compare two of host NAME's complete snapshots by their manifests, without walking the trees: one line per path " +
        'that was added (A), removed (D) or changed (M, with what changed: type, content, size, target, rdev, mode, owner, ' +
        'mtime, flags), in the manifests\' order (depth first, names sorted by their bytes), then a summary with counts and ' +
        "bytes. A and B are snapshot ids, 'latest' (the newest complete one) or 'previous' (the one before it). Sizes of " +
        "directories (the file system's) and symlinks (their target's length: see target) are not compared.",
    )
    .argument('<BACKUP_ROOT>', 'directory that holds one sub-directory per host')
    .argument('<NAME>', 'the host')
    .argument('<A>', "the older side: a snapshot id, 'latest' or 'previous'")
    .argument('<B>', "the newer side: a snapshot id, 'latest' or 'previous'")
    .option('--json', 'print one JSON object on stdout: { root, host, a, b, changes: [{ change, path, changes, before, after }], summary }')
    .addHelpText(
      'after',
      '\nLines read like:\n' +
        '  A etc/new.conf\n' +
        '  D tmp/old.log\n' +
        '  M etc/hosts (content, size, mtime)\n' +
        '  M bin/sh (type file -> symlink, mtime)\n' +
        '  laptop 2026-11-21T024512Z -> 2026-11-22T024510Z: 1 added, 1 removed, 2 changed, 20431 unchanged; +4.0 KiB, -1.2 KiB\n' +
        '(sizes in KiB/MiB on a terminal; exact byte counts, "+4096 bytes", in a pipe, and always in --json)\n' +
        'Names are printed escaped as in the manifest (\\n, \\t, \\\\, \\xHH): one line each, whatever their bytes.\n' +
        'A file\'s content is compared by its SHA-256; a manifest before format 3 has none, and then size and mtime\n' +
        'are all there is. A mirror host has one backup, rewritten in place: there is nothing to compare.\n' +
        '\nExamples:\n' +
        '  ssh-r-sync-admin diff /srv/backup laptop previous latest\n' +
        '  ssh-r-sync-admin diff /srv/backup laptop 2026-11-01T024512Z latest | grep "^D "\n' +
        '  ssh-r-sync-admin diff /srv/backup laptop previous latest --json\n' +
        '\nExit codes: 0 compared (with or without differences: read the summary or --json), 1 a manifest is missing\n' +
        'or unreadable, 2 usage error (an unknown snapshot, a mirror host).',
    )
    .action(async (root: string, name: string, a: string, b: string, options: DiffOptions) => {
      result.code = await diff(root, name, a, b, options);
    });
}

async function diff(rootArgument: string, name: string, specA: string, specB: string, options: DiffOptions): Promise<number> {
  const root = await backupRoot(rootArgument);
  const a = await resolveSnapshot(root, name, specA);
  const b = await resolveSnapshot(root, name, specB);
  for (const side of [a, b]) {
    if (!(await lstat(side.paths.manifest).catch(() => null))?.isFile()) {
      throw new Error(`snapshot ${side.id} of "${name}" has no manifest (made without @ssh-r-sync/plugin-manifest): diff compares manifests only`);
    }
  }
  const out = new Output();
  const summary: DiffSummary = { added: 0, removed: 0, changed: 0, unchanged: 0, bytesAdded: 0, bytesRemoved: 0 };
  let added = 0n;
  let removed = 0n;
  const side = (s: StoredSnapshot) => ({ id: s.id, date: s.date.toISOString(), mode: s.mode });
  if (options.json) await out.write(`${JSON.stringify({ schema: JSON_SCHEMA, root, host: name, a: side(a), b: side(b) }).slice(0, -1)},"changes":[`);
  let first = true;
  try {
    for await (const item of mergeManifests(a.paths.manifest, b.paths.manifest)) {
      if (out.closed) break; // the reader has gone (`| head`): nothing more to say
      let change: ChangeJson['change'];
      let changes: Change[] = [];
      if (!item.b) {
        change = 'D';
        summary.removed += 1;
        removed += fileSize(item.a);
      } else if (!item.a) {
        change = 'A';
        summary.added += 1;
        added += fileSize(item.b);
      } else {
        changes = entryChanges(item.a, item.b, item.versionA, item.versionB);
        if (!changes.length) {
          summary.unchanged += 1;
          continue;
        }
        change = 'M';
        summary.changed += 1;
        if (changes.includes('content') || changes.includes('size') || changes.includes('type')) {
          added += fileSize(item.b);
          removed += fileSize(item.a);
        }
      }
      const path = displayName(item.path);
      if (options.json) {
        const record: ChangeJson = { change, path, changes, before: item.a && entryJson(item.a), after: item.b && entryJson(item.b) };
        await out.write(`${first ? '' : ','}${JSON.stringify(record)}`);
        first = false;
      } else {
        await out.write(`${change} ${path}${changes.length ? ` (${changes.map((c) => words(c, item.a!, item.b!)).join(', ')})` : ''}\n`);
      }
    }
  } catch (error) {
    throw new Error(`cannot compare ${a.id} and ${b.id} of "${name}": ${(error as Error).message}`, { cause: error });
  }
  summary.bytesAdded = Number(added);
  summary.bytesRemoved = Number(removed);
  if (options.json) {
    await out.write(`],"summary":${JSON.stringify(summary)}}\n`);
  } else {
    await out.write(
      `${name} ${a.id} -> ${b.id}: ${summary.added} added, ${summary.removed} removed, ${summary.changed} changed, ${summary.unchanged} unchanged; ` +
        `+${formatBytes(added)}, -${formatBytes(removed)}\n`,
    );
  }
  await out.flush();
  return 0;
}

// A side of the comparison: an id, 'latest', or 'previous' (the complete snapshot before latest).
async function resolveSnapshot(root: string, name: string, spec: string): Promise<StoredSnapshot> {
  const snapshots = await storedSnapshots(root, name);
  if (snapshots[0]?.kind === 'mirror') {
    throw new SshRSyncError(
      'EUSAGE',
      `host "${name}" is a mirror (${snapshots[0].paths.tree} is rewritten in place): it has one backup, so there is nothing to diff; snapshots come with @ssh-r-sync/plugin-link-dest`,
    );
  }
  if (spec !== 'previous') return openStoredSnapshot(root, name, spec);
  const current = snapshots.filter((snapshot) => !snapshot.future);
  if (current.length < 2) {
    throw new SshRSyncError('EUSAGE', `host "${name}" has ${current.length ? `one complete snapshot (${current[0]!.id})` : 'no complete snapshot'}: there is no previous one`);
  }
  return current.at(-2)!;
}

function fileSize(entry: Entry | null): bigint {
  return entry?.type === 'f' ? entry.size : 0n;
}

function words(change: Change, a: Entry, b: Entry): string {
  return change === 'type' ? `type ${typeWord(a.type)} -> ${typeWord(b.type)}` : change;
}
