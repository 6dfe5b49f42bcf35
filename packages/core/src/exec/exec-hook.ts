// Runs one hook script: no shell, its own process group, stdin and stdout never the
// protocol channel, stdout bounded, killed with its group when the tap is aborted.
import { SshRSyncError } from '../errors.js';
import { LineSplitter } from './line-splitter.js';
import type { Logger } from '../logger.js';
import { guardStart, killGroup } from './process-group.js';
import { importModule } from '@ssh-r-sync/core/dynamic-import';

export interface ScriptRun {
  path: string;
  args: string[];
  env: Record<string, string>;
  /** Bytes for the script's stdin; /dev/null when undefined. */
  input?: Buffer | string;
  signal?: AbortSignal;
  maxOutputBytes: number;
  /** Where the script's stderr lines go, each cut at LOG_LINE_MAX characters. */
  logger: Logger;
}

const LOG_LINE_MAX = 4096;

export interface ScriptResult {
  exitCode: number | null;
  signal: string | null;
  stdout: Buffer;
}

// Runs a script to its end and returns its exit status and stdout; throws only when it cannot run.
export async function runScript(run: ScriptRun): Promise<ScriptResult> {
  const { execa } = await importModule<typeof import('execa')>('execa');
  // Announced to the watchdog before it starts: a script dies with us even if we are SIGKILLed
  // before its group is registered.
  const guard = await guardStart();
  const subprocess = execa(run.path, run.args, {
    ...(run.input === undefined ? { stdin: 'ignore' as const } : { input: run.input }),
    stdout: 'pipe',
    stderr: 'pipe',
    buffer: { stdout: true, stderr: false },
    encoding: 'buffer',
    maxBuffer: { stdout: run.maxOutputBytes },
    env: { ...run.env, ...guard.env },
    extendEnv: false,
    detached: true,
    reject: false,
    shell: false,
  });
  const pid = subprocess.pid;
  const forget = guard.started(pid);
  const abort = () => killGroup(pid, 'SIGKILL');
  if (run.signal?.aborted) abort();
  run.signal?.addEventListener('abort', abort, { once: true });
  // A background child that still holds the script's stdout after the script exited would keep
  // us waiting for ever: a second after the exit, whatever is left in the group is stopped. A
  // child that let go of our pipes (`cmd </dev/null >/dev/null 2>&1 &`) is left alone, so work
  // may outlive its hook without racing this.
  const stragglers: NodeJS.Timeout[] = [];
  subprocess.once('exit', () => {
    stragglers.push(
      setTimeout(() => {
        if (killGroup(pid, 'SIGTERM')) stragglers.push(setTimeout(() => killGroup(pid, 'SIGKILL'), 2000));
      }, 1000),
    );
  });
  if (subprocess.stderr) {
    const lines = new LineSplitter(LOG_LINE_MAX);
    const log = (line: string) => run.logger.info(line);
    subprocess.stderr.on('data', (chunk: Buffer) => lines.push(chunk).forEach(log));
    subprocess.stderr.once('end', () => lines.flush().forEach(log));
  }
  const result = await subprocess;
  run.signal?.removeEventListener('abort', abort);
  for (const timer of stragglers) clearTimeout(timer);
  forget();
  if (result.isMaxBuffer) {
    killGroup(pid, 'SIGKILL');
    throw new SshRSyncError('EHOOK', `printed more than ${run.maxOutputBytes} bytes on stdout`);
  }
  const code = (result.cause as NodeJS.ErrnoException | undefined)?.code;
  if (result.exitCode === undefined && result.signal === undefined && code) {
    throw new SshRSyncError('ESPAWN', `cannot run ${run.path}: ${describeSpawnError(code)}`, { cause: result.cause });
  }
  return {
    exitCode: result.exitCode ?? null,
    signal: result.signal ?? null,
    stdout: Buffer.from(result.stdout as Uint8Array),
  };
}

function describeSpawnError(code: string): string {
  if (code === 'ENOENT') return 'no such file';
  if (code === 'EACCES') return 'permission denied (is it executable?)';
  if (code === 'ENOEXEC') return 'not an executable format (missing #! line?)';
  return code;
}

// How a finished script ended, in words: "exited with code 3" or "was killed by SIGKILL".
export function describeExit(result: Pick<ScriptResult, 'exitCode' | 'signal'>): string {
  if (result.signal) return `was killed by ${result.signal}`;
  return `exited with code ${result.exitCode}`;
}
