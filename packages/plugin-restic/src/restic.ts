// Runs restic for one repository: argv without a shell, its own process group (killed with us,
// on abort and on timeout), an environment made of the repository's settings and a few of ours,
// stdout and stderr bounded. The password reaches restic only as a file name (--password-file);
// S3 keys and the like only through its environment. Nothing here logs a secret: messages name
// the repository by its config name and its address with any user:password@ part blanked out.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { SshRSyncError, dieWithUs, killGroup } from '@ssh-r-sync/core';
import type { ParsedOptions, Repository } from './options.js';

/** How one run of restic (built by resticCommand) is bounded. */
export interface ResticCall {
  cwd?: string;
  signal?: AbortSignal;
  /** Milliseconds, 0 = none. */
  timeoutMs?: number;
  /** stdout beyond this kills restic (default 16 MiB). */
  maxStdout?: number;
}

export interface ResticResult {
  code: number | null;
  signal: string | null;
  stdout: string;
  /** The last 16 KiB of stderr. */
  stderr: string;
}

/** What a run of restic is made of: for tests (the s3: command line) and for the runner. */
export interface ResticCommand {
  program: string;
  argv: string[];
  env: Record<string, string>;
}

const STDERR_TAIL = 16 * 1024;
/** How long a stopped restic may take to remove its lock before it is killed. */
const STOP_GRACE_MS = 10_000;
/** Our variables restic may need: where its cache lives, how names are spelled. */
const PASSED = ['PATH', 'HOME', 'LANG', 'LC_ALL', 'XDG_CACHE_HOME', 'SSH_AUTH_SOCK'];

// The program, argv and environment of `restic -r REPO … args` for `repo`.
export function resticCommand(options: Pick<ParsedOptions, 'restic'>, repo: Repository, args: readonly string[]): ResticCommand {
  const env: Record<string, string> = {};
  for (const key of PASSED) if (process.env[key] !== undefined) env[key] = process.env[key]!;
  env.PATH ??= '/usr/local/bin:/usr/bin:/bin';
  Object.assign(env, repo.env);
  // --time is read in the local zone: ours is UTC, whatever the receiver's is.
  env.TZ = 'UTC';
  env.RESTIC_PROGRESS_FPS = '0.016';
  const argv = ['-r', repo.repository, '--password-file', repo.passwordFile!];
  for (const [key, value] of repo.options) argv.push('-o', `${key}=${value}`);
  return { program: options.restic, argv: [...argv, ...args], env };
}

const LOCKED = /repository is already locked/i;

// Runs restic to its end; throws only when it cannot be started. Never shows its environment.
// A repository another restic has locked is never unlocked here: restic's `unlock` tests a lock of
// this host by sending SIGHUP to its PID (which another account's live restic survives as "stale",
// and a process that took a dead restic's PID dies of), so that is left to the admin.
export function runRestic(command: ResticCommand, call: ResticCall): Promise<ResticResult> {
  return runOnce(command, call);
}

