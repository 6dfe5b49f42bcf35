// `ssh-r-sync-admin versions ROOT NAME PATH`: the distinct versions of one path across a host's
// complete backups, oldest first, read from their manifests (one streamed pass each in which only
// the path's own line is parsed and kept), never from the trees.
import { Command } from 'commander';
import type { Entry, FormatVersion } from '@ssh-r-sync/plugin-manifest';
import { ADMIN_PREFIX, backupRoot, columns, subCommand, type ExitCodeHolder } from './admin-shared.js';
import { entryChanges } from './entry-changes.js';
import { findEntry } from './manifest-lookup.js';
import {
  displayName, entryJson, isoNs, notUtf8Hint, pathArgument, searchableSnapshots, shellWord, typeWord,
  type EntryJson, type Searchable,
} from './history-shared.js';
import { JSON_SCHEMA, plural } from './format.js';

interface VersionsOptions {
  json?: boolean;
  escaped?: boolean;
}

/** A run of consecutive searched backups holding the same entry (one version), as --json prints it. */
export interface VersionJson extends EntryJson {
  version: number;
  /** What tells this version from the others: the content hash, or (a manifest before format 3) size and mtime only. */
  identity: 'sha256' | 'size+mtime' | 'metadata';
  first: string;
  last: string;
  /** Backups in the run. */
  snapshots: number;
  /** An earlier version with the very same entry (the path went away, or changed, and came back as it was); null if none. */
  sameAs: number | null;
  restore: string;
}

/** A run of searched backups without the path. */
export interface AbsentJson {
  first: string;
  last: string;
  snapshots: number;
}

interface Run {
  entry: Entry | null;
  version: FormatVersion;
  first: Searchable;
  last: Searchable;
  count: number;
  /** Each version's number, or 0 for a run without the path. */
  number: number;
}

// The `versions` sub-command.
export function versionsCommand(result: ExitCodeHolder): Command {
  return subCommand(new Command('versions'))
    .usage('[options] BACKUP_ROOT NAME PATH')
    .summary("the distinct versions of a path across a host's backups: hash, size, mtime, first and last snapshot")
    .description(
      "List the distinct versions of PATH across host NAME's complete backups, oldest first: for each its type, " +
        'size, mtime, mode, owner, content hash (or link target, device numbers), and the first and last snapshot that holds ' +
        'it, with the restore command for it. Read from the backups\' manifests, one pass each, without walking the trees. ' +
        'A new version starts wherever `diff` between two consecutive backups would report PATH changed (content, type, ' +
        'size, mode, owner, mtime, target, devices, ACL/xattr flags); backups without PATH are shown as "gone" runs, and a ' +
        'version that comes back as it was is listed again, marked "same as" the earlier one. A directory has versions of ' +
        'its own metadata (its mtime moves when names in it come and go); `diff` shows what changed inside it.',
    )
    .argument('<BACKUP_ROOT>', 'directory that holds one sub-directory per host')
    .argument('<NAME>', 'the host')
    .argument('<PATH>', "relative to the backed-up top, as the manifest lists it: etc/hosts, ./etc/hosts; '.' is the top itself")
    .option('--escaped', 'PATH is spelt as the output spells names: \\n newline, \\t tab, \\\\ backslash, \\xHH any byte (for names that are not UTF-8)')
    .option('--json', 'print one JSON object on stdout: { root, host, path, searched, unsearched, versions: [...], absent: [...] }')
    .addHelpText(
      'after',
      '\nOnly backups with a manifest (@ssh-r-sync/plugin-manifest) can be searched; the others are named on stderr.\n' +
        'Backups made before content hashes (manifest format 1 and 2) tell a file\'s versions by size and mtime only\n' +
        '(marked "size+mtime"). Names are printed escaped as in the manifest: one line each, whatever their bytes.\n' +
        '\nExamples:\n' +
        '  ssh-r-sync-admin versions /srv/backup laptop etc/hosts\n' +
        '  ssh-r-sync-admin versions /srv/backup laptop home/ann/report.odt --json\n' +
        "  ssh-r-sync-admin versions /srv/backup laptop $'notes\\nold'          # a newline in the name (bash)\n" +
        "  ssh-r-sync-admin versions --escaped /srv/backup laptop 'caf\\xe9.txt'   # a Latin-1 name, not UTF-8\n" +
        '  ssh-r-sync-admin versions /srv/backup laptop -- -rf                  # a name that starts with a dash\n' +
        '\nExit codes: 0 versions found, 1 PATH is in none of the backups searched (or a manifest is unreadable),\n' +
        '2 usage error (an absolute PATH, an unknown host).',
    )
    .action(async (root: string, name: string, path: string, options: VersionsOptions) => {
      result.code = await versions(root, name, path, options);
    });
}

