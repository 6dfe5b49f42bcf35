// Deleting a snapshot's tree quickly (used by removeSnapshot). Hard-link farms are slow to delete (hours per rotation are a
// common complaint), and node's recursive fs.rm takes two to four times as long as `rm -rf` on a
// snapshot of 200k files (bench/prune.mts). So the tree goes to `rm -rf` itself: split into
// subtrees, several `rm -rf` processes at once when there are CPUs for them, then one final
// `rm -rf` of what is left.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, lstat, opendir, readdir, rm } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { SshRSyncError } from '../errors.js';
import { dieWithUs, killGroup } from '../exec/process-group.js';

export interface DeleteOptions {
  /** Parallel `rm` processes (default: the CPU count, at most 4). */
  jobs?: number;
  /** Aborting kills the `rm` processes; what was deleted stays deleted. */
  signal?: AbortSignal;
}

/** About how many subtrees per job the tree is split into, for an even load. */
const PIECES_PER_JOB = 32;
/** How deep to look for subtrees. */
const MAX_SPLIT_DEPTH = 3;
/** Paths per `rm` call. */
const BATCH = 64;

export function defaultJobs(): number {
  return Math.max(1, Math.min(4, availableParallelism()));
}

// `rm -rf` of one directory tree (or file), in parallel pieces; missing is fine.
export async function deleteTree(path: string, options: DeleteOptions = {}): Promise<void> {
  const jobs = options.jobs ?? defaultJobs();
  if (!Number.isSafeInteger(jobs) || jobs < 1) throw new TypeError(`jobs must be a whole number >= 1, got ${jobs}`);
  const stat = await lstat(path).catch(() => null);
  if (!stat) return;
  if (stat.isDirectory() && jobs > 1) {
    const pieces = await split(path, jobs * PIECES_PER_JOB);
    // Even batches, several per job, so that no job is left with the big tail alone.
    const size = Math.max(1, Math.min(BATCH, Math.ceil(pieces.length / (jobs * 4))));
    const queue: string[][] = [];
    for (let i = 0; i < pieces.length; i += size) queue.push(pieces.slice(i, i + size));
    // A piece that fails is tried again below, as part of the whole tree.
    await Promise.all(
      Array.from({ length: Math.min(jobs, queue.length) }, async () => {
        for (let batch = queue.shift(); batch; batch = queue.shift()) await removeAll(batch, options.signal);
      }),
    );
  }
  // What is left: the skeleton of the split, files beside the pieces, or all of it with one job.
  let error = await removeAll([path], options.signal);
  if (error && /Permission denied/i.test(error)) {
    // Directories without u+wx (a client's read-only directory kept as it was) cannot be
    // emptied, even by their owner: open them up and try again. Only directories: files are
    // hard-linked into snapshots that stay, and changing their mode would change those too.
    await openDirectories(path);
    error = await removeAll([path], options.signal);
  }
  if (error) throw new SshRSyncError('EINTERNAL', `could not delete ${path}: ${error}`);
}

// Directories below `root` to delete in parallel: breadth first, a few levels down, until there
// are about `wanted`. Files beside them are left to the final `rm -rf` of the whole tree.
async function split(root: string, wanted: number): Promise<string[]> {
  let pieces = [root];
  for (let depth = 0; depth < MAX_SPLIT_DEPTH && pieces.length < wanted; depth++) {
    const next: string[] = [];
    let expanded = false;
    for (const [index, piece] of pieces.entries()) {
      if (next.length >= wanted * 8) {
        next.push(...pieces.slice(index));
        break;
      }
      const subdirectories = await directoriesIn(piece);
      if (subdirectories.length === 0) next.push(piece);
      else {
        expanded = true;
        next.push(...subdirectories);
      }
    }
    if (!expanded) break;
    pieces = next;
  }
  return pieces.filter((piece) => piece !== root);
}

// The sub-directories of `dir` (not following symlinks); [] when it cannot be read.
async function directoriesIn(dir: string): Promise<string[]> {
  const found: string[] = [];
  try {
    for await (const entry of await opendir(dir)) if (entry.isDirectory()) found.push(join(dir, entry.name));
  } catch {
    return [];
  }
  return found;
}

// Runs `rm -rf -- PATHS…` in its own process group; resolves to null or rm's first error line.
function removeAll(paths: string[], signal?: AbortSignal): Promise<string | null> {
  if (signal?.aborted) return Promise.reject(signal.reason ?? new Error('aborted'));
  return new Promise((resolve, reject) => {
    const child = spawn(rmProgram(), ['-rf', '--', ...paths], { stdio: ['ignore', 'ignore', 'pipe'], detached: true });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
      if (stderr.length < 4096) stderr += chunk;
    });
    const abort = () => killGroup(child.pid, 'SIGKILL');
    signal?.addEventListener('abort', abort, { once: true });
    const forget = dieWithUs(child.pid);
    child.once('exit', forget);
    let failedToStart = false;
    child.on('error', (error: NodeJS.ErrnoException) => {
      failedToStart = true;
      signal?.removeEventListener('abort', abort);
      if (error.code !== 'ENOENT') return reject(error);
      // No rm here: node's own (slower) recursive delete.
      Promise.all(paths.map((path) => rm(path, { recursive: true, force: true }))).then(
        () => resolve(null),
        (failure: Error) => resolve(failure.message),
      );
    });
    child.on('close', (code, killed) => {
      if (failedToStart) return;
      signal?.removeEventListener('abort', abort);
      if (signal?.aborted) return reject(signal.reason ?? new Error('aborted'));
      if (code === 0) return resolve(null);
      const line = stderr.split('\n').find(Boolean);
      resolve(line ?? `rm exited with ${code ?? killed}`);
    });
  });
}

let rmPath: string | undefined;
function rmProgram(): string {
  rmPath ??= ['/usr/bin/rm', '/bin/rm'].find((candidate) => existsSync(candidate)) ?? 'rm';
  return rmPath;
}

// Gives every directory below `root` (and root) u+rwx, so that its entries can be removed.
async function openDirectories(root: string): Promise<void> {
  const stat = await lstat(root).catch(() => null);
  if (!stat?.isDirectory()) return;
  if ((stat.mode & 0o700) !== 0o700) await chmod(root, (stat.mode & 0o7777) | 0o700);
  const entries = await readdir(root, { withFileTypes: true }).catch(() => []);
  for (const entry of entries) if (entry.isDirectory()) await openDirectories(join(root, entry.name));
}
