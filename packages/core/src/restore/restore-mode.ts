// How a snapshot's files were stored decides how rsync must read them back. Done marks record it;
// for an older one without the record, the owner of the metadata directory (written by the
// receiver itself, never by the client) tells which receiver ran, and so the mode it used by default.
import { lstat } from 'node:fs/promises';
import type { Mode } from '../pipeline/context.js';
import { SshRSyncError } from '../errors.js';
import type { StoredSnapshot } from '../storage/stored-snapshots.js';

/** The mode a restore reads a snapshot with, and where that came from. */
export interface RestoreMode {
  mode: Mode;
  /** 'done mark', 'given' (--stored-mode) or the reason of the guess. */
  source: string;
}

// The storage mode of `snapshot`: its done mark's, else `given`, else a guess that never reads
// client data as rsync's metadata: a root receiver is taken as privileged (in a privileged store a
// user.rsync.%stat is the client's own xattr, not rsync's record, and must not be believed); a
// non-root receiver could only store fake-super or plain, and fake-super reading is right for both
// (a plain store has no xattrs, rsync then takes what lstat says).
export async function restoreModeOf(snapshot: StoredSnapshot, given?: Mode): Promise<RestoreMode> {
  if (snapshot.mode) {
    if (given && given !== snapshot.mode) {
      throw new SshRSyncError('EUSAGE', `--stored-mode ${given}: the done mark of ${label(snapshot)} says it was stored in ${snapshot.mode} mode; drop --stored-mode`);
    }
    return { mode: snapshot.mode, source: 'done mark' };
  }
  if (given) return { mode: given, source: 'given' };
  const meta = await lstat(snapshot.paths.meta).catch(() => null);
  if (!meta?.isDirectory()) throw new SshRSyncError('EUSAGE', `${label(snapshot)}: its metadata directory ${snapshot.paths.meta} is missing: give --stored-mode`);
  return meta.uid === 0
    ? { mode: 'privileged', source: 'guessed: its done mark predates the mode record and its metadata belongs to root (--stored-mode fake-super if that receiver ran with --mode fake-super)' }
    : { mode: 'fake-super', source: `guessed: its done mark predates the mode record and its metadata belongs to uid ${meta.uid}, a non-root receiver (fake-super or plain)` };
}

function label(snapshot: StoredSnapshot): string {
  return snapshot.kind === 'mirror' ? `the mirror of ${snapshot.host}` : `snapshot ${snapshot.id} of ${snapshot.host}`;
}
