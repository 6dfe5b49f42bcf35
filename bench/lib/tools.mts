// The commands the benches time, built the same way in every bench so that the tools do the same
// work: the ssh-r-sync client with --json (and its result read back), and plain rsync over ssh
// with the receiver's default rsync options and the same compression list.
import { readdirSync } from 'node:fs';
import { defaultRsyncArgs, parseStats } from '@ssh-r-sync/core';
import { clientBin, recvBin } from '../../test/helpers/cli.js';
import { lastLine, shellWord, type Command, type Run } from './runner.mjs';
import { clientSshOptions, plainSshArgs, type BenchSshd } from './sshd.mjs';

/** What the receiver sets for its rsync; the plain tools get it too. */
export const COMPRESS_LIST = { RSYNC_COMPRESS_LIST: 'zstd none' };

/** Regular files transferred, or a reason why the run failed. */
export type Outcome = { files: number | null } | { error: string };

// The environment of the timed commands: this one, less NODE_EXTRA_CA_CERTS unless `keepNodeEnv`
// (node would read and parse a CA bundle at every start-up; a receiver run by sshd never has it).
export function timedEnv(keepNodeEnv: boolean): NodeJS.ProcessEnv {
  if (keepNodeEnv) return process.env;
  const { NODE_EXTRA_CA_CERTS: _dropped, ...rest } = process.env;
  return rest;
}

// The receiver's default rsync options for this user (as root: -HaAXS --super --numeric-ids
// --delete --delete-excluded --zl=1 --stats; fake-super otherwise).
export function receiverRsyncArgs(): string[] {
  const mode = process.getuid?.() === 0 ? 'privileged' : 'fake-super'; // the receiver's default
  return defaultRsyncArgs({ mode, oneFileSystem: false, compress: true });
}

// The client backing up `source` as `name` through `key`; `extra` goes before its options (--debug).
export function clientCommand(server: BenchSshd, key: string, name: string, source: string, extra: string[] = []): Command {
  const { sshd } = server;
  return { file: process.execPath, args: [clientBin, ...extra, '-k', key, '-p', String(sshd.port), ...clientSshOptions(sshd, key), '-n', name, '--json', `${sshd.user}@127.0.0.1`, source] };
}

// The receiver in pull mode (`ssh-r-sync-recv --pull`, as the server's timer runs it) backing up
// host `name` into the bench's root through `key`, whose authorized_keys line runs rrsync -ro.
export function pullCommand(server: BenchSshd, key: string, name: string, receiverArgs: string[], env: NodeJS.ProcessEnv): Command {
  const { sshd } = server;
  return { file: process.execPath, args: [recvBin, '--pull', `${sshd.user}@127.0.0.1`, '-p', String(sshd.port), '-k', key, ...clientSshOptions(sshd, key), '--name', name, ...receiverArgs, '--json', server.root], env };
}

/** A snapshot's directory name (its id). */
const SNAPSHOT_ID = /^\d{4}-\d{2}-\d{2}T\d{6}Z$/;

// Runs a backup (a client, or a pull) and returns its wall time and the files it transferred;
// throws with its own words when it did not succeed.
export async function timedBackup(run: (command: Command) => Promise<Run>, label: string, command: Command): Promise<{ ms: number; files: number | null }> {
  const result = await run(command);
  const outcome = clientOutcome(label, result);
  if ('error' in outcome) throw new Error(outcome.error);
  return { ms: result.ms, files: outcome.files };
}

// The id of the newest snapshot in a host's directory, if any.
export function newestSnapshot(hostDir: string): string | undefined {
  return readdirSync(hostDir).filter((entry) => SNAPSHOT_ID.test(entry)).sort().at(-1);
}

// What a client (or a pull) run did, from its exit code and its --json result line.
export function clientOutcome(label: string, result: Run): Outcome {
  let parsed: { status?: string; files?: number | null; message?: string | null } = {};
  try {
    parsed = JSON.parse(lastLine(result.stdout) || '{}');
  } catch {
    // reported below
  }
  if (result.code !== 0 || parsed.status !== 'success') {
    return { error: `${label} exited ${result.code ?? result.signal} (${parsed.status ?? 'no JSON result'}): ${parsed.message ?? lastLine(result.stderr)}` };
  }
  return { files: parsed.files ?? null };
}

// Plain rsync pulling `source` into `dest` over ssh with a plain key; `extra` after the receiver's
// options (e.g. --link-dest); `env` is the timed environment.
export function plainRsyncCommand(server: BenchSshd, key: string, source: string, dest: string, env: NodeJS.ProcessEnv, extra: string[] = []): Command {
  const { sshd } = server;
  return {
    file: 'rsync',
    args: [...receiverRsyncArgs(), ...extra, '-e', ['ssh', ...plainSshArgs(sshd, key)].map(shellWord).join(' '), `${sshd.user}@127.0.0.1:${source}/`, `${dest}/`],
    env: { ...env, ...COMPRESS_LIST },
  };
}

// What a plain rsync run did, from its exit code and its --stats.
export function rsyncOutcome(result: Run): Outcome {
  if (result.code !== 0) return { error: `rsync exited ${result.code ?? result.signal}: ${lastLine(result.stderr)}` };
  return { files: parseStats(result.stdout).files };
}
