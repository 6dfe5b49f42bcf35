// `ssh-r-sync-admin verify ROOT [NAME]`: compares stored backups with their manifests — what is
// missing, extra or changed — and with --data or --sample rereads files and compares their
// SHA-256. One line per problem, a summary per backup, the result kept beside each backup
// (verify.json) for `status` and the client's `snapshots`.
import { randomBytes } from 'node:crypto';
import { Command, InvalidArgumentError } from 'commander';
import {
  FIRST_PROBLEMS, SshRSyncError, UsageError, createLogger, oneLine, openStoredSnapshot, readDoneMark, storedSnapshots, writeVerifyRecord,
  type StoredSnapshot, type VerifyRecord,
} from '@ssh-r-sync/core/internal';
import { ADMIN_PREFIX, backupRoot, becomeOwnerOf, hostNames, subCommand, type ExitCodeHolder } from './admin-shared.js';
import { onSignals } from './common.js';
import { loadManifestModule, type ManifestModule } from './manifest-module.js';
import { verifySnapshot, type SnapshotVerdict } from './verify-snapshot.js';
import { JSON_SCHEMA, formatBytes, plural } from './format.js';
import { offsiteCheck } from './admin-offsite.js';

interface VerifyOptions {
  data?: boolean;
  sample?: number;
  snapshot: string;
  json?: boolean;
  offsite?: boolean;
  config?: string;
}

/** One backup, as `verify --json` prints it. */
export interface VerifiedSnapshot {
  host: string;
  /** The store kind: 'mirror', 'snapshots' (hard links), 'btrfs', … */
  kind: string;
  /** The snapshot id; null for a mirror. */
  snapshot: string | null;
  manifestVersion: number | null;
  checked: number;
  /** Regular files the manifest has a hash for, compared on disk. */
  regularFiles: number;
  read: { files: number; bytes: number };
  problems: number;
  ok: boolean;
  /** The problem lines, at most MAX_JSON_LINES of them (`problems` counts them all). */
  lines: string[];
  notes: string[];
  /** Whether verify.json was written (not when the backup changed while it was read). */
  recorded: boolean;
}

/** Problem lines kept per backup for --json: a wiped tree of 200 000 files must not fill memory. */
const MAX_JSON_LINES = 10_000;
const SIGNAL_EXIT: Record<string, number> = { SIGHUP: 129, SIGINT: 130, SIGTERM: 143 };

// The `verify` sub-command.
export function verifyCommand(result: ExitCodeHolder): Command {
  return subCommand(new Command('verify'))
    .usage('[options] BACKUP_ROOT [NAME]')
    .summary("compare backups with their manifests (and with --data/--sample, files' SHA-256); exit 1 on any difference")
    .description(
      "Compare each host's newest complete backup (or --snapshot ID, or all) with the manifest written when it was made: " +
        'entries missing or extra, and changed type, mode, owner, size, mtime, link target, device numbers or ACL/xattr flags, ' +
        'as the client had them in every storage mode. --data also rereads every regular file and compares its SHA-256 with ' +
        "the manifest's; --sample PCT rereads a random share of them. One line per problem on stdout, then a summary line per " +
        "backup; the result is kept beside the backup (verify.json) and shown by `status`.",
    )
    .argument('<BACKUP_ROOT>', 'directory that holds one sub-directory per host')
    .argument('[NAME]', 'only this host (default: every host under BACKUP_ROOT)')
    .option('--data', "reread every regular file and compare its SHA-256 with the manifest's")
    .option('--sample <PCT>', 'reread each regular file with probability PCT/100 (0 < PCT <= 100), e.g. 5 for a weekly check', percentage)
    .option('--snapshot <ID>', "which backup: a snapshot id (needs NAME), 'latest' (the newest complete one) or 'all'", 'latest')
    .option('--json', 'print one JSON object on stdout: { root, at, data, sample, snapshot, ok, snapshots: [...], skipped: [...] }')
    .option('--offsite', "instead, check the off-site restic repositories of the receiver's config (plugin-restic): restic check, with --sample PCT rereading that share of their data")
    .option('--config <FILE>', "with --offsite: the receiver's config that names the repositories")
    .addHelpText(
      'after',
      '\nProblem lines read "HOST SNAPSHOT: PATH: what", for example:\n' +
        '  laptop 2026-11-22T024512Z: etc/passwd: content differs (sha256 3f1c…, manifest 9a07…)\n' +
        '  laptop 2026-11-22T024512Z: home/ann/notes: missing: the manifest lists a regular file\n' +
        '  laptop 2026-11-22T024512Z: usr/bin/sudo: mode 755 (manifest 4755)\n' +
        'A mirror host\'s backup is named "mirror". Paths are escaped as in manifest.tsv (\\n, \\t, \\\\, \\xHH for bytes\n' +
        'that are not UTF-8). Without --data or --sample only metadata is compared; a manifest of format 1 or 2 has no\n' +
        'content hashes (said once; not a problem). The sample draws each file on its own from the system\'s\n' +
        'cryptographic random source; the summary says how many files and bytes were read. Each verify of a backup\n' +
        "replaces its verify.json (in its .meta directory, or ROOT/.ssh-r-sync/mirror/NAME/); a verify stopped by a\n" +
        'signal, or of a backup that changed while it was read, records nothing. See docs/verify.md for what it proves.\n' +
        '\nExamples:\n' +
        '  ssh-r-sync-admin verify /srv/backup                          # every host\'s newest backup, metadata only\n' +
        '  ssh-r-sync-admin verify --data /srv/backup laptop            # laptop\'s newest backup, every file reread\n' +
        '  ssh-r-sync-admin verify --sample 5 --snapshot all /srv/backup laptop\n' +
        '  ssh-r-sync-admin verify --snapshot 2026-11-22T024512Z --json /srv/backup laptop\n' +
        '\nRun as root over a BACKUP_ROOT that another account owns (a non-root receiver\'s), it reads the backups and writes\n' +
        'their verify.json as that account.\n' +
        '\nExit codes: 0 every backup matches its manifest, 1 a problem was found (or a backup could not be read, or there\n' +
        'was nothing to verify), 2 usage error, 130/143/129 stopped by SIGINT/SIGTERM/SIGHUP.',
    )
    .action(async (root: string, name: string | undefined, options: VerifyOptions) => {
      if (options.offsite) {
        if (options.data || options.json || name !== undefined || options.snapshot !== 'latest') throw new UsageError('--offsite checks whole repositories: give only --sample PCT and --config');
        await backupRoot(root);
        result.code = await offsiteCheck({ config: options.config, sample: options.sample });
        return;
      }
      result.code = await verify(root, name, options);
    });
}

