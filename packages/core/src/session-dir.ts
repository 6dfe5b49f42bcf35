// A private temporary directory for one session's secret files: 0700, files 0600, removed on exit.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface SessionDir {
  readonly path: string;
  file(name: string): string;
  remove(): void;
}

const live = new Set<string>();
let exitHookInstalled = false;

// Creates the directory; it is removed by remove() or, at the latest, when the process exits.
export function createSessionDir(prefix: string): SessionDir {
  const path = mkdtempSync(join(tmpdir(), `${prefix}-`));
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
