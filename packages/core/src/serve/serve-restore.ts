// Serves one restore through the forced command: the host's own complete snapshot, read-only.
// rsync runs as `--server --sender` with an argv built here from the checked request, reads
// only the names listed in a files-from file we write (the snapshot's top entries, or the paths
// asked for, each checked to lie in the snapshot without passing a symlink), and never the
// snapshot's top directory itself (the receiver's private 0700 dir, not the client's).
import { spawn } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { lstat, opendir } from 'node:fs/promises';
import { checkRestorePaths } from '../restore/restore-paths.js';
import { once } from 'node:events';
import type { Mode } from '../pipeline/context.js';
import { SshRSyncError, UsageError } from '../errors.js';
import { lockHost } from '../storage/host-lock.js';
import type { Logger } from '../logger.js';
import { dieWithUs, killGroup } from '../exec/process-group.js';
import { createSessionDir } from '../session/session-dir.js';
import { openStoredSnapshot, type StoredSnapshot } from '../storage/stored-snapshots.js';
import { parentDeathPrefix } from '../session/tunnel/daemon.js';
import type { ServeRequest } from './request.js';
import { hostExists } from './snapshot-list.js';

export interface ServeRestoreOptions {
  root: string;
  /** The host's name, from the receiver's side (--name or the names map). */
  name: string;
  request: Extract<ServeRequest, { kind: 'restore' }>;
  rsyncProgram: string;
  /** rsync's --timeout; 0 = none. */
  ioTimeoutSeconds: number;
  /** The whole restore's limit; 0 = none. */
  maxRunTimeSeconds: number;
  /** The receiver's mode, for snapshots whose done mark predates the record of it. */
  defaultMode: Mode;
  logger: Logger;
  signal?: AbortSignal;
}

/** After SIGTERM, how long rsync gets before SIGKILL. */
const KILL_AFTER_MS = 5000;

// Runs rsync's sender on our stdin/stdout (the ssh channel); resolves to its exit code.
export async function serveRestore(options: ServeRestoreOptions): Promise<number> {
  const { request, logger } = options;
  if (!(await hostExists(options.root, options.name))) throw new UsageError(`host "${options.name}" has no complete backup yet`);
  let snapshot = await openStoredSnapshot(options.root, options.name, request.snapshot);
  // A mirror is rewritten in place by the host's next backup, which could swap a directory rsync
  // has listed for a symlink out before rsync opens the files in it: serve a mirror under the
  // host's lock (a backup meanwhile is refused as busy), and open it again once the lock is ours.
  const unlock = snapshot.kind === 'mirror' ? await lockHost({ root: options.root, name: options.name, waitSeconds: 0, logger, signal: options.signal }) : null;
  try {
    if (unlock) snapshot = await openStoredSnapshot(options.root, options.name, request.snapshot);
    return await serveSnapshot(options, snapshot);
  } finally {
    await unlock?.();
  }
}

async function serveSnapshot(options: ServeRestoreOptions, snapshot: StoredSnapshot): Promise<number> {
  const { request, logger } = options;
  const tree = await checkTree(snapshot);
  const names = request.paths ?? null;
  if (names) await checkRestorePaths(tree, names);
  const mode = snapshot.mode ?? options.defaultMode;
  const dir = createSessionDir('ssh-r-sync-serve');
  try {
    const list = dir.file('files-from');
    await writeList(list, names ?? (await topEntries(tree)));
    const args = [
      '--server',
      '--sender',
      `-${request.letters}${request.capabilities ? `e${request.capabilities}` : ''}`,
      ...(request.numericIds ? ['--numeric-ids'] : []),
      ...(mode === 'fake-super' ? ['--fake-super'] : []),
      ...(options.ioTimeoutSeconds > 0 ? [`--timeout=${options.ioTimeoutSeconds}`] : []),
      `--files-from=${list}`,
      '--from0',
      '--',
      '.',
      `${tree}/`,
    ];
    const what = snapshot.id ? `snapshot ${snapshot.id}` : 'the mirror';
    logger.info(`serving ${what} of ${options.name} read-only${names ? ` (${names.length} path${names.length === 1 ? '' : 's'})` : ''}`);
    return await runSender(options, args);
  } finally {
    dir.remove();
  }
}

// The snapshot's tree must be a real directory (never a symlink planted in the host's folder).
async function checkTree(snapshot: StoredSnapshot): Promise<string> {
  const tree = snapshot.paths.tree.replace(/\/+$/, '');
  const stats = await lstat(tree).catch(() => null);
  if (!stats?.isDirectory()) throw new SshRSyncError('ESTORAGE', `the tree of ${snapshot.id || 'the mirror'} of ${snapshot.host} is missing or not a directory: ask the backup server's admin`);
  return tree;
}

// The names directly inside the snapshot's top, as bytes (latin1), read as a stream.
async function topEntries(tree: string): Promise<AsyncIterable<string>> {
  const dir = await opendir(Buffer.from(tree), { encoding: 'buffer' as BufferEncoding, bufferSize: 256 });
  return (async function* names() {
    // With encoding 'buffer' each name is a Buffer (Node's types say string).
    for await (const entry of dir) yield (entry.name as unknown as Buffer).toString('latin1');
  })();
}

// rsync's --files-from list, NUL-separated (--from0): any byte but NUL and "/" can be in a name.
async function writeList(file: string, names: Iterable<string> | AsyncIterable<string>): Promise<void> {
  const out = createWriteStream(file, { mode: 0o600, flags: 'wx' });
  try {
    for await (const name of names) {
      if (!out.write(Buffer.from(`${name}\0`, 'latin1'))) await once(out, 'drain');
    }
  } finally {
    out.end();
    await once(out, 'close');
  }
}

// rsync in its own process group on the ssh channel; dies with us, stopped by the signal or the
// run-time limit.
async function runSender(options: ServeRestoreOptions, args: string[]): Promise<number> {
  const prefix = await parentDeathPrefix();
  const [file, ...argv] = [...prefix, options.rsyncProgram, ...args] as [string, ...string[]];
  options.logger.debug(`running ${[file, ...argv].map((arg) => JSON.stringify(arg)).join(' ')}`);
  const env = { ...process.env };
  delete env.SSH_ORIGINAL_COMMAND;
  const child = spawn(file, argv, { stdio: 'inherit', detached: true, env });
  const forget = dieWithUs(child.pid);
  let killTimer: NodeJS.Timeout | undefined;
  const stop = () => {
    killGroup(child.pid, 'SIGTERM');
    killTimer ??= setTimeout(() => killGroup(child.pid, 'SIGKILL'), KILL_AFTER_MS);
  };
  const limit = options.maxRunTimeSeconds > 0 && options.maxRunTimeSeconds < 2_000_000 ? setTimeout(stop, options.maxRunTimeSeconds * 1000) : undefined;
  options.signal?.addEventListener('abort', stop, { once: true });
  try {
    const ended = await new Promise<{ code: number | null; error?: NodeJS.ErrnoException }>((resolve) => {
      child.once('error', (error: NodeJS.ErrnoException) => resolve({ code: null, error }));
      child.once('exit', (code, signal) => resolve({ code: code ?? (signal ? 128 : 1) }));
    });
    if (ended.error) throw new SshRSyncError('ESPAWN', `cannot run ${options.rsyncProgram} on the backup server: ${ended.error.code ?? ended.error.message}`, { cause: ended.error });
    return ended.code ?? 1;
  } finally {
    clearTimeout(limit);
    clearTimeout(killTimer);
    options.signal?.removeEventListener('abort', stop);
    forget();
  }
}
