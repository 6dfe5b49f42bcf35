// Runs the configured command with the event as JSON on stdin: argv as given (no shell), its own
// process group, killed with it after the timeout, an environment without the receiver's secrets.
// A command is not retried: its exit code is its answer, and it can retry on its own.
import { oneLine, runScript, type Logger } from '@ssh-r-sync/core';
import type { NotifyEvent } from './event.js';

export type CommandResult = { ok: true } | { ok: false; error: string };

/** What the command may print on stdout (it is not read); more is a failure. */
const MAX_STDOUT = 64 * 1024;
/** The receiver's variables a command may need; nothing else of its environment is passed on. */
const PASSED = ['PATH', 'HOME', 'LANG', 'LC_ALL', 'TZ'];

// Runs `argv` with `event` on stdin, bounded by `timeoutMs` and `signal`; never throws.
export async function runCommand(argv: readonly string[], event: NotifyEvent, options: { timeoutMs: number; signal: AbortSignal; logger: Logger }): Promise<CommandResult> {
  const timeout = AbortSignal.timeout(options.timeoutMs);
  const env: Record<string, string> = {};
  for (const key of PASSED) if (process.env[key] !== undefined) env[key] = process.env[key]!;
  env.PATH ??= '/usr/local/bin:/usr/bin:/bin';
  Object.assign(env, { SSH_R_SYNC_NAME: event.host, SSH_R_SYNC_STATUS: event.status, SSH_R_SYNC_SOURCE: event.source });
  try {
    const result = await runScript({
      path: argv[0]!,
      args: argv.slice(1),
      env,
      input: `${JSON.stringify(event)}\n`,
      signal: AbortSignal.any([timeout, options.signal]),
      maxOutputBytes: MAX_STDOUT,
      logger: options.logger,
    });
    if (timeout.aborted) return { ok: false, error: `did not finish within ${options.timeoutMs / 1000} s (killed)` };
    if (options.signal.aborted) return { ok: false, error: 'stopped with the run' };
    if (result.exitCode === 0) return { ok: true };
    return { ok: false, error: result.signal ? `killed by ${result.signal}` : `exited with code ${result.exitCode}` };
  } catch (error) {
    return { ok: false, error: oneLine(error) };
  }
}
