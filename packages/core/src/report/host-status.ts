// The health of a host as the receiver's own records tell it: its newest complete backup and its
// age, counts of complete and incomplete snapshots, the last failure, the last success, the last
// verify. `ssh-r-sync-admin status` prints it; monitoring plugins (Prometheus, notifications)
// report it after each run and from the status timer.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { formatAge } from '../duration.js';
import { oneLine } from '../errors.js';
import { readHostRecord } from '../storage/host-record.js';
import { hostFacts, type HostFact } from '../storage/host-facts.js';
import { openHostStore } from '../storage/host-store.js';
import { newestComplete as newestOf } from '../storage/snapshots.js';
import { MIRROR_KIND } from '../storage/store.js';
import { readVerifyRecord, type VerifyRecord } from '../storage/verify-record.js';
import { readRunLog } from './run-log.js';

export interface HostStatusOptions {
  /** The time ages are measured from (default: now). */
  now?: Date;
  /** Older than this, the newest complete backup makes the host stale. */
  maxAgeMs?: number | undefined;
  /** The time of the host's last "failure" line in runs.log (runsLogFailures), if any. */
  logFailure?: string | undefined;
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
  /** What plugins recorded about the host (plugin-restic: its off-site copies), by plugin; absent when none. */
  facts?: Record<string, HostFact>;
}

// The health of host `name` under `root` (a real path) at `now`, as `status` shows it; stale
// when nothing is complete, or (with maxAgeMs) the newest complete backup is older than that.
export async function hostStatus(root: string, name: string, options: HostStatusOptions = {}): Promise<HostStatus> {
  const { now = new Date(), maxAgeMs, logFailure } = options;
  // The receiver's record says what ROOT/NAME is: a mirror's files are the client's, whatever
  // their names, and are never read as snapshots or done marks.
  const dir = join(root, name);
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
      `${count(future.length, 'snapshot')} dated in the future (${future.map((s) => s.id).join(', ')}): the server's clock went back, or they were put there; they never count as the newest`,
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
    warnings.push(`the last verify of ${newest ? newest.id : 'the mirror'} (${verified.at}) found ${count(verified.problems, 'problem')}: \`ssh-r-sync-admin verify ${root} ${name}\` lists them`);
  }
  const record = await readHostRecord(root, name);
  const facts = hostFacts(record?.facts);
  // A deferred task (--defer-unlocked) is another process's work, not this run's failure.
  for (const task of record?.afterSession?.tasks ?? []) {
    if (task.outcome !== 'ok' && task.outcome !== 'deferred') warnings.push(`after the backup of ${record!.afterSession!.at}, ${task.name} ${task.outcome}: ${task.error ?? ''}`.trimEnd());
  }
  for (const task of record?.afterUncommitted?.tasks ?? []) {
    if (task.outcome !== 'ok' && task.outcome !== 'deferred') warnings.push(`after the run of ${record!.afterUncommitted!.at} (not committed), ${task.name} ${task.outcome}: ${task.error ?? ''}`.trimEnd());
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
    else problem = `${snapshots.length ? `no complete backup among ${count(snapshots.length, 'snapshot')}` : 'no complete backup'}${since}`;
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
    ...(Object.keys(facts).length ? { facts } : {}),
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
export async function runsLogFailures(root: string): Promise<Map<string, string>> {
  const failures = new Map<string, string>();
  const text = await readFile(join(root, '.ssh-r-sync', 'runs.log'), 'utf8').catch(() => '');
  for (const line of text.split('\n')) {
    const [at, name, outcome] = line.trim().split(/\s+/);
    if (at && name && outcome === 'failure' && !Number.isNaN(Date.parse(at))) failures.set(name, at);
  }
  return failures;
}


function count(n: number, word: string): string {
  return `${n} ${n === 1 ? word : `${word}s`}`;
}
