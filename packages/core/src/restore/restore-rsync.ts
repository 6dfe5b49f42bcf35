// The rsync that writes a restore. One shape for both targets: this process's rsync is the
// sender, reading the snapshot as it was stored (with --fake-super for a fake-super store, on the
// sending side only), and the receiving rsync runs as its own "remote" process with --super, so
// it sets the client's owners, devices and modes for real. For --to the remote is reached with
// ssh; for a local DEST it is started by env(1): rsync refuses --files-from with -M in a local
// copy ("File-list index … not in …", rsync 3.5.0), and the list is what keeps DEST's own
// attributes untouched (the snapshot's top is the receiver's private directory, never sent).
import { spawn } from 'node:child_process';
import type { Mode } from '../pipeline/context.js';
import { LineSplitter } from '../exec/line-splitter.js';
import { dieWithUs, killGroup } from '../exec/process-group.js';
import { parseStats } from '../rsync/rsync.js';
import { describeRsyncFailure } from '../rsync/rsync-errors.js';
import { parentDeathPrefix } from '../session/tunnel/daemon.js';
import { BoundedText } from '../exec/bounded-text.js';

/** What is kept per storage mode; the receiving side adds --super (see restoreRsyncArgs). */
const MODE_ARGS: Record<Mode, string[]> = {
  privileged: ['-aHAXS', '--numeric-ids'],
  // rsync(1), --fake-super: "only affects the side where the option is used": here the sender,
  // which reads owner, mode and devices from user.rsync.%stat and ACLs from user.rsync.%aacl.
  'fake-super': ['-aHAXS', '--numeric-ids', '--fake-super'],
  // A plain store kept no owners, devices, ACLs or xattrs: restore what it has.
  plain: ['-rlptHS'],
};

/** Line length kept from rsync's output; a longer line is cut. */
const MAX_LINE = 8192;
/** rsync's output kept for the error message and --stats (its tail). */
const MAX_OUTPUT = 1024 * 1024;
/** After SIGTERM, rsync gets this long before SIGKILL. */
const KILL_GRACE_MS = 3000;

export interface RestoreRsyncOptions {
  mode: Mode;
  /** The receiving side sets owners, groups and devices (-M--super): it runs as root. */
  asSuperUser: boolean;
  dryRun: boolean;
  /** Rewrite files that look unchanged (size and time) too: DEST was not empty. */
  ignoreTimes: boolean;
  /** The remote shell, as rsync's -e takes it ('env' for a local DEST). */
  rsh: string;
  /** No data moving for this long stops rsync (--timeout); 0 = never. */
  ioTimeoutSeconds: number;
  /** The roles swapped for a local DEST (see restore-account.ts): the sender is the "remote",
   *  started by `rsh` as the store's account, and this process's rsync is the receiver. */
  remoteSender?: boolean;
}

// rsync's options for a restore, without source and target.
export function restoreRsyncArgs(options: RestoreRsyncOptions): string[] {
  // A remote sender gets --fake-super as a remote option (only the side that reads the xattrs
  // uses it); the local receiver, run as root, sets owners without being told.
  const mode = options.remoteSender ? MODE_ARGS[options.mode].map((arg) => (arg === '--fake-super' ? '-M--fake-super' : arg)) : MODE_ARGS[options.mode];
  return [
    ...mode,
    ...(options.asSuperUser && options.mode !== 'plain' && !options.remoteSender ? ['-M--super'] : []),
    // --files-from turns -a's -r off; the list holds the top's entries, or the --path values.
    '-r',
    '--from0',
    '--files-from=-',
    // -s (--secluded-args, once --protect-args): names reach the receiving rsync over its
    // protocol, never through a remote shell's words.
    '-s',
    `--rsh=${options.rsh}`,
    ...(options.ioTimeoutSeconds > 0 ? [`--timeout=${options.ioTimeoutSeconds}`] : []),
    ...(options.ignoreTimes ? ['--ignore-times'] : []),
    ...(options.dryRun ? ['--dry-run', '--itemize-changes'] : ['--stats']),
  ];
}

