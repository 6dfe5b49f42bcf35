// The receiver's own record of each host, kept outside the host's directory (which holds the
// client's data and so may hold anything): ROOT/.ssh-r-sync/hosts/NAME.json. It says which kind
// of directory the receiver made there — a mirror or snapshots — so that nothing ever takes a
// mirrored client file for a snapshot, and a run with the other kind's settings is refused
// before it mixes the two (a mirror run over snapshots would delete them all).
import { constants, existsSync } from 'node:fs';
import { mkdir, open, readdir, rm, type FileHandle } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { SshRSyncError, oneLine } from '../errors.js';
import { writeAtomic } from './durable.js';

/** The store kind of a host: 'mirror' (no store plugin), 'snapshots' (plugin-link-dest), or
 *  the kind of another store plugin ('btrfs', …). */
export type HostKind = string;

export interface AfterSessionRecord {
  at: string;
  /** Each task that ran after the session (e.g. rotation), with how it ended; 'deferred': left to
   *  a process of its own (ssh-r-sync-recv --defer-unlocked), neither a success nor a failure. */
  tasks: { name: string; outcome: 'ok' | 'failed' | 'timed out' | 'deferred'; error: string | null; durationMs: number }[];
}

/** How the host's last run ended, in words: the server's own account of it. */
export interface LastRunRecord {
  at: string;
  status: 'success' | 'failure' | 'skipped';
  committed: boolean;
  snapshot: string | null;
  message: string | null;
}

export interface HostRecord {
  version: 1;
  kind: HostKind;
  /** Where the admin tools load the store of this kind from (StoreProvider.module); absent in
   *  records of a mirror and in older records of link-dest snapshots. */
  store?: string;
  /** When the receiver first wrote this host's directory as this kind. */
  since: string;
  /** The last run that got as far as the host's directory. */
  lastRun?: LastRunRecord;
  /** When the last committed success ended: kept when later runs fail (a failed mirror run
   *  removes the mirror's done mark, and the run log is capped). */
  lastSuccess?: string;
  /** The last run's work after its session (pruning), if any. */
  afterSession?: AfterSessionRecord;
  /** The work after the session of the last run that was not committed (its notifications), when
   *  it is newer than the last committed run's: kept apart, so it never hides that one's record. */
  afterUncommitted?: AfterSessionRecord;
  /** What plugins know about the host beyond these records, by plugin (host-facts.ts). */
  facts?: Record<string, import('./host-facts.js').HostFact>;
}

const MAX_RECORD_BYTES = 256 * 1024;

export function hostRecordPath(root: string, name: string): string {
  return join(root, '.ssh-r-sync', 'hosts', `${name}.json`);
}

/** What a store kind looks like (StoreProvider.kind); a record with another is not one of ours. */
export const KIND_PATTERN = /^[a-z][a-z0-9-]{0,31}$/;

// The host's record; null when there is none (or it is not one of ours).
export async function readHostRecord(root: string, name: string): Promise<HostRecord | null> {
  return (await hostRecordState(root, name)).record;
}

