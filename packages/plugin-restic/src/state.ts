// The plugin's record per host, ROOT/.ssh-r-sync/offsite/NAME.json: per repository what was copied
// (the newest copy, the snapshots still to copy), the last success and the last failure, for
// `status`, the admin commands and the next run. The repository itself is the truth about what is
// there (each copy carries the tag id:ID); this record only reports it. Written atomically (0600),
// read back bounded; an unreadable record counts as empty.
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { readSmallFile, validateName, writeAtomic } from '@ssh-r-sync/core';

export const STATE_SCHEMA = 1;

export interface RepositoryState {
  /** The address with any user:password@ blanked out. */
  repository: string;
  /** The newest local snapshot known to be in the repository. */
  newest: { id: string; startedAt: string; resticId: string } | null;
  /** Local complete snapshots not yet there, oldest first (as of `checkedAt`). */
  pending: string[];
  copiedTotal: number;
  lastCopy: { at: string; id: string; resticId: string } | null;
  lastSuccess: string | null;
  lastFailure: { at: string; error: string } | null;
  checkedAt: string | null;
  lastForget: { at: string; removed: number } | null;
  lastCheck: { at: string; ok: boolean; sample: string; error: string | null } | null;
  /** restic ids (full, or short when restic's listing failed) of partial copies (restic exit 3)
   *  not forgotten yet: never counted as copies. */
  partial: string[];
  /** A forget removed copies but its prune failed: the next forget prunes even when it removes none. */
  prunePending: boolean;
}

export interface OffsiteState {
  schema: typeof STATE_SCHEMA;
  repositories: Record<string, RepositoryState>;
}

const MAX_STATE_BYTES = 1024 * 1024;
const MAX_PENDING = 1000;
/** A restic snapshot id, full or short (restic's backup summary gives the short one). */
const RESTIC_ID = /^[0-9a-f]{8,64}$/;

// Where host `name`'s record lives.
export function offsiteStatePath(root: string, name: string): string {
  return join(root, '.ssh-r-sync', 'offsite', `${validateName(name)}.json`);
}

// An empty record of one repository.
export function emptyRepositoryState(repository: string): RepositoryState {
  return { repository, newest: null, pending: [], copiedTotal: 0, lastCopy: null, lastSuccess: null, lastFailure: null, checkedAt: null, lastForget: null, lastCheck: null, partial: [], prunePending: false };
}

// Reads host `name`'s record; a missing, oversized or unreadable one is empty.
export async function readOffsiteState(root: string, name: string): Promise<OffsiteState> {
  const empty: OffsiteState = { schema: STATE_SCHEMA, repositories: {} };
  // Bounded, never through a symlink or a fifo (core's readSmallFile).
  const text = await readSmallFile(offsiteStatePath(root, name), MAX_STATE_BYTES);
  if (text === null) return empty;
  try {
    const parsed = JSON.parse(text) as Partial<OffsiteState>;
    if (parsed.schema !== STATE_SCHEMA || typeof parsed.repositories !== 'object' || parsed.repositories === null) return empty;
    const repositories: Record<string, RepositoryState> = {};
    for (const [key, value] of Object.entries(parsed.repositories)) {
      if (typeof value !== 'object' || value === null) continue;
      repositories[key] = {
        ...emptyRepositoryState(String((value as RepositoryState).repository ?? '')),
        ...value,
        pending: Array.isArray(value.pending) ? value.pending.filter((p) => typeof p === 'string') : [],
        // They go to restic's argv: restic ids only.
        partial: Array.isArray(value.partial) ? value.partial.filter((p) => typeof p === 'string' && RESTIC_ID.test(p)) : [],
        prunePending: value.prunePending === true,
      };
    }
    return { schema: STATE_SCHEMA, repositories };
  } catch {
    return empty;
  }
}

// Changes host `name`'s record with `change` and writes it atomically.
export async function updateOffsiteState(root: string, name: string, change: (state: OffsiteState) => void): Promise<OffsiteState> {
  const state = await readOffsiteState(root, name);
  change(state);
  for (const repo of Object.values(state.repositories)) if (repo.pending.length > MAX_PENDING) repo.pending = repo.pending.slice(0, MAX_PENDING);
  await mkdir(join(root, '.ssh-r-sync', 'offsite'), { recursive: true, mode: 0o700 });
  await writeAtomic(offsiteStatePath(root, name), `${JSON.stringify(state, null, 2)}\n`);
  return state;
}
