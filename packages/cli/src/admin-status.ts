// `ssh-r-sync-admin status ROOT`: per host, the newest complete backup and its age, how many
// snapshots are complete and incomplete, the last failure and the last verify. Exits 1 when a host has no
// complete backup or (with --max-age) its newest one is too old, so that cron or a monitoring
// system notices silence, not only errors.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Command } from 'commander';
import { MIRROR_KIND, newestComplete as newestOf, oneLine, openHostStore, readHostRecord, readRunLog, readVerifyRecord, type VerifyRecord } from '@ssh-r-sync/core/internal';
import { backupRoot, columns, duration, formatAge, hostDir, hostNames, isoTime, subCommand, type ExitCodeHolder } from './admin-shared.js';
import { JSON_SCHEMA, plural } from './format.js';

interface StatusOptions {
  json?: boolean;
  maxAge?: number;
  now?: Date;
}

/** One host, as `status --json` prints it. */
export interface HostStatus {
  name: string;
  /** `snapshots` (plugin-link-dest), `mirror` (a plain copy in ROOT/NAME) or `none` (nothing complete found). */
  kind: 'snapshots' | 'mirror' | 'none';
  /** How the host's snapshots are stored: 'snapshots' (hard links, plugin-link-dest), 'btrfs', …;
   *  'mirror' for a mirror; null when nothing was stored yet. */
  store: string | null;
  newestComplete: {
    /** The snapshot id; null for a mirror. */
    id: string | null;
    /** When that backup started (what the age is measured from). */
    startedAt: string;
    completedAt: string | null;
    ageSeconds: number;
  } | null;
  complete: number;
  incomplete: number;
  lastFailure: { at: string; source: 'snapshot' | 'runs.log' | 'record'; detail: string } | null;
  /** Needs attention: no complete backup, or the newest is older than --max-age. */
  stale: boolean;
  /** Why it is stale, in words; null when fine. */
  problem: string | null;
  /** What needs a look but is not stale: snapshots dated in the future, failed work after the last backup. */
  warnings: string[];
  /** When a run last succeeded, from the receiver's run log and host record; null: never (or before either existed). */
  lastSuccess: string | null;
  /** The last `ssh-r-sync-admin verify` of the newest complete backup; null: never verified. */
  lastVerify: { at: string; data: boolean; sample: number | null; ok: boolean; problems: number; checked: number } | null;
}

// The `status` sub-command.
export function statusCommand(result: ExitCodeHolder): Command {
  return subCommand(new Command('status'))
    .usage('[options] BACKUP_ROOT [NAME...]')
    .summary('each host: newest complete backup, its age, counts, last failure, last verify; exit 1 when one is stale')
    .description(
      'Show each host under BACKUP_ROOT (or only the NAMEs given): its newest complete backup and how old it is, ' +
        'how many complete and incomplete snapshots it has, and its last failure. Exits 1 when a host has no complete ' +
        'backup, or with --max-age when its newest complete backup is older than that: run it from cron or a monitoring ' +
        'check to hear about silence, not only about errors.',
    )
    .argument('<BACKUP_ROOT>', 'directory that holds one sub-directory per host')
    .argument('[NAME...]', 'only these hosts (a host given but missing counts as having no backup)')
    .option('--max-age <DURATION>', 'a host whose newest complete backup started longer ago than this is stale (exit 1), e.g. 36h, 2d, 1w', duration)
    .option('--json', 'print one JSON object on stdout: { root, now, maxAgeSeconds, ok, hosts: [...] }')
    .option('--now <ISO_TIME>', 'measure ages from this time instead of now', isoTime)
    .addHelpText(
      'after',
      '\nA complete backup is a snapshot with its done mark (ROOT/NAME/<id>.meta/done.json), or for a plain mirror\n' +
        'the mark in ROOT/.ssh-r-sync/mirror/NAME/done.json. The last failure is the newest of: an incomplete snapshot\n' +
        'newer than the newest complete one (failed, interrupted, or still running), and the last "failure" line of\n' +
        'ROOT/.ssh-r-sync/runs.log, which the done-log hook script (hooks/done-log) writes. LAST VERIFY is the newest\n' +
        "complete backup's last `ssh-r-sync-admin verify` (data, sample PCT% or metadata; ok or its problems), or never.\n" +
        "A host without a complete backup is told apart by the receiver's run log (ssh-r-sync-admin log): it never succeeded,\n" +
        'or its last success was at a time shown (--json: lastSuccess), and its last run failed.\n' +
        '\nExamples:\n' +
        '  ssh-r-sync-admin status /srv/backup\n' +
        '  ssh-r-sync-admin status /srv/backup --max-age 36h || mail -s "stale backups" root < /dev/null\n' +
        '  ssh-r-sync-admin status /srv/backup laptop nas --json\n' +
        '\nExit codes: 0 every host has a fresh complete backup, 1 some host does not (or there is no host at all),\n' +
        '2 usage error.',
    )
    .action(async (root: string, names: string[], options: StatusOptions) => {
      result.code = await status(root, names, options);
    });
}