// The host's record, and whether a file is there that is not a readable record of ours: then the
// host's kind is not known, and nothing may guess it from the names in its directory.
async function hostRecordState(root: string, name: string): Promise<{ record: HostRecord | null; unreadable: string | null }> {
  let handle: FileHandle | undefined;
  const file = hostRecordPath(root, name);
  try {
    handle = await open(file, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
    const stats = await handle.stat();
    if (!stats.isFile() || stats.size > MAX_RECORD_BYTES) return { record: null, unreadable: `${file} is not a record of ours (not a small regular file)` };
    const record = JSON.parse(await handle.readFile('utf8')) as HostRecord;
    const valid = record?.version === 1 && typeof record.kind === 'string' && KIND_PATTERN.test(record.kind) && (record.store === undefined || typeof record.store === 'string');
    return valid ? { record, unreadable: null } : { record: null, unreadable: `${file} is not a record of ours` };
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return { record: null, unreadable: null };
    return { record: null, unreadable: `${file} cannot be read (${code ?? oneLine(error)})` };
  } finally {
    await handle?.close().catch(() => {});
  }
}

// Writes the host's record atomically and durably.
export async function writeHostRecord(root: string, name: string, record: HostRecord): Promise<void> {
  await mkdir(join(root, '.ssh-r-sync', 'hosts'), { recursive: true, mode: 0o700 });
  await writeAtomic(hostRecordPath(root, name), `${JSON.stringify(record, null, 2)}\n`);
}

// The kind of a host directory: the record's word; without one (made by an older version),
// inferred from our own metadata only: the mirror's metadata dir, or snapshot metadata dirs.
// A non-empty directory with neither is a mirror (the receiver's behaviour without plugins).
export async function hostKind(root: string, name: string, hostDir: string): Promise<HostKind | 'new'> {
  const { record, unreadable } = await hostRecordState(root, name);
  if (record) return record.kind;
  // A record that is there but unreadable is not "no record": a btrfs host (or any other kind)
  // would be guessed as hard-linked snapshots from its ID.meta folders.
  if (unreadable) throw new SshRSyncError('ESTORAGE', `the host record of "${name}": ${unreadable}: repair it or move it aside (the host's snapshots are not touched until then)`);
  if (existsSync(join(root, '.ssh-r-sync', 'mirror', name))) return 'mirror';
  const entries = await readdir(hostDir).catch(() => [] as string[]);
  if (entries.length === 0) return 'new';
  if (entries.some((entry) => entry.endsWith('.meta'))) return 'snapshots';
  return 'mirror';
}

// Refuses a run of one kind into a host directory of another kind, saying what to do; records
// the kind (and where its store is loaded from) of a new host.
export async function claimHostKind(root: string, name: string, hostDir: string, kind: HostKind, store?: string): Promise<void> {
  const found = await hostKind(root, name, hostDir);
  const fresh = (): HostRecord => ({ version: 1, kind, ...(store && kind !== 'mirror' ? { store } : {}), since: new Date().toISOString() });
  if (found === kind) {
    const record = await readHostRecord(root, name);
    if (!record) await writeHostRecord(root, name, fresh());
    else if (store && kind !== 'mirror' && record.store !== store) await writeHostRecord(root, name, { ...record, store });
    return;
  }
  // An empty directory holds nothing to mix: new, or its old kind was moved aside (or removed)
  // as the refusal below says. A mirror's metadata goes with it, so nothing infers one any more.
  if (found === 'new' || (await readdir(hostDir).then((entries) => entries.length === 0, () => false))) {
    if (found === 'mirror') await rm(join(root, '.ssh-r-sync', 'mirror', name), { recursive: true, force: true });
    await writeHostRecord(root, name, fresh());
    return;
  }
  // Moved aside under a name no host can have (a leading dot): status and prune never read it,
  // so a mirror's look-alike snapshot directories stay the client's files there too.
  const moved = join(dirname(hostDir), `.${name}.${found}`);
  if (found === 'mirror') {
    throw new SshRSyncError(
      'ECONFIG',
      `${hostDir} holds a mirror of ${name} (made without snapshot plugins); its files would be mixed with snapshots: ` +
        `move it aside (mv ${hostDir} ${moved}) or remove it before the first snapshot run`,
    );
  }
  if (kind === 'mirror') {
    throw new SshRSyncError(
      'ECONFIG',
      `${hostDir} holds ${describeKind(found)} of ${name}, but this run has no snapshot plugin and would overwrite them with a mirror: ` +
        `load ${pluginOf(found, (await readHostRecord(root, name))?.store)} as before, or move the snapshots aside (mv ${hostDir} ${moved})`,
    );
  }
  throw new SshRSyncError(
    'ECONFIG',
    `${hostDir} holds ${describeKind(found)} of ${name}, but this run stores ${describeKind(kind)}; a host never changes store kind by itself: ` +
      `load ${pluginOf(found, (await readHostRecord(root, name))?.store)} as before, or move the old snapshots aside (mv ${hostDir} ${moved}) and start afresh`,
  );
}

// A kind in words, for messages.
export function describeKind(kind: HostKind): string {
  if (kind === 'mirror') return 'a mirror';
  if (kind === 'snapshots') return 'snapshots'; // hard-linked (plugin-link-dest)
  return `${kind} snapshots`;
}

// The plugin that stores a kind, for messages.
function pluginOf(kind: HostKind, store: string | undefined): string {
  return store ?? (kind === 'snapshots' ? '@ssh-r-sync/plugin-link-dest' : `the plugin that stores ${kind} snapshots`);
}

// Records how a run ended in the host's record (only a host the receiver has written to has one).
export async function recordLastRun(root: string, name: string, lastRun: LastRunRecord): Promise<void> {
  const record = await readHostRecord(root, name);
  const succeeded = lastRun.status === 'success' && lastRun.committed;
  if (record) await writeHostRecord(root, name, { ...record, lastRun, ...(succeeded ? { lastSuccess: lastRun.at } : {}) });
}
