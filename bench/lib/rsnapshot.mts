// rsnapshot as the benches run it: Debian's rsnapshot with `link_dest 1` and the receiver's own
// rsync options, pulling over ssh through a plain key of the bench's sshd, its snapshot root where
// the caller says (so that it sits on the disk being compared).
import { spawnSync } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseStats } from '@ssh-r-sync/core';
import { lastLine, run, type Run } from './runner.mjs';
import { plainSshArgs, type BenchSshd } from './sshd.mjs';
import { COMPRESS_LIST, receiverRsyncArgs } from './tools.mjs';

export const RSNAPSHOT = '/usr/bin/rsnapshot';

export interface Rsnapshot {
  /** Its config file, as written (fields separated by tabs). */
  config: string;
  /** One `rsnapshot alpha` run: its time, and the regular files its rsync transferred. */
  measure(): Promise<{ ms: number; files: number | null }>;
  /** The rsync command line it ran last (it prints it at verbose 3), or ''. */
  lastCommand(): string;
}

// Writes the config (snapshot root `snapshotRoot`, backing up `source` through `key`, retaining
// more than `runs` so that no run deletes one) and checks it with `rsnapshot configtest`.
export async function setUpRsnapshot(server: BenchSshd, key: string, source: string, snapshotRoot: string, runs: number, env: NodeJS.ProcessEnv): Promise<Rsnapshot> {
  const { sshd } = server;
  const rsyncArgs = receiverRsyncArgs();
  const config = join(sshd.dir, 'rsnapshot.conf');
  await writeFile(config, [
    ['config_version', '1.2'],
    ['snapshot_root', `${snapshotRoot}/`],
    ['cmd_rsync', '/usr/bin/rsync'],
    ['cmd_ssh', '/usr/bin/ssh'],
    ['cmd_cp', '/bin/cp'],
    ['cmd_rm', '/bin/rm'],
    ['ssh_args', plainSshArgs(sshd, key).join(' ')],
    ['retain', 'alpha', String(runs + 3)],
    ['verbose', '3'], // rsync's --stats output reaches stdout (4 would add -v: every file name)
    ['loglevel', '2'],
    ['lockfile', join(sshd.dir, 'rsnapshot.pid')],
    ['rsync_short_args', rsyncArgs.filter((arg) => /^-[A-Za-z]+$/.test(arg)).join(' ')],
    ['rsync_long_args', rsyncArgs.filter((arg) => arg.startsWith('--')).join(' ')],
    ['link_dest', '1'],
    ['backup', `${sshd.user}@127.0.0.1:${source}/`, 'host/'],
  ].map((fields) => fields.join('\t')).join('\n') + '\n');
  const check = spawnSync(RSNAPSHOT, ['-c', config, 'configtest'], { encoding: 'utf8' });
  if (check.status !== 0) throw new Error(`rsnapshot configtest: ${lastLine(check.stdout + check.stderr)}`);
  let lastCommand = '';
  return {
    config,
    async measure() {
      const result: Run = await run({ file: RSNAPSHOT, args: ['-c', config, 'alpha'], env: { ...env, ...COMPRESS_LIST } });
      if (result.code !== 0) throw new Error(`rsnapshot exited ${result.code ?? result.signal}: ${lastLine(result.stderr || result.stdout)}`);
      const command = /^\/usr\/bin\/rsync (?:[^\n]*\\\n)*[^\n]*/m.exec(result.stdout)?.[0];
      if (command) lastCommand = command.replace(/\s*\\\n\s*/g, ' ');
      return { ms: result.ms, files: parseStats(result.stdout).files };
    },
    lastCommand: () => lastCommand,
  };
}