// Commander parser: a percentage above 0 and at most 100.
function percentage(value: string): number {
  const number = Number(value);
  if (!/^\s*\d*\.?\d+\s*$/.test(value) || !(number > 0 && number <= 100)) throw new InvalidArgumentError('expected a percentage above 0 and at most 100, e.g. 5 or 0.5');
  return number;
}

async function verify(rootArgument: string, name: string | undefined, options: VerifyOptions): Promise<number> {
  if (options.data && options.sample !== undefined) throw new UsageError('give --data (every file) or --sample PCT (a share of them), not both');
  const spec = options.snapshot;
  if (spec !== 'latest' && spec !== 'all' && name === undefined) throw new UsageError(`--snapshot ${JSON.stringify(spec.slice(0, 80))} names one snapshot: give the host's NAME too`);
  const root = await backupRoot(rootArgument);
  // Root (the weekly unit) over a non-root receiver's root reads it and writes each verify.json as its account.
  becomeOwnerOf(root, createLogger({ prefix: ADMIN_PREFIX }));
  const names = await hostNames(root, name === undefined ? [] : [name]);
  const manifest = await loadManifestModule();
  const at = new Date();
  const controller = new AbortController();
  let stoppedBy: string | null = null;
  const stopSignals = onSignals(
    (signal) => {
      stoppedBy = signal;
      controller.abort(new SshRSyncError('EINTERNAL', `stopped by ${signal}`));
    },
    (signal) => process.exit(SIGNAL_EXIT[signal] ?? 130),
  );
  const verified: VerifiedSnapshot[] = [];
  const skipped: { host: string; why: string }[] = [];
  const random = randomSource();
  let current = '';
  try {
    for (const host of names) {
      const snapshots = await selectSnapshots(root, host, spec, name !== undefined);
      if (!snapshots.length) {
        const why = 'no complete backup to verify';
        skipped.push({ host, why });
        if (!options.json) process.stderr.write(`ssh-r-sync-admin: ${host}: ${why}\n`);
        continue;
      }
      for (const snapshot of snapshots) {
        current = label(snapshot);
        verified.push(await verifyOne(snapshot, manifest, options, controller.signal, random));
      }
    }
  } catch (error) {
    if (!controller.signal.aborted) throw error;
  } finally {
    stopSignals();
  }
  const ok = !stoppedBy && verified.length > 0 && verified.every((v) => v.ok) && !(name !== undefined && skipped.length);
  if (options.json) {
    const sample = options.sample ?? null;
    process.stdout.write(`${JSON.stringify({ schema: JSON_SCHEMA, root, at: at.toISOString(), data: Boolean(options.data), sample, snapshot: spec, ok, stoppedBy, snapshots: verified, skipped })}\n`);
  }
  if (stoppedBy) {
    process.stderr.write(`ssh-r-sync-admin: verify stopped by ${stoppedBy}: ${current || 'nothing'} was not recorded (an earlier verify.json, if any, stands)\n`);
    return SIGNAL_EXIT[stoppedBy] ?? 130;
  }
  if (!names.length) process.stderr.write(`ssh-r-sync-admin: no host directories under ${root}: is it the right directory, and is its disk mounted?\n`);
  else if (!verified.length) process.stderr.write(`ssh-r-sync-admin: nothing verified: no host under ${root} has a complete backup\n`);
  return ok ? 0 : 1;
}

