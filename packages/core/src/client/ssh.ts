// The one outgoing ssh connection: no remote command (the server's forced command decides), a
// reverse forward to our tunnel listener, stdin/stdout as the protocol channel.
import { spawn, type ChildProcessByStdio } from 'node:child_process';
import { existsSync } from 'node:fs';
import type { Readable, Writable } from 'node:stream';
import { LineSplitter } from '../exec/line-splitter.js';
import type { Logger } from '../logger.js';
import { escapeText } from '../session/protocol/text.js';
import type { Destination } from './destination.js';

/** The original's defaults: never prompt, fail on a refused forward, notice a dead link, no multiplexing. */
export const DEFAULT_SSH_OPTIONS = [
  'ControlPath=none',
  'ControlMaster=no',
  'ConnectTimeout=180',
  'ServerAliveInterval=6',
  'ServerAliveCountMax=10',
  'BatchMode=yes',
  'PasswordAuthentication=no',
  'NumberOfPasswordPrompts=0',
  'ExitOnForwardFailure=yes',
];

// Longest line of ssh's stderr we keep; the rest of a longer one is dropped.
const LOG_LINE_MAX = 2000;

export interface SshOptions {
  program?: string;
  destination: Destination;
  /** Our listener on 127.0.0.1. */
  localPort: number;
  /** The port to listen on at the server; 0 lets sshd pick one. */
  remotePort: number;
  identityFile?: string | undefined;
  /** -o/--ssh-option values, added after (and so overridden by nothing of) the defaults. */
  extraOptions: string[];
  defaults: boolean;
  logger: Logger;
}

export type SshProcess = ChildProcessByStdio<Writable, Readable, Readable> & {
  /** The forwarded port on the server, once sshd allocated it. */
  readonly remotePort: Promise<number>;
  /** ssh's last line on stderr, for the error message when it fails. */
  lastError(): string;
  /** ssh's last lines on stderr (at most 20), which name a failure's cause (host key, refused key). */
  recentLines(): string[];
  /** The receiver's error line when it refused to start (held back: the client's error carries it). */
  serverError(): string;
};

// ssh's argv: our options first, as ssh keeps the first value it sees for each option.
export function sshArgv(options: SshOptions): string[] {
  const args = ['-T', '-o', 'LogLevel=INFO', '-o', 'ExitOnForwardFailure=yes'];
  for (const option of options.extraOptions) args.push('-o', option);
  if (options.defaults) for (const option of DEFAULT_SSH_OPTIONS) args.push('-o', option);
  if (options.identityFile) args.push('-i', options.identityFile);
  if (options.destination.port) args.push('-p', String(options.destination.port));
  args.push('-R', `127.0.0.1:${options.remotePort}:127.0.0.1:${options.localPort}`);
  args.push('--', options.destination.target);
  return args;
}

// Starts ssh so that it dies with us even if we are SIGKILLed (setpriv --pdeathsig where available).
export function startSsh(options: SshOptions): SshProcess {
  const program = options.program ?? 'ssh';
  const argv = sshArgv(options);
  const withDeathSignal = existsSync('/usr/bin/setpriv') ? ['/usr/bin/setpriv', '--pdeathsig', 'SIGTERM', '--', program, ...argv] : [program, ...argv];
  options.logger.debug(`running ${withDeathSignal.map((arg) => JSON.stringify(arg)).join(' ')}`);
  const child = spawn(withDeathSignal[0]!, withDeathSignal.slice(1), { stdio: ['pipe', 'pipe', 'pipe'], detached: true });
  let resolvePort!: (port: number) => void;
  let rejectPort!: (error: Error) => void;
  const remotePort = new Promise<number>((resolve, reject) => {
    resolvePort = resolve;
    rejectPort = reject;
  });
  remotePort.catch(() => {});
  if (options.remotePort) resolvePort(options.remotePort);
  let last = '';
  let serverError = '';
  const recent: string[] = [];
  // What ssh relays from the server (the receiver's log, its login shell's words) is the server's
  // text: bounded per line, and with control characters escaped, so it cannot rewrite our terminal.
  const lines = new LineSplitter(LOG_LINE_MAX);
  const onLine = (raw: string): void => {
    const line = escapeText(raw);
    const allocated = /^Allocated port (\d+) for remote forward to /.exec(line);
    if (allocated) resolvePort(Number(allocated[1]));
    else if (line.startsWith('ssh-r-sync-recv: error: ')) serverError = line.slice('ssh-r-sync-recv: error: '.length);
    else if (line.startsWith('ssh-r-sync-recv')) {
      // The receiver's own log lines, relayed by sshd: worth showing as they come.
      options.logger.info(`server: ${line}`);
    } else if (line.trim()) {
      // ssh's diagnostics: shown with --debug; the last one goes into the error if ssh fails.
      last = line;
      if (recent.push(line) > 20) recent.shift();
      options.logger.debug(`ssh: ${last}`);
    }
  };
  child.stderr.on('data', (chunk: Buffer) => lines.push(chunk).forEach(onLine));
  child.stderr.once('end', () => lines.flush().forEach(onLine));
  child.once('exit', () => rejectPort(new Error('ssh exited before it reported the forwarded port')));
  child.once('error', (error) => rejectPort(error));
  return Object.assign(child, { remotePort, lastError: () => last, recentLines: () => [...recent], serverError: () => serverError }) as SshProcess;
}
