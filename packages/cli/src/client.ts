// `ssh-r-sync`: the client. Serves PATH read-only through a reverse tunnel to the receiver.
import { Command } from 'commander';
import { applyNice, clientName, createLogger, escapeText, loadClientPlugins, parseNice, runClient, type ClientResult, type RsyncProgress } from '@ssh-r-sync/core/internal';
import { progressLine } from './progress-line.js';
import { addSshOptions } from './client-ssh-options.js';
import { restore } from './client-restore.js';
import { snapshots } from './client-snapshots.js';
import { collect, configureProgram, onSignals, port, positiveSeconds, runMain, seconds } from './common.js';
import { VERSION } from './version.js';
import { counts, runResultJson } from './format.js';

const PREFIX = 'ssh-r-sync';

interface ClientCliOptions {
  name?: string;
  nameFile?: string;
  nameRpi?: boolean;
  filterFile?: string;
  filterDirFile?: string;
  oneFileSystem?: boolean;
  fakeSuper?: boolean;
  handshakeTimeout?: number;
  waitTimeout?: number;
  port?: number;
  sshKey?: string;
  sshOption: string[];
  sshOpts: boolean;
  tunnelPort?: number;
  rsync?: string;
  hook: string[];
  plugin: string[];
  config?: string;
  progress?: boolean;
  hookTimeout?: number;
  nice?: string;
  json?: boolean;
  debug?: boolean;
}

// The client's command line.
export function clientProgram(): Command {
  const program = new Command(PREFIX)
    .usage('[options] [user@]host[:port] PATH\n       ssh-r-sync restore [options] [user@]host[:port] DEST\n       ssh-r-sync snapshots [options] [user@]host[:port]')
    .description(
      'Back up PATH to a backup server through one outgoing ssh connection: a one-time, read-only rsync daemon on ' +
        "this machine's loopback is reached by the server through a reverse tunnel, and the server pulls. The server " +
        "decides this machine's name, where the backup goes and with which privileges; this command prints the result.",
    )
    .argument('<destination>', '[user@]host[:port] of the backup server ([v6addr]:port for IPv6)')
    .argument('<PATH>', 'directory to back up')
    .option('-n, --name <NAME>', "name to ask for (default: this machine's host name); the server refuses a name that is not this key's")
    .option('--name-file <FILE>', 'take the name from a file, e.g. /sys/class/dmi/id/board_serial (sanitized)')
    .option('--name-rpi', "take the name from the Raspberry Pi's serial number in /proc/cpuinfo")
    .option('-f, --filter-file <FILE>', 'rsync filter rules, enforced by this side\'s daemon (the server cannot override them)')
    .option('-d, --filter-dir-file <NAME>', 'also honour per-directory filter files of this name (dir-merge), e.g. .rsync-filter')
    .option('-x, --one-file-system', 'do not cross filesystem boundaries (enforced by this side\'s daemon)')
    .option('-X, --fake-super', 'ask the server to store ownership and devices in xattrs (it may already do so)')
    .option('-t, --handshake-timeout <SECONDS>', 'time limit for each handshake step, above 0 (default 20)', positiveSeconds)
    .option('--wait-timeout <SECONDS>', "time limit for the server's hooks and the transfer; 0 = none (default 0: ssh keepalives notice a dead link)", seconds);
  addSshOptions(program)
    .option('--tunnel-port <PORT>', "port to forward on the server, matching the key's permitlisten (default: one the server picks)", port)
    .option('-r, --rsync <PATH>', 'rsync program for the daemon (default: rsync from PATH)')
    .option('--hook <POINT:PATH>', 'run a script on this machine at a stage: connect (before ssh), handshake (accepted), rsync.pre (before serving), rsync.post (result arrived), done (repeatable)', collect, [])
    .option('--plugin <SPEC>', 'load a TS/JS plugin on this machine (an npm name or a path), tapping the same points as --hook scripts (repeatable)', collect, [])
    .option('--config <FILE>', "this machine's config (plugins, hooks, hookTimeout); default: the first client.json/.yaml/.js/.ts in /etc/ssh-r-sync/, then ~/.config/ssh-r-sync/")
    .option('--hook-timeout <SECONDS>', 'kill a client-side hook and fail the run after this long; 0 = no limit (default)', seconds)
    .option('--nice <[PRIO][:CLASS[.LEVEL]]>', 'CPU nice value and/or I/O class (rt, be, idle) with level 0-7 for this command and its children, e.g. 10:idle')
    .option('--progress', 'show the transfer\'s progress: one updating line on a terminal (the default there, but for --debug), a line every 10 s in a pipe')
    .option('--no-progress', 'show no progress, even on a terminal')
    .option('--json', 'print the result as one JSON object on stdout')
    .option('--debug', 'log every step, and the daemon\'s log')
    .addHelpText(
      'after',
      '\nExit codes: 0 success, 1 backup failed, 2 usage or configuration error (here, or one the server found), 75 skipped (the server said "not now").\n' +
        'The server side is `ssh-r-sync-recv`, run as the forced command of this key.\n' +
        '\nSub-commands (the same key and ssh options): `ssh-r-sync restore --help` gets files back from the server,\n' +
        '`ssh-r-sync snapshots --help` lists this host\'s snapshots there. A backup server literally named "restore" or\n' +
        '"snapshots" is given after `--` (ssh-r-sync -- restore PATH) or with its user (root@restore).',
    );
  return configureProgram(program, PREFIX).version(VERSION, '-V, --version', 'print the version and exit');
}

