// rsync's default options and the built-in runner of the `rsync` point.
import { spawn, type ChildProcessByStdio } from 'node:child_process';
import type { Readable } from 'node:stream';
import type { Mode, RsyncCommand, RsyncResult, RunContext } from '../pipeline/context.js';
import { dieWithUs, killGroup } from '../exec/process-group.js';
import { parentDeathPrefix } from '../session/tunnel/daemon.js';
import { currentTap } from '../pipeline/tap-guard.js';
import { BoundedText } from '../exec/bounded-text.js';
import { ProgressSplitter } from './progress.js';

const MAX_OUTPUT_BYTES = 8 * 1024 * 1024;

/** Options that keep what each mode can keep. Fake-super stores owner, group, mode, devices, ACLs and xattrs in xattrs. */
const MODE_ARGS: Record<Mode, string[]> = {
  privileged: ['-HaAXS', '--super', '--numeric-ids'],
  'fake-super': ['-HaAXS', '--fake-super', '--numeric-ids'],
  plain: ['-rltHES'],
};

export interface DefaultArgsOptions {
  mode: Mode;
  oneFileSystem: boolean;
  /** Over a network: zstd level 1 when both sides have it. */
  compress: boolean;
}

// The options the receiver starts from, before rsync.pre hooks: the original's defaults.
export function defaultRsyncArgs(options: DefaultArgsOptions): string[] {
  return [
    ...MODE_ARGS[options.mode],
    // rsync compares mtimes to the second by default, and skips setting a directory's mtime that
    // "matches": a directory changed in the second of its backup kept the time rsync created it
    // at. Nanoseconds (rsync >= 3.1.3 on the receiving side) store every time exactly.
    '--modify-window=-1',
    '--delete',
    '--delete-excluded',
    ...(options.compress ? ['--zl=1'] : []),
    ...(options.oneFileSystem ? ['-x'] : []),
    '--stats',
  ];
}

// Runs rsync in its own process group, capturing its merged output (bounded). Plain spawn
// rather than execa here: this runs on every backup, and execa's import alone costs ~0.15 s.
export async function runRsync(command: RsyncCommand, ctx: RunContext): Promise<RsyncResult> {
  const started = performance.now();
  const argv = [...command.args, ...command.transportArgs, command.source, command.destination];
  ctx.logger.debug(`running ${command.program} ${argv.map((arg) => JSON.stringify(arg)).join(' ')}`);
  // rsync dies with the receiver, even a SIGKILLed one: two rsyncs never write one snapshot.
  const prefix = await parentDeathPrefix();
  const child = spawnRsync(command, argv, prefix);
  const forget = dieWithUs(child.pid);
  const signal = currentTap()?.signal ?? ctx.signal;
  const stop = () => killGroup(child.pid, 'SIGTERM');
  if (signal.aborted) stop();
  signal.addEventListener('abort', stop, { once: true });
  const output = new BoundedText(MAX_OUTPUT_BYTES);
  // Progress lines become events, never output: a long transfer's \r updates would fill it.
  const progress = command.onProgress ? new ProgressSplitter(command.onProgress, (text) => output.add(Buffer.from(text))) : null;
  child.stdout.on('data', (chunk: Buffer) => (progress ? progress.add(chunk) : output.add(chunk)));
  child.stderr.on('data', (chunk: Buffer) => output.add(chunk));
  const ended = await new Promise<{ code: number | null; signal: NodeJS.Signals | null; error?: NodeJS.ErrnoException }>((resolve) => {
    child.once('error', (error: NodeJS.ErrnoException) => resolve({ code: null, signal: null, error }));
    child.once('close', (code, exitSignal) => resolve({ code, signal: exitSignal }));
  });
  signal.removeEventListener('abort', stop);
  forget();
  progress?.end();
  if (ended.error) {
    const message = `cannot run ${command.program}: ${ended.error.code === 'ENOENT' ? 'not found (is rsync installed?)' : ended.error.code}`;
    return finished(127, null, message, started);
  }
  const text = output.text();
  if (prefix.length > 0 && ended.code === 127 && /^setpriv: failed to execute/m.test(text)) {
    return finished(127, null, `cannot run ${command.program}: not found (is rsync installed?)`, started);
  }
  return { ...finished(ended.code ?? 128, ended.signal, text, started), ...parseStats(text) };
}

// rsync in a process group of its own, with the transport's connection (if any) as its fd 3.
// `prefix` (setpriv --pdeathsig …) makes it die with us.
export function spawnRsync(command: RsyncCommand, argv: string[], prefix: readonly string[] = []): ChildProcessByStdio<null, Readable, Readable> {
  const connection = command.connection?.claim();
  const [file, ...args] = [...prefix, command.program, ...argv] as [string, ...string[]];
  try {
    const options = { env: { ...process.env, RSYNC_COMPRESS_LIST: 'zstd none', ...command.env }, detached: true };
    if (!connection) return spawn(file, args, { ...options, stdio: ['ignore', 'pipe', 'pipe'] });
    return spawn(file, args, { ...options, stdio: ['ignore', 'pipe', 'pipe', connection] }) as ChildProcessByStdio<null, Readable, Readable>;
  } finally {
    connection?.destroy(); // rsync holds its own copy
  }
}

function finished(exitCode: number, signal: string | null, output: string, started: number): RsyncResult {
  return {
    exitCode,
    originalExitCode: exitCode,
    signal,
    output,
    files: null,
    bytes: null,
    durationMs: Math.round(performance.now() - started),
  };
}

// Reads the file and byte counts from `--stats` output.
export function parseStats(output: string): { files: number | null; bytes: number | null } {
  const number = (pattern: RegExp) => {
    const match = pattern.exec(output);
    return match?.[1] ? Number(match[1].replace(/[,.]/g, '')) : null;
  };
  return {
    files: number(/^Number of regular files transferred: ([\d,.]+)/m),
    bytes: number(/^Total transferred file size: ([\d,.]+) bytes/m),
  };
}
