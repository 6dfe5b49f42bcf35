// One summary line per run in the server's system log, through util-linux `logger` (Debian's
// Essential bsdutils; journald reads /dev/log), tagged ssh-r-sync-recv: in reverse mode the
// receiver's stderr is the client's channel, so without it nothing of a run reaches the journal.
// The line is built from the run log's entry (secrets already blanked), is bounded, and is sent
// after the client has its answer; a missing logger or a failure to log changes nothing else.
import { spawn } from 'node:child_process';
import { oneLine } from '../errors.js';
import type { Logger } from '../logger.js';
import { dieWithUs, killGroup } from '../exec/process-group.js';
import { escapeText } from '../session/protocol/text.js';
import type { RunLogEntry } from './run-log.js';

export const SYSLOG_TAG = 'ssh-r-sync-recv';
/** util-linux's logger, where Debian puts it (bsdutils, Essential). */
export const LOGGER_PROGRAM = '/usr/bin/logger';
/** One line's cap in bytes: a few KiB, as journald and every syslog daemon take them whole. */
export const MAX_SYSLOG_BYTES = 3 * 1024;
/** logger gets this long, then its group is killed: a stuck socket never holds the run. */
const LOGGER_TIMEOUT_MS = 3000;
const MAX_RSYNC_LINES = 5;
const MAX_FAILED_HOOKS = 10;
const MAX_MESSAGE = 1000;
const MAX_STDERR = 1024;

/** The receiver config's `syslog`: true (the default) logs to /dev/log, false not at all, a string is the socket's path. */
export type SyslogSetting = boolean | string;

const WORDS = { success: 'done', failure: 'failed', skipped: 'skipped' } as const;

// The run in one line: outcome and exit code, host, message, snapshot, rsync's first error
// lines, the failed hooks, transport and config file; control characters escaped, bounded.
export function syslogSummary(entry: RunLogEntry): string {
  const host = entry.name || '(no host: refused before its name was known)';
  const head = `${host}: backup ${WORDS[entry.status]} (exit ${entry.exitCode})${entry.message ? `: ${clip(entry.message, MAX_MESSAGE)}` : ''}`;
  const parts = [head];
  if (entry.snapshot) parts.push(`snapshot ${entry.snapshot}${entry.committed ? '' : ' (not committed)'}`);
  const rsync = entry.rsync;
  if (rsync) {
    const counts = rsync.files !== null ? `, ${rsync.files} files, ${rsync.bytes ?? 0} bytes` : '';
    const errors = rsync.errors.slice(0, MAX_RSYNC_LINES).map((line) => JSON.stringify(line));
    parts.push(`rsync exit ${rsync.exitCode}${rsync.signal ? ` (${rsync.signal})` : ''}${counts}${errors.length ? `: ${errors.join(' ')}` : ''}`);
  }
  const failed = entry.hooks.filter((hook) => hook.outcome === 'failed' || hook.outcome === 'timed out');
  if (failed.length) {
    const shown = failed.slice(0, MAX_FAILED_HOOKS).map((hook) => `${hook.point} ${hook.tap} (${hook.outcome})`);
    parts.push(`failed hooks: ${shown.join(', ')}${failed.length > shown.length ? `, and ${failed.length - shown.length} more` : ''}`);
  }
  parts.push(`${entry.transport}, ${(entry.durationMs / 1000).toFixed(1)} s`);
  parts.push(`config ${entry.config ?? 'none (the defaults)'}`);
  return clipBytes(escapeText(parts.join('; ')), MAX_SYSLOG_BYTES);
}

// A receiver that refused to start after reading its config (a missing BACKUP_ROOT: an unmounted
// disk, a privileged mode as non-root, no rsync), in the same form as a run's line.
export function refusalSummary(name: string | undefined, message: string, config: string | null): string {
  const host = name || '(no host: refused before its name was known)';
  return clipBytes(escapeText(`${host}: refused to start (exit 2): ${clip(message, MAX_MESSAGE)}; config ${config ?? 'none (the defaults)'}`), MAX_SYSLOG_BYTES);
}

/** Options of sendToSyslog. */
export interface SyslogOptions {
  /** Where a failure to log is told (debug only: it must never reach the user as a failure). */
  logger: Logger;
  /** The logger program (tests); default /usr/bin/logger. */
  program?: string;
  timeoutMs?: number;
}

// Sends one line with priority user.err for a failure, user.info otherwise; resolves when logger
// has ended or was killed, and never rejects. `setting` false sends nothing.
export async function sendToSyslog(line: string, failed: boolean, setting: SyslogSetting, options: SyslogOptions): Promise<void> {
  if (setting === false) return;
  const socket = typeof setting === 'string' ? setting : undefined;
  const program = options.program ?? LOGGER_PROGRAM;
  // No shell, the line on stdin (never in argv, which other local users can read in /proc).
  // spawn rather than execa: this runs after every run, and importing execa costs ~0.15 s.
  const args = ['--tag', SYSLOG_TAG, '--priority', failed ? 'user.err' : 'user.info', '--size', String(MAX_SYSLOG_BYTES + 256)];
  if (socket) args.push('--socket', socket, '--socket-errors=on');
  let why: string | null = null;
  try {
    const child = spawn(program, args, { stdio: ['pipe', 'ignore', 'pipe'], detached: true });
    const forget = dieWithUs(child.pid);
    const timer = setTimeout(() => {
      why = `it did not end within ${(options.timeoutMs ?? LOGGER_TIMEOUT_MS) / 1000} s`;
      killGroup(child.pid, 'SIGKILL');
    }, options.timeoutMs ?? LOGGER_TIMEOUT_MS);
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => {
      if (stderr.length < MAX_STDERR) stderr += chunk.toString('utf8');
    });
    child.stdin.on('error', () => {});
    child.stdin.end(`${line}\n`);
    const ended = await new Promise<{ code: number | null; signal?: NodeJS.Signals | null; error?: NodeJS.ErrnoException }>((resolve) => {
      child.once('error', (error: NodeJS.ErrnoException) => resolve({ code: null, error }));
      child.once('close', (code, signal) => resolve({ code, signal }));
    });
    clearTimeout(timer);
    forget();
    const said = stderr.trim() ? `: ${escapeText(stderr.trim().slice(0, 300))}` : '';
    if (ended.error) why = ended.error.code === 'ENOENT' ? `${program} is not installed (apt install bsdutils)` : oneLine(ended.error);
    else if (ended.code !== 0) why ??= `${ended.signal ? `killed by ${ended.signal}` : `exit ${ended.code}`}${said}`;
  } catch (error) {
    why = oneLine(error);
  }
  if (why) options.logger.debug(`could not log the run to syslog${socket ? ` (${socket})` : ''}: ${why}`);
}

function clip(text: string, max: number): string {
  return text.length > max ? `${text.slice(0, max)}…` : text;
}

// At most `max` bytes of UTF-8, cut at a character boundary.
function clipBytes(text: string, max: number): string {
  if (Buffer.byteLength(text) <= max) return text;
  let cut = Buffer.from(text).subarray(0, max - 3).toString('utf8');
  if (cut.endsWith('\uFFFD')) cut = cut.slice(0, -1);
  return `${cut}…`;
}
