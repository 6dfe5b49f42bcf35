// `ssh-r-sync-admin status ROOT`: per host, the newest complete backup and its age, how many
// snapshots are complete and incomplete, the last failure and the last verify. Exits 1 when a host has no
// complete backup or (with --max-age) its newest one is too old, so that cron or a monitoring
// system notices silence, not only errors.
import { Command } from 'commander';
import pTimeout from 'p-timeout';
import { SshRSyncError, createLogger, escapeText, hostStatus, loadConfig, loadPlugin, oneLine, parseDuration, runsLogFailures, type Config, type HostStatus, type StatusReport } from '@ssh-r-sync/core/internal';
import { ADMIN_PREFIX } from './admin-shared.js';
import { backupRoot, columns, duration, formatAge, hostNames, isoTime, subCommand, type ExitCodeHolder } from './admin-shared.js';
import { JSON_SCHEMA } from './format.js';

export type { HostStatus } from '@ssh-r-sync/core/internal';

interface StatusOptions {
  json?: boolean;
  maxAge?: number;
  now?: Date;
  report?: boolean;
  config?: string;
  debug?: boolean;
}

/** How long one plugin may take to report (a notification server that hangs). */
const REPORT_TIMEOUT_MS = 120_000;

// The `status` sub-command.
export function statusCommand(result: ExitCodeHolder): Command {
  return subCommand(new Command('status'))
    .usage('[options] BACKUP_ROOT [NAME...]')
    .summary('each host: newest complete backup, its age, counts, last failure, last verify; exit 1 when one is stale')
    .description(
      'Show each host under BACKUP_ROOT (or only the NAMEs given): its newest complete backup and how old it is, ' +
        'how many complete and incomplete snapshots it has, and its last failure. Exits 1 when a host has no complete ' +
        'backup, or with --max-age when its newest complete backup is older than that: run it from cron or a monitoring ' +
        'check to hear about silence, not only about errors.',
    )
    .argument('<BACKUP_ROOT>', 'directory that holds one sub-directory per host')
    .argument('[NAME...]', 'only these hosts (a host given but missing counts as having no backup)')
    .option('--max-age <DURATION>', 'a host whose newest complete backup started longer ago than this is stale (exit 1), e.g. 36h, 2d, 1w', duration)
    .option('--json', 'print one JSON object on stdout: { root, now, maxAgeSeconds, ok, hosts: [...] }')
    .option('--now <ISO_TIME>', 'measure ages from this time instead of now', isoTime)
    .option('--report', "hand every host's health to the monitoring plugins of the receiver's config (plugin-prometheus, plugin-notify): what the status timer runs (ssh-r-sync-admin systemd --status-timer)")
    .option('--config <FILE>', "the receiver's config (default: its fixed places, /etc/ssh-r-sync/config.* then ~/.config/ssh-r-sync/): its maxAge and hosts.NAME.maxAge count then, and --report uses its plugins")
    .option('--debug', 'log what the plugins do while reporting')
    .addHelpText(
      'after',
      '\nA complete backup is a snapshot with its done mark (ROOT/NAME/<id>.meta/done.json), or for a plain mirror\n' +
        'the mark in ROOT/.ssh-r-sync/mirror/NAME/done.json. The last failure is the newest of: an incomplete snapshot\n' +
        'newer than the newest complete one (failed, interrupted, or still running), and the last "failure" line of\n' +
        'ROOT/.ssh-r-sync/runs.log, which the done-log hook script (hooks/done-log) writes. LAST VERIFY is the newest\n' +
        "complete backup's last `ssh-r-sync-admin verify` (data, sample PCT% or metadata; ok or its problems), or never.\n" +
        "A host without a complete backup is told apart by the receiver's run log (ssh-r-sync-admin log): it never succeeded,\n" +
        'or its last success was at a time shown (--json: lastSuccess), and its last run failed.\n' +
        '\nExamples:\n' +
        '  ssh-r-sync-admin status /srv/backup\n' +
        '  ssh-r-sync-admin status /srv/backup --max-age 36h || mail -s "stale backups" root < /dev/null\n' +
        '  ssh-r-sync-admin status /srv/backup laptop nas --json\n' +
          '  ssh-r-sync-admin status --report /srv/backup                # the status timer: plugins hear of every host\n' +
          '\nA host\'s max age: the config\'s hosts.NAME.maxAge, else --max-age, else the config\'s maxAge (read with --report or --config).\n' +
        '\nExit codes: 0 every host has a fresh complete backup, 1 some host does not (or there is no host at all),\n' +
        '2 usage error.',
    )
    .action(async (root: string, names: string[], options: StatusOptions) => {
      result.code = await status(root, names, options);
    });
}