async function status(rootArgument: string, names: string[], options: StatusOptions): Promise<number> {
  const root = await backupRoot(rootArgument);
  const now = options.now ?? new Date();
  const failures = await runsLogFailures(root);
  // One host at a time: each reads its done marks, and all at once could run out of descriptors.
  const hosts: HostStatus[] = [];
  for (const name of await hostNames(root, names)) hosts.push(await hostStatus(root, name, now, options.maxAge, failures.get(name)));
  const ok = hosts.length > 0 && hosts.every((host) => !host.stale);
  if (options.json) {
    const maxAgeSeconds = options.maxAge === undefined ? null : options.maxAge / 1000;
    process.stdout.write(`${JSON.stringify({ schema: JSON_SCHEMA, root, now: now.toISOString(), maxAgeSeconds, ok, hosts })}\n`);
  } else {
    process.stdout.write(hosts.length ? table(hosts) : `no hosts under ${root}\n`);
  }
  if (!hosts.length) process.stderr.write(`ssh-r-sync-admin: no host directories under ${root}: is it the right directory, and is its disk mounted?\n`);
  for (const host of hosts) {
    if (host.problem) process.stderr.write(`ssh-r-sync-admin: ${host.name}: ${host.problem}\n`);
    if (host.lastFailure?.source === 'record') process.stderr.write(`ssh-r-sync-admin: ${host.name}: last run failed: ${host.lastFailure.detail}\n`);
    for (const warning of host.warnings) process.stderr.write(`ssh-r-sync-admin: ${host.name}: warning: ${warning}\n`);
  }
  return ok ? 0 : 1;
}

