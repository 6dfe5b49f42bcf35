// `ssh-r-sync-admin restore`: one complete snapshot (or a few paths of it) written back with
// rsync, to a local DEST or over ssh to `--to [user@]host[:port]:DIR`. Everything is checked
// before anything is written: the paths, the snapshot, the target.
import { lstat, mkdir, readdir } from 'node:fs/promises';
import type { Mode } from '../pipeline/context.js';
import { parseDestination } from '../client/destination.js';
import { SshRSyncError } from '../errors.js';
import { lockHost } from '../storage/host-lock.js';
import type { Logger } from '../logger.js';
import { pullSshArgv, rshWord } from '../transport/pull/pull-transport.js';
import { readDoneMark } from '../storage/snapshots.js';
import { openStoredSnapshot, type StoredSnapshot } from '../storage/stored-snapshots.js';
import { remoteState } from './remote-listing.js';
import { restoreModeOf } from './restore-mode.js';
import { checkRestorePaths, normalizeRestorePath } from './restore-paths.js';
import { describeRestoreFailure, restoreRsyncArgs, runRestoreRsync, type RestoreRsyncResult } from './restore-rsync.js';
import { asAccountRsh, readingAccount, requireSafeReceiver, withPrivateStage } from './restore-account.js';
import { checkLocalTarget, parseRemoteTarget, type RemoteTarget, type RestoreTarget } from './restore-target.js';

/** The word env(1) takes as a harmless assignment where rsync puts the remote host's name. */
const LOCAL_HOST = 'SRS_RESTORE=local';

export interface RestoreSshOptions {
  identityFile?: string | undefined;
  /** `-o` values, before (and so winning over) the defaults. */
  sshOptions: string[];
  /** false drops the default ssh options (BatchMode and the rest). */
  sshDefaults: boolean;
  sshProgram?: string | undefined;
}

export interface RestoreOptions {
  root: string;
  name: string;
  /** A snapshot id or 'latest'. */
  snapshot: string;
  /** Relative paths as the manifest spells them; [] = everything. UTF-8 text, or with
   *  `pathBytes` each path's bytes as a latin1 string (names that are not UTF-8). */
  paths: string[];
  pathBytes?: boolean;
  /** A local directory, or `[user@]host[:port]:DIR` with `remote`. */
  target: { dest: string } | { to: string };
  dryRun: boolean;
  overwrite: boolean;
  /** For a done mark without the record: how the snapshot was stored. */
  storedMode?: Mode | undefined;
  ssh: RestoreSshOptions;
  ioTimeoutSeconds: number;
  signal?: AbortSignal;
  /** Each itemized line of a dry run, as rsync prints it (odd bytes escaped as \#ooo). */
  onItem?: (line: string) => void;
  /** Says what the restore will not do (e.g. set owners when not run as root). */
  onWarning?: (message: string) => void;
}

/** What a restore did, for people and --json. */
export interface RestoreSummary {
  host: string;
  kind: StoredSnapshot['kind'];
  /** '' for a mirror. */
  snapshot: string;
  mode: Mode;
  modeSource: string;
  target: string;
  paths: string[];
  dryRun: boolean;
  /** Owners, groups and devices were set (the receiving side ran as root). */
  owners: boolean;
  /** Lines rsync itemized (a dry run). */
  items: number;
  files: number | null;
  bytes: number | null;
  durationMs: number;
}

// Restores the snapshot; throws a one-line error (EUSAGE for what the caller can fix) otherwise.
export async function restoreSnapshot(options: RestoreOptions): Promise<RestoreSummary> {
  const paths = options.paths.map((path) => normalizeRestorePath(options.pathBytes ? path : Buffer.from(path).toString('latin1')));
  const remote = 'to' in options.target ? parseRemoteTarget(options.target.to) : null;
  const opened = await openStoredSnapshot(options.root, options.name, options.snapshot);
  if (opened.kind !== 'mirror') return restoreOpened(options, opened, paths, remote);
  // A mirror is rewritten in place by the host's next backup, which could swap a directory rsync
  // has listed for a symlink out of the snapshot before rsync reads the files in it: restore a
  // mirror under the host's lock (a backup meanwhile is refused as busy), opened again under it.
  const unlock = await lockHost({ root: options.root, name: options.name, waitSeconds: 0, logger: warningsOnly(options.onWarning), signal: options.signal });
  try {
    return await restoreOpened(options, await openStoredSnapshot(options.root, options.name, options.snapshot), paths, remote);
  } finally {
    await unlock();
  }
}

// The lock's one word for a restore: that it took over a dead process's lock.
function warningsOnly(onWarning: ((message: string) => void) | undefined): Logger {
  const none = () => {};
  const logger: Logger = { debug: none, info: none, warn: (message) => onWarning?.(message), error: none, scope: () => logger };
  return logger;
}

