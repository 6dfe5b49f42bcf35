// A private temporary directory for one session's secret files: 0700, files 0600, removed on exit.
// Its name carries the owner's pid (`PREFIX-PID-XXXXXX`): a process killed with SIGKILL cannot
// remove its own, so each new session removes those of its kind whose process is gone.
import { lstatSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface SessionDir {
  readonly path: string;
  file(name: string): string;
  remove(): void;
}

const live = new Set<string>();
let exitHookInstalled = false;

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM'; // someone else's: alive
  }
}

// Removes PREFIX-PID-XXXXXX directories of ours (owner, 0700, not a link) whose PID is not running.
export function removeStaleSessionDirs(prefix: string, dir = tmpdir()): string[] {
  const pattern = new RegExp(`^${prefix.replace(/[.*+?^${}()|[\]\\-]/g, '\\$&')}-(\\d+)-[A-Za-z0-9]{6}$`);
  const removed: string[] = [];
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return removed;
  }
  for (const name of names) {
    const pid = Number(pattern.exec(name)?.[1]);
    if (!pid || pid === process.pid || alive(pid)) continue;
    const path = join(dir, name);
    try {
      const stat = lstatSync(path);
      if (!stat.isDirectory() || stat.uid !== process.getuid?.() || (stat.mode & 0o777) !== 0o700) continue;
      rmSync(path, { recursive: true, force: true });
      removed.push(path);
    } catch {
      // gone meanwhile, or not ours to remove
    }
  }
  return removed;
}

// Creates the directory; it is removed by remove() or, at the latest, when the process exits.
export function createSessionDir(prefix: string): SessionDir {
  removeStaleSessionDirs(prefix);
  const path = mkdtempSync(join(tmpdir(), `${prefix}-${process.pid}-`));
  live.add(path);
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.once('exit', () => {
      for (const dir of live) rmSync(dir, { recursive: true, force: true });
    });
  }
  return {
    path,
    file: (name) => join(path, name),
    remove() {
      rmSync(path, { recursive: true, force: true });
      live.delete(path);
    },
  };
}
