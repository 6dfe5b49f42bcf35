// `ssh-r-sync restore` on the client: the local rsync pulls the host's own snapshot through the
// key's forced command (which serves it read-only) and writes DEST with owners, modes, devices,
// ACLs, xattrs, hard links and sparse files as they were backed up.
import { spawn } from 'node:child_process';
import { readdir, stat } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { SshRSyncError, UsageError } from '../errors.js';
import type { Logger } from '../logger.js';
import { dieWithUs, killGroup } from '../exec/process-group.js';
import { escapeText } from '../session/protocol/text.js';
import { parseStats } from '../rsync/rsync.js';
import { checkSnapshotToken, encodeSpec } from '../serve/spec.js';
import { normalizeRestorePath } from '../restore/restore-paths.js';
import { MAX_SPECS } from '../serve/request.js';
import { parentDeathPrefix } from '../session/tunnel/daemon.js';
import { parseDestination } from './destination.js';
import { remoteSshOptions, rshCommand, rsyncHost } from './remote-ssh.js';
import { connectionAdvice, type SshConnectionFailure } from './ssh-advice.js';
import { BoundedText } from '../exec/bounded-text.js';

/** Everything rsync can keep; -R with the `/./` specs puts each path at its place under DEST. */
export const RESTORE_RSYNC_ARGS = ['-aHAXS', '--numeric-ids', '-R'];
/** What we keep of rsync's output: its head and tail, for the error line and the counts. */
const OUTPUT_BYTES = 256 * 1024;
/** Environment that would change what rsync sends the server (secluded args refused there). */
const RSYNC_ENV = ['RSYNC_PROTECT_ARGS', 'RSYNC_OLD_ARGS', 'RSYNC_RSH', 'RSYNC_CONNECT_PROG', 'RSYNC_PARTIAL_DIR'];

export interface RestoreOptions {
  destination: string;
  port?: number | undefined;
  identityFile?: string | undefined;
  sshOptions: string[];
  sshDefaults: boolean;
  /** "latest" or a snapshot id. */
  snapshot: string;
  /** --path values, as given (UTF-8 text), or with `pathBytes` each path's bytes as a latin1 string. */
  paths: string[];
  pathBytes?: boolean;
  dest: string;
  dryRun: boolean;
  overwrite: boolean;
  rsyncProgram?: string | undefined;
  sshProgram?: string | undefined;
  /** rsync's --timeout: no data for this long ends the restore; 0 = never. */
  ioTimeoutSeconds: number;
  /** rsync's stdout as it comes (the itemized list of a dry run). */
  onOutput?: (chunk: Buffer) => void;
  logger: Logger;
  signal?: AbortSignal;
}

export interface RestoreResult {
  /** What the server said it served; null when it did not say. */
  snapshot: string | null;
  host: string | null;
  dest: string;
  dryRun: boolean;
  files: number | null;
  bytes: number | null;
  durationMs: number;
}

// Checks the request, then runs rsync; throws a one-line error when the restore fails.
export async function runRestore(options: RestoreOptions): Promise<RestoreResult> {
  const started = performance.now();
  const destination = parseDestination(options.destination, options.port);
  const snapshot = checkSnapshotToken(options.snapshot);
  if (options.paths.length > MAX_SPECS) throw new UsageError(`at most ${MAX_SPECS} --path in one restore`);
  // argv is UTF-8: the path's bytes are its UTF-8 encoding (or, unescaped by the caller, given as bytes).
  const paths = options.paths.map((path) => normalizeRestorePath(options.pathBytes ? path : Buffer.from(path, 'utf8').toString('latin1')));
  const dest = await checkDest(options.dest, options.overwrite);
  const specs = paths.length ? [...new Set(paths)].map((path) => encodeSpec(snapshot, path)) : [encodeSpec(snapshot, null)];
  const host = rsyncHost(destination);
  const rsh = rshCommand([options.sshProgram ?? 'ssh', ...remoteSshOptions({ destination, identityFile: options.identityFile, extraOptions: options.sshOptions, defaults: options.sshDefaults })]);
  const args = [
    ...RESTORE_RSYNC_ARGS,
    ...(options.ioTimeoutSeconds > 0 ? [`--timeout=${options.ioTimeoutSeconds}`] : []),
    ...(options.dryRun ? ['--dry-run', '--itemize-changes'] : []),
    '--stats',
    '-e',
    rsh,
    ...specs.map((spec) => `${host}:${spec}`),
    `${dest}/`,
  ];
  const run = await runLocalRsync(options, args);
  const said = /^ssh-r-sync-recv: serving (?:snapshot (\S+)|the mirror) of (\S+) read-only/m.exec(run.output);
  if (run.code !== 0) throw new SshRSyncError('ERSYNC', describeRestoreFailure(run, dest, { identityFile: options.identityFile, target: destination.target, port: destination.port }));
  return {
    snapshot: said ? (said[1] ?? '') : null,
    host: said ? said[2]! : null,
    dest,
    dryRun: options.dryRun,
    ...parseStats(run.output),
    durationMs: Math.round(performance.now() - started),
  };
}

