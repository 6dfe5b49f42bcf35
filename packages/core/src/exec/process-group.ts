// Signals a whole process group, so that a script's children die with it; and makes sure the
// groups we start die with us, even when we are SIGKILLed.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';

// Sends `signal` to the group led by `pid`; false when nothing was there.
export function killGroup(pid: number | undefined, signal: NodeJS.Signals = 'SIGKILL'): boolean {
  if (!pid) return false;
  try {
    process.kill(-pid, signal);
    return true;
  } catch {
    return false;
  }
}

// The watchdog: a few words of /bin/sh that read lines from us and, when its stdin ends — we
// exited or were killed, however — SIGKILLs every process group still listed. A parent-death
// signal reaches only the direct child (a hook script's `sleep` would survive it); the pipe's
// end reaches the watchdog in every case. Only numbers and hex tokens we wrote reach `kill`:
//   +PGID / -PGID    a group we started / are done with;
//   pTOKEN / cTOKEN  a start about to happen / done (its group, if any, sent just before).
// A start still pending at the end is one we were killed in the middle of, before its group
// could be listed: every process carrying SSH_R_SYNC_SPAWN=TOKEN in its environment (the child
// and whatever it forked meanwhile) is killed. A child between fork and exec still shows our
// environment, without the token: the scan is repeated for 0.6 s, which also catches late forks.
export const SPAWN_TOKEN_VARIABLE = 'SSH_R_SYNC_SPAWN';
const WATCHDOG = [
  'groups=" "',
  'pending=" "',
  'while read -r line; do',
  '  case $line in',
  '    +[0-9]*) groups="$groups${line#+} " ;;',
  '    -[0-9]*) groups=$(printf %s "$groups" | sed "s/ ${line#-} / /") ;;',
  '    p[0-9a-f]*) pending="$pending${line#p} " ;;',
  '    c[0-9a-f]*) pending=$(printf %s "$pending" | sed "s/ ${line#c} / /") ;;',
  '  esac',
  'done',
  'for group in $groups; do kill -9 "-$group" 2>/dev/null; done',
  '[ "$pending" = " " ] && exit 0',
  'for pass in 1 2 3 4 5 6; do',
  '  for token in $pending; do',
  `    for file in $(grep -lzxF "${SPAWN_TOKEN_VARIABLE}=$token" /proc/[0-9]*/environ 2>/dev/null); do`,
  '      pid=${file#/proc/}; pid=${pid%/environ}',
  '      kill -9 "-$pid" 2>/dev/null; kill -9 "$pid" 2>/dev/null',
  '    done',
  '  done',
  '  sleep 0.1',
  'done',
].join('\n');

let watchdog: ChildProcess | undefined;

function startWatchdog(): ChildProcess | undefined {
  const child = spawn('/bin/sh', ['-c', WATCHDOG], { stdio: ['pipe', 'ignore', 'ignore'], detached: true });
  child.once('error', () => (watchdog = undefined));
  child.once('exit', () => (watchdog = undefined));
  child.stdin?.on('error', () => {});
  child.unref();
  (child.stdin as unknown as { unref?: () => void } | null)?.unref?.();
  return child;
}

// Registers a process group we started: it is SIGKILLed if this process dies before calling
// the returned function (when the group is done with). Never throws.
export function dieWithUs(pid: number | undefined): () => void {
  if (!pid) return () => {};
  watchdog ??= startWatchdog();
  const dog = watchdog;
  dog?.stdin?.write(`+${pid}\n`);
  return forgetter(dog, pid);
}

// The function that takes `pid`'s group off `dog`'s list (nothing once that watchdog is gone).
function forgetter(dog: ChildProcess | undefined, pid: number | undefined): () => void {
  return () => {
    if (pid && dog && dog === watchdog && dog.stdin?.writable) dog.stdin.write(`-${pid}\n`);
  };
}

export interface GuardedStart {
  /** Goes into the child's environment: it marks the child until its group is registered. */
  env: Record<string, string>;
  /** Called with the child's pid (undefined when it did not start): registers its group as
   *  dieWithUs does, and returns the function to call when the group is done with. */
  started(pid: number | undefined): () => void;
}

// For a child that must die with us even if we are SIGKILLed between its start and its
// registration (a hook, which forks at once): announce the start first, and put `env` into the
// child's environment. Resolves once the announcement is in the watchdog's pipe.
export async function guardStart(): Promise<GuardedStart> {
  watchdog ??= startWatchdog();
  const dog = watchdog;
  const token = randomBytes(12).toString('hex');
  if (dog?.stdin?.writable) {
    dog.stdin.write(`p${token}\n`);
    // A write that did not go straight into the pipe is waited for: the child must not run
    // before the watchdog can know of it.
    if (dog.stdin.writableLength > 0) await new Promise<void>((resolve) => dog.stdin!.write('', () => resolve()));
  }
  return {
    env: { [SPAWN_TOKEN_VARIABLE]: token },
    started(pid) {
      if (!(dog && dog === watchdog && dog.stdin?.writable)) return dieWithUs(pid); // a new watchdog
      dog.stdin.write(`${pid ? `+${pid}\n` : ''}c${token}\n`);
      return forgetter(dog, pid);
    },
  };
}
