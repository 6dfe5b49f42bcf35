// Signals a whole process group, so that a script's children die with it; and makes sure the
// groups we start die with us, even when we are SIGKILLed.
import { spawn, type ChildProcess } from 'node:child_process';

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

// The watchdog: a few words of /bin/sh that read "+PGID" and "-PGID" lines from us and, when
// its stdin ends — we exited or were killed, however — SIGKILLs every group still listed. A
// parent-death signal reaches only the direct child (a hook script's `sleep` would survive it);
// the pipe's end reaches the watchdog in every case. Only numbers we wrote ever reach `kill`.
const WATCHDOG = [
  'groups=" "',
  'while read -r line; do',
  '  case $line in',
  '    +[0-9]*) groups="$groups${line#+} " ;;',
  '    -[0-9]*) groups=$(printf %s "$groups" | sed "s/ ${line#-} / /") ;;',
  '  esac',
  'done',
  'for group in $groups; do kill -9 "-$group" 2>/dev/null; done',
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
  return () => {
    if (dog && dog === watchdog && dog.stdin?.writable) dog.stdin.write(`-${pid}\n`);
  };
}
