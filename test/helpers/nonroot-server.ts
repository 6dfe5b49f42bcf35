// A backup server whose receiver is NOT root, as the default set-up recommends: a throwaway user
// (srs-XXXX, home in a temp dir, removed with userdel -r by stop()), a BACKUP_ROOT it owns (0700),
// and a throwaway sshd whose authorized_keys runs the real `ssh-r-sync-recv` as that user (the
// forced command of a client key). `backup()` runs the real client as root. Also a plain root
// login (`startRootLogin`) for tests that push back with `restore --to` or log in as an admin.
// Needs root (useradd, sshd).
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmod, chown, mkdir, mkdtemp, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { forcedCommand } from './backup-server.js';
import { clientBin, repoRoot, runNode, type RunOptions, type RunResult } from './cli.js';
import { makeKey, startSshd, type Sshd } from './sshd.js';

/** The plugins by their built files: the forced command runs in the user's home, not the repo. */
export const LINK_DEST_DIST = join(repoRoot, 'packages/plugin-link-dest/dist/index.js');
export const MANIFEST_DIST = join(repoRoot, 'packages/plugin-manifest/dist/index.js');

/** The throwaway account. */
export interface ThrowawayUser {
  name: string;
  uid: number;
  gid: number;
  home: string;
}

export interface NonRootServerOptions {
  /** Receiver arguments before BACKUP_ROOT (default: --name nonroot --mode fake-super, manifest and link-dest plugins). */
  recvArgs?: string[];
  /** authorized_keys options before command= (default 'restrict,port-forwarding'). */
  keyOptions?: string;
  /** Extra sshd_config lines (before the Match block this helper adds). */
  sshdConfig?: string[];
}

export interface NonRootServer {
  readonly user: ThrowawayUser;
  readonly sshd: Sshd;
  /** BACKUP_ROOT, owned by the user, mode 0700. */
  readonly root: string;
  /** The client's private key; its forced command is the receiver with recvArgs. */
  readonly key: string;
  /** ssh-r-sync options that reach this server with `key`, without destination and PATH. */
  clientArgs(): string[];
  /** Runs `ssh-r-sync [clientArgs] [args…] user@127.0.0.1 PATH` as root. */
  backup(path: string, args?: string[], options?: RunOptions): Promise<RunResult>;
  /** Replaces the receiver arguments (next login). */
  setRecvArgs(args: string[]): Promise<void>;
  /** Stops sshd, kills what the user still runs, removes the user (userdel -r) and the temp dirs; idempotent. */
  stop(): Promise<void>;
}

/** A plain sshd login of root with its own key, no forced command. */
export interface RootLogin {
  readonly sshd: Sshd;
  readonly key: string;
  /** `-k KEY -o …` for `ssh-r-sync-admin restore --to`: pinned host key, BatchMode, no ~/.ssh/config influence. */
  restoreArgs(): string[];
  /** `root@127.0.0.1:PORT:DIR`, as --to takes it. */
  to(dir: string): string;
  stop(): Promise<void>;
}

// Creates srs-XXXX with a login shell (sshd runs forced commands through it), a home under `base`
// and the password '*' (no password, but not "locked": sshd without PAM refuses a locked account).
export async function createThrowawayUser(base: string): Promise<ThrowawayUser> {
  const name = `srs-${randomBytes(4).toString('hex')}`;
  const home = join(base, 'home');
  execFileSync('useradd', ['--create-home', '--home-dir', home, '--shell', '/bin/sh', '--user-group', '--password', '*', name], { stdio: 'pipe' });
  const uid = Number(execFileSync('id', ['-u', name], { encoding: 'utf8' }).trim());
  const gid = Number(execFileSync('id', ['-g', name], { encoding: 'utf8' }).trim());
  return { name, uid, gid, home };
}

// SIGKILLs every process of `uid` (only the throwaway user's: found through /proc), then userdel -r.
export async function removeThrowawayUser(user: ThrowawayUser): Promise<void> {
  for (let round = 0; round < 50; round += 1) {
    const pids = await processesOf(user.uid);
    if (!pids.length) break;
    for (const pid of pids) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone already
      }
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  execFileSync('userdel', ['-r', user.name], { stdio: 'ignore' });
}

