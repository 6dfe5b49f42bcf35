// Watches a tunnel connection that rsync pulls through for bytes from the client, and says when
// none came for idleMs. rsync's own --timeout cannot do this here: its generator counts every
// successful write as activity, and its keep-alives (4 bytes every timeout/2 s) go into the relay
// pipe, the socket, sshd's and ssh's channel buffers — megabytes that a client whose daemon stopped
// reading never drains. So a stopped client would hold the host's lock for ever.
//
// What is measured (Linux /proc): the bytes read by the process that reads the connection (the
// relay's `cat <&3`, or the `dd` before it: the one among our descendants whose stdin is the
// socket) from /proc/PID/io, and the bytes that arrived but are not read yet, from the kernel's
// TCP table. No change in the first and none waiting in the second for idleMs means that nothing
// arrived for that long. Bytes waiting unread mean that we are slow, not the client. Without
// /proc, or when no such reader exists (a plugin's runner of its own), it never fires.
// watchProgress is the general part, also used by a pull (pull/stall-watch.ts) on rsync's receiver.
import { readFileSync, readdirSync, readlinkSync } from 'node:fs';
import { tcpEntriesWithPort } from './tcp-table.js';

const ESTABLISHED = 1;

export interface IdleWatchOptions {
  /** Our end of the connection (127.0.0.1:localPort → 127.0.0.1:remotePort). */
  localPort: number;
  remotePort: number;
  idleMs: number;
  /** Called once, when nothing arrived for idleMs; the watch has stopped by then. */
  onIdle: () => void;
}

export interface IdleWatch {
  stop(): void;
}

/** The inode of our established socket 127.0.0.1:localPort → 127.0.0.1:remotePort, if the table shows it. */
export function socketInode(localPort: number, remotePort: number): number | undefined {
  const entry = tcpEntriesWithPort(localPort)?.find(
    (e) => e.local === `127.0.0.1:${localPort}` && e.remote === `127.0.0.1:${remotePort}` && e.state === ESTABLISHED,
  );
  return entry && entry.inode !== 0 ? entry.inode : undefined;
}

function readOrUndefined<T>(read: () => T): T | undefined {
  try {
    return read();
  } catch {
    return undefined; // gone meanwhile, or not ours to read
  }
}

// The processes below us, with their parents: one pass over /proc/*/stat.
function descendants(root: number): Array<{ pid: number; ppid: number }> {
  const children = new Map<number, number[]>();
  for (const name of readOrUndefined(() => readdirSync('/proc')) ?? []) {
    if (!/^\d+$/.test(name)) continue;
    const stat = readOrUndefined(() => readFileSync(`/proc/${name}/stat`, 'latin1'));
    if (!stat) continue;
    const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    children.set(ppid, [...(children.get(ppid) ?? []), Number(name)]);
  }
  const found: Array<{ pid: number; ppid: number }> = [];
  for (let queue = [root]; queue.length > 0; ) {
    const ppid = queue.shift()!;
    const next = children.get(ppid) ?? [];
    found.push(...next.map((pid) => ({ pid, ppid })));
    queue.push(...next);
  }
  return found;
}

const readsSocket = (pid: number, link: string): boolean => readOrUndefined(() => readlinkSync(`/proc/${pid}/fd/0`)) === link;

/** The process's I/O counters from /proc/PID/io (all reads and writes, files and pipes alike). */
export function ioCounters(pid: number): { rchar: number; wchar: number } | undefined {
  const io = readOrUndefined(() => readFileSync(`/proc/${pid}/io`, 'latin1'));
  const rchar = io && /^rchar:\s*(\d+)$/m.exec(io)?.[1];
  const wchar = io && /^wchar:\s*(\d+)$/m.exec(io)?.[1];
  return rchar && wchar ? { rchar: Number(rchar), wchar: Number(wchar) } : undefined;
}

export interface ProgressWatchOptions {
  idleMs: number;
  /** Is this descendant of ours (its parent given) the process whose I/O shows the client's data arriving? */
  isWatched: (pid: number, ppid: number) => boolean;
  /** The counter that moves only while data arrives (or is being handled), from ioCounters. */
  progress: (io: { rchar: number; wchar: number }) => number;
  /** Asked once idleMs passed without progress: 'busy' (we are slow, not the client) waits again, 'ended' stops the watch. */
  confirm?: (pid: number) => 'idle' | 'busy' | 'ended';
  /** Called once, when nothing arrived for idleMs; the watch has stopped by then. */
  onIdle: () => void;
}

// Polls the I/O counter of one watched process below us (found again when it changes or goes,
// scans backing off to every 10 s while there is none) and calls onIdle once it stood still for
// idleMs. Without /proc, or while no process is watched, it never fires.
export function watchProgress(options: ProgressWatchOptions): IdleWatch {
  const intervalMs = Math.min(1000, Math.max(100, Math.floor(options.idleMs / 10)));
  let watched: { pid: number; ppid: number; count: number } | undefined;
  let lastActive = Date.now();
  let misses = 0; // scans of /proc that found nothing to watch: the next one waits longer
  let nextScan = 0;
  const countOf = (pid: number): number | undefined => {
    const io = ioCounters(pid);
    return io && options.progress(io);
  };
  const timer = setInterval(() => {
    const count = watched && options.isWatched(watched.pid, watched.ppid) ? countOf(watched.pid) : undefined;
    if (watched && count !== undefined) {
      if (count !== watched.count) lastActive = Date.now();
      watched.count = count;
    } else if (Date.now() >= nextScan) {
      const found = descendants(process.pid).find((p) => options.isWatched(p.pid, p.ppid));
      const first = found && countOf(found.pid);
      watched = found && first !== undefined ? { ...found, count: first } : undefined;
      misses = watched ? 0 : misses + 1;
      nextScan = Date.now() + Math.min(10_000, intervalMs * 2 ** misses);
      if (watched) lastActive = Date.now(); // a new process (dd, then cat): the transfer moved on
    } else {
      watched = undefined;
    }
    if (!watched || Date.now() - lastActive < options.idleMs) return;
    const verdict = options.confirm?.(watched.pid) ?? 'idle';
    if (verdict === 'ended') return void clearInterval(timer);
    if (verdict === 'busy') return void (lastActive = Date.now());
    clearInterval(timer);
    options.onIdle();
  }, intervalMs);
  timer.unref();
  return { stop: () => clearInterval(timer) };
}

// Starts watching the connection; undefined when the kernel's table does not show it (not Linux).
export function watchIdle(inode: number | undefined, options: IdleWatchOptions): IdleWatch | undefined {
  if (inode === undefined) return undefined;
  const link = `socket:[${inode}]`;
  return watchProgress({
    idleMs: options.idleMs,
    isWatched: (pid) => readsSocket(pid, link),
    progress: (io) => io.rchar,
    confirm: () => {
      const socket = tcpEntriesWithPort(options.localPort)?.find((e) => e.inode === inode);
      if (!socket || socket.state !== ESTABLISHED) return 'ended'; // rsync sees it
      return socket.rxQueue > 0 ? 'busy' : 'idle'; // bytes wait for us: we are slow
    },
    onIdle: options.onIdle,
  });
}
