// `ssh-r-sync-admin systemd`: prints (or installs) a oneshot service and a timer that run one
// backup command on a schedule, at low priority, with only the hardening that cannot break a
// backup; or (--verify) a weekly sampled `ssh-r-sync-admin verify` of the server's backups; or
// (--status-timer) an hourly `ssh-r-sync-admin status --report`, the dead-man's switch; with
// --pull --offsite a third unit that copies off-site after each pull (the pull defers it). It
// never runs systemctl; it prints the line to run. --calendar is checked before anything is
// printed (systemd-analyze calendar where installed, else a check of the OnCalendar= grammar).
import { accessSync, constants, statSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { delimiter, isAbsolute, join, resolve } from 'node:path';
import { Command } from 'commander';
import { NAME_PATTERN, UsageError, parseDuration } from '@ssh-r-sync/core/internal';
import { subCommand, type ExitCodeHolder } from './admin-shared.js';
import { checkCalendar } from './systemd-calendar.js';
import { JSON_SCHEMA } from './format.js';

interface SystemdOptions {
  name?: string;
  pull?: boolean;
  offsite?: boolean;
  verify?: string;
  statusTimer?: string;
  maxAge?: string;
  sample: string;
  calendar?: string;
  delay: string;
  user?: string;
  nice: string;
  root?: string;
  install?: boolean;
  dryRun?: boolean;
  dir: string;
  json?: boolean;
}

export const SYSTEMD_DIR = '/etc/systemd/system';

/** restic's cache for --offsite units: ~/.cache is read-only (ProtectHome); restic runs without a
 *  cache then ("unable to open cache"), rereading the repository's indexes every time. */
const RESTIC_CACHE = [
  "# restic's cache (XDG_CACHE_HOME/restic): ~/.cache is read-only here, and without a cache restic rereads the repository each time",
  'CacheDirectory=ssh-r-sync-offsite',
  'Environment=XDG_CACHE_HOME=%C/ssh-r-sync-offsite',
];

// The `systemd` sub-command.
export function systemdCommand(result: ExitCodeHolder): Command {
  return subCommand(new Command('systemd'))
    .usage('--name NAME [options] -- COMMAND [ARGS...]  |  --verify BACKUP_ROOT [--name NAME] [options]  |  --status-timer BACKUP_ROOT [--max-age DURATION] [options]')
    .summary('print or install a systemd service and timer that run a backup command (or a sampled verify, or the status report) on a schedule')
    .description(
      'Print ssh-r-sync-NAME.service (Type=oneshot, low CPU and I/O priority, light hardening) running COMMAND ARGS, and ' +
        'ssh-r-sync-NAME.timer (OnCalendar, RandomizedDelaySec, Persistent=true). With --install, write both into ' +
        `${SYSTEMD_DIR} (or --dir); then run the printed systemctl line yourself.\n\n` +
        'Reverse mode (default) is the client: COMMAND is ssh-r-sync. --pull is the server pulling with ssh-r-sync-recv --pull; ' +
        'its service may write only BACKUP_ROOT (the last argument, or --root).\n\n' +
        '--verify BACKUP_ROOT is the server checking its backups: ssh-r-sync-verify.service runs this ssh-r-sync-admin\'s ' +
        '`verify --sample PCT BACKUP_ROOT` (with --name: only that host, units ssh-r-sync-verify-NAME) weekly; it may write ' +
        'only BACKUP_ROOT (each backup\'s verify.json) and needs no network. A failed verify is a failed unit (systemctl --failed).\n\n' +
        '--status-timer BACKUP_ROOT is the dead-man\'s switch: ssh-r-sync-status.service runs `status --report [--max-age D] BACKUP_ROOT` ' +
        'hourly; every host\'s health goes to the monitoring plugins of the receiver\'s config (docs/monitoring.md), and a stale host ' +
        'fails the unit.',
    )
    .argument('[COMMAND...]', 'the command to run (a bare name is looked up in PATH), after --; not with --verify')
    .option('--name <NAME>', 'the host name: the units are ssh-r-sync-NAME.service and .timer (with --verify: only this host)')
    .option('--pull', 'the unit runs the receiver in pull mode on the server (writable: only BACKUP_ROOT)')
    .option('--offsite', 'with --pull, for plugin-restic: the pull gets --defer-unlocked and OnSuccess= starts a third unit, ssh-r-sync-NAME-offsite.service, that runs `ssh-r-sync-admin offsite sync --lock-wait 60 [--config FILE] BACKUP_ROOT NAME` (its exit 75 a success): a copy to a repository that hangs never holds up the next pull')
    .option('--verify <BACKUP_ROOT>', 'the units run `ssh-r-sync-admin verify --sample PCT BACKUP_ROOT [NAME]` instead of a backup')
    .option('--status-timer <BACKUP_ROOT>', 'the units run `ssh-r-sync-admin status --report BACKUP_ROOT` (hourly by default): every host\'s health goes to the receiver config\'s monitoring plugins, so a host that stopped calling in is reported; a stale host fails the unit')
    .option('--max-age <DURATION>', 'with --status-timer: a host whose newest complete backup is older than this is stale (default: the config\'s maxAge; hosts.NAME.maxAge wins)')
    .option('--sample <PCT>', "with --verify: the share of regular files reread each time, 0 < PCT <= 100 ('data': all of them)", '5')
    .option('--calendar <SPEC>', 'when to run (systemd OnCalendar=, checked with systemd-analyze calendar where installed; default daily, with --verify weekly)')
    .option('--delay <SPAN>', 'random delay added to each start, so that clients do not all start at once (RandomizedDelaySec=)', '1h')
    .option('--user <USER>', 'run as this user (default: root, which a client needs to read everything)')
    .option('--nice <[PRIO][:CLASS[.LEVEL]]>', 'CPU nice value and I/O class (rt, be, idle) for the service', '10:idle')
    .option('--root <BACKUP_ROOT>', '--pull: the directory the service may write (default: the last argument of COMMAND)')
    .option('--install', `write the units into ${SYSTEMD_DIR} (or --dir) instead of printing them`)
    .option('--dry-run', 'with --install: print what would be written where, write nothing')
    .option('--dir <DIR>', 'with --install: the directory to write into', SYSTEMD_DIR)
    .option('--json', 'print one JSON object: { schema, service, timer, serviceName, timerName, enable }, with --offsite also offsiteService, offsiteServiceName (docs/json.md)')
    .addHelpText(
      'after',
      '\nHardening, and why not more:\n' +
        '  both      NoNewPrivileges, ProtectKernelTunables, ProtectKernelModules, ProtectControlGroups, RestrictRealtime,\n' +
        '            LockPersonality: nothing a backup uses. Low priority: Nice/IOSchedulingClass from --nice, CPUSchedulingPolicy=batch.\n' +
        '  client    ProtectSystem=full (/usr, /boot, /etc read-only): rsync only reads; hooks that dump a database write\n' +
        '            elsewhere. No ProtectHome and no PrivateTmp: the backup must read everything it backs up, /home and /tmp included.\n' +
        '  --pull    ProtectSystem=strict plus ReadWritePaths=BACKUP_ROOT: the receiver writes only there; PrivateTmp=yes;\n' +
        '            ProtectHome=read-only (ssh reads its key and known_hosts; a BACKUP_ROOT under /home stays writable).\n' +
        '  --offsite the -offsite unit as --pull (offsite sync writes only BACKUP_ROOT; a repository on a local disk needs its\n' +
        '            directory added to ReadWritePaths=); both units get CacheDirectory=ssh-r-sync-offsite as restic\'s cache\n' +
        '            (XDG_CACHE_HOME): ~/.cache is read-only, and restic without a cache rereads the repository every time.\n' +
        '  never     PrivateDevices (snapshot hooks need block devices), RestrictSUIDSGID (a privileged receiver must restore setuid files), MemoryDenyWriteExecute (node\'s JIT).\n' +
        '\n--pull --offsite (systemd 249 or later, for OnSuccess=): while the off-site unit runs, a pull that succeeds\n' +
        'starts no second copy: its start joins the running one, which looks again for newer snapshots before it ends.\n' +
        'It runs `offsite sync --lock-wait 60` (a mirror\'s view needs the host\'s lock for a moment); its exit 75, a host\n' +
        'whose copy was at work already, is a success.\n' +
        '\nExit status 75 (a skipped run: another run of the host was going on, or a hook said skip) is a success\n' +
        '(SuccessExitStatus=75); 1 is a failure, shown by systemctl --failed. To be told of failures, save this\n' +
        'template as /etc/systemd/system/ssh-r-sync-failed@.service and uncomment the OnFailure= line of the service:\n' +
        `${ON_FAILURE_EXAMPLE.replace(/^/gm, '    ')}\n` +
        '\nExamples:\n' +
        '  ssh-r-sync-admin systemd --name laptop -- /usr/local/bin/ssh-r-sync -k /root/.ssh/ssh-r-sync --tunnel-port 22101 -n laptop ssh-r-sync@server /\n' +
        '  ssh-r-sync-admin systemd --name web1 --pull --install --dry-run -- /usr/local/bin/ssh-r-sync-recv --pull ssh-r-sync@web1 --name web1 /srv/backup\n' +
        '  ssh-r-sync-admin systemd --name web1 --pull --offsite --install -- /usr/local/bin/ssh-r-sync-recv --config /etc/ssh-r-sync/config.json --pull ssh-r-sync@web1 --name web1 /srv/backup\n' +
        '  ssh-r-sync-admin systemd --verify /srv/backup --sample 5 --install\n' +
          '  ssh-r-sync-admin systemd --status-timer /srv/backup --max-age 36h --install\n' +
        '\nExit codes: 0 printed or written, 1 cannot write, 2 usage error.',
    )
    .action(async (command: string[], options: SystemdOptions) => {
      if (options.offsite && !options.pull) throw new UsageError('--offsite goes with --pull: in reverse mode the off-site copy runs after the client has its answer, it never holds up the client');
      if (options.statusTimer !== undefined) {
        if (command.length) throw new UsageError('--status-timer runs ssh-r-sync-admin status itself: give no COMMAND');
        if (options.pull || options.verify !== undefined) throw new UsageError('--status-timer is a unit of its own: give it without --pull or --verify');
        if (options.maxAge !== undefined) parseDuration(options.maxAge);
        command = [resolve(process.argv[1]!), 'status', '--report', ...(options.maxAge !== undefined ? ['--max-age', options.maxAge] : []), options.statusTimer, ...(options.name ? [options.name] : [])];
      } else if (options.verify !== undefined) {
        if (command.length) throw new UsageError('--verify runs ssh-r-sync-admin verify itself: give no COMMAND');
        if (options.pull) throw new UsageError('--verify and --pull are two different units: give one');
        command = [resolve(process.argv[1]!), 'verify', ...sampleArgs(options.sample), options.verify, ...(options.name ? [options.name] : [])];
      } else if (options.name === undefined) throw new UsageError('missing --name NAME (the units are ssh-r-sync-NAME.service and .timer)');
      result.code = await systemd(command, options);
    });
}

export interface Units {
  serviceName: string;
  timerName: string;
  service: string;
  timer: string;
  enable: string;
  /** --pull --offsite: ssh-r-sync-NAME-offsite.service, started by the pull's OnSuccess=. */
  offsiteServiceName?: string;
  offsiteService?: string;
}

/** A unit OnFailure= can start: mails the failed unit's last log lines to root (needs `mail`). */
export const ON_FAILURE_EXAMPLE = [
  '[Unit]',
  'Description=tell root that %i failed',
  '',
  '[Service]',
  'Type=oneshot',
  `ExecStart=/bin/sh -c 'journalctl -u "$$1" -n 50 --no-pager | mail -s "$$1 failed on %H" root' sh %i`,
].join('\n');

async function systemd(command: string[], options: SystemdOptions): Promise<number> {
  const units = makeUnits(command, options);
  await checkCalendar(options.calendar ?? defaultCalendar(options));
  if (options.dryRun && !options.install) throw new UsageError('--dry-run goes with --install');
  if (options.install) {
    const dir = resolve(options.dir);
    for (const [file, text] of unitFiles(units)) {
      const path = join(dir, file);
      if (options.dryRun) process.stdout.write(`# would write ${path}:\n${text}\n`);
      else {
        await mkdir(dir, { recursive: true });
        await writeFile(path, text, { mode: 0o644 });
        process.stdout.write(`wrote ${path}\n`);
      }
    }
    process.stdout.write(`# now run:\n${units.enable}\n`);
    return 0;
  }
  if (options.json) {
    process.stdout.write(`${JSON.stringify({ schema: JSON_SCHEMA, ...units, onFailureExample: ON_FAILURE_EXAMPLE })}\n`);
    return 0;
  }
  process.stdout.write(
    unitFiles(units).map(([file, text]) => `# ${join(SYSTEMD_DIR, file)}\n${text}\n`).join('') +
      `# optional, for OnFailure=: ${join(SYSTEMD_DIR, 'ssh-r-sync-failed@.service')}\n${ON_FAILURE_EXAMPLE.replace(/^/gm, '# ')}\n\n# then:\n# ${units.enable}\n`,
  );
  return 0;
}

// The units' files and texts, in the order they are printed and written.
function unitFiles(units: Units): [string, string][] {
  const files: [string, string][] = [[units.serviceName, units.service], [units.timerName, units.timer]];
  if (units.offsiteServiceName && units.offsiteService) files.push([units.offsiteServiceName, units.offsiteService]);
  return files;
}

/** Builds both units (and with --pull --offsite the off-site one); usage errors for bad names and values. */
export function makeUnits(command: string[], options: SystemdOptions): Units {
  if (options.name !== undefined && !NAME_PATTERN.test(options.name)) throw new UsageError(`invalid --name "${printable(options.name)}": names match ${NAME_PATTERN.source}`);
  const verify = options.verify !== undefined;
  const statusTimer = options.statusTimer !== undefined;
  const calendar = options.calendar ?? defaultCalendar(options);
  for (const [what, value] of [['--calendar', calendar], ['--delay', options.delay], ['--user', options.user ?? 'root'], ['--nice', options.nice]] as const) {
    if (value.trim() === '' || /[\x00-\x1f\x7f]/.test(value)) throw new UsageError(`invalid ${what} "${printable(value)}": empty, or a newline or control character`);
  }
  if (options.user !== undefined && !/^[A-Za-z0-9_][A-Za-z0-9_.-]*\$?$/.test(options.user)) throw new UsageError(`invalid --user "${printable(options.user)}"`);
  if (!/^[0-9][0-9a-z ]*$/.test(options.delay)) throw new UsageError(`invalid --delay "${printable(options.delay)}": expected a time span such as 1h, 30min, 0`);
  if (!command.length) throw new UsageError('missing COMMAND (after --)');
  for (const word of command) if (/[\x00-\x1f\x7f]/.test(word)) throw new UsageError(`a newline or control character in the command: "${printable(word)}"`);
  const argv = [absoluteProgram(command[0]!), ...command.slice(1).map(absolutePathArgument)];
  // The pull leaves its off-site copy to the -offsite unit, which OnSuccess= starts after it.
  const offsite = options.offsite === true && options.pull === true && !verify && !statusTimer;
  if (offsite && !argv.includes('--defer-unlocked')) argv.splice(deferAt(argv, options.root), 0, '--defer-unlocked');
  const nice = niceSettings(options.nice);

  const unit = statusTimer ? `ssh-r-sync-status${options.name ? `-${options.name}` : ''}` : verify ? `ssh-r-sync-verify${options.name ? `-${options.name}` : ''}` : `ssh-r-sync-${options.name}`;
  const base = ['NoNewPrivileges=yes', 'ProtectKernelTunables=yes', 'ProtectKernelModules=yes', 'ProtectControlGroups=yes', 'RestrictRealtime=yes', 'LockPersonality=yes'];
  const hardening = [...base];
  if (statusTimer) {
    if (!isAbsolute(options.statusTimer!)) throw new UsageError(`--status-timer BACKUP_ROOT must be absolute: "${printable(options.statusTimer!)}"`);
    hardening.push('# status reads the records; its plugins write a textfile (Prometheus) and talk to the network (notifications)', 'ProtectSystem=full', 'ProtectHome=read-only', 'PrivateTmp=yes');
  } else if (verify) {
    const root = options.verify!;
    if (!isAbsolute(root)) throw new UsageError(`--verify BACKUP_ROOT must be absolute: "${printable(root)}"`);
    hardening.push('# verify reads the backups and writes only their verify.json; it needs no network', 'ProtectSystem=strict', `ReadWritePaths=${unitWord(root)}`, 'ProtectHome=read-only', 'PrivateTmp=yes', 'PrivateNetwork=yes');
  } else if (options.pull) {
    const root = options.root ?? command.at(-1)!;
    if (!isAbsolute(root)) throw new UsageError(`BACKUP_ROOT must be absolute (give it as the last argument or --root): "${printable(root)}"`);
    hardening.push('# the receiver writes only into BACKUP_ROOT', 'ProtectSystem=strict', `ReadWritePaths=${unitWord(root)}`, 'ProtectHome=read-only', 'PrivateTmp=yes');
    // The copy of a mirror written in place is not deferred (it runs under the host's lock, in the pull).
    if (offsite) hardening.push(...RESTIC_CACHE);
  } else {
    hardening.push('# a client backup must read everything it backs up: no ProtectHome, no PrivateTmp', 'ProtectSystem=full');
  }
  const service = [
    '[Unit]',
    statusTimer
      ? `Description=ssh-r-sync status report of the backups in ${unitValue(options.statusTimer!)}${options.name ? ` (${options.name})` : ''}`
      : verify ? `Description=ssh-r-sync verify of the backups in ${unitValue(options.verify!)}${options.name ? ` (${options.name})` : ''}` : `Description=ssh-r-sync backup of ${options.name}${options.pull ? ' (pull)' : ''}`,
    ...(verify ? [] : ['Wants=network-online.target', 'After=network-online.target']),
    ...(offsite ? [`# after each pull that succeeded (or was skipped), the off-site copy it deferred (--defer-unlocked); systemd >= 249`, `OnSuccess=${unit}-offsite.service`] : []),
    '# to be told when a run fails: install ssh-r-sync-failed@.service (ssh-r-sync-admin systemd --help) and uncomment',
    '#OnFailure=ssh-r-sync-failed@%n.service',
    '',
    '[Service]',
    'Type=oneshot',
    '# runs from /, wherever the unit was written: its path arguments are absolute, the receiver\'s config comes from its fixed place or --config',
    'WorkingDirectory=/',
    `ExecStart=${argv.map(unitWord).join(' ')}`,
    ...(verify || statusTimer ? [] : ['# exit 75: the run was skipped (the host was busy, or a hook said skip): not a failure', 'SuccessExitStatus=75']),
    ...(statusTimer ? ['# exit 1: a host is stale (or a plugin failed to report): the unit fails, and OnFailure= tells you'] : []),
    ...(options.user ? [`User=${options.user}`] : []),
    ...nice,
    'CPUSchedulingPolicy=batch',
    ...hardening,
    '',
  ].join('\n');
  const timer = [
    '[Unit]',
    statusTimer
      ? `Description=scheduled ssh-r-sync status report of the backups in ${unitValue(options.statusTimer!)}`
      : verify ? `Description=scheduled ssh-r-sync verify of the backups in ${unitValue(options.verify!)}${options.name ? ` (${options.name})` : ''}` : `Description=scheduled ssh-r-sync backup of ${options.name}`,
    '',
    '[Timer]',
    `OnCalendar=${calendar}`,
    `RandomizedDelaySec=${options.delay}`,
    'Persistent=true',
    `Unit=${unit}.service`,
    '',
    '[Install]',
    'WantedBy=timers.target',
    '',
  ].join('\n');
  const units: Units = { serviceName: `${unit}.service`, timerName: `${unit}.timer`, service, timer, enable: `systemctl daemon-reload && systemctl enable --now ${unit}.timer` };
  if (offsite) {
    const root = options.root ?? command.at(-1)!;
    const offsiteService = [
      '[Unit]',
      `Description=ssh-r-sync off-site copy of ${options.name} (after its pull)`,
      'Wants=network-online.target',
      'After=network-online.target',
      '# to be told when a copy fails: install ssh-r-sync-failed@.service (ssh-r-sync-admin systemd --help) and uncomment',
      '#OnFailure=ssh-r-sync-failed@%n.service',
      '',
      '[Service]',
      'Type=oneshot',
      '# a pull that succeeds while this runs starts no second copy (its start joins this one): this one looks again for newer snapshots before it ends',
      'WorkingDirectory=/',
      '# a mirror\'s view needs the host\'s lock: wait a minute for a pull that holds it',
      `ExecStart=${[resolve(process.argv[1]!), 'offsite', 'sync', '--lock-wait', '60', ...configArgs(argv), root, options.name!].map(unitWord).join(' ')}`,
      '# exit 75: skipped (a copy of the host was at work already, or its pull still held its lock): not a failure',
      'SuccessExitStatus=75',
      ...(options.user ? [`User=${options.user}`] : []),
      ...nice,
      'CPUSchedulingPolicy=batch',
      ...base,
      '# offsite sync writes only into BACKUP_ROOT (its record, the holds) and restic\'s cache; a repository on a local disk: add its directory to ReadWritePaths=',
      'ProtectSystem=strict',
      `ReadWritePaths=${unitWord(root)}`,
      'ProtectHome=read-only',
      'PrivateTmp=yes',
      ...RESTIC_CACHE,
      '',
    ].join('\n');
    Object.assign(units, { offsiteServiceName: `${unit}-offsite.service`, offsiteService });
  }
  return units;
}

// Where --defer-unlocked goes in the pull's argv: before BACKUP_ROOT (--root's word, else the last
// argument) and before a `--` ahead of it, where the receiver still reads options. Right after the
// program would hand it to `node` where the command is `node …/ssh-r-sync-recv.js …`; right
// before the last argument would split an option from its value when --root names another.
function deferAt(argv: readonly string[], root: string | undefined): number {
  const named = root === undefined ? -1 : argv.lastIndexOf(root);
  const at = named > 0 ? named : argv.length - 1;
  const dashes = argv.indexOf('--', 1);
  return Math.max(1, dashes !== -1 && dashes < at ? dashes : at);
}

// The receiver's --config FILE (or --config=FILE) of the pull's command, for offsite sync: the
// same config names the same repositories; none: offsite sync looks in the config's fixed places.
function configArgs(argv: readonly string[]): string[] {
  for (let i = 1; i < argv.length; i++) {
    if (argv[i] === '--') break;
    if (argv[i] === '--config' && argv[i + 1] !== undefined) return ['--config', argv[i + 1]!];
    if (argv[i]!.startsWith('--config=')) return ['--config', argv[i]!.slice('--config='.length)];
  }
  return [];
}

// verify's reading option for the unit: `--sample PCT`, or `--data` for every file.
function sampleArgs(sample: string): string[] {
  if (sample === 'data') return ['--data'];
  const number = Number(sample);
  if (!/^\d*\.?\d+$/.test(sample) || !(number > 0 && number <= 100)) throw new UsageError(`invalid --sample "${printable(sample)}": expected a percentage above 0 and at most 100, or data`);
  return ['--sample', sample];
}

// A path inside a Description= (free text: only % is special there).
function unitValue(text: string): string {
  return text.replace(/%/g, '%%');
}

// Nice=, IOSchedulingClass=, IOSchedulingPriority= from `10:idle`, `5`, `:be.7`.
function niceSettings(value: string): string[] {
  const match = /^(-?\d+)?(?::(rt|be|idle|realtime|best-effort)(?:\.([0-7]))?)?$/.exec(value);
  if (!match || (match[1] === undefined && match[2] === undefined)) throw new UsageError(`invalid --nice "${printable(value)}": expected PRIO, PRIO:CLASS or :CLASS.LEVEL, e.g. 10:idle`);
  const lines: string[] = [];
  if (match[1] !== undefined) {
    const prio = Number(match[1]);
    if (prio < -20 || prio > 19) throw new UsageError(`invalid --nice priority ${prio}: expected -20..19`);
    lines.push(`Nice=${prio}`);
  }
  if (match[2] !== undefined) {
    const cls = { rt: 'realtime', be: 'best-effort' }[match[2]] ?? match[2];
    lines.push(`IOSchedulingClass=${cls}`);
    if (match[3] !== undefined) lines.push(`IOSchedulingPriority=${match[3]}`);
  }
  return lines;
}

// ExecStart wants an absolute program: a path is made absolute, a bare name is found in PATH.
function absoluteProgram(program: string): string {
  if (program.includes('/')) return resolve(program);
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (!dir) continue;
    const candidate = join(dir, program);
    try {
      if (statSync(candidate).isFile()) {
        accessSync(candidate, constants.X_OK);
        return resolve(candidate);
      }
    } catch {
      // not here
    }
  }
  throw new UsageError(`COMMAND ${program} is not in PATH: give its absolute path`);
}

// A path given relative to where `systemd` ran (./x, ../x, --opt=./x, POINT:./x) made absolute:
// the unit runs from /, where it would name another file or none.
function absolutePathArgument(word: string): string {
  const match = /^(--[a-z-]+=|[a-z.]+:)?(\.\.?\/.*)$/.exec(word);
  return match ? `${match[1] ?? ''}${resolve(match[2]!)}` : word;
}

// A word for ExecStart= / a unit value: plain when safe, else "…" with \ and " escaped;
// % (specifiers) and $ (variables) doubled so that systemd passes them through.
function unitWord(word: string): string {
  const escaped = word.replace(/%/g, '%%').replace(/\$/g, '$$$$');
  if (/^[A-Za-z0-9_./:=,+@%$-]+$/.test(escaped)) return escaped;
  return `"${escaped.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
}

function printable(text: string): string {
  return JSON.stringify(text).slice(1, -1);
}

// The schedule when --calendar is not given: backups daily, verify weekly, the status report hourly.
function defaultCalendar(options: SystemdOptions): string {
  if (options.statusTimer !== undefined) return 'hourly';
  return options.verify !== undefined ? 'weekly' : 'daily';
}
