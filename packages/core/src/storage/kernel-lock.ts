// An exclusive kernel lock (flock(2)) on a file descriptor we hold. Node has no flock API, so
// util-linux's flock(1) takes it on our descriptor, passed as its fd 3: flock locks belong to the
// open file description, so once flock(1) exits 0 the lock stays with our descriptor until we close
// it or die; the kernel releases it then, SIGKILL included. flock(1) runs in its own process group,
// with a parent-death signal where setpriv can, is killed on abort, and is bounded by its own -w
// plus a grace timer of ours. Should we die before setpriv has set that signal, flock outlives us
// only until its -w bound; if it gets the lock meanwhile, it lets go of it as it exits at once.
import { spawn } from 'node:child_process';
import { accessSync, closeSync, constants, existsSync, fchmodSync, fstatSync, openSync } from 'node:fs';
import { SshRSyncError } from '../errors.js';
import { killGroup } from '../exec/process-group.js';
import { parentDeathPrefix } from '../session/tunnel/daemon.js';

export const FLOCK = '/usr/bin/flock';
/** flock -E: its exit code for "another holder kept it" (EX_TEMPFAIL), apart from its errors. */
const BUSY = 75;
const STDERR_MAX = 1000;
/** How much longer than its own bound flock(1) may take before we kill it. */
const GRACE_MS = 10_000;

export interface FlockOptions {
  /** Seconds to wait for another holder to let go; 0 tries once. */
  waitSeconds: number;
  /** Aborting kills flock(1) (and so ends the wait) and rejects with the signal's reason. */
  signal?: AbortSignal;
}

// Throws a one-line error unless flock(1) is there to take kernel locks.
export function requireFlock(): void {
  try {
    accessSync(FLOCK, constants.X_OK);
  } catch (error) {
    throw new SshRSyncError('ESPAWN', `locks need ${FLOCK}, which is missing: install util-linux`, { cause: error });
  }
}

// Locks `fd` exclusively: true when we hold it, false when another holder kept it past the wait.
export async function flockFd(fd: number, options: FlockOptions): Promise<boolean> {
  const { signal } = options;
  signal?.throwIfAborted();
  const wait = options.waitSeconds > 0 ? ['-w', options.waitSeconds.toFixed(3)] : ['-n'];
  const argv = [...(await parentDeathPrefix()), FLOCK, '-x', '-E', String(BUSY), ...wait, '3'];
  signal?.throwIfAborted();
  return new Promise<boolean>((resolve, reject) => {
    const child = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'ignore', 'pipe', fd], detached: true });
    let stderr = '';
    let ended: SshRSyncError | undefined;
    const stop = (why: SshRSyncError | undefined) => {
      ended ??= why;
      killGroup(child.pid, 'SIGKILL');
    };
    const onAbort = () => stop(undefined);
    const timer = setTimeout(
      () => stop(new SshRSyncError('ETIMEOUT', `${FLOCK} did not return within ${Math.round(options.waitSeconds + GRACE_MS / 1000)} s`)),
      options.waitSeconds * 1000 + GRACE_MS,
    );
    signal?.addEventListener('abort', onAbort, { once: true });
    child.stderr!.setEncoding('utf8');
    child.stderr!.on('data', (chunk: string) => {
      if (stderr.length < STDERR_MAX) stderr += chunk.slice(0, STDERR_MAX - stderr.length);
    });
    child.on('error', (error) => (ended ??= new SshRSyncError('ESPAWN', `cannot start ${FLOCK}: ${error.message}`, { cause: error })));
    child.on('close', (code, killedBy) => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      if (signal?.aborted) reject(signal.reason);
      else if (ended) reject(ended);
      else if (code === 0) resolve(true);
      else if (code === BUSY) resolve(false);
      else {
        const how = killedBy ? `was killed by ${killedBy}` : `exited with code ${code}`;
        reject(new SshRSyncError('ESPAWN', `${FLOCK} ${how}${stderr.trim() ? `: ${stderr.trim().replace(/\s*\n\s*/g, ' ')}` : ''}`));
      }
    });
  });
}

/** How a file lock is waited for. */
export interface FileLockOptions {
  /** Seconds to wait for another holder; past it the work is not done (an ELOCK error). */
  waitSeconds: number;
  signal?: AbortSignal;
}

// Runs `work` while holding an exclusive kernel lock on `path` (created 0644 if missing, opened
// read-only, which is all flock needs, so that other accounts that write the same file, such as
// the status timer's, can lock it too; never followed if a symlink, never removed: a removed lock
// file lets two processes lock two different files).
// For plugins that rewrite one shared file from several receivers' runs (plugin-prometheus's
// textfile): each reads, computes and writes under the lock, so the last rename is never a stale view.
export async function withFileLock<T>(path: string, options: FileLockOptions, work: () => Promise<T>): Promise<T> {
  requireFlock();
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_CREAT | constants.O_NOFOLLOW | constants.O_NONBLOCK, 0o644);
  } catch (error) {
    // The lock file's own trouble says so; the directory's (cannot create it there) stays the
    // errno it is, for the caller to word.
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ELOOP') throw new SshRSyncError('ELOCK', `the lock file ${path} is a symlink: remove it`, { cause: error });
    if (code === 'EACCES' && existsSync(path)) throw new SshRSyncError('ELOCK', `cannot open the lock file ${path} (EACCES): make it readable by every account that writes beside it (chmod 644 ${path})`, { cause: error });
    throw error;
  }
  try {
    const stats = fstatSync(fd);
    if (!stats.isFile()) throw new SshRSyncError('ELOCK', `${path} is not a regular file: it cannot be a lock; remove it`);
    // The umask may have taken the others' read bit: they need it to lock the same file.
    if (stats.uid === process.getuid?.() && (stats.mode & 0o444) !== 0o444) {
      try {
        fchmodSync(fd, (stats.mode & 0o777) | 0o444);
      } catch {
        // a filesystem that refuses (NFS with root_squash): the lock still works for this account
      }
    }
    if (!(await flockFd(fd, options))) throw Object.assign(new SshRSyncError('ELOCK', `${path} stayed locked by another process for ${options.waitSeconds} s`), { busy: true });
    return await work();
  } finally {
    closeSync(fd);
  }
}

// Whether `error` is withFileLock's "another process holds it" (not a trouble with the file).
export function isLockBusy(error: unknown): boolean {
  return typeof error === 'object' && error !== null && (error as { busy?: unknown }).busy === true;
}
