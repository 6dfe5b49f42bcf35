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

// The processes below us: one pass over /proc/*/stat.
function descendants(root: number): number[] {
  const children = new Map<number, number[]>();
  for (const name of readOrUndefined(() => readdirSync('/proc')) ?? []) {
    if (!/^\d+$/.test(name)) continue;
    const stat = readOrUndefined(() => readFileSync(`/proc/${name}/stat`, 'latin1'));
    if (!stat) continue;
    const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    children.set(ppid, [...(children.get(ppid) ?? []), Number(name)]);
  }
  const found: number[] = [];
  for (let queue = [root]; queue.length > 0; ) {
    const next = children.get(queue.shift()!) ?? [];
    found.push(...next);
    queue.push(...next);
  }
  return found;
}

const readsSocket = (pid: number, link: string): boolean => readOrUndefined(() => readlinkSync(`/proc/${pid}/fd/0`)) === link;
const bytesRead = (pid: number): number | undefined => {
  const io = readOrUndefined(() => readFileSync(`/proc/${pid}/io`, 'latin1'));
  const rchar = io && /^rchar:\s*(\d+)$/m.exec(io)?.[1];
  return rchar ? Number(rchar) : undefined;
};

// Starts watching the connection; undefined when the kernel's table does not show it (not Linux).
export function watchIdle(inode: number | undefined, options: IdleWatchOptions): IdleWatch | undefined {
  if (inode === undefined) return undefined;
  const link = `socket:[${inode}]`;
  const intervalMs = Math.min(1000, Math.max(100, Math.floor(options.idleMs / 10)));
  let reader: { pid: number; read: number } | undefined;
  let lastActive = Date.now();
  let misses = 0; // scans of /proc that found no reader: the next one waits longer
  let nextScan = 0;
  const timer = setInterval(() => {
    const read = reader && readsSocket(reader.pid, link) ? bytesRead(reader.pid) : undefined;
    if (reader && read !== undefined) {
      if (read !== reader.read) lastActive = Date.now();
      reader.read = read;
    } else if (Date.now() >= nextScan) {
      const pid = descendants(process.pid).find((candidate) => readsSocket(candidate, link));
      const first = pid === undefined ? undefined : bytesRead(pid);
      reader = pid === undefined || first === undefined ? undefined : { pid, read: first };
      misses = reader ? 0 : misses + 1;
      nextScan = Date.now() + Math.min(10_000, intervalMs * 2 ** misses);
      if (reader) lastActive = Date.now(); // a new reader (dd, then cat): the relay moved on
    } else {
      reader = undefined;
    }
    if (!reader || Date.now() - lastActive < options.idleMs) return;
    const socket = tcpEntriesWithPort(options.localPort)?.find((e) => e.inode === inode);
    if (!socket || socket.state !== ESTABLISHED) return void clearInterval(timer); // ended: rsync sees it
    if (socket.rxQueue > 0) return void (lastActive = Date.now()); // bytes wait for us: we are slow
    clearInterval(timer);
    options.onIdle();
  }, intervalMs);
  timer.unref();
  return { stop: () => clearInterval(timer) };
}