// DEST as an absolute path (a name with ":" or a leading "-" is never read as a host or an
// option); refused when it holds something already, unless --overwrite.
async function checkDest(given: string, overwrite: boolean): Promise<string> {
  if (given === '') throw new UsageError('DEST is empty: give the directory to restore into');
  const dest = resolve(given);
  const stats = await stat(dest).catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') return null;
    throw new UsageError(`cannot use DEST ${dest}: ${error.code}`, { cause: error });
  });
  if (!stats) {
    const parent = await stat(dirname(dest)).catch(() => null);
    if (!parent?.isDirectory()) throw new UsageError(`DEST ${dest} does not exist, nor does its parent directory: create it first`);
    return dest;
  }
  if (!stats.isDirectory()) throw new UsageError(`DEST ${dest} is not a directory`);
  if (!overwrite && (await readdir(dest)).length > 0) throw new UsageError(`DEST ${dest} is not empty: add --overwrite to write into it`);
  return dest;
}

interface LocalRun {
  code: number;
  signal: string | null;
  output: string;
  spawnError?: string;
}

// rsync in its own process group (with ssh below it), dying with us; stdout shown in a dry run.
async function runLocalRsync(options: RestoreOptions, args: string[]): Promise<LocalRun> {
  const program = options.rsyncProgram ?? 'rsync';
  const prefix = await parentDeathPrefix();
  const env = { ...process.env };
  for (const name of RSYNC_ENV) delete env[name];
  options.logger.debug(`running ${[program, ...args].map((arg) => JSON.stringify(arg)).join(' ')}`);
  const [file, ...argv] = [...prefix, program, ...args] as [string, ...string[]];
  const child = spawn(file, argv, { stdio: ['ignore', 'pipe', 'pipe'], detached: true, env });
  const forget = dieWithUs(child.pid);
  const stop = () => killGroup(child.pid, 'SIGTERM');
  if (options.signal?.aborted) stop();
  options.signal?.addEventListener('abort', stop, { once: true });
  const output = new BoundedText(OUTPUT_BYTES);
  child.stdout.on('data', (chunk: Buffer) => {
    output.add(chunk);
    options.onOutput?.(chunk);
  });
  child.stderr.on('data', (chunk: Buffer) => {
    output.add(chunk);
    for (const line of chunk.toString('utf8').split('\n')) if (line.trim()) options.logger.debug(`rsync: ${escapeText(line)}`);
  });
  try {
    const ended = await new Promise<{ code: number | null; signal: NodeJS.Signals | null; error?: NodeJS.ErrnoException }>((done) => {
      child.once('error', (error: NodeJS.ErrnoException) => done({ code: null, signal: null, error }));
      child.once('close', (code, signal) => done({ code, signal }));
    });
    if (ended.error) return { code: 127, signal: null, output: '', spawnError: ended.error.code ?? ended.error.message };
    const text = output.text();
    if (prefix.length && ended.code === 127 && /^setpriv: failed to execute/m.test(text)) return { code: 127, signal: null, output: text, spawnError: 'ENOENT' };
    return { code: ended.code ?? 128, signal: ended.signal, output: text };
  } finally {
    options.signal?.removeEventListener('abort', stop);
    forget();
  }
}

