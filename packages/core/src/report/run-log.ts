// The receiver's own log of each host's runs: ROOT/.ssh-r-sync/log/NAME.log, one JSON line per
// run (its outcome, the config file, rsync's error lines, every tap's outcome). It lives beside
// the host records, never inside the host's directory (the client's data), is private to the
// backup account (0700 dir, 0600 file), and is capped: past MAX_RUN_LOG_BYTES it moves to
// NAME.log.1 (replacing the older one), so a host never holds more than twice the cap.
import { closeSync, constants, fstatSync, openSync, readSync } from 'node:fs';
import { lstat, mkdir, open, rename, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import type { Mode, Outcome, RunContext } from '../pipeline/context.js';
import { SshRSyncError, oneLine } from '../errors.js';
import type { Logger } from '../logger.js';
import type { Endpoint, Transport } from '../transport/transport.js';
import { RSYNC_DIAGNOSTIC } from '../rsync/rsync-errors.js';
import { sendToSyslog, syslogSummary, type SyslogSetting } from './syslog.js';

/** One file's cap; with the one older generation a host's log is at most twice this. */
export const MAX_RUN_LOG_BYTES = 256 * 1024;
/** One entry's cap: a run can never push the log over by much, nor crowd out the others alone. */
const MAX_ENTRY_BYTES = 16 * 1024;
const MAX_RSYNC_LINES = 20;
const MAX_LINE = 300;
const MAX_MESSAGE = 2000;
const MAX_TAPS = 50;

/** One run, as the run log keeps it and `ssh-r-sync-admin log --json` prints it. */
export interface RunLogEntry {
  version: 1;
  name: string;
  startedAt: string;
  /** When the run ended (after its done hooks). */
  at: string;
  /** reverse, pull or local. */
  transport: string;
  status: Outcome['status'];
  exitCode: Outcome['exitCode'];
  durationMs: number;
  committed: boolean;
  snapshot: string | null;
  message: string | null;
  /** The config file the receiver loaded; null: none, the defaults applied. */
  config: string | null;
  mode: Mode;
  rsync: { exitCode: number; signal: string | null; files: number | null; bytes: number | null; errors: string[] } | null;
  /** Every tap that ran, in order (scripts and plugins), with how it ended. */
  hooks: { point: string; tap: string; outcome: string; durationMs: number }[];
}

export function runLogPath(root: string, name: string): string {
  return join(root, '.ssh-r-sync', 'log', `${name}.log`);
}

// The entry for one finished run; `secrets` are blanked wherever they would appear.
export function runLogEntry(outcome: Outcome, ctx: RunContext, extra: { transport: string; config: string | null; secrets?: Iterable<string> }): RunLogEntry {
  const rsync = outcome.rsync;
  const entry: RunLogEntry = {
    version: 1,
    name: ctx.name,
    startedAt: ctx.startedAt.toISOString(),
    at: new Date().toISOString(),
    transport: extra.transport,
    status: outcome.status,
    exitCode: outcome.exitCode,
    durationMs: outcome.durationMs,
    committed: outcome.committed === true,
    snapshot: outcome.snapshot ?? null,
    message: outcome.message === null ? null : clip(outcome.message, MAX_MESSAGE),
    config: extra.config,
    mode: ctx.mode,
    rsync: rsync && { exitCode: rsync.exitCode, signal: rsync.signal, files: rsync.files, bytes: rsync.bytes, errors: rsyncErrorLines(rsync.output, rsync.exitCode) },
    hooks: ctx.taps.slice(0, MAX_TAPS).map((tap) => ({ point: tap.point, tap: clip(tap.tap, MAX_LINE), outcome: tap.outcome, durationMs: tap.durationMs })),
  };
  return redact(entry, [...(extra.secrets ?? [])]);
}

/** rsync's own diagnostics, as rsync-errors.ts reads them, and the "ERROR: " of rrsync's refusals. */
const DIAGNOSTIC = new RegExp(`${RSYNC_DIAGNOSTIC.source.slice(0, -1)}|ERROR: )`);

// rsync's error lines; for a failure without any, the last lines it printed.
function rsyncErrorLines(output: string, exitCode: number): string[] {
  const lines = output.split(/[\r\n]+/).map((line) => line.trim()).filter(Boolean);
  const found = lines.filter((line) => DIAGNOSTIC.test(line));
  const chosen = found.length ? found.slice(-MAX_RSYNC_LINES) : exitCode === 0 ? [] : lines.slice(-5);
  return chosen.map((line) => clip(line, MAX_LINE));
}

function clip(text: string, max: number): string {
  return text.length > max ? `${text.slice(0, max)}…` : text;
}

function redact(entry: RunLogEntry, secrets: string[]): RunLogEntry {
  const real = secrets.filter((secret) => secret.length >= 8);
  if (!real.length) return entry;
  const json = JSON.stringify(entry);
  let clean = json;
  for (const secret of real) clean = clean.split(JSON.stringify(secret).slice(1, -1)).join('[secret]');
  return clean === json ? entry : (JSON.parse(clean) as RunLogEntry);
}

// Appends one entry to the host's run log, moving a full log to NAME.log.1 first.
export async function appendRunLog(root: string, entry: RunLogEntry): Promise<void> {
  // Never recursive: a missing ROOT (an unmounted disk) must stay missing.
  const dir = join(root, '.ssh-r-sync', 'log');
  for (const each of [join(root, '.ssh-r-sync'), dir]) await mkdir(each, { mode: 0o700 }).catch((error: NodeJS.ErrnoException) => { if (error.code !== 'EEXIST') throw error; });
  const info = await lstat(dir);
  if (!info.isDirectory()) throw new SshRSyncError('EINTERNAL', `${dir} is not a directory: remove it`);
  let line = `${JSON.stringify(entry)}\n`;
  if (Buffer.byteLength(line) > MAX_ENTRY_BYTES) line = `${JSON.stringify({ ...entry, hooks: entry.hooks.slice(0, 5), rsync: entry.rsync && { ...entry.rsync, errors: entry.rsync.errors.slice(-3) }, message: entry.message && clip(entry.message, 500) })}\n`;
  const path = runLogPath(root, entry.name);
  const size = await lstat(path).then((stats) => (stats.isFile() ? stats.size : 0), () => 0);
  if (size > 0 && size + Buffer.byteLength(line) > MAX_RUN_LOG_BYTES) await rename(path, `${path}.1`);
  let handle: FileHandle | undefined;
  try {
    // No symlink is followed, and the file is the backup account's alone.
    handle = await open(path, constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT | constants.O_NOFOLLOW, 0o600);
    await handle.chmod(0o600);
    await handle.write(line);
  } finally {
    await handle?.close().catch(() => {});
  }
}

// The host's logged runs, oldest first (the older generation, then the current file); [] when none.
export function readRunLog(root: string, name: string): RunLogEntry[] {
  const path = runLogPath(root, name);
  const entries: RunLogEntry[] = [];
  for (const file of [`${path}.1`, path]) {
    for (const line of readCapped(file).split('\n')) {
      if (!line.trim()) continue;
      try {
        const entry = JSON.parse(line) as RunLogEntry;
        if (entry?.version === 1 && typeof entry.at === 'string') entries.push(entry);
      } catch {
        // A line cut short by a crash: the others still count.
      }
    }
  }
  return entries;
}

// A log file's text, at most a little over the cap (it is ours, but not trusted to be small).
function readCapped(file: string): string {
  let fd: number | undefined;
  try {
    fd = openSync(file, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
    if (!fstatSync(fd).isFile()) return '';
    const buffer = Buffer.alloc(MAX_RUN_LOG_BYTES + MAX_ENTRY_BYTES);
    const length = readSync(fd, buffer, 0, buffer.length, 0);
    return buffer.subarray(0, length).toString('utf8');
  } catch {
    return '';
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

/** Options of withRunLog. */
export interface RunLogOptions {
  /** The config file the receiver loaded, or null. */
  config: string | null;
  logger: Logger;
  /** One summary line per run to the system log (syslog.ts): true = /dev/log, a string = that socket; default false. */
  syslog?: SyslogSetting | undefined;
}

// Wraps a transport so that each run that reached its host's directory is logged once it has
// finished, and every run (a refused one too) is summed up in the system log when asked.
export function withRunLog(transport: Transport, options: RunLogOptions): Transport {
  const secrets = new Set<string>();
  return {
    kind: transport.kind,
    handshake: (ctx) => transport.handshake(ctx),
    start: (ctx) => transport.start(ctx),
    async endpoint(ctx) {
      const endpoint = await transport.endpoint(ctx);
      for (const secret of endpointSecrets(endpoint)) secrets.add(secret);
      return endpoint;
    },
    report: (outcome, ctx) => transport.report(outcome, ctx),
    async finish(outcome, ctx) {
      try {
        await transport.finish(outcome, ctx);
      } finally {
        // After the client's answer (the transport's finish sent it its goodbye).
        const entry = runLogEntry(outcome, ctx, { transport: transport.kind, config: options.config, secrets });
        // Only a run that reached its host's directory: before that, ROOT itself may be refused.
        if (ctx.name && ctx.dir) {
          await appendRunLog(ctx.root, entry).catch((error: unknown) => options.logger.warn(`could not write the run log ${runLogPath(ctx.root, ctx.name)}: ${oneLine(error)}`));
        }
        await sendToSyslog(syslogSummary(entry), outcome.status === 'failure', options.syslog ?? false, { logger: options.logger });
      }
    },
  };
}

// What must never reach the log: the rsync daemon's password (its file's content), any
// password or secret rsync gets through its environment.
function endpointSecrets(endpoint: Endpoint): string[] {
  const found: string[] = [];
  for (const arg of endpoint.transportArgs) {
    const file = arg.startsWith('--password-file=') ? arg.slice('--password-file='.length) : null;
    if (file) found.push(...readCapped(file).split('\n').map((line) => line.trim()).filter(Boolean).slice(0, 4));
  }
  for (const [key, value] of Object.entries(endpoint.env)) if (/PASS|SECRET|TOKEN/i.test(key) && value) found.push(value);
  return found;
}
