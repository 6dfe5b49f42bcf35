// A complete reverse-tunnel setup for end-to-end tests, the demo and benchmarks: a throwaway
// sshd whose authorized_keys runs the real `ssh-r-sync-recv` as the forced command of a client
// key, and a function that runs the real `ssh-r-sync` client against it.
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { makeKey, startSshd, type Sshd } from './sshd.js';
import { recvBin, clientBin, runNode, type RunOptions, type RunResult } from './cli.js';

export interface BackupServerOptions {
  /** Arguments of ssh-r-sync-recv in the forced command, before BACKUP_ROOT (e.g. ['--name', 'host1']). */
  recvArgs?: string[];
  /** authorized_keys options before command= (default 'restrict,port-forwarding'). */
  keyOptions?: string;
  /** More keys: name → receiver args, each with its own client key. */
  extraKeys?: Record<string, string[]>;
  sshdConfig?: string[];
  /** Lines the server's login shell runs before the forced command (see SshdOptions.shellStartup). */
  shellStartup?: string;
  /** The receiver the forced commands run (default: the repository's; e.g. an installed copy's). */
  recvBin?: string;
}

export interface BackupServer {
  readonly sshd: Sshd;
  /** BACKUP_ROOT on the "server". */
  readonly root: string;
  /** The default client key (its forced command uses recvArgs). */
  readonly key: string;
  /** Private key paths of the extraKeys, by name. */
  readonly keys: Record<string, string>;
  /** ssh-r-sync's options that reach this server with `key`, without the destination and PATH. */
  clientArgs(key?: string): string[];
  /** Runs `ssh-r-sync [args…] user@127.0.0.1 PATH`. */
  backup(path: string, args?: string[], options?: RunOptions & { key?: string }): Promise<RunResult>;
  /** Replaces the receiver arguments of the default key. */
  setRecvArgs(args: string[]): Promise<void>;
  stop(): Promise<void>;
}

// Quotes a word for the forced command, which sshd runs through the user's shell.
function shellWord(word: string): string {
  return /^[A-Za-z0-9_./:=,+-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
}

export function forcedCommand(recvArgs: string[], root: string, bin = recvBin): string {
  return [process.execPath, bin, ...recvArgs, root].map(shellWord).join(' ');
}

// Starts sshd with keys whose forced command is the receiver.
export async function startBackupServer(options: BackupServerOptions = {}): Promise<BackupServer> {
  const sshd = await startSshd({ extraConfig: options.sshdConfig ?? [], shellStartup: options.shellStartup });
  const root = join(sshd.dir, 'backups');
  await mkdir(root, { mode: 0o700 });
  const key = join(sshd.dir, 'client_key');
  const publicKey = await makeKey(key, 'client');
  const keys: Record<string, string> = {};
  const publicKeys: Record<string, string> = {};
  for (const name of Object.keys(options.extraKeys ?? {})) {
    keys[name] = join(sshd.dir, `client_key_${name}`);
    publicKeys[name] = await makeKey(keys[name]!, name);
  }
  const keyOptions = options.keyOptions ?? 'restrict,port-forwarding';
  let recvArgs = options.recvArgs ?? ['--name', 'host1'];
  const writeKeys = () =>
    sshd.setAuthorizedKeys([
      { publicKey, options: `${keyOptions},command="${forcedCommand(recvArgs, root, options.recvBin).replace(/"/g, '\\"')}"` },
      ...Object.entries(options.extraKeys ?? {}).map(([name, args]) => ({
        publicKey: publicKeys[name]!,
        options: `${keyOptions},command="${forcedCommand(args, root, options.recvBin).replace(/"/g, '\\"')}"`,
      })),
    ]);
  await writeKeys();
  const clientArgs = (which = key) => ['-k', which, '-p', String(sshd.port), ...sshOptionArgs(sshd, which)];
  return {
    sshd,
    root,
    key,
    keys,
    clientArgs,
    backup: (path, args = [], run = {}) => runNode(clientBin, [...clientArgs(run.key ?? key), ...args, `${sshd.user}@127.0.0.1`, path], run),
    async setRecvArgs(args) {
      recvArgs = args;
      await writeKeys();
    },
    stop: () => sshd.stop(),
  };
}

// The -o options of the helper's ssh settings (pinned host key, faster kex), as ssh-r-sync -o values.
function sshOptionArgs(sshd: Sshd, key: string): string[] {
  const raw = sshd.sshOptions(key);
  const out: string[] = [];
  for (let i = 0; i < raw.length; i += 1) {
    if (raw[i] === '-o' && raw[i + 1] && !raw[i + 1]!.startsWith('LogLevel=')) out.push('-o', raw[i + 1]!);
  }
  return out;
}
