// `ssh-r-sync-recv`: the receiver. Runs the pipeline and pulls into BACKUP_ROOT/NAME.
import { Command, Option } from 'commander';
import {
  UsageError,
  oneLine,
  applyNice,
  assemblePipeline,
  claimStdout,
  createLogger,
  formatHookList,
  listTaps,
  localTransport,
  lockHost,
  parseNice,
  parseDestination,
  pullTransport,
  receiverTransport,
  refusalSummary,
  sendToSyslog,
  validateName,
  withRunLog,
  type Config,
  type RunContext,
  type Transport,
} from '@ssh-r-sync/core/internal';
import { collect, configureProgram, onSignals, port, positiveSeconds, printOutcome, runMain, seconds } from './common.js';
import { JSON_SCHEMA } from './format.js';
import { serveRequest } from './recv-serve.js';
import { checkConfig } from './recv-check-config.js';
import { checkReceiverSetup } from './recv-preflight.js';
import { VERSION } from './version.js';
import { registerShippedPlugins } from './shipped-plugins.js';

const PREFIX = 'ssh-r-sync-recv';

interface RecvOptions {
  local?: string;
  pull?: string;
  sshPort?: number;
  sshKey?: string;
  sshOption: string[];
  sshOpts: boolean;
  name?: string;
  rsync?: string;
  mode?: 'privileged' | 'fake-super' | 'plain';
  hook: string[];
  hookTimeout?: number;
  hookList?: boolean;
  checkConfig?: boolean;
  config?: string;
  plugin: string[];
  nice?: string;
  handshakeTimeout?: number;
  waitTimeout?: number;
  tunnelPort?: number;
  lockWait?: number;
  ioTimeout?: number;
  maxRunTime?: number;
  deferUnlocked?: boolean;
  oneFileSystem?: boolean;
  json?: boolean;
  debug?: boolean;
}