async function status(rootArgument: string, names: string[], options: StatusOptions): Promise<number> {
  const root = await backupRoot(rootArgument);
  const now = options.now ?? new Date();
  const failures = await runsLogFailures(root);
  const loaded = options.report || options.config ? await loadConfig({ file: options.config }) : null;
  const maxAgeOf = maxAges(loaded?.config ?? {}, options.maxAge, loaded?.filepath ?? null);
  // One host at a time: each reads its done marks, and all at once could run out of descriptors.
  const hosts: (HostStatus & { maxAgeSeconds: number | null })[] = [];
  for (const name of await hostNames(root, names)) {
    const maxAgeMs = maxAgeOf(name);
    hosts.push({ ...(await hostStatus(root, name, { now, maxAgeMs, logFailure: failures.get(name) })), maxAgeSeconds: maxAgeMs === undefined ? null : maxAgeMs / 1000 });
  }
  let ok = hosts.length > 0 && hosts.every((host) => !host.stale);
  if (loaded && options.report) ok = (await report(loaded, { root, at: now.toISOString(), hosts }, Boolean(options.debug))) && ok;
  if (options.json) {
    const maxAgeSeconds = options.maxAge === undefined ? null : options.maxAge / 1000;
    process.stdout.write(`${JSON.stringify({ schema: JSON_SCHEMA, root, now: now.toISOString(), maxAgeSeconds, ok, hosts })}\n`);
  } else {
    process.stdout.write(hosts.length ? table(hosts) : `no hosts under ${root}\n`);
    // What plugins recorded (off-site copies), under the table; from ROOT: escaped for the terminal.
    for (const host of hosts) {
      for (const [plugin, fact] of Object.entries(host.facts ?? {})) for (const line of fact.lines) process.stdout.write(`  ${host.name}: ${plugin}: ${escapeText(line)}\n`);
    }
  }
  if (!hosts.length) process.stderr.write(`ssh-r-sync-admin: no host directories under ${root}: is it the right directory, and is its disk mounted?\n`);
  for (const host of hosts) {
    if (host.problem) process.stderr.write(`ssh-r-sync-admin: ${host.name}: ${host.problem}\n`);
    if (host.lastFailure?.source === 'record') process.stderr.write(`ssh-r-sync-admin: ${host.name}: last run failed: ${host.lastFailure.detail}\n`);
    for (const warning of host.warnings) process.stderr.write(`ssh-r-sync-admin: ${host.name}: warning: ${warning}\n`);
  }
  return ok ? 0 : 1;
}

const LAST_FAILURE_SOURCE = { snapshot: 'incomplete snapshot', 'runs.log': 'runs.log', record: 'last run failed' } as const;

// "2026-11-29T03:00:12Z sample 5% ok", "… data 3 problems", "never" (nothing complete: "-").
function verifyCell(host: HostStatus): string {
  const last = host.lastVerify;
  if (!last) return host.newestComplete ? 'never' : '-';
  const how = last.data ? 'data' : last.sample !== null ? `sample ${last.sample}%` : 'metadata';
  return `${last.at.replace(/\.\d{3}Z$/, 'Z')} ${how} ${last.ok ? 'ok' : `${last.problems} problem${last.problems === 1 ? '' : 's'}`}`;
}

function table(hosts: HostStatus[]): string {
  const rows = [['HOST', 'NEWEST COMPLETE', 'AGE', 'COMPLETE', 'INCOMPLETE', 'LAST FAILURE', 'LAST VERIFY']];
  for (const host of hosts) {
    const newest = host.newestComplete;
    rows.push([
      host.name,
      newest ? newest.id ?? `mirror, ${newest.startedAt.replace(/\.\d{3}Z$/, 'Z')}` : '-',
      newest ? formatAge(newest.ageSeconds * 1000) : '-',
      String(host.complete),
      String(host.incomplete),
      host.lastFailure ? `${host.lastFailure.at.replace(/\.\d{3}Z$/, 'Z')} ${LAST_FAILURE_SOURCE[host.lastFailure.source]}` : '-',
      verifyCell(host),
    ]);
  }
  return columns(rows);
}

// Each host's max age in ms: the config's hosts.NAME.maxAge, else --max-age, else the config's maxAge.
function maxAges(config: Config, option: number | undefined, file: string | null): (name: string) => number | undefined {
  const parse = (text: string | undefined, key: string) => {
    if (text === undefined) return undefined;
    try {
      return parseDuration(text);
    } catch (error) {
      throw new SshRSyncError('ECONFIG', `invalid config ${file}: ${key}: ${oneLine(error)}`, { cause: error });
    }
  };
  const fallback = option ?? parse(config.maxAge, 'maxAge');
  const perHost = new Map(Object.entries(config.hosts ?? {}).map(([name, host]) => [name, parse(host.maxAge, `hosts.${name}.maxAge`)]));
  return (name) => perHost.get(name) ?? fallback;
}

// Hands the report to every plugin of the config that takes one, each bounded; false when one failed.
async function report(loaded: Awaited<ReturnType<typeof loadConfig>>, statusReport: StatusReport, debug: boolean): Promise<boolean> {
  const logger = createLogger({ prefix: ADMIN_PREFIX, debug });
  const plugins = [];
  for (const entry of loaded.config.plugins ?? []) plugins.push(await loadPlugin(entry, loaded.baseDir));
  const reporting = plugins.filter((plugin) => typeof plugin.status === 'function');
  if (!reporting.length) {
    // Not a failure: the unit's exit code still says whether a host is stale.
    logger.warn(`--report: ${loaded.filepath ?? 'no config file was found'}${loaded.filepath ? ' loads no plugin that takes a status report' : ''}: add @ssh-r-sync/plugin-prometheus or @ssh-r-sync/plugin-notify to its plugins`);
    return true;
  }
  let ok = true;
  for (const plugin of reporting) {
    const scoped = logger.scope(plugin.name);
    try {
      await pTimeout(plugin.status!(statusReport, scoped), { milliseconds: REPORT_TIMEOUT_MS, message: `took longer than ${REPORT_TIMEOUT_MS / 1000} s` });
      scoped.debug(`reported ${statusReport.hosts.length} host${statusReport.hosts.length === 1 ? '' : 's'}`);
    } catch (error) {
      ok = false;
      scoped.error(`could not report the status: ${oneLine(error)}`);
    }
  }
  return ok;
}
