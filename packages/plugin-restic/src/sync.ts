// Catch-up copy of one host into each repository: every complete local snapshot newer than the
// repository's newest copy of the host (copies carry the tag id:ID), oldest first, each as `restic backup .` run
// from inside the snapshot's tree (so paths are the client's) with the snapshot's start as its
// time. The repository is asked what it has on every run, so a copy that failed, a repository that
// was down, or a lost state file only means more to copy next time, never a gap or a duplicate.
// Snapshots are found only through core's store interface (storedSnapshots).
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { SshRSyncError, isLockBusy, mirrorInPlaceMark, oneLine, readDoneMark, recordHostFacts, setHolds, silentLogger, snapshotId, storedSnapshots, validateName, withFileLock, withHostLock, type HostGauge, type Logger, type Retention, type StoredSnapshot } from '@ssh-r-sync/core';
import { checkPasswordFile, type ParsedOptions, type Repository } from './options.js';
import { redactRepository, resticCommand, resticError, runRestic } from './restic.js';
import { makeMirrorView, mirrorViewPath, removeMirrorView, viewable } from './mirror-view.js';
import { emptyRepositoryState, readOffsiteState, updateOffsiteState } from './state.js';

export const TAG = 'ssh-r-sync';
export const HOLDER = 'restic';

/** A copy in a repository, as `restic snapshots --json` tells it. */
export interface RemoteCopy {
  resticId: string;
  /** The local snapshot id from its tag id:ID. */
  id: string;
  time: string;
  /** How the local store kept it (tag mode:MODE): fake-super copies carry owners in xattrs. */
  mode: string | null;
}

export interface RepositoryResult {
  name: string;
  copied: string[];
  pending: string[];
  removed: number;
  error: string | null;
}

export interface SyncOptions {
  signal?: AbortSignal;
  logger?: Logger;
  /** Only this repository (by name). */
  only?: string;
  now?: Date;
  /** The host's rotation policy (core's runRetention: plugin-rotate's), for keep: "rotate". */
  retention?: Retention;
  /** The caller holds the host's lock; else it is taken briefly to record facts and to make a
   *  mirror's view (for the whole copy of a mirror written in place). */
  hostLocked?: boolean;
  /** Seconds to wait for the host's lock of a mirror, to make its view (default 0: busy, it is not copied now). */
  lockWait?: number;
}

/** What a forget did: how many copies went (or, in a dry run, would go). */
export interface ForgetResult {
  removed: number;
  /** Nothing was removed: asked for (--dry-run), or plugin-rotate's dryRun with keep "rotate". */
  dryRun: boolean;
}

export interface ForgetOptions {
  signal?: AbortSignal;
  logger?: Logger;
  dryRun?: boolean;
  /** The host's rotation policy, for keep: "rotate". */
  retention?: Retention;
  now?: Date;
}

// The key a local snapshot is known by off-site: its id (a mirror: its start, as an id; of two
// mirror runs that start in the same second only the first is copied, the later one's state
// goes with the next run's copy).
export function copyKey(snapshot: Pick<StoredSnapshot, 'id' | 'done'>): string {
  return snapshot.id || snapshotId(new Date(snapshot.done.startedAt));
}

// When the snapshot started, to the second: the date in its id (unique per host: ids of runs in
// quick succession step ahead), or a mirror's start.
export function startOf(snapshot: Pick<StoredSnapshot, 'id' | 'done' | 'date'>): Date {
  return new Date(Math.floor((snapshot.id ? snapshot.date : new Date(snapshot.done.startedAt)).getTime() / 1000) * 1000);
}

// restic's --time for an ISO instant: 'YYYY-MM-DD HH:MM:SS', read as UTC (restic runs with TZ=UTC).
export function resticTime(iso: string): string {
  return new Date(iso).toISOString().replace('T', ' ').slice(0, 19);
}

