// Small pieces both commands share: option parsers, printing, exit codes, signals.
import { InvalidArgumentError, type Command } from 'commander';
import { counts, runResultJson } from './format.js';
import { exitCodeFor, isSshRSyncError, oneLine, parseDuration, type Outcome } from '@ssh-r-sync/core/internal';

// Commander collector for repeatable options.
export function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

// Commander parser for every time option: the shared duration syntax (90s, 90m, 2h30m, 36h,
// 14d; a plain number is seconds), as a number of seconds, >= 0.
export function seconds(value: string): number {
  return durationMs(value) / 1000;
}

// Parses a positive duration in seconds (a limit that must exist, e.g. for handshake steps).
export function positiveSeconds(value: string): number {
  const number = seconds(value);
  if (number === 0) throw new InvalidArgumentError('expected a duration above 0 (a handshake step always has a limit)');
  return number;
}

// Commander parser: a duration in milliseconds; a usage error in one line when unreadable.
export function durationMs(value: string): number {
  try {
    return parseDuration(value);
  } catch (error) {
    throw new InvalidArgumentError(oneLine(error).replace(/^cannot read duration "[^"]*": /, ''));
  }
}

// Parses a TCP port number.
export function port(value: string): number {
  const number = Number(value);
  if (!/^\d+$/.test(value) || number < 1 || number > 65535) throw new InvalidArgumentError('expected a port number (1-65535)');
  return number;
}

// Usage errors print one line and exit 2; --help and --version exit 0.
export function configureProgram(program: Command, prefix: string): Command {
  return program
    .exitOverride()
    .configureOutput({
      writeErr: (text) => process.stderr.write(text.startsWith('error:') ? `${prefix}: ${text}` : text),
      outputError: (text, write) => write(text.replace(/^error: /, 'error: ')),
    })
    .showSuggestionAfterError();
}

// Runs a program's main; maps thrown errors to one line on stderr and an exit code.
export async function runMain(prefix: string, main: () => Promise<number>): Promise<never> {
  guardStdout(prefix);
  let code: number;
  try {
    code = await main();
  } catch (error) {
    code = reportError(prefix, error);
  }
  process.exit(code);
}

// `cmd --help | head` closes the pipe early: that is the reader's choice, not an error (no stack
// trace). Any other write error on stdout (a full disk under --json > file) is one line and exit 1.
// Listening does not take the error from others: the receiver's protocol channel on stdout still
// sees it and ends the run its own way.
function guardStdout(prefix: string): void {
  process.stdout.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code === 'EPIPE') return;
    process.stderr.write(`${prefix}: error: cannot write to standard output: ${oneLine(error)}\n`);
    process.exitCode = 1;
  });
}

// Prints an error as one line (plus its details, if any) and returns its exit code.
export function reportError(prefix: string, error: unknown): number {
  const commander = error as { code?: string; exitCode?: number };
  if (typeof commander.code === 'string' && commander.code.startsWith('commander.')) {
    return commander.code === 'commander.helpDisplayed' || commander.code === 'commander.version' || commander.exitCode === 0 ? 0 : 2;
  }
  process.stderr.write(`${prefix}: error: ${oneLine(error)}\n`);
  if (isSshRSyncError(error) && error.details) process.stderr.write(indent(error.details));
  if (!isSshRSyncError(error) && process.env.SSH_R_SYNC_DEBUG && error instanceof Error) process.stderr.write(`${error.stack}\n`);
  return exitCodeFor(error);
}

// Prints how a run ended: a line on stderr for people, an object on stdout with --json.
export function printOutcome(prefix: string, outcome: Outcome, extra: { name: string; json: boolean; snapshot?: string | null }): void {
  if (extra.json) {
    const json = runResultJson({
      status: outcome.status,
      exitCode: outcome.exitCode,
      committed: outcome.committed === true,
      name: extra.name || null,
      snapshot: extra.snapshot ?? null,
      files: outcome.rsync?.files ?? null,
      bytes: outcome.rsync?.bytes ?? null,
      durationMs: outcome.durationMs,
      rsyncExitCode: outcome.rsync?.exitCode ?? null,
      message: outcome.message ?? null,
    });
    process.stdout.write(`${JSON.stringify(json)}\n`);
  }
  if (outcome.status === 'success') {
    process.stderr.write(`${prefix}: backup of ${extra.name} done${counts(outcome.rsync?.files, outcome.rsync?.bytes)} in ${(outcome.durationMs / 1000).toFixed(1)} s\n`);
  } else if (outcome.status === 'skipped') {
    process.stderr.write(`${prefix}: skipped: ${outcome.message}\n`);
  } else {
    process.stderr.write(`${prefix}: error: ${outcome.message}\n`);
    const details = outcome.error && isSshRSyncError(outcome.error) ? outcome.error.details : undefined;
    if (details) process.stderr.write(indent(details));
  }
}

function indent(text: string): string {
  return `${text.trimEnd().replace(/^/gm, '  ')}\n`;
}

// First SIGINT/SIGTERM/SIGHUP stops the run (cleanup and done hooks still run); a second one kills it.
export function onSignals(stop: (signal: string) => void, kill: (signal: string) => void): () => void {
  let count = 0;
  const handler = (signal: NodeJS.Signals) => {
    count += 1;
    if (count === 1) stop(signal);
    else kill(signal);
  };
  const signals: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];
  for (const signal of signals) process.on(signal, handler);
  return () => {
    for (const signal of signals) process.off(signal, handler);
  };
}