async function restoreOpened(options: RestoreOptions, snapshot: StoredSnapshot, paths: string[], remote: RemoteTarget | null): Promise<RestoreSummary> {
  const { mode, source: modeSource } = await restoreModeOf(snapshot, options.storedMode);
  const tree = snapshot.paths.tree;
  if (!(await lstat(tree)).isDirectory()) throw new SshRSyncError('EUSAGE', `${tree} is not a directory: refused`);
  await checkRestorePaths(tree, paths);
  // As root over another account's folders, the sending rsync runs as that account (checked
  // before DEST is made). A dry run with --to reads no file and shows the list to root alone.
  const account = remote && options.dryRun ? null : await readingAccount(options.root, options.name, tree);
  if (account) await requireSafeReceiver();
  const accountRsh = account ? asAccountRsh(account) : '';

  let target: RestoreTarget;
  let rsh: string;
  let rsyncTarget: string;
  let empty: boolean;
  if (remote) {
    target = remote;
    const argv = pullSshArgv(
      { destination: remote.login, name: options.name, identityFile: options.ssh.identityFile, sshOptions: options.ssh.sshOptions, sshDefaults: options.ssh.sshDefaults, sshProgram: options.ssh.sshProgram },
      parseDestination(remote.login, remote.port ?? undefined),
    );
    rsh = argv.map(rshWord).join(' ');
    rsyncTarget = remote.rsyncTarget;
    const state = await remoteState(remote, rsh, options.signal);
    if (!state.empty && !options.overwrite) throw new SshRSyncError('EUSAGE', `DEST is not empty: add --overwrite to write into it (${remote.spec})`);
    empty = state.empty;
  } else {
    const local = await checkLocalTarget((options.target as { dest: string }).dest, options.root, options.overwrite);
    target = local;
    rsh = 'env';
    rsyncTarget = `${LOCAL_HOST}:${local.path === '/' ? '/' : `${local.path}/`}`;
    empty = local.empty;
    // A new DEST is private until its owner decides: the restored files may be anyone's.
    if (!local.exists && !options.dryRun) await mkdir(local.path, { mode: 0o700 });
  }
  const owners = remote ? true : process.getuid?.() === 0;
  if (!owners && mode !== 'plain') options.onWarning?.('not running as root: owners, groups and device files are not restored (run the restore as root to get them back)');

  const list = paths.length ? paths.map((path) => Buffer.from(path, 'latin1')) : (await readdir(tree, { encoding: 'buffer' })).sort(Buffer.compare);
  let items = 0;
  const onLine = options.dryRun
    ? (line: string) => {
        items += 1;
        options.onItem?.(line);
      }
    : undefined;
  const args = { asSuperUser: owners, dryRun: options.dryRun, ignoreTimes: !empty, ioTimeoutSeconds: options.ioTimeoutSeconds };
  let result: RestoreRsyncResult;
  if (!account) {
    result = await runRestoreRsync({ args: restoreRsyncArgs({ mode, rsh, ...args }), source: `${tree}/`, target: rsyncTarget, list, onLine, signal: options.signal });
  } else if (!remote) {
    // The same DEST, now as this (receiving) rsync's own target.
    const dest = rsyncTarget.slice(`${LOCAL_HOST}:`.length);
    // Itemized as received here ('>'): said as the other restores say it, sent to DEST ('<').
    const received = onLine && ((line: string) => (line.startsWith('created directory ') ? undefined : onLine(line.replace(/^>/, '<'))));
    result = await runRestoreRsync({ args: restoreRsyncArgs({ mode, rsh: accountRsh, remoteSender: true, ...args }), source: `${LOCAL_HOST}:${tree}/`, target: dest, list, onLine: received, signal: options.signal });
  } else {
    // Read as the account into a private folder of root's, then push that with root's ssh.
    result = await withPrivateStage(async (stage) => {
      const staged = await runRestoreRsync({
        args: restoreRsyncArgs({ mode, rsh: accountRsh, remoteSender: true, asSuperUser: true, dryRun: false, ignoreTimes: false, ioTimeoutSeconds: options.ioTimeoutSeconds }),
        source: `${LOCAL_HOST}:${tree}/`,
        target: `${stage}/`,
        list,
        signal: options.signal,
      });
      if (options.signal?.aborted) throw new SshRSyncError('EINTERNAL', `restore stopped before anything was written to ${remote.spec}`);
      if (staged.exitCode !== 0) {
        const where = `the staging folder ${stage} (set TMPDIR to a folder only root can write, with room for the restore)`;
        throw new SshRSyncError('ERSYNC', `restore into ${remote.spec} failed before anything was sent: reading the backup as its owner (uid ${account.uid}) into a staging folder failed: ${describeRestoreFailure(staged, where)}`);
      }
      // The staged tree carries real owners now (for a plain store, none).
      return runRestoreRsync({ args: restoreRsyncArgs({ mode: mode === 'plain' ? 'plain' : 'privileged', rsh, ...args }), source: `${stage}/`, target: rsyncTarget, list, onLine, signal: options.signal });
    }, (message) => options.onWarning?.(message));
  }
  const where = remote ? remote.spec : target.kind === 'local' ? target.path : '';
  if (options.signal?.aborted) throw new SshRSyncError('EINTERNAL', `restore stopped: what was written in ${where} is incomplete`);
  if (result.exitCode !== 0) throw new SshRSyncError('ERSYNC', `restore into ${where} failed: ${describeRestoreFailure(result, where)}`);
  // A backup rewriting a mirror, or a prune, could have taken the snapshot away under rsync.
  if (!(await readDoneMark(snapshot.paths))) {
    throw new SshRSyncError('ERSYNC', `the backup changed while it was restored (a backup rewrote the mirror, or the snapshot was pruned): ${where} may hold a mix; restore again`);
  }
  return {
    host: options.name,
    kind: snapshot.kind,
    snapshot: snapshot.id,
    mode,
    modeSource,
    target: where,
    paths: paths.map((path) => Buffer.from(path, 'latin1').toString('utf8')),
    dryRun: options.dryRun,
    owners,
    items,
    files: result.files,
    bytes: result.bytes,
    durationMs: result.durationMs,
  };
}
