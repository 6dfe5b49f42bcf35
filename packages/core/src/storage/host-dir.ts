// Host names and their directories: the name is checked, and the directory must stay inside
// BACKUP_ROOT after every symlink is resolved (SPEC §4 rule 1). Host and snapshot directories are
// private (rule 9): 0700 and the receiver's own, whatever rsync copied onto them from the client.
import { constants } from 'node:fs';
import { lstat, mkdir, open, realpath } from 'node:fs/promises';
import { dirname, isAbsolute, join, sep } from 'node:path';
import type { Mode } from '../pipeline/context.js';
import { SshRSyncError } from '../errors.js';

export const NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

// Throws ENAME unless `name` is a safe host name.
export function validateName(name: string): string {
  if (!NAME_PATTERN.test(name)) {
    throw new SshRSyncError('ENAME', `refused host name ${JSON.stringify(name.slice(0, 80))}: names match ${NAME_PATTERN.source}`);
  }
  return name;
}

// Creates ROOT/NAME if needed (0700) and returns its real path, refusing anything outside ROOT;
// an existing one is made private again (an older version, or a mirror run, left it wider). In
// privileged mode (the receiver's, whatever a client asks for) ROOT itself must be private too.
export async function hostDirectory(root: string, name: string, mode?: Mode): Promise<string> {
  validateName(name);
  if (mode === 'privileged') await assertPrivateRoot(root);
  const realRoot = await realpath(root);
  const wanted = join(realRoot, name);
  await mkdir(wanted, { mode: 0o700 }).catch((error: NodeJS.ErrnoException) => {
    if (error.code !== 'EEXIST') throw new SshRSyncError('EINTERNAL', `cannot create ${wanted}: ${error.code}`, { cause: error });
  });
  const real = await realpath(wanted);
  if (!real.startsWith(realRoot + sep)) {
    throw new SshRSyncError('ENAME', `refused host directory ${wanted}: it resolves to ${real}, outside ${realRoot}`);
  }
  await keepPrivate(real);
  return real;
}

// Makes each directory 0700 and owned by this process's user (rsync gives its destination the mode
// and, with --super, the owner of the client's top directory). Refuses a symlink; skips a missing one.
export async function keepPrivate(...dirs: string[]): Promise<void> {
  for (const given of dirs) {
    const dir = given.length > 1 ? given.replace(/\/+$/, '') : given; // "dir/" would follow a symlink
    if (!isAbsolute(dir)) continue; // not a directory on this machine
    // Through one descriptor opened without following a symlink: nothing can be swapped in between.
    const handle = await open(dir, constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW).catch(async (error: NodeJS.ErrnoException) => {
      if (error.code === 'ENOENT') return null;
      // Linux says ENOTDIR for a symlink too: look, for the message only.
      const symlink = error.code === 'ELOOP' || (await lstat(dir).then((info) => info.isSymbolicLink(), () => false));
      const what = symlink ? 'it is a symlink' : error.code === 'ENOTDIR' ? 'it is not a directory' : `cannot open it: ${error.code}`;
      throw new SshRSyncError('ENAME', `refused host directory ${dir}: ${what}`, { cause: error });
    });
    if (!handle) continue;
    try {
      const info = await handle.stat();
      const uid = process.getuid?.() ?? info.uid;
      if (info.uid !== uid) await handle.chown(uid, info.gid); // the group is harmless at 0700
      if ((info.mode & 0o7777) !== 0o700) await handle.chmod(0o700);
    } catch (error) {
      throw new SshRSyncError('EINTERNAL', `cannot make ${dir} private (0700, owned by the receiver): ${(error as NodeJS.ErrnoException).code ?? error}`, { cause: error });
    } finally {
      await handle.close();
    }
  }
}

// Refuses a BACKUP_ROOT that other local users could read or change, as sshd's StrictModes does:
// ROOT and every directory above it owned by root or us and not writable by group or others (a
// sticky directory like /tmp excepted: nobody else can rename or remove what we own in it), and
// ROOT itself closed to group and others. In privileged mode the backups hold the clients' setuid
// files and device nodes; ROOT's own mode is also what hides a mirror while rsync runs, as rsync
// gives ROOT/NAME the client's top-directory mode until the run ends.
export async function assertPrivateRoot(root: string): Promise<void> {
  const realRoot = await realpath(root).catch((error: NodeJS.ErrnoException) => {
    throw new SshRSyncError('ECONFIG', `BACKUP_ROOT ${root} cannot be used: ${error.code}`, { cause: error });
  });
  const refuse = (why: string, fix: string) => new SshRSyncError('ECONFIG', `refusing to back up into ${realRoot}: ${why} (${fix})`);
  const uid = process.getuid?.() ?? 0;
  const owners = uid === 0 ? 'root' : `root or uid ${uid}`;
  for (let dir = realRoot; ; dir = dirname(dir)) {
    const info = await lstat(dir);
    const self = dir === realRoot;
    const it = self ? 'it' : `${dir} (above it)`;
    if (info.uid !== 0 && info.uid !== uid) throw refuse(`${it} is owned by uid ${info.uid}, not ${owners}`, `chown ${uid === 0 ? 'root' : uid} ${dir}`);
    const sticky = (info.mode & 0o1000) !== 0;
    if ((info.mode & 0o022) !== 0 && (self || !sticky)) throw refuse(`${it} is writable by other users`, `chmod ${self ? '700' : 'go-w'} ${dir}`);
    if (self && (info.mode & 0o077) !== 0) {
      throw refuse(`it is ${info.mode & 0o044 ? 'readable' : 'searchable'} by other users`, `chmod 700 ${dir}`);
    }
    if (dir === dirname(dir)) return;
  }
}
