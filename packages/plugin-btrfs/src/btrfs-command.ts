// Runs the `btrfs` program (btrfs-progs): argv only, no shell, in its own process group that is
// killed on abort and after a time bound, with its output bounded. A failure is one line naming
// the command and btrfs's own reason, which callers turn into what to do.
import { spawn } from 'node:child_process';
import { SshRSyncError, dieWithUs, findProgram, killGroup } from '@ssh-r-sync/core';

/** Snapshot, create and delete wait for a transaction commit: long only on a struggling disk. */
export const BTRFS_TIMEOUT_MS = 10 * 60 * 1000;
/** btrfs prints a few lines; more than this is not worth keeping. */
const MAX_OUTPUT_BYTES = 64 * 1024;
/** Where btrfs-progs puts it on Debian and others, when PATH (a forced command's) lacks it. */
const FIXED_PLACES = ['/usr/bin/btrfs', '/usr/sbin/btrfs', '/bin/btrfs', '/sbin/btrfs'];

/** A btrfs command that ran and failed; `reason` is btrfs's own first error line. */
export class BtrfsCommandError extends SshRSyncError {
  constructor(
    readonly argv: readonly string[],
    readonly reason: string,
  ) {
    super('ESTORAGE', `btrfs ${argv.join(' ')} failed: ${reason}`);
  }
}

export interface BtrfsRunOptions {
  signal?: AbortSignal;
  timeoutMs?: number;
}

let program: string | undefined;

// The btrfs program to run; throws ECONFIG with the install line when there is none.
export function btrfsProgram(): string {
  program ??= findProgram('btrfs') ?? FIXED_PLACES.find((place) => findProgram(place) !== null);
  if (!program) throw new SshRSyncError('ECONFIG', 'plugin-btrfs needs the btrfs program, which is not installed: apt-get install btrfs-progs');
  return program;
}

// Runs `btrfs ARGV…` to its end; resolves to its stdout, throws BtrfsCommandError when it fails.
export function runBtrfs(argv: readonly string[], options: BtrfsRunOptions = {}): Promise<string> {
  const { signal, timeoutMs = BTRFS_TIMEOUT_MS } = options;
  const file = btrfsProgram();
  if (signal?.aborted) return Promise.reject(signal.reason);
  return new Promise((resolve, reject) => {
    const child = spawn(file, [...argv], { stdio: ['ignore', 'pipe', 'pipe'], detached: true, env: { ...process.env, LC_ALL: 'C' } });
    // Killed with the receiver, even a SIGKILLed one (core's watchdog).
    const forget = dieWithUs(child.pid);
    const stdout = bounded();
    const stderr = bounded();
    child.stdout.on('data', stdout.add);
    child.stderr.on('data', stderr.add);
    let timedOut = false;
    const stop = () => killGroup(child.pid, 'SIGKILL');
    const timer = setTimeout(() => {
      timedOut = true;
      stop();
    }, timeoutMs);
    signal?.addEventListener('abort', stop, { once: true });
    const settle = () => {
      forget();
      clearTimeout(timer);
      signal?.removeEventListener('abort', stop);
    };
    child.once('error', (error: NodeJS.ErrnoException) => {
      settle();
      reject(new SshRSyncError('ESPAWN', `cannot run ${file}: ${error.code ?? error.message}: apt-get install btrfs-progs`, { cause: error }));
    });
    child.once('close', (code, killedBy) => {
      settle();
      if (signal?.aborted) return reject(signal.reason);
      if (timedOut) {
        return reject(new SshRSyncError('ETIMEOUT', `btrfs ${argv.join(' ')} did not finish in ${Math.round(timeoutMs / 1000)} s: is the file system healthy (dmesg, btrfs device stats)?`));
      }
      if (code === 0) return resolve(stdout.text());
      reject(new BtrfsCommandError(argv, firstError(stderr.text()) ?? (killedBy ? `killed by ${killedBy}` : `exit code ${code}`)));
    });
  });
}

// btrfs's reason: its first ERROR line (WARNING lines, such as a non-root user's "cannot read
// default subvolume id", come first and say nothing about the failure), else its first line.
function firstError(stderr: string): string | null {
  const lines = stderr.split('\n').map((line) => line.trim()).filter(Boolean);
  const line = lines.find((candidate) => candidate.startsWith('ERROR:')) ?? lines[0];
  return line ? line.replace(/^ERROR:\s*/, '').slice(0, 400) : null;
}

function bounded(): { add: (chunk: Buffer) => void; text: () => string } {
  const chunks: Buffer[] = [];
  let size = 0;
  return {
    add: (chunk: Buffer) => {
      if (size >= MAX_OUTPUT_BYTES) return;
      chunks.push(chunk.subarray(0, MAX_OUTPUT_BYTES - size));
      size += chunk.length;
    },
    text: () => Buffer.concat(chunks).toString('utf8'),
  };
}
