// A pull's --io-timeout. rsync's own --timeout cannot keep it: the receiver's generator counts its
// keep-alives as activity, and they go into ssh's stdin and the ssh channel's buffers (megabytes)
// that a stopped sender never drains, so a client whose sshd is up but whose rsync stopped would
// hold the host's lock for ever.
//
// What is measured (Linux /proc): the I/O of rsync's receiver process (the fork of the rsync we
// started that reads what ssh brings, and writes the files). It does nothing but handle data from
// the sender, and a live sender sends at least its keep-alives (every --timeout/2 s, as rsync runs
// with --timeout): no read or write for idleMs means that nothing arrived for that long. A receiver
// that is running or waiting for the disk (state R or D) is us being slow, not the client.
import { readFileSync } from 'node:fs';
import { watchProgress, type IdleWatch } from '../../session/tunnel/idle-watch.js';

const argvOf = (pid: number): string[] | undefined => {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'latin1').split('\0').slice(0, -1);
  } catch {
    return undefined; // gone meanwhile
  }
};

const stateOf = (pid: number): string | undefined => {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0];
  } catch {
    return undefined;
  }
};

// Watches rsync's receiver for a pull from `source` (rsync's source argument, which only our
// rsync and its fork carry); calls onStalled once no data arrived for idleMs.
export function watchPullStall(source: string, idleMs: number, onStalled: () => void): IdleWatch {
  return watchProgress({
    idleMs,
    // The receiver is the generator's fork: the same argv as its parent, which is ours too.
    isWatched: (pid, ppid) => {
      const argv = argvOf(pid);
      if (!argv?.includes(source)) return false;
      const parent = argvOf(ppid);
      return parent !== undefined && parent.length === argv.length && parent.every((arg, i) => arg === argv[i]);
    },
    progress: (io) => io.rchar + io.wchar,
    confirm: (pid) => {
      const state = stateOf(pid);
      if (state === undefined || state === 'Z' || state === 'X') return 'ended'; // rsync ends by itself
      return state === 'R' || state === 'D' ? 'busy' : 'idle';
    },
    onIdle: onStalled,
  });
}
