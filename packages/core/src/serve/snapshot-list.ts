// The host's own complete snapshots as `ssh-r-sync snapshots` shows them: date, size, entries,
// storage mode and the last verify's result. Everything comes from the receiver's own metadata
// (done marks, verify.json), read bounded and without following symlinks.
import { lstat, realpath } from 'node:fs/promises';
import { join } from 'node:path';
import { storedSnapshots, type StoredSnapshot } from '../storage/stored-snapshots.js';
import { readVerifyRecord } from '../storage/verify-record.js';

/** The last `ssh-r-sync-admin verify` of a snapshot, as it recorded it. */
export interface VerifyState {
  at: string;
  data: boolean;
  sample: number | null;
  problems: number;
  ok: boolean;
}

/** One snapshot of the listing. */
export interface ListedSnapshot {
  /** The snapshot id; '' for a mirror. */
  id: string;
  /** When the backup started and when it was committed. */
  startedAt: string;
  completedAt: string;
  mode: string | null;
  /** Manifest entries (every file, directory and link); null without a manifest. */
  entries: number | null;
  /** Regular files rsync transferred in that run, and their bytes (the change, not the tree's size). */
  files: number | null;
  bytes: number | null;
  /** Dated after now: never "latest". */
  future: boolean;
  /** null: never verified (or its record is unreadable). */
  verify: VerifyState | null;
}

/** What the listing request prints, one JSON line. */
export interface SnapshotListing {
  version: 1;
  host: string;
  /** 'snapshots' for every snapshot store (the word older clients know), 'mirror' for a mirror. */
  kind: 'snapshots' | 'mirror';
  /** The store kind when it is not the hard-link one ('btrfs', …); absent otherwise. */
  store?: string;
  snapshots: ListedSnapshot[];
}

// The listing of host `name` under `root`: its complete backups, oldest first.
export async function snapshotListing(root: string, name: string, now: Date = new Date()): Promise<SnapshotListing> {
  // A host that never completed a backup has no folder yet: that is an empty list, not an error.
  if (!(await hostExists(root, name))) return { version: 1, host: name, kind: 'snapshots', snapshots: [] };
  const stored = await storedSnapshots(root, name, now);
  const snapshots: ListedSnapshot[] = [];
  for (const snapshot of stored) snapshots.push(await listed(snapshot));
  const kind = stored[0]?.kind ?? 'snapshots';
  return { version: 1, host: name, kind: kind === 'mirror' ? 'mirror' : 'snapshots', ...(kind !== 'mirror' && kind !== 'snapshots' ? { store: kind } : {}), snapshots };
}

// Whether ROOT/NAME is there at all (its checks are storedSnapshots').
export async function hostExists(root: string, name: string): Promise<boolean> {
  const realRoot = await realpath(root).catch(() => root);
  return (await lstat(join(realRoot, name)).catch(() => null)) !== null;
}

async function listed(snapshot: StoredSnapshot): Promise<ListedSnapshot> {
  const manifest = snapshot.done.extra?.manifest as { entries?: unknown } | undefined;
  const count = (value: unknown) => (typeof value === 'number' && Number.isSafeInteger(value) && value >= 0 ? value : null);
  return {
    id: snapshot.id,
    startedAt: snapshot.date.toISOString(),
    completedAt: String(snapshot.done.completedAt),
    mode: snapshot.mode,
    entries: count(manifest?.entries),
    files: count(snapshot.done.files),
    bytes: count(snapshot.done.bytes),
    future: snapshot.future,
    verify: verifyState(await readVerifyRecord(snapshot.paths, snapshot.done).catch(() => null)),
  };
}

// Checks a parsed verify record (or the server's word for one) and keeps only the known fields.
export function verifyState(value: unknown): VerifyState | null {
  if (!value || typeof value !== 'object') return null;
  const v = value as Record<string, unknown>;
  if ((v.version !== undefined && v.version !== 1) || typeof v.at !== 'string' || typeof v.data !== 'boolean' || typeof v.ok !== 'boolean') return null;
  if (!(v.sample === null || v.sample === undefined || (typeof v.sample === 'number' && Number.isFinite(v.sample)))) return null;
  if (typeof v.problems !== 'number' || !Number.isSafeInteger(v.problems) || v.problems < 0) return null;
  return { at: v.at.slice(0, 64), data: v.data, sample: (v.sample as number | null | undefined) ?? null, problems: v.problems, ok: v.ok };
}