// The ssh-r-sync copies of host `name` in `repo`.
export async function listCopies(options: ParsedOptions, repo: Repository, name: string, signal?: AbortSignal): Promise<RemoteCopy[]> {
  const result = await runRestic(resticCommand(options, repo, ['snapshots', '--json', '--host', name, '--tag', TAG]), { signal, timeoutMs: 10 * 60_000 });
  if (result.code !== 0) throw resticError(repo, 'snapshots', result);
  let list: unknown;
  try {
    list = JSON.parse(result.stdout || '[]');
  } catch (error) {
    throw new Error(`${repo.name}: restic snapshots printed no JSON list: ${oneLine(error)}`);
  }
  if (!Array.isArray(list)) list = [];
  const copies: RemoteCopy[] = [];
  for (const s of list as { id?: unknown; time?: unknown; tags?: unknown; hostname?: unknown }[]) {
    if (typeof s.id !== 'string' || typeof s.time !== 'string' || !Array.isArray(s.tags) || s.hostname !== name) continue;
    const tag = s.tags.find((t): t is string => typeof t === 'string' && t.startsWith('id:'));
    const mode = s.tags.find((t): t is string => typeof t === 'string' && t.startsWith('mode:'))?.slice(5) ?? null;
    if (tag) copies.push({ resticId: s.id, id: tag.slice(3), time: s.time, mode });
  }
  return copies.sort((a, b) => Date.parse(a.time) - Date.parse(b.time));
}

// The argv after `restic -r … --password-file …` that copies `snapshot` (run with cwd = its tree).
// A mirror's view links the mirror's files, which bumps their ctime each time it is made: restic
// would read every file again. Its files change only as new inodes (no run of it wrote in
// place), so restic tells a changed one by its inode, size and mtime, not its ctime.
export function backupArgs(name: string, snapshot: Pick<StoredSnapshot, 'id' | 'done' | 'date'> & { mode?: string | null; view?: true }, parent: string | null): string[] {
  const mode = snapshot.mode ? ['--tag', `mode:${snapshot.mode}`] : [];
  const ctime = snapshot.view ? ['--ignore-ctime'] : [];
  return ['backup', '--json', '--quiet', '--host', name, '--time', resticTime(startOf(snapshot).toISOString()), '--tag', TAG, '--tag', `id:${copyKey(snapshot)}`, ...mode, ...ctime, ...(parent ? ['--parent', parent] : []), '.'];
}

// Forgets the partial copies recorded for `repo` (and `more`, just made) that `listed` still has
// (null: all of them). Returns every restic id that is not a copy: those forgotten now (still in
// `listed`) and those that could not be forgotten (recorded again, for the next run).
async function forgetPartial(root: string, name: string, options: ParsedOptions, repo: Repository, listed: RemoteCopy[] | null, signal: AbortSignal | undefined, logger: Logger, more: string[] = []): Promise<string[]> {
  const recorded = (await readOffsiteState(root, name)).repositories[repo.name]?.partial ?? [];
  // A short id (restic's summary gives one) is matched to its copy's full one where the listing has it.
  const named = [...new Set([...recorded, ...more].flatMap((id) => (listed ? listed.filter((c) => c.resticId.startsWith(id)).map((c) => c.resticId) : [id])))];
  // A short id beside its own full one names the same copy once.
  const ids = named.filter((id) => !named.some((other) => other !== id && other.startsWith(id)));
  if (ids.length === 0 && recorded.length === 0) return [];
  let left = ids;
  if (ids.length) {
    const run = await runRestic(resticCommand(options, repo, ['forget', ...ids]), { signal, timeoutMs: 10 * 60_000 });
    if (run.code === 0) {
      left = [];
      logger.info(`${name}: ${repo.name}: forgot ${ids.length} partial cop${ids.length === 1 ? 'y' : 'ies'} (restic exit 3)`);
    } else logger.warn(`${name}: ${repo.name}: ${resticError(repo, 'forget of a partial copy', run).message}; it does not count as a copy, and the next run tries again`);
  }
  await record(root, name, repo, (r) => void (r.partial = left));
  return ids;
}

// Where host `name`'s copies are serialized: one copy (or forget) of a host at a time, whoever
// runs it (a run's after-session copy, which holds no host lock, or an admin command).
export function offsiteLockPath(root: string, name: string): string {
  return join(root, '.ssh-r-sync', 'offsite', `${validateName(name)}.lock`);
}

// Runs `work` under host `name`'s off-site lock, not waiting: busy, it throws ELOCK (isLockBusy).
export async function withOffsiteLock<T>(root: string, name: string, signal: AbortSignal | undefined, work: () => Promise<T>): Promise<T> {
  await mkdir(join(root, '.ssh-r-sync', 'offsite'), { recursive: true, mode: 0o700 });
  try {
    return await withFileLock(offsiteLockPath(root, name), { waitSeconds: 0, signal }, work);
  } catch (error) {
    if (!isLockBusy(error)) throw error;
    throw Object.assign(new SshRSyncError('ELOCK', `an off-site copy of ${name} is running already (a backup's, or \`ssh-r-sync-admin offsite\`); it copies what is missing, oldest first`, { cause: error }), { busy: true });
  }
}

