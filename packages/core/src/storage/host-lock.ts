// One run per host at a time (SPEC §4 rule 5): a kernel lock (flock(2), see kernel-lock.ts) on
// BACKUP_ROOT/.ssh-r-sync/locks/NAME.lock. The kernel decides who holds it and releases it when
// its holder dies, so a dead process's lock is taken over exactly, with no check-then-act. The file
// is never removed (a removed lock file lets two runs lock two different files); it only names
// its holder (pid and start time) for the message of a refused run, and is emptied on release, so
// a name still in it when we get the lock is that of a holder that died: we log the takeover.
// At most MAX_WAITERS runs per host wait for the lock, each holding a waiter slot NAME.wait.I,
// itself a kernel lock. Paths are opened below the root without following symlinks.
import {
  closeSync,
  constants,
  fchownSync,
  fstatSync,
  ftruncateSync,
  mkdirSync,
  openSync,
  readFileSync,
  readSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { SshRSyncError, oneLine } from '../errors.js';
import { validateName } from './host-dir.js';
import { flockFd, requireFlock } from './kernel-lock.js';
import type { Logger } from '../logger.js';

/** Runs of one host that may wait for its lock at once; one more is refused at once. */
const MAX_WAITERS = 4;
/** How much of a lock file is read: an owner record is ~40 bytes. */
const OWNER_MAX = 1024;
/** How long a refused run looks for its holder's name (written right after it got the lock). */
const HOLDER_LOOK_MS = 1000;
/** Polling step while a holder without the kernel lock (an older ssh-r-sync) is alive. */
const LEGACY_POLL_MS = 250;

interface Owner {
  pid: number;
  start: string;
  /** The holder only records something and lets go within seconds (withHostLock): worth a short wait. */
  brief?: boolean;
}

/** How long a run waits for a brief holder (a record written after a run's session) before it is refused. */
const BRIEF_WAIT_MS = 10_000;

// The kernel's start time of a process, to tell a live owner from a reused pid.
function startTime(pid: number): string | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19] ?? null;
  } catch {
    return null;
  }
}