// The backups `spec` names of one host: its newest complete one, all, or one id (a usage error
// naming what exists when there is no such snapshot).
async function selectSnapshots(root: string, host: string, spec: string, named: boolean): Promise<StoredSnapshot[]> {
  if (spec !== 'latest' && spec !== 'all') return [await openStoredSnapshot(root, host, spec)];
  let all: StoredSnapshot[];
  try {
    all = await storedSnapshots(root, host);
  } catch (error) {
    // A directory under ROOT that is not a host (or leads out of it) is skipped unless named.
    if (!named && error instanceof SshRSyncError && error.code === 'EUSAGE') return [];
    throw error;
  }
  if (spec === 'all') return all;
  const newest = all.findLast((snapshot) => !snapshot.future);
  return newest ? [newest] : [];
}

// Verifies one backup, prints its problems and summary, and records the result beside it.
async function verifyOne(snapshot: StoredSnapshot, manifest: ManifestModule, options: VerifyOptions, signal: AbortSignal, random: () => number): Promise<VerifiedSnapshot> {
  const name = label(snapshot);
  const lines: string[] = [];
  let problems = 0;
  const report = (path: string | null, what: string) => {
    const line = `${name}: ${path === null ? '' : `${path}: `}${what}`;
    problems += 1;
    if (lines.length < MAX_JSON_LINES) lines.push(line);
    if (!options.json) process.stdout.write(`${line}\n`);
  };
  let verdict: SnapshotVerdict;
  try {
    verdict = await verifySnapshot(snapshot, manifest, { data: Boolean(options.data), sample: options.sample ?? null, signal, random }, report);
  } catch (error) {
    if (signal.aborted) throw error;
    report(null, `cannot be verified: ${oneLine(error)}`);
    verdict = { checked: 0, regularFiles: 0, read: { files: 0, bytes: 0 }, problems: 0, manifestVersion: null, notes: [] };
  }
  if (!options.json) for (const note of verdict.notes) process.stderr.write(`ssh-r-sync-admin: ${name}: ${note}\n`);
  // A mirror rewritten, or a snapshot pruned, while it was read: what was compared is no longer that backup.
  const done = await readDoneMark(snapshot.paths);
  let recorded = false;
  if (!done || done.completedAt !== snapshot.done.completedAt) {
    report(null, 'the backup changed while it was verified (a backup or prune ran): this result is not recorded');
  } else {
    const record: VerifyRecord = {
      version: 1,
      at: new Date().toISOString(),
      data: Boolean(options.data),
      sample: options.sample ?? null,
      checked: verdict.checked,
      read: verdict.read,
      problems,
      ok: problems === 0,
      first: lines.slice(0, FIRST_PROBLEMS),
      completedAt: snapshot.done.completedAt,
      manifestVersion: verdict.manifestVersion ?? undefined,
    };
    try {
      await writeVerifyRecord(snapshot.paths, record);
      recorded = true;
    } catch (error) {
      report(null, `the result could not be recorded: ${oneLine(error)}`);
    }
  }
  const result: VerifiedSnapshot = {
    host: snapshot.host,
    kind: snapshot.kind,
    snapshot: snapshot.id || null,
    manifestVersion: verdict.manifestVersion,
    checked: verdict.checked,
    regularFiles: verdict.regularFiles,
    read: verdict.read,
    problems,
    ok: problems === 0,
    lines,
    notes: verdict.notes,
    recorded,
  };
  if (!options.json) process.stdout.write(`${summary(name, result, options)}\n`);
  return result;
}

// "laptop 2026-11-22T024512Z: ok: 1204 entries checked, 310 of 310 files (12.5 MiB) reread"
function summary(name: string, result: VerifiedSnapshot, options: VerifyOptions): string {
  const outcome = result.ok ? 'ok' : plural(result.problems, 'problem');
  let text = `${name}: ${outcome}: ${plural(result.checked, 'entry', 'entries')} checked`;
  if (result.manifestVersion !== null && result.manifestVersion < 3 && (options.data || options.sample !== undefined)) return `${text}, metadata only (manifest version ${result.manifestVersion})`;
  const reread = `${result.read.files} of ${plural(result.regularFiles, 'regular file')} reread (${formatBytes(result.read.bytes)})`;
  if (options.data) text += `, ${reread}`;
  else if (options.sample !== undefined) text += `, sample ${options.sample}%: ${reread}`;
  else text += ', metadata only';
  return text;
}

function label(snapshot: StoredSnapshot): string {
  return `${snapshot.host} ${snapshot.kind === 'mirror' ? 'mirror' : snapshot.id}`;
}

// Uniform numbers in [0, 1) from the system's cryptographic random source, drawn in blocks.
function randomSource(): () => number {
  let block = Buffer.alloc(0);
  let offset = 0;
  return () => {
    if (offset >= block.length) {
      block = randomBytes(4096);
      offset = 0;
    }
    const value = block.readUInt32BE(offset) / 2 ** 32;
    offset += 4;
    return value;
  };
}