// Copies what each repository lacks of host `name`, records it, and renews the hold on what is
// still missing somewhere, under the host's off-site lock (busy: ELOCK, isLockBusy). Returns per
// repository what happened; throws only when the host's snapshots cannot be listed at all.
export function syncHost(root: string, name: string, options: ParsedOptions, sync: SyncOptions = {}): Promise<RepositoryResult[]> {
  return withOffsiteLock(root, name, sync.signal, () => syncHostLocked(root, name, options, sync));
}

async function syncHostLocked(root: string, name: string, options: ParsedOptions, sync: SyncOptions): Promise<RepositoryResult[]> {
  const mirror = (await storedSnapshots(root, name, sync.now)).some((s) => !s.id);
  if (!mirror || sync.hostLocked) return syncHostRepositories(root, name, options, sync);
  // A mirror is rewritten in place by the host's next run: under the host's lock, taken briefly
  // (without waiting: a running backup is rewriting it), a view of it is made, and copied after.
  const logger = sync.logger ?? silentLogger;
  const locked = { root, name, waitSeconds: sync.lockWait ?? 0, logger, signal: sync.signal };
  // A view a killed copy left goes first, under the off-site lock only (it may be big).
  await removeMirrorView(root, name, sync.signal);
  let failed: unknown;
  let made = await withHostLock({ ...locked, brief: true }, async (): Promise<Viewed | 'none' | 'in place' | 'no view'> => {
    const current = (await storedSnapshots(root, name, sync.now)).find((s) => !s.id && !s.future);
    if (!current) return 'none';
    if (!viewable(current)) return 'in place';
    try {
      // Under the lock, so no run is between this mark and the view.
      const inPlaceMark = await mirrorInPlaceMark(current.paths.meta);
      return { ...(await makeMirrorView(root, name, current, sync.signal)), view: true, inPlaceMark };
    } catch (error) {
      if (sync.signal?.aborted) throw error;
      failed = error;
      return 'no view';
    }
  });
  if (made === 'no view') {
    await removeMirrorView(root, name, sync.signal);
    logger.warn(`${name}: no view of the mirror could be made for its off-site copy (${oneLine(failed)}): it is copied under the host's lock`);
    made = 'in place';
  }
  if (made === 'none') return syncHostRepositories(root, name, options, sync, []);
  if (made === 'in place') {
    // Written in its inodes (--inplace, an older done mark), or no view: copied where it lies, under the lock.
    return withHostLock(locked, () => syncHostRepositories(root, name, options, { ...sync, hostLocked: true }));
  }
  try {
    return await syncHostRepositories(root, name, options, sync, [made]);
  } finally {
    // Not with the task's signal: a stopped copy still removes its view (bounded in time).
    await removeMirrorView(root, name).catch((error: unknown) => logger.warn(`${name}: could not remove the mirror's view ${mirrorViewPath(root, name)}: ${oneLine(error)}`));
  }
}

/** A snapshot to copy that no run changes, a mirror's view, unless a later run writes in place
 *  (`inPlaceMark`: core's mirrorInPlaceMark when the view was made). */
type Viewed = StoredSnapshot & { view?: true; inPlaceMark?: string };

// Whether a view still holds the files of the mirror it was made of: no run since it was made
// began to rewrite the mirror in its inodes (--inplace, --append), which the view's hard links share.
async function viewIntact(snapshot: Viewed): Promise<boolean> {
  return (await mirrorInPlaceMark(snapshot.paths.meta)) === snapshot.inPlaceMark;
}

// Whether a snapshot's done mark is still the one it was listed with (same run, same commit).
async function doneMarkUnchanged(snapshot: StoredSnapshot): Promise<boolean> {
  const now = await readDoneMark(snapshot.paths).catch(() => null);
  return now !== null && now.completedAt === snapshot.done.completedAt && now.startedAt === snapshot.done.startedAt;
}

