// Signals a whole process group, so that a script's children die with it.

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
