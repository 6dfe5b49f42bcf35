// Whether another account could swap a folder for a symlink on the way to a path that root is
// about to read or write: root then must not act there with its own rights.
import { lstatSync, realpathSync } from 'node:fs';
import { dirname, resolve } from 'node:path';

// Why another account could swap PATH, or a folder on the way to it (the path as given, through
// each symlink on it, and the real path): one of them is not root's, or group or others may
// write it (a sticky folder like /tmp excepted); null when none. Throws when PATH is missing.
export function swappable(path: string): string | null {
  const seen = new Set<string>();
  const absolute = resolve(path);
  for (let prefix = absolute; ; prefix = dirname(prefix)) {
    for (let dir = realpathSync(prefix); !seen.has(dir); dir = dirname(dir)) {
      seen.add(dir);
      const info = lstatSync(dir);
      if (info.uid !== 0) return `${dir} is owned by uid ${info.uid}`;
      if ((info.mode & 0o022) !== 0 && (info.mode & 0o1000) === 0) return `${dir} is writable by group or others`;
    }
    if (prefix === dirname(prefix)) return null;
  }
}