// `snapshots`: what to copy (a mirror's view), instead of the host's complete snapshots.
async function syncHostRepositories(root: string, name: string, options: ParsedOptions, sync: SyncOptions, snapshots?: Viewed[]): Promise<RepositoryResult[]> {
  const logger = sync.logger ?? silentLogger;
  const local: Viewed[] = snapshots ?? (await storedSnapshots(root, name, sync.now)).filter((s) => !s.future);
  // A view stays as it was made (unless a run writes in place); a snapshot is still the one listed while its done mark is.
  const unchanged = (snapshot: Viewed) => (snapshot.view ? viewIntact(snapshot) : doneMarkUnchanged(snapshot));
  const results: RepositoryResult[] = [];
  const repos = options.repositories.filter((r) => !sync.only || r.name === sync.only);
  for (const repo of repos) {
    const result: RepositoryResult = { name: repo.name, copied: [], pending: local.map(copyKey), removed: 0, error: null };
    results.push(result);
    try {
      sync.signal?.throwIfAborted();
      checkPasswordFile(repo.passwordFile!, `repository "${repo.name}"`);
      const listed = await listCopies(options, repo, name, sync.signal);
      // A partial copy is no copy (forgotten now, or not yet): its snapshot is still to copy.
      const partial = await forgetPartial(root, name, options, repo, listed, sync.signal, logger);
      const copies = listed.filter((c) => !partial.includes(c.resticId));
      const have = new Set(copies.map((c) => c.id));
      // Only what is newer than the newest copy there: older ones are there, or were forgotten
      // off-site by the repository's own policy and must not come back on every run.
      const newestCopy = Math.max(-Infinity, ...copies.map((c) => Date.parse(c.time)));
      const missing = local.filter((s) => !have.has(copyKey(s)) && startOf(s).getTime() > newestCopy);
      result.pending = missing.map(copyKey);
      await record(root, name, repo, (r) => {
        r.pending = result.pending;
        r.checkedAt = new Date().toISOString();
        const newest = local.findLast((s) => have.has(copyKey(s)));
        if (newest) r.newest = { id: copyKey(newest), startedAt: newest.done.startedAt, resticId: copies.find((c) => c.id === copyKey(newest))!.resticId };
      });
      for (const snapshot of missing) {
        sync.signal?.throwIfAborted();
        const key = copyKey(snapshot);
        if (!(await unchanged(snapshot))) {
          // Deleted since the listing (a rotation that ignores holds): nothing to copy any more.
          logger.info(`${name}: ${repo.name}: snapshot ${key} is gone (or rewritten) since this copy began: not copied`);
          result.pending = result.pending.filter((p) => p !== key);
          continue;
        }
        // The newest copy older than this one: restic then reads only what changed since.
        const parent = copies.filter((c) => Date.parse(c.time) <= startOf(snapshot).getTime()).at(-1)?.resticId ?? null;
        const started = performance.now();
        const run = await runRestic(resticCommand(options, repo, backupArgs(name, snapshot, parent)), { cwd: snapshot.paths.tree, signal: sync.signal, maxStdout: 1024 * 1024 });
        const summary = run.stdout.split('\n').reverse().map(parseLine).find((l) => l?.message_type === 'summary');
        const resticId = typeof summary?.snapshot_id === 'string' ? summary.snapshot_id : '';
        // The copy runs beside other runs: a snapshot deleted (hold: false, ignoreHolds) or a mirror
        // rewritten meanwhile loses its done mark first (every delete and rewrite starts there), so
        // a done mark that is not the one listed means the copy read something else: no copy.
        const same = await unchanged(snapshot);
        // A snapshot restic saved without ending cleanly (exit 3, or stopped right after saving), or
        // of a tree that changed under it, is no copy: recorded as partial first, which needs no
        // restic call, so a stop cannot skip it.
        if ((run.code !== 0 || !same) && resticId) await record(root, name, repo, (r) => void (r.partial = [...new Set([...r.partial, resticId])]));
        if (sync.signal?.aborted) throw sync.signal.reason;
        if (!same) {
          await forgetPartial(root, name, options, repo, null, sync.signal, logger, resticId ? [resticId] : []);
          throw new Error(`${repo.name}: snapshot ${key} was removed or rewritten while it was copied (a rotation without holds, or the mirror's next run${snapshot.view ? ' writing in place' : ''}): that copy does not count, and the snapshot is copied again if it is still there`);
        }
        if (run.code !== 0) {
          const error = resticError(repo, `backup of ${key}`, run);
          if (run.code !== 3) throw error;
          // Some files could not be read: restic saved a partial copy, which must not pass for the
          // snapshot (the next run would skip it). It goes, or is recorded as partial until it can
          // go; either way the snapshot stays to copy.
          // restic's summary names it by its short id: the listing gives the full one.
          const relisted = await listCopies(options, repo, name, sync.signal).catch(() => null);
          const made = relisted ? relisted.filter((c) => c.id === key && c.resticId.startsWith(resticId)).map((c) => c.resticId) : resticId ? [resticId] : [];
          await forgetPartial(root, name, options, repo, null, sync.signal, logger, made);
          const left = (await readOffsiteState(root, name)).repositories[repo.name]?.partial ?? [];
          const what = made.length === 0 ? 'restic made no copy' : made.every((id) => !left.some((l) => l.startsWith(id) || id.startsWith(l))) ? 'the partial copy was forgotten' : 'the partial copy could not be forgotten yet: it does not count as a copy, and the next run forgets it';
          throw new Error(`${error.message} (some files of the snapshot could not be read; ${what})`);
        }
        copies.push({ resticId, id: key, time: startOf(snapshot).toISOString(), mode: snapshot.mode });
        copies.sort((a, b) => new Date(a.time).getTime() - new Date(b.time).getTime());
        result.copied.push(key);
        result.pending = result.pending.filter((p) => p !== key);
        logger.info(`${name}: copied ${key} to ${repo.name} as restic snapshot ${resticId.slice(0, 8) || '?'} in ${((performance.now() - started) / 1000).toFixed(1)} s`);
        await record(root, name, repo, (r) => {
          r.pending = result.pending;
          r.copiedTotal += 1;
          r.lastCopy = { at: new Date().toISOString(), id: key, resticId };
          if (!r.newest || r.newest.startedAt <= snapshot.done.startedAt) r.newest = { id: key, startedAt: snapshot.done.startedAt, resticId };
        });
      }
      if (options.forget && repo.keep) {
        const forgot = await forgetUnderLock(root, name, options, repo, { signal: sync.signal, logger, retention: sync.retention, now: sync.now });
        result.removed = forgot.dryRun ? 0 : forgot.removed;
      }
      await record(root, name, repo, (r) => {
        r.lastSuccess = new Date().toISOString();
        r.lastFailure = null;
      });
    } catch (error) {
      if (sync.signal?.aborted && error === sync.signal.reason) result.error = `stopped: ${oneLine(error)}`;
      else result.error = oneLine(error);
      logger.warn(`${name}: off-site copy to ${repo.name} failed: ${result.error}; ${result.pending.length} snapshot${result.pending.length === 1 ? '' : 's'} still to copy (the next run or \`ssh-r-sync-admin offsite sync\` catches up)`);
      await record(root, name, repo, (r) => {
        r.pending = result.pending;
        r.lastFailure = { at: new Date().toISOString(), error: result.error! };
      }).catch((e: unknown) => logger.warn(`${name}: could not record the failure: ${oneLine(e)}`));
    }
  }
  await renewHold(root, name, options, logger);
  // The host's record is written under the host's lock: the caller's (a mirror's copy), or taken
  // briefly here (waiting up to 30 s: a snapshot host's copy holds none); when a long backup of
  // the host holds it that long, the facts wait for the next copy or `offsite sync`.
  const newest = local.at(-1)?.done.startedAt ?? null;
  const facts = () => recordOffsiteFacts(root, name, newest);
  // Not with the task's signal: after a timeout or a stop (aborted) the facts must still say so.
  await (sync.hostLocked ? facts() : withHostLock({ root, name, waitSeconds: 30, logger, brief: true }, facts)).catch((error: unknown) => logger.warn(`${name}: could not record the off-site state for status: ${oneLine(error)}`));
  return results;
}