// A live owner: the same process (pid and start time), and not a zombie waiting to be reaped.
function alive(owner: Owner): boolean {
  try {
    const stat = readFileSync(`/proc/${owner.pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return state !== 'Z' && state !== 'X' && startTime(owner.pid) === owner.start;
  } catch {
    return false;
  }
}

// What the lock file says: its holder, nothing (released cleanly), or something unreadable.
function readOwner(fd: number): Owner | 'empty' | 'unreadable' {
  const buffer = Buffer.alloc(OWNER_MAX);
  const length = readSync(fd, buffer, 0, OWNER_MAX, 0);
  if (length === 0) return 'empty';
  try {
    const parsed = JSON.parse(buffer.toString('utf8', 0, length)) as Owner;
    return Number.isSafeInteger(parsed.pid) && parsed.pid > 0 && typeof parsed.start === 'string' ? parsed : 'unreadable';
  } catch {
    return 'unreadable';
  }
}

// Names us in the lock file: written over the old record first, then cut to length, so the
// file is never empty while we hold the lock.
function writeOwner(fd: number, owner: Owner): void {
  const record = Buffer.from(JSON.stringify(owner));
  writeSync(fd, record, 0, record.length, 0);
  ftruncateSync(fd, record.length);
}

// Why a call failed, without the /proc/self/fd path it was made through.
function reason(error: unknown): string {
  return (error as NodeJS.ErrnoException).code ?? oneLine(error);
}

// Opens (creating 0700) the directory `name` in the directory `parent` without following a symlink
// there; /proc/self/fd/N stands for openat(2), which node lacks.
function openSubdirectory(parent: number, name: string, shown: string): number {
  const path = `/proc/self/fd/${parent}/${name}`;
  let created = false;
  try {
    mkdirSync(path, { mode: 0o700 });
    created = true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') {
      throw new SshRSyncError('EINTERNAL', `cannot create ${shown} for the host lock: ${reason(error)}`, { cause: error });
    }
  }
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ELOOP' || code === 'ENOTDIR') {
      throw new SshRSyncError('EINTERNAL', `refused the host lock: ${shown} is a symlink or not a directory; remove it`, { cause: error });
    }
    throw new SshRSyncError('EINTERNAL', `cannot open ${shown} for the host lock: ${reason(error)}`, { cause: error });
  }
  if (created) ownLikeParent(fd, parent, shown);
  return fd;
}

// ROOT/.ssh-r-sync/locks as a directory descriptor, no symlink followed below ROOT.
function openLocksDirectory(root: string): number {
  let rootFd: number;
  try {
    rootFd = openSync(root, constants.O_RDONLY | constants.O_DIRECTORY);
  } catch (error) {
    throw new SshRSyncError('EINTERNAL', `cannot open the backup root ${root} for the host lock: ${oneLine(error)}`, { cause: error });
  }
  try {
    const state = openSubdirectory(rootFd, '.ssh-r-sync', join(root, '.ssh-r-sync'));
    try {
      return openSubdirectory(state, 'locks', join(root, '.ssh-r-sync', 'locks'));
    } finally {
      closeSync(state);
    }
  } finally {
    closeSync(rootFd);
  }
}

// Opens (creating 0600) a lock file in the locks directory: no symlink, only a plain file of its own.
function openLockFile(locks: number, file: string, shown: string): number {
  let fd: number;
  try {
    fd = openSync(`/proc/self/fd/${locks}/${file}`, constants.O_RDWR | constants.O_CREAT | constants.O_NOFOLLOW | constants.O_NOCTTY, 0o600);
  } catch (error) {
    const how = (error as NodeJS.ErrnoException).code === 'ELOOP' ? 'it is a symlink; remove it' : reason(error);
    throw new SshRSyncError('EINTERNAL', `cannot open the lock file ${shown}: ${how}`, { cause: error });
  }
  const stat = fstatSync(fd);
  if (!stat.isFile() || stat.nlink !== 1) {
    closeSync(fd);
    throw new SshRSyncError('EINTERNAL', `refused the lock file ${shown}: it is not a plain file with one link; remove it`);
  }
  ownLikeParent(fd, locks, shown);
  return fd;
}

// Run as root (say, `ssh-r-sync-admin prune` on a root whose receivers run as `backup`), we give
// what we create in the lock directories to their owner: lock files stay, and a root-owned 0600
// one would shut that owner's runs out for good.
function ownLikeParent(fd: number, parent: number, shown: string): void {
  if (process.getuid?.() !== 0) return;
  try {
    const [mine, theirs] = [fstatSync(fd), fstatSync(parent)];
    if (mine.uid !== theirs.uid || mine.gid !== theirs.gid) fchownSync(fd, theirs.uid, theirs.gid);
  } catch (error) {
    closeSync(fd);
    throw new SshRSyncError('EINTERNAL', `cannot give ${shown} to the owner of its directory: ${reason(error)}`, { cause: error });
  }
}

function busy(name: string, pid: number | null): SshRSyncError {
  return new SshRSyncError('ELOCK', `another backup of ${name} is already running${pid ? ` (pid ${pid})` : ''}; try again later`);
}

// The pid of the lock's live holder, looked for a little while (it names itself right after it
// got the lock); null when no live process is named (say, an admin's own `flock FILE CMD`).
async function holderPid(fd: number, signal: AbortSignal | undefined): Promise<number | null> {
  return (await holder(fd, signal))?.pid ?? null;
}

// The lock's live holder as its record names it, looked for a little while; null: none named.
async function holder(fd: number, signal: AbortSignal | undefined): Promise<Owner | null> {
  const until = Date.now() + HOLDER_LOOK_MS;
  for (;;) {
    const owner = readOwner(fd);
    if (typeof owner === 'object' && alive(owner)) return owner;
    if (Date.now() >= until || signal?.aborted) return null;
    await sleep(20);
  }
}

// Holds one of the host's waiter slots, or refuses at once when all are taken.
async function takeWaiterSlot(locks: number, options: LockOptions): Promise<number> {
  for (let slot = 0; slot < MAX_WAITERS; slot++) {
    const file = `${options.name}.wait.${slot}`;
    const fd = openLockFile(locks, file, join(options.root, '.ssh-r-sync', 'locks', file));
    let held = false;
    try {
      held = await flockFd(fd, { waitSeconds: 0, signal: options.signal });
    } finally {
      if (!held) closeSync(fd);
    }
    if (held) return fd;
  }
  throw new SshRSyncError('ELOCK', `too many runs of ${options.name} are waiting for its lock (${MAX_WAITERS}); try again later`);
}

// Takes the kernel lock on `fd`: at once, or as one of the waiters until `deadline`.
async function acquire(fd: number, locks: number, options: LockOptions, deadline: number): Promise<void> {
  const { signal } = options;
  if (await flockFd(fd, { waitSeconds: 0, signal })) return;
  // A brief holder (an off-site copy recording its facts) lets go within seconds: waited for,
  // so that it never gets a backup refused.
  if ((await holder(fd, signal))?.brief === true) deadline = Math.max(deadline, Date.now() + BRIEF_WAIT_MS);
  const left = (deadline - Date.now()) / 1000;
  if (left > 0) {
    const slot = await takeWaiterSlot(locks, options);
    try {
      if (await flockFd(fd, { waitSeconds: left, signal })) return;
    } finally {
      closeSync(slot);
    }
  }
  throw busy(options.name, await holderPid(fd, signal));
}

// Waits until a holder that does not use the kernel lock is gone; false when it outlives `deadline`.
async function legacyHolderGone(owner: Owner, deadline: number, signal: AbortSignal | undefined): Promise<boolean> {
  while (alive(owner)) {
    if (Date.now() >= deadline) return false;
    await sleep(LEGACY_POLL_MS, undefined, { signal }).catch((error: unknown) => {
      signal?.throwIfAborted();
      throw error;
    });
  }
  return true;
}

export interface LockOptions {
  root: string;
  name: string;
  /** Seconds to wait for a busy host; 0 refuses at once (a brief holder is waited for all the same). */
  waitSeconds: number;
  logger: Logger;
  signal?: AbortSignal;
  /** We hold it only to record something and let go within seconds: others wait instead of being refused. */
  brief?: boolean;
}

// Takes the host's lock, waiting up to `waitSeconds`; returns the release function.
export async function lockHost(options: LockOptions): Promise<() => Promise<void>> {
  const { name, logger, signal } = options;
  validateName(name);
  requireFlock();
  signal?.throwIfAborted();
  const deadline = Date.now() + Math.max(0, options.waitSeconds) * 1000;
  const me: Owner = { pid: process.pid, start: startTime(process.pid) ?? '' };
  const shown = join(options.root, '.ssh-r-sync', 'locks', `${name}.lock`);
  const locks = openLocksDirectory(options.root);
  try {
    for (;;) {
      const fd = openLockFile(locks, `${name}.lock`, shown);
      let keep = false;
      try {
        await acquire(fd, locks, options, deadline);
        const read = readOwner(fd);
        // Our own record (a release that could not empty the file) is no one else's.
        const previous = typeof read === 'object' && read.pid === me.pid && read.start === me.start ? 'empty' : read;
        if (typeof previous === 'object' && alive(previous)) {
          // We hold the kernel lock, yet a live process is named: an ssh-r-sync from before the
          // kernel lock, which removes the file when it ends. Wait for it, then lock afresh.
          if (!(await legacyHolderGone(previous, deadline, signal))) throw busy(name, previous.pid);
          continue;
        }
        writeOwner(fd, options.brief ? { ...me, brief: true } : me);
        if (typeof previous === 'object') logger.warn(`took over the lock of ${name} from dead process ${previous.pid}`);
        if (previous === 'unreadable') logger.warn(`took over the lock of ${name} from an unreadable lock file`);
        keep = true;
        return release(fd);
      } finally {
        if (!keep) closeSync(fd);
      }
    }
  } finally {
    closeSync(locks);
  }
}

// Empties the lock file (a clean end names no one) and closes it, which drops the kernel lock.
function release(fd: number): () => Promise<void> {
  let open = true;
  return async () => {
    if (!open) return;
    open = false;
    try {
      ftruncateSync(fd, 0);
    } finally {
      closeSync(fd);
    }
  };
}

// Runs `work` while holding the host's lock (waiting up to `waitSeconds`), then releases it. For
// plugins whose work runs without it (an unlocked after-session task) and must still write the
// host's record (host facts): briefly, under the lock, like every writer of that record; with
// `brief`, a run that arrives meanwhile waits for it instead of being refused.
export async function withHostLock<T>(options: LockOptions, work: () => Promise<T>): Promise<T> {
  const release = await lockHost(options);
  try {
    return await work();
  } finally {
    await release();
  }
}
