// The transport bench's two tools on one throwaway sshd: ssh-r-sync (the real client, the real
// receiver as forced command) and plain rsync over ssh, each able to back up a source as one of
// two targets: the generated tree (`host1`) and the one-file tree of the fixed cost (`tiny`).
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { run, type Command, type Run } from './runner.mjs';
import { authorizeKeys, startBenchSshd, type BenchSshd } from './sshd.mjs';
import { clientCommand, clientOutcome, plainRsyncCommand, rsyncOutcome, type Outcome } from './tools.mjs';

export const HOST = 'host1'; // the big tree's backup name
export const TINY = 'tiny'; // the one-file tree's backup name

export interface Tool {
  label: string;
  command(source: string, target: Target): Command;
  /** Regular files transferred, or a reason why the run failed. */
  outcome(result: Run): Outcome;
}

export interface Target {
  name: string;
  srsKey: string;
  plainDest: string;
  srsDest: string;
}

export interface Setup extends BenchSshd {
  plainKey: string;
  srsTool: Tool;
  plainTool: Tool;
  big: Target;
  tiny: Target;
  /** The client with --debug backing up `source` as `tiny`, through a key whose receiver has --debug too. */
  debugCommand(source: string): Command;
  /** Runs a command in the environment of the timed commands. */
  run(command: Command): Promise<Run>;
}

// Starts sshd with a receiver key per target (and one with --debug) and a plain key; `env` is the
// environment of every timed command.
export async function setUp(work: string | undefined, env: NodeJS.ProcessEnv): Promise<Setup> {
  const server = await startBenchSshd(work, 'ssh-r-sync-bench-');
  const { sshd, root } = server;
  const keys = { big: join(sshd.dir, 'srs_key'), tiny: join(sshd.dir, 'srs_tiny_key'), debug: join(sshd.dir, 'srs_debug_key'), plain: join(sshd.dir, 'plain_key') };
  await authorizeKeys(server, [
    { path: keys.big, comment: 'bench-ssh-r-sync', receiver: ['--name', HOST] },
    { path: keys.tiny, comment: 'bench-ssh-r-sync-tiny', receiver: ['--name', TINY] },
    { path: keys.debug, comment: 'bench-ssh-r-sync-debug', receiver: ['--name', TINY, '--debug'] },
    { path: keys.plain, comment: 'bench-plain-rsync' },
  ]);
  const plainRoot = join(sshd.dir, 'plain');
  await mkdir(plainRoot, { mode: 0o700 });

  const srsTool: Tool = {
    label: 'ssh-r-sync',
    command: (source, target) => clientCommand(server, target.srsKey, target.name, source),
    outcome: (result) => clientOutcome('ssh-r-sync', result),
  };
  const plainTool: Tool = {
    label: 'plain rsync',
    command: (source, target) => plainRsyncCommand(server, keys.plain, source, target.plainDest, env),
    outcome: rsyncOutcome,
  };
  return {
    ...server,
    plainKey: keys.plain,
    srsTool,
    plainTool,
    big: { name: HOST, srsKey: keys.big, srsDest: join(root, HOST), plainDest: join(plainRoot, HOST) },
    tiny: { name: TINY, srsKey: keys.tiny, srsDest: join(root, TINY), plainDest: join(plainRoot, TINY) },
    debugCommand: (source) => clientCommand(server, keys.debug, TINY, source, ['--debug']),
    run: (command) => run(command, env),
  };
}