// What `ssh-r-sync-admin status` and the Prometheus file show of the off-site copies (core's host
// facts): per repository the newest copy, how far it lags behind the newest local snapshot, how
// many are still to copy, and the last failure.
export async function recordOffsiteFacts(root: string, name: string, newestLocal: string | null): Promise<void> {
  const state = await readOffsiteState(root, name);
  const lines: string[] = [];
  const gauges: HostGauge[] = [];
  for (const [repository, r] of Object.entries(state.repositories)) {
    const copied = r.newest?.startedAt ?? null;
    const lag = newestLocal && copied ? Math.max(0, Math.round((Date.parse(newestLocal) - Date.parse(copied)) / 1000)) : null;
    const failure = r.lastFailure ? `, last failure ${r.lastFailure.at}: ${r.lastFailure.error}` : '';
    lines.push(`off-site ${repository}: newest copy ${r.newest?.id ?? 'none'}${lag === null ? '' : `, ${lag} s behind the newest local snapshot`}, ${r.pending.length} to copy${failure}`);
    const labels = { repository };
    gauges.push(
      { name: 'offsite_newest_copy_timestamp_seconds', help: 'When the newest snapshot copied to the repository started (Unix time); 0: none.', labels, value: copied ? Date.parse(copied) / 1000 : 0 },
      { name: 'offsite_lag_seconds', help: 'How far the newest copy lags behind the newest local snapshot (their start times); -1: unknown.', labels, value: lag ?? -1 },
      { name: 'offsite_pending_snapshots', help: 'Complete local snapshots not yet copied to the repository.', labels, value: r.pending.length },
      { name: 'offsite_last_failure_timestamp_seconds', help: 'When the last copy to the repository failed (Unix time); 0: not since its last success.', labels, value: r.lastFailure ? Date.parse(r.lastFailure.at) / 1000 : 0 },
    );
  }
  await recordHostFacts(root, name, 'restic', lines.length ? { lines, gauges } : null);
}