export interface RestoreRsyncRun {
  args: string[];
  /** The snapshot's tree, with a trailing slash (`SRS_RESTORE=local:TREE/` for a remote sender). */
  source: string;
  /** `user@host:DIR/`, `SRS_RESTORE=local:DEST/` for env(1), or `DEST/` for a remote sender; none for --list-only. */
  target?: string;
  /** Relative names (bytes) rsync reads from stdin, NUL-separated. */
  list: Buffer[];
  /** Each line rsync prints on stdout (the itemized list of a dry run). */
  onLine?: (line: string) => void;
  signal?: AbortSignal;
  program?: string;
}

export interface RestoreRsyncResult {
  exitCode: number;
  signal: string | null;
  output: string;
  files: number | null;
  bytes: number | null;
  durationMs: number;
}

// Runs rsync in its own process group (killed with us, and on abort), feeding the list on stdin.
export async function runRestoreRsync(run: RestoreRsyncRun): Promise<RestoreRsyncResult> {
  const started = performance.now();
  const prefix = await parentDeathPrefix();
  const [file, ...argv] = [...prefix, run.program ?? 'rsync', ...run.args, run.source, ...(run.target === undefined ? [] : [run.target])] as [string, ...string[]];
  const child = spawn(file, argv, { stdio: ['pipe', 'pipe', 'pipe'], detached: true, env: { ...process.env, LC_ALL: 'C' } });
  const forget = dieWithUs(child.pid);
  let killTimer: NodeJS.Timeout | undefined;
  const stop = () => {
    killGroup(child.pid, 'SIGTERM');
    killTimer ??= setTimeout(() => killGroup(child.pid, 'SIGKILL'), KILL_GRACE_MS);
  };
  if (run.signal?.aborted) stop();
  run.signal?.addEventListener('abort', stop, { once: true });
  const tail = new BoundedText(MAX_OUTPUT);
  const lines = new LineSplitter(MAX_LINE);
  child.stdout.on('data', (chunk: Buffer) => {
    tail.add(chunk);
    for (const line of lines.push(chunk)) run.onLine?.(line);
  });
  child.stderr.on('data', (chunk: Buffer) => tail.add(chunk));
  child.stdin.on('error', () => {}); // rsync that dies early closes its stdin: its exit says why
  child.stdin.end(Buffer.concat(run.list.flatMap((name) => [name, Buffer.from([0])])));
  const ended = await new Promise<{ code: number | null; signal: NodeJS.Signals | null; error?: NodeJS.ErrnoException }>((resolve) => {
    child.once('error', (error: NodeJS.ErrnoException) => resolve({ code: null, signal: null, error }));
    child.once('close', (code, signal) => resolve({ code, signal }));
  });
  for (const line of lines.flush()) run.onLine?.(line);
  run.signal?.removeEventListener('abort', stop);
  clearTimeout(killTimer);
  forget();
  const durationMs = Math.round(performance.now() - started);
  if (ended.error) {
    const why = ended.error.code === 'ENOENT' ? 'not found (is rsync installed?)' : (ended.error.code ?? ended.error.message);
    return { exitCode: 127, signal: null, output: `cannot run ${run.program ?? 'rsync'}: ${why}`, files: null, bytes: null, durationMs };
  }
  const output = tail.text();
  return { exitCode: ended.code ?? 128, signal: ended.signal, output, ...parseStats(output), durationMs };
}

const ENOSPC = /No space left on device \(28\)|Disk quota exceeded \(122\)/;

// One line saying why the restore's rsync failed; `where` names the target.
export function describeRestoreFailure(result: RestoreRsyncResult, where: string): string {
  const full = result.output.split(/[\r\n]+/).find((line) => ENOSPC.test(line));
  if (full) return `no space left on ${where}: free space there, or restore less (--path), and run the restore again: ${full.trim().slice(0, 300)}`;
  if (result.exitCode === 127 && result.output.startsWith('cannot run')) return result.output;
  if (result.exitCode === 255 || /^ssh: |Permission denied \(publickey|Host key verification failed/m.test(result.output)) {
    const line = result.output.split('\n').find((text) => /ssh: |Permission denied|Host key verification failed|Connection (refused|closed|timed out)/.test(text));
    if (line) return `ssh to ${where} failed (rsync exit ${result.exitCode}): ${line.trim().slice(0, 300)}`;
  }
  return describeRsyncFailure({ exitCode: result.exitCode, originalExitCode: result.exitCode, signal: result.signal, output: result.output }, where);
}
