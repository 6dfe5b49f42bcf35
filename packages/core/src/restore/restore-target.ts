// Where a restore writes: a local DEST (checked against BACKUP_ROOT after resolving symlinks, and
// for emptiness), or a remote `[user@]host[:port]:DIR` reached with rsync over ssh.
import { lstat, readdir, realpath } from 'node:fs/promises';
import { basename, dirname, join, resolve, sep } from 'node:path';
import { SshRSyncError } from '../errors.js';

/** A checked local destination. */
export interface LocalTarget {
  kind: 'local';
  /** DEST as a real absolute path (it may not exist yet). */
  path: string;
  exists: boolean;
  empty: boolean;
}

/** A parsed `--to [user@]host[:port]:DIR`. */
export interface RemoteTarget {
  kind: 'remote';
  /** `user@host` or `host`, as ssh takes it. */
  login: string;
  port: number | null;
  /** An absolute directory on the remote host. */
  dir: string;
  /** What rsync gets: `user@host:DIR/`, IPv6 literals in brackets. */
  rsyncTarget: string;
  /** How it was written, for messages. */
  spec: string;
}

export type RestoreTarget = LocalTarget | RemoteTarget;

// Resolves DEST and refuses one inside BACKUP_ROOT, or one holding BACKUP_ROOT (a restore there
// could write the client's files into the backups), or a non-empty one without `overwrite`.
export async function checkLocalTarget(dest: string, root: string, overwrite: boolean): Promise<LocalTarget> {
  const absolute = resolve(dest);
  const stats = await lstat(absolute).catch(() => null);
  let path: string;
  if (stats) {
    path = await realpath(absolute);
    if (!(await lstat(path)).isDirectory()) throw new SshRSyncError('EUSAGE', `DEST ${dest} is not a directory`);
  } else {
    const parent = await realpath(dirname(absolute)).catch(() => null);
    if (!parent || !(await lstat(parent)).isDirectory()) throw new SshRSyncError('EUSAGE', `DEST ${dest}: its parent ${dirname(absolute)} is not a directory: create it first`);
    path = join(parent, basename(absolute));
  }
  const realRoot = await realpath(root);
  if (path === realRoot || path.startsWith(realRoot + sep)) {
    throw new SshRSyncError('EUSAGE', `DEST ${path} is inside BACKUP_ROOT ${realRoot}: refused, a restore never writes into the backups; restore somewhere else`);
  }
  if (realRoot.startsWith(path === sep ? sep : path + sep)) {
    throw new SshRSyncError('EUSAGE', `BACKUP_ROOT ${realRoot} is inside DEST ${path}: refused, the restore could write into the backups; restore into a directory beside it (or to another machine with --to)`);
  }
  const empty = !stats || (await readdir(path)).length === 0;
  if (!empty && !overwrite) throw new SshRSyncError('EUSAGE', `DEST is not empty: add --overwrite to write into it (${path})`);
  return { kind: 'local', path, exists: Boolean(stats), empty };
}

const REMOTE = /^(?:([^@/\s]+)@)?(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9][A-Za-z0-9.-]*)(?::(\d{1,5}))?:(\/.*)$/;

// Parses `[user@]host[:port]:DIR`; DIR must be absolute (a relative one would land in the
// login's home without saying so).
export function parseRemoteTarget(spec: string): RemoteTarget {
  const match = REMOTE.exec(spec);
  if (!match) {
    throw new SshRSyncError('EUSAGE', `--to ${JSON.stringify(spec.slice(0, 200))}: expected [user@]host[:port]:DIR with an absolute DIR, e.g. root@newbox:/srv/restore or root@10.0.0.5:2222:/`);
  }
  const [, user, host, port, dir] = match as unknown as [string, string | undefined, string, string | undefined, string];
  const portNumber = port === undefined ? null : Number(port);
  if (portNumber !== null && (portNumber < 1 || portNumber > 65535)) throw new SshRSyncError('EUSAGE', `--to ${spec}: invalid port ${port}`);
  if (user?.startsWith('-')) throw new SshRSyncError('EUSAGE', `--to ${spec}: invalid user ${user}`);
  const bare = host.replace(/^\[|\]$/g, '');
  const login = `${user ? `${user}@` : ''}${bare}`;
  const shownHost = bare.includes(':') ? `[${bare}]` : bare;
  const directory = dir.replace(/\/+$/, '') || '/';
  return { kind: 'remote', login, port: portNumber, dir: directory, rsyncTarget: `${user ? `${user}@` : ''}${shownHost}:${directory === '/' ? '/' : `${directory}/`}`, spec };
}
