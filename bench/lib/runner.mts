// What the benches share to run and time commands: spawn to exit, output kept (bounded), stderr
// lines with their arrival times (for --breakdown), every child stopped on a signal, and small
// statistics. A bench, not a test: no assertion here.
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { repoRoot } from '../../test/helpers/cli.js';

export interface Run {
  ms: number;
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** stderr's lines, each with when it arrived (ms after the spawn). */
  lines: { ms: number; line: string }[];
}

export interface Command {
  file: string;
  args: string[];
  env?: NodeJS.ProcessEnv;
}

/** Output kept per stream (its tail), and stderr lines kept per run. */
const MAX_OUTPUT = 1_000_000;
const MAX_LINES = 10_000;

/** Our children, stopped by the signal handlers. */
export const running = new Set<ChildProcess>();
/** Aborted by the first signal: runs in progress and later ones reject with its reason. */
export const abort = new AbortController();

// Runs a command, timing it from spawn to exit (what a caller waiting for it sees). `env` is the
// environment when the command brings none (NO_COLOR is always set).
export function run(command: Command, env: NodeJS.ProcessEnv = process.env): Promise<Run> {
  if (abort.signal.aborted) return Promise.reject(abort.signal.reason);
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const child = spawn(command.file, command.args, { cwd: repoRoot, env: { ...(command.env ?? env), NO_COLOR: '1' }, stdio: ['ignore', 'pipe', 'pipe'] });
    running.add(child);
    let ms = 0;
    let stdout = '';
    let stderr = '';
    let partial = '';
    const lines: Run['lines'] = [];
    child.stdout.on('data', (chunk: Buffer) => (stdout = (stdout + chunk).slice(-MAX_OUTPUT)));
    child.stderr.on('data', (chunk: Buffer) => {
      const at = performance.now() - started;
      stderr = (stderr + chunk).slice(-MAX_OUTPUT);
      const parts = (partial + chunk.toString()).split('\n');
      partial = parts.pop()!;
      for (const line of parts) if (lines.length < MAX_LINES) lines.push({ ms: at, line });
    });
    child.once('exit', () => (ms = performance.now() - started));
    child.once('error', (error) => {
      running.delete(child);
      reject(new Error(`cannot run ${command.file}: ${error.message}`));
    });
    child.once('close', (code, signal) => {
      running.delete(child);
      if (partial && lines.length < MAX_LINES) lines.push({ ms, line: partial });
      if (abort.signal.aborted) reject(abort.signal.reason);
      else resolve({ ms, code, signal, stdout, stderr, lines });
    });
  });
}

// The first SIGINT/SIGTERM/SIGHUP stops the runs (TERM, then KILL 3 s later); a second exits.
export function installSignalHandlers(say: (text: string) => void): void {
  let signals = 0;
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.on(sig, () => {
      if (++signals > 1) process.exit(130); // the sshd helper's exit hook still kills its servers
      say(`\n${sig}: stopping (again to quit at once)`);
      abort.abort(new Error(`stopped by ${sig}`));
      for (const child of running) child.kill('SIGTERM');
      setTimeout(() => running.forEach((child) => child.kill('SIGKILL')), 3000).unref();
    });
  }
}

// Our own processes still running (children, grandchildren, …; zombies left out), through /proc.
export function descendants(pid: number): number[] {
  const children = new Map<number, number[]>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'latin1');
      const fields = stat.slice(stat.lastIndexOf(')') + 2);
      if (fields.startsWith('Z')) continue;
      const ppid = Number(fields.split(' ')[1]);
      children.set(ppid, [...(children.get(ppid) ?? []), Number(entry)]);
    } catch {
      // gone
    }
  }
  const found: number[] = [];
  const visit = (p: number): void => {
    for (const c of children.get(p) ?? []) (found.push(c), visit(c));
  };
  visit(pid);
  return found;
}

// The median of some numbers (the mean of the middle two for an even count).
export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

// A word as a shell would need it quoted (for the command lines the benches print).
export function shellWord(word: string): string {
  return /^[A-Za-z0-9_./:=,+@%-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
}

// The last line of a command's output, for a one-line failure.
export function lastLine(text: string): string {
  return text.trim().split('\n').pop()?.slice(0, 300) ?? '';
}

// A positive integer option (`--runs 5`), or `fallback` when it is absent; throws a one-line error.
export function positiveInt(name: string, text: string | undefined, fallback: number): number {
  if (text === undefined) return fallback;
  const value = Number(text);
  if (!Number.isInteger(value) || value < 1) throw new Error(`--${name} wants a positive integer, got ${JSON.stringify(text)}`);
  return value;
}