// The receiver's command line.
export function recvProgram(): Command {
  const program = new Command(PREFIX)
    .usage('[options] BACKUP_ROOT\n       ssh-r-sync-recv --pull [user@]host[:port] --name NAME [options] BACKUP_ROOT')
    .description(
      'Receive a backup: run as the ssh forced command of a client key, prove the reverse tunnel, and pull the ' +
        "client's files read-only with rsync into BACKUP_ROOT/NAME, firing hook scripts and plugins on the way. " +
        'With --pull it dials out instead and pulls over plain ssh from a client whose key for this server is ' +
        'locked down with `restrict,command="/usr/bin/rrsync -ro DIR"`. ' +
        'With --local PATH it pulls from a local directory instead (tests, plugin development).',
    )
    .argument('[BACKUP_ROOT]', 'directory that holds one sub-directory per host')
    .option('--name <NAME>', "the host's name; the client cannot change it (put it in the key's forced command)")
    .option('--local <PATH>', 'pull from a local directory instead of a client over ssh (needs --name)')
    .option('--pull <[user@]host[:port]>', "pull mode: ssh to the client and pull DIR of its rrsync -ro key (needs --name)")
    .option('-p, --ssh-port <PORT>', "with --pull: the client's ssh port (as the client command's -p)", port)
    .option('-k, --ssh-key <FILE>', 'with --pull: ssh private key to use (ssh -i)')
    .option('-o, --ssh-option <OPTION>', 'with --pull: extra ssh option, as for ssh -o (repeatable)', collect, [])
    .option('--no-ssh-opts', 'with --pull: drop the default ssh options (BatchMode, keepalives, no multiplexing, ConnectTimeout, …)')
    .option('-r, --rsync <PATH>', 'rsync program to run (default: rsync from PATH)')
    .addOption(new Option('-m, --mode <MODE>', 'how ownership, devices, ACLs and xattrs are kept (default: privileged as root, else fake-super)').choices(['privileged', 'fake-super', 'plain']))
    .option('-x, --hook <POINT:PATH>', 'run a script at a hook point (repeatable, run in the order given; see --hook-list)', collect, [])
    .option('--hook-timeout <SECONDS>', 'kill a hook (script or plugin) and fail the run after this long (90s, 10m, 2h30m; a plain number is seconds); 0 = no limit (default)', seconds)
    .option('--hook-list', 'list hook points, their arguments and contracts, and the registered taps; then exit')
    .option('--config <FILE>', 'config file (default: the first of /etc/ssh-r-sync/config{,.json,.yaml,.yml,.js,.ts,.cjs,.mjs}, the same in ~/.config/ssh-r-sync/, then ssh-r-sync.config.{ts,js,json}, .ssh-r-syncrc, … in the current directory; docs/config.md)')
    .option('--check-config', 'load the config, its plugins and hooks as a run would, print what was found; exit 2 on any problem (one line each)')
    .option('--plugin <SPEC>', 'load a plugin: an npm package name or a .js/.mjs/.ts file (repeatable)', collect, [])
    .option('--nice <[PRIO][:CLASS[.LEVEL]]>', 'CPU nice value and/or I/O class (rt, be, idle) with level 0-7, e.g. 10:idle or -5:be.2')
    .option('-t, --handshake-timeout <SECONDS>', 'time limit for each handshake step, above 0 (default 20)', positiveSeconds)
    .option('--wait-timeout <SECONDS>', "how long the client's own pre-work may take before it says start; 0 = no limit (default 21600)", seconds)
    .option('--tunnel-port <PORT>', "the only port this key may forward (match its permitlisten); default: the client's, proven by the tunnel check", port)
    .option('--io-timeout <SECONDS>', 'end the pull (and free the host\'s lock) when no data comes from the client for this long (rsync --timeout, and a watch on the tunnel or, with --pull, on rsync\'s receiver); 0 = never (default 600)', seconds)
    .option('--max-run-time <SECONDS>', 'stop a run (rsync, hooks) that takes longer than this in all, done hooks as long again later (at most 60 s); 0 or over 24 days = no limit (default 86400: a day)', seconds)
    .option('--lock-wait <SECONDS>', 'wait this long for another run of the same host to end (at most 4 runs of a host wait; more are refused); 0 = refuse at once (default)', seconds)
    .option('--defer-unlocked', "do not run the work that goes on after the host's lock is released (plugin-restic's off-site copy) in this process: log it as deferred and exit with the run. For pull mode under systemd, where the unit is active until the receiver exits: ssh-r-sync-admin systemd --pull --offsite adds it, with a unit of its own for the copy")
    .option('--one-file-system', 'with --local or --pull: do not cross filesystem boundaries (rsync -x)')
    .option('--json', 'print the result as one JSON object on stdout')
    .option('--debug', 'log every step, including the rsync command line')
    .addHelpText(
      'after',
      '\nExit codes: 0 success, 1 backup failed, 2 usage or configuration error, 75 skipped ("not now").\n' +
        'Hook points: connect, handshake, rsync.pre, rsync, rsync.post, done; see --hook-list.\n' +
        'Each run that reaches the host\'s directory is logged in BACKUP_ROOT/.ssh-r-sync/log/NAME.log: ssh-r-sync-admin log ROOT NAME.\n' +
        'Each run leaves one summary line in the system log (tag ssh-r-sync-recv: journalctl -t ssh-r-sync-recv; config "syslog").\n' +
        '\nAs a forced command it also serves the client\'s `ssh-r-sync snapshots` and `ssh-r-sync restore` (the key\'s\n' +
        "own host's complete snapshots, read-only) and refuses any other requested command (docs/protocol.md §4).",
    );
  return configureProgram(program, PREFIX).version(VERSION, '-V, --version', 'print the version and exit');
}