// Before any after-session work runs (rotation may come first): holds every complete snapshot
// newer than the newest copy each repository is known to have, and what was pending, so that no
// order of plugins lets rotation delete one on its way off-site. Never throws.
export async function holdUncopied(root: string, name: string, options: ParsedOptions, logger: Logger): Promise<void> {
  if (!options.hold) return;
  try {
    const state = await readOffsiteState(root, name);
    const local = (await storedSnapshots(root, name)).filter((s) => !s.future).map(copyKey);
    const pending = new Set<string>();
    for (const repo of options.repositories) {
      const r = state.repositories[repo.name];
      // Ids sort as their dates do.
      for (const id of local) if (!r?.newest || id > r.newest.id || r.pending.includes(id)) pending.add(id);
    }
    await setHolds(root, name, HOLDER, [...pending], `not yet copied off-site (plugin-restic)`);
  } catch (error) {
    logger.warn(`${name}: could not hold the snapshots not yet copied off-site: ${oneLine(error)}`);
  }
}

// Keeps the snapshots still to copy somewhere out of local rotation (core's holds), or drops the
// hold: computed afresh from the host's snapshots and the record (as holdUncopied does), never
// from this pass's list alone, so that a snapshot a newer run committed meanwhile stays held.
async function renewHold(root: string, name: string, options: ParsedOptions, logger: Logger): Promise<void> {
  if (options.hold) return holdUncopied(root, name, options, logger);
  try {
    await setHolds(root, name, HOLDER, [], 'not yet copied off-site (plugin-restic)');
  } catch (error) {
    logger.warn(`${name}: could not drop the hold: ${oneLine(error)}`);
  }
}

// restic forget (then prune, when something went) over this host's copies only: with the
// repository's own rules (restic's --keep-* flags), or with the host's rotation policy (keep:
// "rotate": plugin-rotate's plan over the copies' times, then `restic forget` of the ones it lets go).
export function forgetCopies(root: string, name: string, options: ParsedOptions, repo: Repository, forget: ForgetOptions = {}): Promise<ForgetResult> {
  return withOffsiteLock(root, name, forget.signal, () => forgetUnderLock(root, name, options, repo, forget));
}