async function hostStatus(root: string, name: string, now: Date, maxAgeMs: number | undefined, logFailure: string | undefined): Promise<HostStatus> {
  // The receiver's record says what ROOT/NAME is: a mirror's files are the client's, whatever
  // their names, and are never read as snapshots or done marks.
  const dir = hostDir(root, name);
  const opened = await openHostStore({ root, name, dir }).catch((error: unknown) => error as Error);
  if (opened instanceof Error) return unreadable(name, oneLine(opened));
  const recorded = opened.kind;
  const isMirror = recorded === MIRROR_KIND || recorded === 'new';
  const listed = await opened.store.list(now);
  const snapshots = isMirror ? [] : listed;
  const complete = snapshots.filter((s) => s.complete);
  const newest = newestOf(snapshots);
  const warnings: string[] = [];
  const future = snapshots.filter((s) => s.future);
  if (future.length) {
    warnings.push(
      `${plural(future.length, 'snapshot')} dated in the future (${future.map((s) => s.id).join(', ')}): the server's clock went back, or they were put there; they never count as the newest`,
    );
  }
  let kind: HostStatus['kind'] = 'none';
  let newestComplete: HostStatus['newestComplete'] = null;
  let verified: VerifyRecord | null = null;
  if (newest) {
    kind = 'snapshots';
    newestComplete = { id: newest.id, startedAt: newest.date.toISOString(), completedAt: newest.done?.completedAt ?? null, ageSeconds: 0 };
    verified = await readVerifyRecord(newest.paths, newest.done);
  } else if (isMirror) {
    const mirror = listed.find((s) => s.complete && s.done);
    if (mirror?.done) {
      kind = 'mirror';
      newestComplete = { id: null, startedAt: mirror.done.startedAt, completedAt: mirror.done.completedAt, ageSeconds: 0 };
      verified = await readVerifyRecord(mirror.paths, mirror.done);
    }
  }
  const lastVerify = verified && { at: verified.at, data: verified.data, sample: verified.sample, ok: verified.ok, problems: verified.problems, checked: verified.checked };
  if (verified && !verified.ok) {
    warnings.push(`the last verify of ${newest ? newest.id : 'the mirror'} (${verified.at}) found ${plural(verified.problems, 'problem')}: \`ssh-r-sync-admin verify ${root} ${name}\` lists them`);
  }
  const record = await readHostRecord(root, name);
  for (const task of record?.afterSession?.tasks ?? []) {
    if (task.outcome !== 'ok') warnings.push(`after the backup of ${record!.afterSession!.at}, ${task.name} ${task.outcome}: ${task.error ?? ''}`.trimEnd());
  }
  // Quick runs step ids a second or two ahead of the clock (never more than the future tolerance, or
  // the snapshot would not be the newest): such an age is 0, not negative.
  if (newestComplete) newestComplete.ageSeconds = Math.max(0, Math.round((now.getTime() - Date.parse(newestComplete.startedAt)) / 1000));

  const candidates: NonNullable<HostStatus['lastFailure']>[] = [];
  const unfinished = snapshots.filter((s) => !s.complete && !s.future && (!newest || s.id > newest.id)).at(-1);
  if (unfinished) candidates.push({ at: unfinished.date.toISOString(), source: 'snapshot', detail: `incomplete snapshot ${unfinished.id} (failed, interrupted or still running)` });
  if (logFailure) candidates.push({ at: logFailure, source: 'runs.log', detail: 'a run ended as failure (runs.log)' });
  // The receiver's own words for its last run (disk full, a killed rsync, …), from the host's record.
  const last = record?.lastRun;
  if (last?.status === 'failure' && (!newestComplete || Date.parse(last.at) > Date.parse(newestComplete.completedAt ?? newestComplete.startedAt))) {
    candidates.push({ at: last.at, source: 'record', detail: last.message ?? 'the last run failed' });
  }
  // The receiver's own words, when it has them, describe the last failure best: an incomplete
  // snapshot of the same run may carry an id a second or two ahead of the clock.
  const lastFailure = candidates.find((c) => c.source === 'record') ?? candidates.sort((a, b) => Date.parse(b.at) - Date.parse(a.at))[0] ?? null;

  // The receiver's run log knows every run: with it, "nothing complete" is either "never
  // succeeded" or "succeeded at T, and what came since failed" (a failed mirror run unmarks it).
  const runs = readRunLog(root, name);
  const logged = runs.findLast((run) => run.status === 'success')?.at;
  const lastSuccess = [record?.lastSuccess, logged, last?.status === 'success' ? last.at : undefined]
    .filter((at): at is string => typeof at === 'string' && Number.isFinite(Date.parse(at)))
    .sort((a, b) => Date.parse(b) - Date.parse(a))[0] ?? null;
  const since = lastSuccess ? `; the last success was at ${lastSuccess.replace(/\.\d{3}Z$/, 'Z')} (${formatAge(now.getTime() - Date.parse(lastSuccess))} ago)` : '';
  let problem: string | null = null;
  if (!newestComplete) {
    const rewriting = kind === 'none' && recorded === MIRROR_KIND && listed.some((s) => !s.complete);
    if (!since && (runs.length || last)) problem = 'no complete backup: it never succeeded';
    else if (rewriting) problem = `no complete backup${since ? ' now' : ''} (the mirror is being rewritten, or its last run failed)${since}`;
    else problem = `${snapshots.length ? `no complete backup among ${plural(snapshots.length, 'snapshot')}` : 'no complete backup'}${since}`;
  }
  else if (maxAgeMs !== undefined && newestComplete.ageSeconds * 1000 > maxAgeMs) {
    problem = `the newest complete backup${newestComplete.id ? ` (${newestComplete.id})` : ''} is ${formatAge(newestComplete.ageSeconds * 1000)} old, more than --max-age ${formatAge(maxAgeMs)}`;
  }
  return {
    name,
    kind,
    store: recorded === 'new' ? null : recorded,
    newestComplete,
    complete: kind === 'mirror' ? 1 : complete.length,
    incomplete: snapshots.length - complete.length,
    lastFailure,
    stale: problem !== null,
    problem,
    warnings,
    lastSuccess,
    lastVerify,
  };
}

