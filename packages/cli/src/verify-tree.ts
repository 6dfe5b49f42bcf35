// The stored tree of a backup, entry by entry, in the manifest's order (depth first, each
// directory's names sorted by their bytes, a directory right before its contents), so that verify
// can walk it beside the streamed manifest holding one directory's names per level, never the
// whole tree. Entries are described with plugin-manifest's describeEntry, the function the
// manifest was written with; nothing here follows a symlink or opens a file.
import { readdirSync } from 'node:fs';
import type { Described } from '@ssh-r-sync/plugin-manifest';

/** describeEntry's signature (plugin-manifest is loaded on demand, see manifest-module.ts). */
export type Describe = (abs: string, rel: string, fakeSuper: boolean) => Described;

/** One position of the walk: an entry described, or one that could not be (`error`: bytes as latin1, may quote stored bytes). */
export type TreeItem = { rel: string; abs: string; described: Described; error?: undefined } | { rel: string; abs: string; described?: undefined; error: string };

interface Frame {
  /** The directory's path with a trailing `/` ('' for the top). */
  prefix: string;
  abs: string;
  names: string[];
  next: number;
}

// Walks `root` (its path's bytes as a latin1 string); `next(descend)` moves on, into the current
// directory's contents only when asked (an extra or mistyped directory is reported, not listed).
export class TreeCursor {
  current: TreeItem | null;
  private readonly stack: Frame[] = [];

  constructor(
    root: string,
    private readonly describe: Describe,
    private readonly fakeSuper: boolean,
  ) {
    this.current = this.item(root, '.');
  }

  /** Moves to the next entry (after the last one `current` is null); returns why the current
   *  directory's contents could not be listed, if they could not (they are then skipped). */
  next(descend: boolean): string | null {
    const current = this.current;
    let failed: string | null = null;
    if (current && descend && current.described?.type === 'd') {
      const prefix = current.rel === '.' ? '' : `${current.rel}/`;
      try {
        this.stack.push({ prefix, abs: current.abs, names: readdirSync(Buffer.from(current.abs, 'latin1'), { encoding: 'latin1' }).sort(), next: 0 });
      } catch (error) {
        failed = reason(error);
      }
    }
    for (;;) {
      const frame = this.stack.at(-1);
      if (!frame) {
        this.current = null;
        return failed;
      }
      if (frame.next === frame.names.length) {
        this.stack.pop();
        continue;
      }
      const name = frame.names[frame.next++]!;
      this.current = this.item(`${frame.abs}/${name}`, frame.prefix + name);
      return failed;
    }
  }

  private item(abs: string, rel: string): TreeItem {
    try {
      return { rel, abs, described: this.describe(abs, rel, this.fakeSuper) };
    } catch (error) {
      // describeEntry's own errors start with the path, which the report shows anyway (escaped).
      const why = reason(error);
      return { rel, abs, error: why.startsWith(`${abs}: `) ? why.slice(abs.length + 2) : why };
    }
  }
}

// The short reason of a failed file system call: its errno code, or its message.
export function reason(error: unknown): string {
  return (error as NodeJS.ErrnoException).code ?? (error instanceof Error ? error.message : String(error));
}


// Whether `path` lies inside directory `dir` (both relative, `.` the top).
export function isInside(path: string, dir: string): boolean {
  return dir === '.' ? path !== '.' : path.length > dir.length && path.startsWith(dir) && path.charCodeAt(dir.length) === 0x2f;
}