// Parses argv and runs the receiver; resolves to the exit code.
export async function recv(argv: string[]): Promise<number> {
  if (argv[0] === '-c') {
    throw new UsageError('ssh-r-sync-recv is not a login shell: use it as the forced command (command="…" or ForceCommand)');
  }
  const program = recvProgram();
  program.parse(argv, { from: 'user' });
  const options = program.opts<RecvOptions>();
  const root = program.args[0];
  const logger = createLogger({ prefix: PREFIX, debug: Boolean(options.debug) });
  if (options.nice) await applyNice(parseNice(options.nice));
  registerShippedPlugins();
  if (options.hookList) {
    const { pipeline } = await assemblePipeline({ root: root ?? '.', ...common(options), logger });
    const text = options.json ? `${JSON.stringify({ schema: JSON_SCHEMA, store: pipeline.storeInfo, taps: listTaps(pipeline.hooks) })}\n` : formatHookList(pipeline.hooks, pipeline.storeInfo);
    process.stdout.write(text);
    return 0;
  }
  if (options.checkConfig) return checkConfig(PREFIX, { configFile: options.config, plugins: options.plugin, hooks: options.hook, root });
  if (!root) throw new UsageError('missing BACKUP_ROOT (see --help)');
  // As a forced command, a requested command is a listing or a restore of this key's host (or refused).
  if (!options.local && options.pull === undefined) {
    const served = await serveRequest(process.env.SSH_ORIGINAL_COMMAND, root, options, logger);
    if (served !== null) return served;
  }
  if (options.local && options.pull) throw new UsageError('--pull and --local are mutually exclusive');
  if (options.local && !options.name) throw new UsageError('--local needs --name NAME');
  if (options.pull !== undefined && !options.name) throw new UsageError('--pull needs --name NAME');
  if (options.pull === undefined && (options.sshPort !== undefined || options.sshKey || options.sshOption.length > 0 || !options.sshOpts)) {
    throw new UsageError('--ssh-port, --ssh-key, --ssh-option and --no-ssh-opts are for --pull');
  }
  if (options.pull !== undefined) parseDestination(options.pull, options.sshPort);
  if (options.name) {
    try {
      validateName(options.name);
    } catch (error) {
      throw new UsageError(`--name: ${oneLine(error)}`);
    }
  }
  const direct = Boolean(options.local) || options.pull !== undefined;
  if (!direct && options.json) throw new UsageError('--json is for --local and --pull runs: in reverse mode stdout is the channel to the client');
  // Before plugins load: in reverse mode fd 1 is the channel's alone, what plugins print goes to the log.
  const channelOutput = direct ? undefined : claimStdout(logger);
  // --lock-wait wins over the config's lockWait.
  const lock = (ctx: RunContext, config: Config) => lockHost({ root: ctx.root, name: ctx.name, waitSeconds: options.lockWait ?? config.lockWait ?? 0, logger, signal: ctx.signal });
  const { pipeline, loaded } = await assemblePipeline({ root, ...common(options), logger, lock });
  const mode = options.mode ?? loaded.config.mode;
  const modeFrom = options.mode ? '--mode' : `mode in ${loaded.filepath}`;
  const syslog = loaded.config.syslog ?? true;
  try {
    checkReceiverSetup({ root, mode: mode ?? 'plain', modeFrom, rsyncProgram: options.rsync ?? loaded.config.rsync ?? 'rsync' });
  } catch (error) {
    // Refused before any run, but the journal should still say why (an unmounted BACKUP_ROOT).
    await sendToSyslog(refusalSummary(options.name, oneLine(error), loaded.filepath), true, syslog, { logger });
    throw error;
  }
  logger.debug(`config: ${loaded.filepath ?? 'none found, the defaults apply'}`);
  const handshakeTimeoutMs = Math.round((options.handshakeTimeout ?? loaded.config.handshakeTimeout ?? 20) * 1000);
  const inner: Transport = options.local
    ? localTransport({ source: options.local, name: options.name!, oneFileSystem: Boolean(options.oneFileSystem) })
    : options.pull !== undefined
    ? pullTransport({
        destination: options.pull,
        port: options.sshPort,
        identityFile: options.sshKey,
        sshOptions: options.sshOption,
        sshDefaults: options.sshOpts,
        name: options.name!,
        oneFileSystem: Boolean(options.oneFileSystem),
        ioTimeoutSeconds: options.ioTimeout ?? 600,
        onStalled: (why) => pipeline.stop(why),
      })
    : receiverTransport({
        input: process.stdin,
        output: channelOutput!,
        name: options.name,
        names: loaded.config.names,
        authFile: process.env.SSH_USER_AUTH,
        tunnelPort: options.tunnelPort,
        handshakeTimeoutMs,
        startTimeoutMs: Math.round((options.waitTimeout ?? 21600) * 1000),
        ioTimeoutSeconds: options.ioTimeout ?? 600,
        onPeerGone: (why) => pipeline.stop(why),
      });
  // Every run that reached its host's directory is logged on the server (ROOT/.ssh-r-sync/log/NAME.log).
  // And each run's summary line goes to the system log (config `syslog`, default on): in reverse
  // mode the receiver's stderr reaches only the client, never sshd's journal.
  const transport = withRunLog(inner, { config: loaded.filepath, logger, syslog });
  const stopSignals = onSignals(
    (signal) => pipeline.stop(`stopped by ${signal}`),
    (signal) => pipeline.kill(`killed by ${signal}`),
  );
  const outcome = await pipeline.run(transport);
  stopSignals();
  // In reverse mode the client prints the outcome it was sent; here it is shown with --debug.
  if (direct || options.debug) {
    printOutcome(PREFIX, outcome, { name: options.name ?? '', json: Boolean(options.json), snapshot: outcome.snapshot ?? null });
  }
  return outcome.exitCode;
}

function common(options: RecvOptions) {
  return {
    configFile: options.config,
    hooks: options.hook,
    plugins: options.plugin,
    mode: options.mode,
    hookTimeoutSeconds: options.hookTimeout,
    maxRunTimeSeconds: options.maxRunTime,
    rsyncProgram: options.rsync,
    deferUnlocked: options.deferUnlocked,
  };
}

// Entry point of the bin script.
export function main(): Promise<never> {
  // When the client is gone, our stderr (its ssh) is too: a failed log line must not crash the
  // run before its done hooks and its lock release.
  process.stderr.on('error', () => {});
  return runMain(PREFIX, () => recv(process.argv.slice(2)));
}