// A host whose store cannot be opened (its plugin is missing): stale, with the reason.
function unreadable(name: string, why: string): HostStatus {
  return {
    name, kind: 'none', store: null, newestComplete: null, complete: 0, incomplete: 0, lastFailure: null,
    stale: true, problem: `its snapshots cannot be read: ${why}`, warnings: [], lastSuccess: null, lastVerify: null,
  };
}

// The time of each host's last "failure" line in ROOT/.ssh-r-sync/runs.log (hooks/done-log:
// `2026-11-22T02:45:12Z NAME STATUS`); empty when there is no such file.
async function runsLogFailures(root: string): Promise<Map<string, string>> {
  const failures = new Map<string, string>();
  const text = await readFile(join(root, '.ssh-r-sync', 'runs.log'), 'utf8').catch(() => '');
  for (const line of text.split('\n')) {
    const [at, name, outcome] = line.trim().split(/\s+/);
    if (at && name && outcome === 'failure' && !Number.isNaN(Date.parse(at))) failures.set(name, at);
  }
  return failures;
}

const LAST_FAILURE_SOURCE = { snapshot: 'incomplete snapshot', 'runs.log': 'runs.log', record: 'last run failed' } as const;

// "2026-11-29T03:00:12Z sample 5% ok", "… data 3 problems", "never" (nothing complete: "-").
function verifyCell(host: HostStatus): string {
  const last = host.lastVerify;
  if (!last) return host.newestComplete ? 'never' : '-';
  const how = last.data ? 'data' : last.sample !== null ? `sample ${last.sample}%` : 'metadata';
  return `${last.at.replace(/\.\d{3}Z$/, 'Z')} ${how} ${last.ok ? 'ok' : `${last.problems} problem${last.problems === 1 ? '' : 's'}`}`;
}

function table(hosts: HostStatus[]): string {
  const rows = [['HOST', 'NEWEST COMPLETE', 'AGE', 'COMPLETE', 'INCOMPLETE', 'LAST FAILURE', 'LAST VERIFY']];
  for (const host of hosts) {
    const newest = host.newestComplete;
    rows.push([
      host.name,
      newest ? newest.id ?? `mirror, ${newest.startedAt.replace(/\.\d{3}Z$/, 'Z')}` : '-',
      newest ? formatAge(newest.ageSeconds * 1000) : '-',
      String(host.complete),
      String(host.incomplete),
      host.lastFailure ? `${host.lastFailure.at.replace(/\.\d{3}Z$/, 'Z')} ${LAST_FAILURE_SOURCE[host.lastFailure.source]}` : '-',
      verifyCell(host),
    ]);
  }
  return columns(rows);
}
