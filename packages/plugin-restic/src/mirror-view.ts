// A host kept as a mirror (no snapshot plugin) is rewritten in place by its next run, so its
// off-site copy does not read it where it lies: under the host's lock, taken briefly, a view of it
// is made (hard links to its files, `cp -a --link`, in ROOT/.ssh-r-sync/offsite/NAME.view/), and
// restic copies the view with no host lock held, so a long copy never refuses the host's backups.
// rsync without --inplace writes every changed file anew and renames it in: the view keeps the
// committed contents. What the next run changes in place is metadata of files whose contents did
// not change (mode, owner, xattrs): a copy that outlives the start of the next run may show that.
// A later run that writes in place (core's mirrorInPlaceMark) rewrites the view's files too: that
// copy does not count (sync.ts). A mirror whose run wrote in place (the done mark's inPlace, or a
// mark from before it was recorded), or whose view cannot be made (another file system), is
// copied under the lock.
import { spawn } from 'node:child_process';
import { lstat, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { SshRSyncError, deleteTree, dieWithUs, killGroup, validateName, type StoredSnapshot } from '@ssh-r-sync/core';

/** How long making or removing a view may take (a big mirror: about 20 s per million files here). */
const VIEW_TIMEOUT_MS = 30 * 60_000;
const STDERR_TAIL = 4096;

// Where host `name`'s view lives while it is copied.
export function mirrorViewPath(root: string, name: string): string {
  return join(root, '.ssh-r-sync', 'offsite', `${validateName(name)}.view`);
}

// Whether the mirror may be copied from a view: its run did not write in place.
export function viewable(mirror: StoredSnapshot): boolean {
  return mirror.done.inPlace === false;
}

// Makes the view of `mirror` (the caller holds the host's lock, and removed any stale view before
// taking it) and returns it as the snapshot to copy: the mirror's done mark and mode, the view's
// tree. Throws when it cannot be made; what cp made by then is left for removeMirrorView.
export async function makeMirrorView(root: string, name: string, mirror: StoredSnapshot, signal?: AbortSignal): Promise<StoredSnapshot> {
  const view = mirrorViewPath(root, name);
  await mkdir(join(root, '.ssh-r-sync', 'offsite'), { recursive: true, mode: 0o700 });
  const tree = join(view, 'tree');
  // As the owner of the host's directory (run as root by the admin, in a folder that account
  // writes): cp then creates nothing that account could not. The view is that account's too,
  // or cp (as that account) could not write into it.
  const as = await ownerOf(mirror.paths.tree);
  if (as) await run('mkdir', ['-m', '700', '--', view], as, signal);
  else await mkdir(view, { mode: 0o700 });
  await run('cp', ['-a', '--link', '--no-target-directory', '--', mirror.paths.tree, tree], as, signal);
  return { ...mirror, paths: { ...mirror.paths, tree } };
}

// Removes host `name`'s view, if any, within VIEW_TIMEOUT_MS (as root: one `rm -rf` of the path,
// which follows no link).
export async function removeMirrorView(root: string, name: string, signal?: AbortSignal): Promise<void> {
  const bounded = new AbortController();
  const stop = () => bounded.abort(signal?.reason ?? new Error(`removing ${mirrorViewPath(root, name)} took over ${VIEW_TIMEOUT_MS / 60_000} min`));
  const timer = setTimeout(stop, VIEW_TIMEOUT_MS);
  signal?.addEventListener('abort', stop, { once: true });
  if (signal?.aborted) stop();
  try {
    await deleteTree(mirrorViewPath(root, name), { signal: bounded.signal, ...(process.getuid?.() === 0 ? { jobs: 1 } : {}) });
  } finally {
    clearTimeout(timer);
    signal?.removeEventListener('abort', stop);
  }
}

// The uid and gid to run as: the owner of `path` when we are root and it is not; else our own.
async function ownerOf(path: string): Promise<{ uid: number; gid: number } | undefined> {
  if (process.getuid?.() !== 0) return undefined;
  const stats = await lstat(path);
  return stats.uid === 0 ? undefined : { uid: stats.uid, gid: stats.gid };
}

// Runs a coreutils command without a shell, in its own process group that dies with us, bounded in
// time; its error is its last stderr line.
function run(program: string, args: string[], as: { uid: number; gid: number } | undefined, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(program, args, { cwd: '/', detached: true, stdio: ['ignore', 'ignore', 'pipe'], ...(as ?? {}) });
    const forget = dieWithUs(child.pid);
    const kill = () => killGroup(child.pid, 'SIGKILL');
    const timer = setTimeout(kill, VIEW_TIMEOUT_MS);
    signal?.addEventListener('abort', kill, { once: true });
    if (signal?.aborted) kill();
    let err = '';
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (err = (err + chunk).slice(-STDERR_TAIL)));
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', kill);
      forget();
    };
    child.once('error', (error) => {
      done();
      reject(new SshRSyncError('ESPAWN', `cannot run ${program}: ${(error as NodeJS.ErrnoException).code ?? error.message}`, { cause: error }));
    });
    child.once('close', (code, killed) => {
      done();
      killGroup(child.pid, 'SIGKILL');
      if (code === 0) return resolve();
      const said = err.trim().split('\n').at(-1) ?? '';
      reject(new SshRSyncError('EINTERNAL', `${program} ${killed ? `was killed by ${killed}` : `exited with code ${code}`}${said ? `: ${said}` : ''}`));
    });
  });
}