// Parses argv and runs the client; resolves to the exit code.
export async function client(argv: string[]): Promise<number> {
  if (argv[0] === 'restore') return restore(argv.slice(1));
  if (argv[0] === 'snapshots') return snapshots(argv.slice(1));
  const program = clientProgram();
  program.parse(argv, { from: 'user' });
  const options = program.opts<ClientCliOptions>();
  const [destination, path] = program.args as [string, string];
  const logger = createLogger({ prefix: PREFIX, debug: Boolean(options.debug) });
  if (options.nice) await applyNice(parseNice(options.nice));
  // First signal: stop the session (done scripts still run); second: kill them too.
  const controller = new AbortController();
  const killer = new AbortController();
  const stopSignals = onSignals(
    (signal) => controller.abort(new Error(`stopped by ${signal}`)),
    (signal) => killer.abort(new Error(`killed by ${signal}`)),
  );
  try {
    const loaded = await loadClientPlugins({ configFile: options.config, plugins: options.plugin });
    if (loaded.configFile) logger.debug(`config: ${loaded.configFile}`);
    const hookTimeout = options.hookTimeout ?? loaded.hookTimeoutSeconds ?? 0;
    // On a terminal by default (not with --debug, whose lines would break it up); elsewhere only when asked.
    const showProgress = options.progress ?? (Boolean(process.stderr.isTTY) && !options.debug);
    const display = showProgress ? progressLine(process.stderr, displayName(options)) : null;
    const result = await runClient({
      destination,
      path,
      port: options.port,
      name: options.name,
      nameFile: options.nameFile,
      nameRpi: options.nameRpi,
      filterFile: options.filterFile,
      dirMergeName: options.filterDirFile,
      oneFileSystem: Boolean(options.oneFileSystem),
      fakeSuper: Boolean(options.fakeSuper),
      handshakeTimeoutMs: Math.max(1, Math.round((options.handshakeTimeout ?? 20) * 1000)),
      waitTimeoutMs: Math.round((options.waitTimeout ?? 0) * 1000),
      identityFile: options.sshKey,
      sshOptions: options.sshOption,
      sshDefaults: options.sshOpts,
      tunnelPort: options.tunnelPort ?? 0,
      rsyncProgram: options.rsync,
      hooks: options.hook,
      plugins: loaded.plugins,
      ...(display ? { onProgress: (event: RsyncProgress) => display.update(event) } : {}),
      hookTimeoutMs: Math.round(hookTimeout * 1000),
      debug: Boolean(options.debug),
      logger,
      signal: controller.signal,
      killSignal: killer.signal,
    }).finally(() => display?.close());
    print(result, Boolean(options.json));
    return result.exitCode;
  } finally {
    stopSignals();
  }
}

// The message and snapshot id come from the server: escaped, so they cannot drive our terminal.
function print(result: ClientResult, json: boolean): void {
  if (json) process.stdout.write(`${JSON.stringify(runResultJson(result))}\n`);
  const seconds = (result.durationMs / 1000).toFixed(1);
  const message = result.message === null ? null : escapeText(result.message);
  if (result.status === 'success') {
    const snapshot = result.snapshot ? ` (snapshot ${escapeText(result.snapshot)})` : '';
    process.stderr.write(`${PREFIX}: backup of ${result.name} done${counts(result.files, result.bytes)}${snapshot} in ${seconds} s\n`);
  } else if (result.status === 'skipped') {
    process.stderr.write(`${PREFIX}: skipped: ${message ?? 'the server said not now'}\n`);
  } else {
    const code = result.rsyncExitCode ? ` (rsync exit ${result.rsyncExitCode})` : '';
    process.stderr.write(`${PREFIX}: error: ${message ?? 'backup failed'}${code}\n`);
  }
}

// Entry point of the bin script.
export function main(): Promise<never> {
  return runMain(PREFIX, () => client(process.argv.slice(2)));
}

// The host's name for the progress line; a name that cannot be read is runClient's error to give.
function displayName(options: ClientCliOptions): string {
  try {
    return clientName({ name: options.name, nameFile: options.nameFile, nameRpi: options.nameRpi });
  } catch {
    return 'backup';
  }
}
