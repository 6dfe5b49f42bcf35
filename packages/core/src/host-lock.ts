// One run per host at a time (SPEC §4 rule 5): a lock file per name under BACKUP_ROOT/.ssh-r-sync/locks.
// A lock whose process is gone (or whose pid was reused) is taken over with a log line.
import { linkSync, mkdirSync, readFileSync, renameSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { SshRSyncError } from './errors.js';
import type { Logger } from './logger.js';

interface Owner {
  pid: number;
  start: string;
}

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

function readOwner(path: string): Owner | null {
  try {
    const parsed = JSON.parse(readFileSync(path, 'utf8')) as Owner;
    return Number.isInteger(parsed.pid) && typeof parsed.start === 'string' ? parsed : null;
  } catch {
    return null;
  }
}

export interface LockOptions {
  root: string;
  name: string;
  /** Seconds to wait for a busy host; 0 refuses at once. */
  waitSeconds: number;
  logger: Logger;
  signal?: AbortSignal;
}

// Takes the host's lock, waiting up to `waitSeconds`; returns the release function.
export async function lockHost(options: LockOptions): Promise<() => Promise<void>> {
  const dir = join(options.root, '.ssh-r-sync', 'locks');
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const path = join(dir, `${options.name}.lock`);
  const me: Owner = { pid: process.pid, start: startTime(process.pid) ?? '' };
  const mine = `${path}.${process.pid}`;
  writeFileSync(mine, JSON.stringify(me), { mode: 0o600 });
  const deadline = Date.now() + options.waitSeconds * 1000;
  try {
    for (;;) {
      try {
        linkSync(mine, path);
        break;
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      }
      const owner = readOwner(path);
      if (!owner || !alive(owner)) {
        renameSync(mine, path);
        writeFileSync(mine, JSON.stringify(me), { mode: 0o600 });
        const again = readOwner(path);
        if (again?.pid === me.pid && again.start === me.start) {
          options.logger.warn(`took over the lock of ${options.name} from ${owner ? `dead process ${owner.pid}` : 'an unreadable lock file'}`);
          break;
        }
        continue;
      }
      if (Date.now() >= deadline) {
        throw new SshRSyncError('ELOCK', `another backup of ${options.name} is running (pid ${owner.pid}); try again later`);
      }
      await new Promise((resolve) => setTimeout(resolve, 250));
      options.signal?.throwIfAborted();
    }
  } finally {
    try {
      unlinkSync(mine);
    } catch {}
  }
  return async () => {
    const owner = readOwner(path);
    if (owner?.pid === me.pid && owner.start === me.start) unlinkSync(path);
  };
}