const SERVER_ERROR = /^ssh-r-sync-recv: error: (.*)$/m;
const SSH_ERROR = /^(?:ssh: .*|.*Permission denied.*|Host key verification failed\..*|.*Connection (?:refused|timed out|closed).*|kex_exchange_identification: .*)$/m;
const DIAGNOSTIC = /^(?:rsync(?: error| warning)?: |file has vanished: |\[\w+\] io timeout )/;
const ECHO = /Broken pipe \(32\)|Connection reset by peer \(104\)|connection unexpectedly closed|error in rsync protocol data stream|received SIGUSR1/;

/** Where rsync's ssh went, for the advice on a failed connection. */
export type RestoreSshTarget = Pick<SshConnectionFailure, 'identityFile' | 'target' | 'port'>;

// One line saying why the restore failed: the server's refusal in its own words when it refused,
// else what rsync or ssh said, with what to do (for ssh's set-up mistakes, what a backup run says).
export function describeRestoreFailure(run: LocalRun, dest: string, ssh?: RestoreSshTarget): string {
  const clip = (line: string) => escapeText(line.length > 300 ? `${line.slice(0, 300)}…` : line);
  if (run.spawnError) return `cannot run rsync: ${run.spawnError === 'ENOENT' ? 'not found (is rsync installed?)' : run.spawnError}`;
  if (run.signal) return `rsync was killed by ${run.signal}`;
  const refusal = SERVER_ERROR.exec(run.output);
  if (refusal) return `the backup server refused the restore: ${clip(refusal[1]!)}`;
  const lines = run.output.split(/[\r\n]+/).map((line) => line.trim()).filter(Boolean);
  const causes = lines.filter((line) => DIAGNOSTIC.test(line) && !/^rsync (?:error|warning): /.test(line) && !ECHO.test(line));
  const space = lines.find((line) => /No space left on device \(28\)|Disk quota exceeded \(122\)/.test(line));
  if (space) return `no space left for DEST (${dest}): free space there and run the restore again: ${clip(space)}`;
  if (/protocol version mismatch|is your shell clean/.test(run.output)) {
    return "the backup server did not start rsync: its ssh-r-sync-recv may predate restores (update it), or its login shell prints something";
  }
  const timeout = lines.find((line) => /io timeout after (\d+) seconds/.test(line));
  if (timeout || run.code === 30) return `no data moved for too long (--io-timeout): the server or the connection stalled (rsync exit ${run.code})`;
  // rsync's ssh failed (255), its remote command was not found (127: ssh's own code, passed on), or
  // it ended before rsync's protocol began (12; which of 12 and 127 rsync says is a race): ssh's
  // lines are the ones that are not rsync's.
  if (ssh && (run.code === 255 || run.code === 127 || run.code === 12)) {
    const sshLines = lines.filter((line) => !DIAGNOSTIC.test(line)).slice(-20).map(clip);
    const advice = connectionAdvice({ code: run.code === 127 ? 127 : null, lines: sshLines, ...ssh });
    if (advice) return `ssh to the backup server failed: ${advice}`;
  }
  if (run.code === 255 || (run.code === 12 && SSH_ERROR.test(run.output) && !causes.length)) {
    const said = SSH_ERROR.exec(run.output);
    return `cannot reach the backup server over ssh${said ? `: ${clip(said[0])}` : ''} (check the host, -p, -k and -o)`;
  }
  if (run.code === 23 || run.code === 24) {
    const root = process.getuid?.() === 0 ? '' : ' (owners, devices and some modes need root)';
    return `some files or attributes were not restored (rsync exit ${run.code})${root}${causes[0] ? `: ${clip(causes[0])}` : ''}`;
  }
  if (run.code === 20) return 'the restore was stopped (rsync exit 20)';
  const quoted = causes[0] ?? lines.findLast((line) => /error|denied|refused|failed|cannot|unable/i.test(line));
  return `rsync exited with code ${run.code}${quoted ? `: ${clip(quoted)}` : ''}`;
}
