// The one way the admin tools (restore, verify, versions, diff, the client's restore through the
// forced command) find a host's complete backups: snapshots of ROOT/NAME, or its mirror. Only
// what the receiver committed counts; ids and names are checked before they become paths, and
// the host's directory is never followed out of ROOT.
import { lstat, realpath } from 'node:fs/promises';
import { join, sep } from 'node:path';
import type { Mode } from '../pipeline/context.js';
import { SshRSyncError } from '../errors.js';
import { validateName } from './host-dir.js';
import type { HostKind } from './host-record.js';
import { SNAPSHOT_ID, type DoneMark, type SnapshotPaths } from './snapshots.js';
import { openHostStore } from './host-store.js';
import { MIRROR_KIND } from './store.js';

/** A complete, committed backup of a host, ready to be read. */
export interface StoredSnapshot {
  host: string;
  /** The host's store kind: 'mirror', 'snapshots' (hard links), 'btrfs', … */
  kind: HostKind;
  /** The snapshot's id; '' for a mirror. */
  id: string;
  date: Date;
  paths: SnapshotPaths;
  done: DoneMark;
  /** How rsync stored its files; null when its done mark predates the record (see storedMode). */
  mode: Mode | null;
  /** Dated after now (beyond the tolerance): never "latest". */
  future: boolean;
}

// ROOT/NAME as a real path inside ROOT; throws with what to do when there is no such host.
export async function storedHostDir(root: string, name: string): Promise<string> {
  try {
    validateName(name);
  } catch (error) {
    throw new SshRSyncError('EUSAGE', (error as Error).message, { cause: error });
  }
  let realRoot: string;
  try {
    realRoot = await realpath(root);
  } catch (error) {
    throw new SshRSyncError('EUSAGE', `${root}: ${(error as NodeJS.ErrnoException).code ?? 'cannot be read'}: give the backup root (the receiver's BACKUP_ROOT)`, { cause: error });
  }
  const dir = join(realRoot, name);
  const stats = await lstat(dir).catch(() => null);
  if (!stats) throw new SshRSyncError('EUSAGE', `no host "${name}" under ${realRoot}: \`ssh-r-sync-admin status ${realRoot}\` lists the hosts`);
  if (!stats.isDirectory()) throw new SshRSyncError('EUSAGE', `${dir} is not a host's directory (not a directory)`);
  const real = await realpath(dir);
  if (!real.startsWith(realRoot + sep)) throw new SshRSyncError('EUSAGE', `${dir} resolves to ${real}, outside ${realRoot}: refused`);
  return real;
}

// Every complete backup of host `name` under `root`, oldest first (a mirror host has at most one),
// as the host's store lists them.
export async function storedSnapshots(root: string, name: string, now: Date = new Date()): Promise<StoredSnapshot[]> {
  const dir = await storedHostDir(root, name);
  const realRoot = await realpath(root);
  const { store, kind } = await openHostStore({ root: realRoot, name, dir });
  const all = await store.list(now);
  return all
    .filter((snapshot) => snapshot.complete && snapshot.done)
    .map((snapshot) => ({
      host: name,
      kind: kind === 'new' ? MIRROR_KIND : kind,
      id: snapshot.id,
      date: snapshot.date,
      paths: snapshot.paths,
      done: snapshot.done!,
      mode: snapshot.done!.mode ?? null,
      future: snapshot.future,
    }));
}

// One complete backup: `spec` is a snapshot id or "latest" (the newest complete one not dated in
// the future; for a mirror host the mirror itself). Throws a one-line error naming what exists.
export async function openStoredSnapshot(root: string, name: string, spec = 'latest', now: Date = new Date()): Promise<StoredSnapshot> {
  const snapshots = await storedSnapshots(root, name, now);
  if (spec === 'latest') {
    const newest = snapshots.findLast((snapshot) => !snapshot.future);
    if (!newest) throw new SshRSyncError('EUSAGE', `host "${name}" has no complete backup yet: \`ssh-r-sync-admin status\` shows its last run`);
    return newest;
  }
  if (!SNAPSHOT_ID.test(spec)) throw new SshRSyncError('EUSAGE', `--snapshot ${JSON.stringify(spec.slice(0, 80))}: give a snapshot id like 2026-11-22T024512Z, or latest`);
  const found = snapshots.find((snapshot) => snapshot.id === spec);
  if (!found) {
    const ids = snapshots.map((snapshot) => snapshot.id).filter(Boolean);
    const hint = ids.length ? `complete ones: ${ids.slice(-5).join(', ')}${ids.length > 5 ? ', …' : ''}` : 'it has none';
    throw new SshRSyncError('EUSAGE', `host "${name}" has no complete snapshot ${spec} (${hint})`);
  }
  return found;
}
