// Whether a host's lock is held, seen from outside: core's lock file
// (ROOT/.ssh-r-sync/locks/NAME.lock) names its holder while it is held ({pid, start}) and is
// emptied on release; the kernel drops the lock when its holder dies, so a name whose process is
// gone (or is another process now) is no holder. Only read, never locked: trying the lock would
// refuse a run that starts at that moment.
import { constants } from 'node:fs';
import { open, readFile, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';

const OWNER_MAX = 1024;

// True when a live process other than this one is named in the host's lock file. This process is
// left out: it writes the file at the end of its own run, just before it lets the lock go.
export async function lockHeld(root: string, name: string): Promise<boolean> {
  let handle: FileHandle | undefined;
  let text = '';
  try {
    handle = await open(join(root, '.ssh-r-sync', 'locks', `${name}.lock`), constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
    if (!(await handle.stat()).isFile()) return false;
    const buffer = Buffer.alloc(OWNER_MAX);
    const { bytesRead } = await handle.read(buffer, 0, OWNER_MAX, 0);
    text = buffer.toString('utf8', 0, bytesRead);
  } catch {
    return false;
  } finally {
    await handle?.close().catch(() => {});
  }
  let owner: { pid?: unknown; start?: unknown };
  try {
    owner = JSON.parse(text) as typeof owner;
  } catch {
    return false;
  }
  if (!Number.isSafeInteger(owner?.pid) || (owner.pid as number) <= 0 || typeof owner.start !== 'string') return false;
  if (owner.pid === process.pid) return false;
  return alive(owner.pid as number, owner.start);
}

// The same process (pid and kernel start time, so not a reused pid), and not a zombie.
async function alive(pid: number, start: string): Promise<boolean> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
  const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return stat !== '' && rest[0] !== 'Z' && rest[0] !== 'X' && rest[19] === start;
}