async function forgetUnderLock(root: string, name: string, options: ParsedOptions, repo: Repository, forget: ForgetOptions): Promise<ForgetResult> {
  const { signal } = forget;
  // plugin-rotate trying its policy (dryRun) keeps every copy off-site too.
  const rotateDry = repo.keep?.kind === 'rotate' && forget.retention?.dryRun === true;
  const dryRun = forget.dryRun === true || rotateDry;
  const logger = forget.logger ?? silentLogger;
  const keep = repo.keep!;
  let removed = 0;
  let summary = keep.text;
  // Partial copies (restic exit 3) not forgotten yet share their snapshot's time with its whole
  // copy: a policy could keep the partial one and let the whole one go.
  const partial = (await readOffsiteState(root, name)).repositories[repo.name]?.partial ?? [];
  const isPartial = (resticId: string) => partial.some((p) => resticId.startsWith(p));
  if (keep.kind === 'own' && partial.length) {
    logger.info(`${name}: ${repo.name}: forget waits until the ${partial.length} partial cop${partial.length === 1 ? 'y is' : 'ies are'} gone (restic's own rules would count ${partial.length === 1 ? 'it' : 'them'})`);
    return { removed: 0, dryRun };
  }
  if (keep.kind === 'rotate') {
    if (!forget.retention) {
      throw new SshRSyncError('ECONFIG', `repository "${repo.name}" has keep "rotate", but no @ssh-r-sync/plugin-rotate is in the receiver's config: load it, or give the repository its own keep ('7d 8w 24m *y')`);
    }
    summary = `the host's policy: ${forget.retention.summary}${rotateDry ? "; plugin-rotate's dryRun" : ''}`;
    const copies = (await listCopies(options, repo, name, signal)).filter((c) => !isPartial(c.resticId));
    const decided = forget.retention.plan(copies.map((c) => ({ id: c.resticId, date: new Date(c.time) })), forget.now ?? new Date());
    const gone = new Set(decided.delete);
    const doomed = copies.filter((c) => gone.has(c.resticId));
    for (const c of doomed) logger[dryRun ? 'info' : 'debug'](`${name}: ${repo.name}: ${dryRun ? 'would forget' : 'forgetting'} the copy of ${c.id} (restic snapshot ${c.resticId.slice(0, 8)})`);
    // In batches: an argv stays small whatever the backlog.
    for (let i = 0; !dryRun && i < doomed.length; i += 100) {
      const ids = doomed.slice(i, i + 100).map((c) => c.resticId);
      const run = await runRestic(resticCommand(options, repo, ['forget', ...ids]), { signal, timeoutMs: 30 * 60_000, maxStdout: 4 * 1024 * 1024 });
      if (run.code !== 0) throw resticError(repo, 'forget', run);
    }
    removed = doomed.length;
  } else {
    const args = ['forget', '--json', '--host', name, '--tag', TAG, '--group-by', 'host', ...(keep.last ? ['--keep-last', String(keep.last)] : []), ...keep.rules.flatMap(([flag, count]) => [flag, String(count)]), ...(dryRun ? ['--dry-run'] : [])];
    const run = await runRestic(resticCommand(options, repo, args), { signal, timeoutMs: 30 * 60_000 });
    if (run.code !== 0) throw resticError(repo, 'forget', run);
    try {
      const groups = JSON.parse(run.stdout.trim().split('\n').find((l) => l.startsWith('[')) ?? '[]') as { remove?: unknown[] | null }[];
      removed = groups.reduce((n, g) => n + (Array.isArray(g.remove) ? g.remove.length : 0), 0);
    } catch {
      removed = 0;
    }
  }
  // A prune that failed (or never ran: a stop) after an earlier forget is owed still: the space
  // comes back only with it. Owed from the moment copies went, until a prune ends well.
  if (removed && !dryRun) await record(root, name, repo, (r) => void (r.prunePending = true));
  const owed = (await readOffsiteState(root, name)).repositories[repo.name]?.prunePending === true;
  if ((removed || owed) && !dryRun) {
    const prune = await runRestic(resticCommand(options, repo, ['prune']), { signal, maxStdout: 4 * 1024 * 1024 });
    await record(root, name, repo, (r) => void (r.prunePending = prune.code !== 0));
    if (prune.code !== 0) throw resticError(repo, 'prune', prune);
  }
  logger.info(`${name}: ${repo.name}: ${dryRun ? 'would forget' : 'forgot'} ${removed} cop${removed === 1 ? 'y' : 'ies'} (${summary})`);
  if (!dryRun) await record(root, name, repo, (r) => void (r.lastForget = { at: new Date().toISOString(), removed }));
  return { removed, dryRun };
}

async function record(root: string, name: string, repo: Repository, change: (r: ReturnType<typeof emptyRepositoryState>) => void): Promise<void> {
  await updateOffsiteState(root, name, (state) => {
    const r = (state.repositories[repo.name] ??= emptyRepositoryState(redactRepository(repo.repository)));
    r.repository = redactRepository(repo.repository);
    change(r);
  });
}

function parseLine(line: string): Record<string, unknown> | null {
  try {
    const value = JSON.parse(line) as unknown;
    return typeof value === 'object' && value !== null ? (value as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}
