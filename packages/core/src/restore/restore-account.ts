// Root restoring a backup that another account owns (a non-root receiver's store) must not read
// it with root's rights: the account may rename its folders while rsync reads them, and a folder
// rsync has listed, swapped for a symlink to one of root's, would have root's rsync send root's
// files. rsync (3.4 and later) follows a symlinked folder on a file's path itself, reading the
// link and walking its target from "/", so no open flag or mount option stops it; the kernel's
// permission checks do. The sending rsync therefore runs as the account (rsync 3.4.0 or newer:
// root's receiving rsync now trusts a sender the account could take over, and 3.4.0 fixed what
// a malicious sender could do to a receiver): for a local DEST it is
// the "remote" side, started through setpriv, and this process's rsync (root) receives and sets
// the owners; for --to, the tree is first restored so into a private staging folder of root's,
// which is then pushed (root's ssh key never reaches the account).
import { execFile } from 'node:child_process';
import { lstat, mkdir, mkdtemp, readdir, realpath, rm, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { SshRSyncError } from '../errors.js';
import { swappable } from '../storage/swappable.js';
import { isLockBusy, withFileLock } from '../storage/kernel-lock.js';
import { SETPRIV } from '../session/tunnel/daemon.js';

/** Whose rights the sending rsync takes. */
export interface StoreAccount {
  uid: number;
  gid: number;
}

// The account the sender must run as, or null: not root, or nothing on the tree's way is
// another account's to swap.
export async function readingAccount(root: string, name: string, tree: string): Promise<StoreAccount | null> {
  if (process.getuid?.() !== 0 || swappable(tree) === null) return null;
  for (const dir of [join(root, name), root]) {
    const info = await lstat(dir);
    if (info.uid === 0) continue;
    const account = { uid: info.uid, gid: info.gid };
    // A folder above that the account cannot pass (a copy root made into a private folder of
    // its own) keeps the account from swapping anything below: root reads it, as the account
    // could not.
    return (await canPass(account, dirname(root))) ? account : null;
  }
  throw new SshRSyncError('EUSAGE', `a folder on the way to ${tree} is another account's or writable by others, but ${join(root, name)} and ${root} are root's: make that path root's only (ls -ld each folder), then restore again`);
}

// Whether `account` may reach `dir`: asked of the kernel as the account (its groups and any
// ACLs count). Anything but a clear "no" counts as yes: the sender then runs as the account.
async function canPass(account: StoreAccount, dir: string): Promise<boolean> {
  if (!existsSync(SETPRIV)) return true;
  const answer = await new Promise<string>((resolve) => {
    execFile(SETPRIV, [`--reuid=${account.uid}`, `--regid=${account.gid}`, '--init-groups', '--', '/bin/sh', '-c', 'if test -x "$1"; then echo yes; else echo no; fi', 'sh', dir], { timeout: 10_000, env: { PATH: '/usr/bin:/bin' } }, (_error, stdout) => resolve(String(stdout).trim()));
  });
  return answer !== 'no';
}

// rsync's -e for a sender that runs as `account`; `env` takes the
// word rsync puts where a host name goes (SRS_RESTORE=local) as a harmless assignment.
export function asAccountRsh(account: StoreAccount): string {
  if (!existsSync(SETPRIV)) throw new SshRSyncError('EUSAGE', `${SETPRIV} is missing: root restores a backup another account owns only by reading it as that account; install util-linux, or restore as that account (without owners)`);
  // Its groups as at a login (initgroups); none of root's environment.
  return `${SETPRIV} --reuid=${account.uid} --regid=${account.gid} --init-groups env -i PATH=/usr/bin:/bin LC_ALL=C`;
}

const STAGES = 'srs-restore-stages';
const STAGE_PREFIX = 'srs-restore-stage-';
/** A stage this old whose lock is free was left by a restore that was killed: it is removed. */
const STALE_STAGE_MS = 60_000;

// Runs `work` with a new private folder of root's for a staged tree, in BASE/srs-restore-stages
// (root's, 0700: no other account can make a name in it) where BASE is the temporary folder,
// or /tmp when another account could swap that (a TMPDIR of theirs). The stage's lock is held
// while the restore runs and while its tree is removed; stages that a killed restore left (lock
// free, older than a minute) are removed first.
export async function withPrivateStage<T>(work: (tree: string) => Promise<T>, onWarning: (message: string) => void): Promise<T> {
  const stages = await stagesFolder();
  await removeStaleStages(stages, onWarning);
  const dir = await mkdtemp(join(stages, STAGE_PREFIX));
  const tree = join(dir, 'tree');
  const removeTree = () => rm(tree, { recursive: true, force: true }).catch((error: Error) => onWarning(`could not remove the staging folder ${dir}: ${error.message}; remove it by hand`));
  try {
    await writeFile(join(dir, 'lock'), '', { mode: 0o600, flag: 'wx' });
    await mkdir(tree, { mode: 0o700 });
    return await withFileLock(join(dir, 'lock'), { waitSeconds: 0 }, async () => {
      try {
        return await work(tree);
      } finally {
        await removeTree();
      }
    });
  } finally {
    await rm(dir, { recursive: true, force: true }).catch(() => {});
  }
}

async function stagesFolder(): Promise<string> {
  for (const base of [tmpdir(), '/tmp']) {
    const real = await realpath(base).catch(() => null);
    if (!real || swappable(real) !== null) continue;
    const stages = join(real, STAGES);
    await mkdir(stages, { mode: 0o700 }).catch((error: NodeJS.ErrnoException) => {
      if (error.code !== 'EEXIST') throw error;
    });
    const info = await lstat(stages);
    if (!info.isDirectory() || info.uid !== 0 || (info.mode & 0o077) !== 0) {
      throw new SshRSyncError('EUSAGE', `${stages} is not a private folder of root's (mode 0700): remove it, then restore again`);
    }
    return stages;
  }
  throw new SshRSyncError('EUSAGE', `no private place to stage the restore: ${tmpdir()} and /tmp are writable by other accounts; set TMPDIR to a folder only root can write`);
}

async function removeStaleStages(stages: string, onWarning: (message: string) => void): Promise<void> {
  for (const name of (await readdir(stages)).filter((entry) => entry.startsWith(STAGE_PREFIX))) {
    const dir = join(stages, name);
    const info = await lstat(dir).catch(() => null);
    if (!info?.isDirectory() || Date.now() - info.mtimeMs < STALE_STAGE_MS) continue;
    // Only a stage with its lock file (a restore made it): none is created here.
    if (!(await lstat(join(dir, 'lock')).catch(() => null))?.isFile()) continue;
    await withFileLock(join(dir, 'lock'), { waitSeconds: 0 }, () => rm(dir, { recursive: true, force: true })).catch((error: unknown) => {
      if (!isLockBusy(error)) onWarning(`could not remove ${dir}, left by a restore that was killed: ${(error as Error).message}; remove it by hand`);
    });
  }
}

// rsync 3.4.0 or newer, or a refusal saying so.
export async function requireSafeReceiver(program = 'rsync'): Promise<void> {
  const text = await new Promise<string>((resolve) => execFile(program, ['--version'], { timeout: 10_000 }, (_error, stdout) => resolve(String(stdout))));
  const found = /version\s+(\d+)\.(\d+)\.(\d+)/.exec(text);
  const version = found ? [Number(found[1]), Number(found[2]), Number(found[3])] : null;
  if (version && (version[0]! > 3 || (version[0] === 3 && version[1]! >= 4))) return;
  throw new SshRSyncError('EUSAGE', `root restores a backup another account owns with rsync 3.4.0 or newer only (found ${version ? version.join('.') : 'no version'}): older receivers trust a sender too much; upgrade rsync, or restore as that account (without owners)`);
}
