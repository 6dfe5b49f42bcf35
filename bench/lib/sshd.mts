// The benches' throwaway sshd on 127.0.0.1 (test/helpers/sshd.ts) with a backup root and keys:
// receiver keys, whose forced command is the real receiver (as a user's authorized_keys line has
// it), and plain keys (`restrict`, no forced command) for rsync's and rsnapshot's own ssh.
import { rmSync } from 'node:fs';
import { mkdir, mkdtemp } from 'node:fs/promises';
import { join } from 'node:path';
import { forcedCommand } from '../../test/helpers/backup-server.js';
import { makeKey, startSshd, type Sshd } from '../../test/helpers/sshd.js';

export interface BenchSshd {
  sshd: Sshd;
  /** The receiver's backup root: ROOT in its forced commands. */
  root: string;
}

export interface BenchKey {
  /** Where the private key goes (in sshd.dir). */
  path: string;
  comment: string;
  /** The receiver's arguments in the key's forced command; absent: a plain key. */
  receiver?: string[];
  /** Other authorized_keys options instead (a pull-mode client's `restrict,command="rrsync -ro DIR"`). */
  options?: string;
}

// Starts sshd in a new directory under `work` (removed at exit) or the system temp dir, with an
// empty backup root; `prefix` names the directory under `work`.
export async function startBenchSshd(work: string | undefined, prefix: string): Promise<BenchSshd> {
  let dir: string | undefined;
  if (work) {
    dir = await mkdtemp(join(work, prefix));
    const remove = () => rmSync(dir!, { recursive: true, force: true });
    process.once('exit', remove); // startSshd removes only the directories it made itself
  }
  const sshd = await startSshd({ dir });
  const root = join(sshd.dir, 'backups');
  await mkdir(root, { mode: 0o700 });
  return { sshd, root };
}

// The authorized_keys options of a receiver key: the forced command a user's setup would have.
export function receiverKeyOptions(server: BenchSshd, receiverArgs: string[]): string {
  return `restrict,port-forwarding,command="${forcedCommand(receiverArgs, server.root).replace(/"/g, '\\"')}"`;
}

// Makes each key and writes authorized_keys with all of them (replacing what was there).
export async function authorizeKeys(server: BenchSshd, keys: BenchKey[]): Promise<void> {
  const lines = [];
  for (const key of keys) {
    const publicKey = await makeKey(key.path, key.comment);
    // a plain key: no forced command, so rsync's own remote command runs
    lines.push({ publicKey, options: key.receiver ? receiverKeyOptions(server, key.receiver) : key.options ?? 'restrict' });
  }
  await server.sshd.setAuthorizedKeys(lines);
}

// The helper's ssh options (pinned host key, BatchMode, curve25519 kex, no multiplexing) as
// `-o` pairs for the client, less LogLevel: ssh-r-sync adds its own defaults (keepalives etc.).
export function clientSshOptions(sshd: Sshd, key: string): string[] {
  const raw = sshd.sshOptions(key);
  const out: string[] = [];
  for (let i = 0; i < raw.length; i++) if (raw[i] === '-o' && !raw[i + 1]!.startsWith('LogLevel=')) out.push('-o', raw[++i]!);
  return out;
}

// ssh's arguments for the plain tools (before the host): no user config, the helper's options.
export function plainSshArgs(sshd: Sshd, key: string): string[] {
  return ['-F', '/dev/null', ...sshd.sshOptions(key)];
}