async function versions(rootArgument: string, name: string, pathArg: string, options: VersionsOptions): Promise<number> {
  const path = pathArgument(pathArg, Boolean(options.escaped));
  const root = await backupRoot(rootArgument);
  const all = await searchableSnapshots(root, name);
  const searched = all.filter((s) => s.hasManifest);
  const unsearched = all.filter((s) => !s.hasManifest).map((s) => s.label);
  const runs: Run[] = [];
  let numbered = 0;
  for (const backup of searched) {
    const found = await lookUp(backup, path);
    const last = runs.at(-1);
    if (last && sameVersion(last, found)) {
      last.last = backup;
      last.count += 1;
      // A newer manifest format records more (a hash): compare what follows with that.
      if (found && found.version > last.version) [last.entry, last.version] = [found.entry, found.version];
      continue;
    }
    runs.push({ entry: found?.entry ?? null, version: found?.version ?? 3, first: backup, last: backup, count: 1, number: found ? ++numbered : 0 });
  }
  // Leading backups without the path are not a "gone" run: it was not there yet.
  while (runs[0] && runs[0].entry === null) runs.shift();
  const shown = displayName(path);
  const versionsJson = runs.filter((run) => run.entry).map((run) => versionJson(run, runs, root, name, path));
  const absent: AbsentJson[] = runs.filter((run) => !run.entry).map((run) => ({ first: run.first.label, last: run.last.label, snapshots: run.count }));
  if (unsearched.length) {
    process.stderr.write(`${ADMIN_PREFIX}: ${name}: ${plural(unsearched.length, 'backup')} without a manifest not searched: ${unsearched.slice(0, 5).join(', ')}${unsearched.length > 5 ? ', …' : ''}\n`);
  }
  if (options.json) {
    process.stdout.write(`${JSON.stringify({ schema: JSON_SCHEMA, root, host: name, path: shown, searched: searched.length, unsearched, versions: versionsJson, absent })}\n`);
  } else if (versionsJson.length) {
    process.stdout.write(describe(name, shown, runs, versionsJson, searched.length));
  }
  if (!versionsJson.length) {
    const none = all.length === 0 ? ' (it has no complete backup yet)' : '';
    process.stderr.write(
      `${ADMIN_PREFIX}: ${name}: ${shown} is in none of the ${plural(searched.length, 'backup')} searched${none}: PATH is relative to the backed-up top, as the manifest lists it${notUtf8Hint(pathArg, Boolean(options.escaped))}\n`,
    );
    return 1;
  }
  return 0;
}

// PATH's entry in one backup's manifest, or null.
async function lookUp(backup: Searchable, path: string): Promise<{ entry: Entry; version: FormatVersion } | null> {
  try {
    return await findEntry(backup.snapshot.paths.manifest, path);
  } catch (error) {
    throw new Error(`cannot read the manifest of ${backup.label}: ${(error as Error).message}`, { cause: error });
  }
}

function sameVersion(run: Run, found: { entry: Entry; version: FormatVersion } | null): boolean {
  if (!run.entry || !found) return !run.entry && !found;
  return entryChanges(run.entry, found.entry, run.version, found.version).length === 0;
}

function versionJson(run: Run, runs: Run[], root: string, name: string, path: string): VersionJson {
  const entry = run.entry!;
  const earlier = runs.find((other) => other.number && other.number < run.number && entryChanges(other.entry!, entry, other.version, run.version).length === 0);
  const snapshot = run.last.snapshot.kind === 'mirror' ? '' : ` --snapshot ${run.last.label}`;
  return {
    version: run.number,
    ...entryJson(entry),
    identity: entry.type !== 'f' ? 'metadata' : entry.sha256 ? 'sha256' : 'size+mtime',
    first: run.first.label,
    last: run.last.label,
    snapshots: run.count,
    sameAs: earlier?.number ?? null,
    restore: `${ADMIN_PREFIX} restore${snapshot} ${restorePathWords(path)} ${shellWord(Buffer.from(root).toString('latin1'))} ${name} DEST`,
  };
}

// The versions for people: a table, oldest first, gone runs in between, then how to restore each.
function describe(name: string, shown: string, runs: Run[], versions: VersionJson[], searched: number): string {
  const present = runs.filter((run) => run.entry).reduce((sum, run) => sum + run.count, 0);
  const kind = runs.find((run) => run.entry)!.entry!.type === 'd' ? ' (a directory: versions of its own metadata; `diff` shows what changed inside)' : '';
  const head = `${name}: ${shown}: ${plural(versions.length, 'version')} in ${present} of ${plural(searched, 'backup')} searched${kind}\n`;
  const rows = [['#', 'first', 'last', 'backups', 'type', 'size', 'mode', 'owner', 'mtime', 'content']];
  let v = 0;
  for (const run of runs) {
    if (!run.entry) {
      rows.push(['-', run.first.label, run.last.label, String(run.count), 'gone', '', '', '', '', '']);
      continue;
    }
    const version = versions[v++]!;
    rows.push([
      String(version.version),
      version.first,
      version.last,
      String(version.snapshots),
      typeWord(run.entry.type),
      run.entry.type === 'd' ? '-' : String(run.entry.size),
      version.mode,
      `${version.uid}:${version.gid}`,
      isoNs(run.entry.mtimeNs),
      content(version) + (version.sameAs ? ` (same as ${version.sameAs})` : ''),
    ]);
  }
  const hints = versions.map((version) => `  ${version.version}: ${version.restore}\n`).join('');
  return `${head}${columns(rows)}\nRestore a version (DEST: a directory of your choice):\n${hints}`;
}

function content(version: VersionJson): string {
  if (version.type === 'f') return version.sha256 ?? 'no hash (manifest before format 3): size+mtime';
  if (version.type === 'l') return `-> ${version.target}`;
  if (version.rdev) return `device ${version.rdev}`;
  return '-';
}

// `--path P` for the restore hint. A name that a shell can only spell as $'…' bytes (not UTF-8,
// control characters) cannot reach restore through argv, which node decodes as UTF-8: it is given
// escaped, as this command prints it, with --escaped.
function restorePathWords(path: string): string {
  const word = shellWord(path);
  if (!word.startsWith("$'")) return `--path ${word}`;
  return `--escaped --path '${displayName(path).replace(/'/g, `'\\''`)}'`;
}