async function processesOf(uid: number): Promise<number[]> {
  const pids: number[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const status = await readFile(`/proc/${entry}/status`, 'utf8').catch(() => '');
    const real = /^Uid:\s+(\d+)/m.exec(status)?.[1];
    if (real !== undefined && Number(real) === uid && !/^State:\s+Z/m.test(status)) pids.push(Number(entry));
  }
  return pids;
}

// Starts the non-root receiver's sshd and its throwaway user.
export async function startNonRootServer(options: NonRootServerOptions = {}): Promise<NonRootServer> {
  const base = await mkdtemp(join(tmpdir(), 'srs-nonroot-'));
  await chmod(base, 0o711); // the user must reach its home and BACKUP_ROOT below it
  let user: ThrowawayUser | undefined;
  let sshd: Sshd | undefined;
  try {
    user = await createThrowawayUser(base);
    const root = join(base, 'backups');
    await mkdir(root, { mode: 0o700 });
    await chown(root, user.uid, user.gid);
    // sshd reads authorized_keys as the user: the file lives in the user's home, owned by it.
    const authorizedKeys = join(user.home, 'authorized_keys');
    sshd = await startSshd({
      user: user.name,
      dir: join(base, 'sshd'),
      extraConfig: [...(options.sshdConfig ?? []), `Match User ${user.name}`, `  AuthorizedKeysFile ${authorizedKeys}`],
    });
    const key = join(base, 'client_key');
    const publicKey = await makeKey(key, 'nonroot-client');
    const keyOptions = options.keyOptions ?? 'restrict,port-forwarding';
    let recvArgs = options.recvArgs ?? ['--name', 'nonroot', '--mode', 'fake-super', '--plugin', MANIFEST_DIST, '--plugin', LINK_DEST_DIST];
    const owner = user;
    const writeKeys = async () => {
      const line = `${keyOptions},command="${forcedCommand(recvArgs, root).replace(/"/g, '\\"')}" ${publicKey}\n`;
      const temporary = `${authorizedKeys}.tmp`;
      await writeFile(temporary, line, { mode: 0o600 });
      await chown(temporary, owner.uid, owner.gid);
      await rename(temporary, authorizedKeys);
    };
    await writeKeys();
    const server = sshd;
    const clientArgs = () => ['-k', key, '-p', String(server.port), ...optionArgs(server, key)];
    let stopping: Promise<void> | undefined;
    return {
      user,
      sshd,
      root,
      key,
      clientArgs,
      backup: (path, args = [], run = {}) => runNode(clientBin, [...clientArgs(), ...args, `${owner.name}@127.0.0.1`, path], run),
      async setRecvArgs(args) {
        recvArgs = args;
        await writeKeys();
      },
      stop() {
        stopping ??= (async () => {
          await server.stop();
          await removeThrowawayUser(owner);
          await rm(base, { recursive: true, force: true });
        })();
        return stopping;
      },
    };
  } catch (error) {
    await sshd?.stop();
    if (user) await removeThrowawayUser(user).catch(() => {});
    await rm(base, { recursive: true, force: true });
    throw error;
  }
}

// A second, plain sshd for root (key without forced command): the far end of `restore --to`.
export async function startRootLogin(): Promise<RootLogin> {
  const sshd = await startSshd({ user: 'root' });
  const key = join(sshd.dir, 'root_key');
  await sshd.setAuthorizedKeys([{ publicKey: await makeKey(key, 'restore-admin') }]);
  return {
    sshd,
    key,
    restoreArgs: () => ['-k', key, '-o', 'IdentityAgent=none', ...optionArgs(sshd, key)],
    to: (dir) => `root@127.0.0.1:${sshd.port}:${dir}`,
    stop: () => sshd.stop(),
  };
}

// The helper's ssh settings (pinned host key, faster kex) as `-o` values, without the port and LogLevel.
function optionArgs(sshd: Sshd, key: string): string[] {
  const raw = sshd.sshOptions(key);
  const out: string[] = [];
  for (let i = 0; i < raw.length; i += 1) {
    if (raw[i] === '-o' && raw[i + 1] && !raw[i + 1]!.startsWith('LogLevel=')) out.push('-o', raw[i + 1]!);
  }
  return out;
}