function runOnce(command: ResticCommand, call: ResticCall): Promise<ResticResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(command.program, command.argv, { cwd: call.cwd ?? '/', env: command.env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    const forget = dieWithUs(child.pid);
    // Stopped on purpose (abort, timeout, too much output): SIGINT to restic alone first, on which
    // it removes its lock from the repository (on SIGTERM or SIGKILL the lock stays, and only the
    // admin can remove it); its group (an ssh for sftp:) still has the connection it needs for that.
    // What is left after the grace goes with SIGKILL. (Within about 200 ms of taking its lock,
    // restic does not know it yet and leaves it even on SIGINT.)
    let grace: NodeJS.Timeout | undefined;
    const kill = () => {
      if (grace) return;
      try {
        if (child.pid) process.kill(child.pid, 'SIGINT');
      } catch {
        // gone already
      }
      grace = setTimeout(() => killGroup(child.pid, 'SIGKILL'), STOP_GRACE_MS);
    };
    const timer = call.timeoutMs ? setTimeout(kill, call.timeoutMs) : undefined;
    if (call.signal?.aborted) kill();
    call.signal?.addEventListener('abort', kill, { once: true });
    const max = call.maxStdout ?? 16 * 1024 * 1024;
    const out: Buffer[] = [];
    let outBytes = 0;
    let overflow = false;
    let err = Buffer.alloc(0);
    child.stdout.on('data', (chunk: Buffer) => {
      outBytes += chunk.length;
      if (outBytes > max) {
        overflow = true;
        kill();
      } else out.push(chunk);
    });
    child.stderr.on('data', (chunk: Buffer) => {
      err = Buffer.concat([err, chunk]);
      if (err.length > STDERR_TAIL) err = err.subarray(err.length - STDERR_TAIL);
    });
    child.once('error', (error: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      clearTimeout(grace);
      call.signal?.removeEventListener('abort', kill);
      forget();
      const gone = error.code === 'ENOENT' && call.cwd !== undefined && !existsSync(call.cwd);
      reject(new SshRSyncError('ESPAWN', gone ? `cannot run ${command.program} in ${call.cwd}: that directory is gone` : `cannot run ${command.program}: ${error.code === 'ENOENT' ? 'not installed (apt-get install restic), or give "restic": its path' : error.code ?? error.message}`, { cause: error }));
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      clearTimeout(grace);
      call.signal?.removeEventListener('abort', kill);
      // Whatever restic left behind in its group (an ssh for sftp:) goes with it.
      killGroup(child.pid, 'SIGKILL');
      forget();
      const timedOut = call.timeoutMs !== undefined && call.timeoutMs > 0 && grace !== undefined && !call.signal?.aborted && !overflow;
      resolve({
        code,
        signal: overflow ? `${signal ?? 'SIGINT'} (printed more than ${max} bytes)` : timedOut ? `${signal ?? 'SIGINT'} (no end within ${call.timeoutMs! / 1000} s)` : signal,
        stdout: Buffer.concat(out).toString(),
        stderr: err.toString(),
      });
    });
  });
}

// The repository's address without a user:password@ part (rest:https://u:p@host/ → rest:https://***@host/).
export function redactRepository(repository: string): string {
  return repository.replace(/(\/\/)[^/@\s]*@/g, '$1***@');
}

// restic's failure in one line, naming the repository, with what to do when it is well known.
export function resticError(repo: Repository, what: string, result: ResticResult): SshRSyncError {
  const address = redactRepository(repo.repository);
  const lines = result.stderr.split('\n').map((l) => l.trim()).filter(Boolean);
  const fatal = lines.find((l) => l.startsWith('Fatal:')) ?? lines.find((l) => LOCKED.test(l)) ?? lines.at(-1) ?? '';
  const said = oneLineOf(fatal.replace(/^Fatal:\s*/, '')).replaceAll(repo.repository, address);
  const how = result.signal ? `was killed by ${result.signal}` : `exited with code ${result.code}`;
  let hint = '';
  if (/unable to open config file|Is there a repository at the following location|repository does not exist/i.test(result.stderr)) hint = `: there is no restic repository there; create it once with \`restic -r ${address} init\` (the admin's job; the plugin never creates one)`;
  else if (/wrong password|no key found/i.test(result.stderr)) hint = `: the password in ${repo.passwordFile} does not open it`;
  else if (/no space left/i.test(result.stderr)) hint = ': the repository\'s disk is full';
  else if (LOCKED.test(result.stderr)) {
    const holder = /already locked (?:exclusively )?by PID (\d+) on (\S+)/i.exec(result.stderr);
    const who = holder ? `PID ${holder[1]} on ${holder[2]}` : 'its PID and host are in the message';
    hint = `: another restic holds its lock (the next run tries again); if that restic is no longer running (${who}), remove the lock with \`restic -r ${address} unlock\`, never while it runs`;
  }
  return new SshRSyncError('EINTERNAL', `${repo.name} (${address}): restic ${what} ${how}${said ? `: ${said}` : ''}${hint}`);
}

function oneLineOf(text: string): string {
  const line = text.replace(/\s+/g, ' ').trim();
  return line.length > 300 ? `${line.slice(0, 300)}…` : line;
}
