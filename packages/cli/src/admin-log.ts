// `ssh-r-sync-admin log ROOT NAME`: the host's last runs from the receiver's run log
// (ROOT/.ssh-r-sync/log/NAME.log): how each ended, with which config, rsync's error lines and
// every hook's outcome, so that why a backup failed is visible on the server.
import { existsSync } from 'node:fs';
import { Command } from 'commander';
import { UsageError, hostRecordPath, oneLine, readRunLog, runLogPath, validateName, type RunLogEntry } from '@ssh-r-sync/core/internal';
import { backupRoot, hostDir, hostNames, positiveInteger, subCommand, type ExitCodeHolder } from './admin-shared.js';

interface LogOptions {
  runs: number;
  json?: boolean;
}

// The `log` sub-command.
export function logCommand(result: ExitCodeHolder): Command {
  return subCommand(new Command('log'))
    .usage('[options] BACKUP_ROOT NAME')
    .summary("a host's last runs as the receiver logged them: outcome, config, rsync's errors, hooks")
    .description(
      "Show host NAME's last runs from the receiver's run log (BACKUP_ROOT/.ssh-r-sync/log/NAME.log, written by " +
        'ssh-r-sync-recv after every run that reached the host\'s directory): when each ended and how, the config file it ' +
        "used, rsync's error lines and each hook's outcome. The log is capped (256 KiB, plus one older file NAME.log.1).",
    )
    .argument('<BACKUP_ROOT>', 'directory that holds one sub-directory per host')
    .argument('<NAME>', 'the host')
    .option('--runs <N>', 'show the last N runs', positiveInteger, 10)
    .option('--json', 'print one JSON object: { version, root, name, runs: [...] } (oldest first)')
    .addHelpText(
      'after',
      '\nExamples:\n' +
        '  ssh-r-sync-admin log /srv/backup laptop\n' +
        '  ssh-r-sync-admin log /srv/backup laptop --runs 1 --json\n' +
        '\nExit codes: 0 shown (also: no run logged yet), 2 usage error or unknown host.',
    )
    .action(async (root: string, name: string, options: LogOptions) => {
      result.code = await showLog(root, name, options);
    });
}

async function showLog(rootArgument: string, name: string, options: LogOptions): Promise<number> {
  const root = await backupRoot(rootArgument);
  try {
    validateName(name);
  } catch (error) {
    throw new UsageError(oneLine(error));
  }
  const runs = readRunLog(root, name).slice(-options.runs);
  if (!runs.length && !existsSync(hostDir(root, name)) && !existsSync(hostRecordPath(root, name))) {
    const known = await hostNames(root, []);
    throw new UsageError(`no host ${name} under ${root} (${known.length ? `hosts there: ${known.join(', ')}` : 'no hosts there yet'})`);
  }
  if (options.json) {
    process.stdout.write(`${JSON.stringify({ version: 1, root, name, runs })}\n`);
    return 0;
  }
  if (!runs.length) {
    process.stdout.write(`no runs of ${name} logged yet (${runLogPath(root, name)})\n`);
    return 0;
  }
  process.stdout.write(runs.map(formatRun).join('\n'));
  return 0;
}

// One run as a few lines: the outcome line, then the config, rsync's errors and the hooks.
function formatRun(run: RunLogEntry): string {
  const seconds = `${(run.durationMs / 1000).toFixed(1)} s`;
  const what = run.status === 'success' ? `success${run.snapshot ? ` (snapshot ${run.snapshot})` : ''}` : `${run.status} (exit ${run.exitCode})`;
  const lines = [`${run.at.replace(/\.\d{3}Z$/, 'Z')}  ${what} after ${seconds}, ${run.transport}`];
  if (run.message) lines.push(`  message: ${run.message}`);
  lines.push(`  config: ${run.config ?? 'none (defaults)'}`);
  if (run.rsync) {
    const counts = run.rsync.files === null ? '' : `, ${run.rsync.files} file${run.rsync.files === 1 ? '' : 's'} transferred`;
    lines.push(`  rsync: exit ${run.rsync.exitCode}${run.rsync.signal ? ` (${run.rsync.signal})` : ''}${counts}`);
    for (const line of run.rsync.errors) lines.push(`    ${line}`);
  }
  for (const hook of run.hooks) lines.push(`  hook ${hook.point} ${hook.tap}: ${hook.outcome} (${(hook.durationMs / 1000).toFixed(1)} s)`);
  return `${lines.join('\n')}\n`;
}
