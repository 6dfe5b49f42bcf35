// The transport bench's --breakdown: where ssh-r-sync's fixed cost goes. Medians of the
// start-ups and of an ssh login, then ssh-r-sync's steps, cut out of --debug runs of client and
// receiver by their log lines, and the log of the median run.
import { existsSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { clientBin, recvBin } from '../../test/helpers/cli.js';
import { debugRun } from './compare.mjs';
import { commandLine, loadText, say } from './report.mjs';
import { lastLine, median, type Command, type Run } from './runner.mjs';
import type { Setup, Target } from './transport-setup.mjs';

async function timeMany(setup: Setup, command: Command, n: number, expectCode = 0): Promise<number> {
  const times: number[] = [];
  for (let i = 0; i < n; i++) {
    const result = await setup.run(command);
    if (result.code !== expectCode) throw new Error(`${commandLine(command)} exited ${result.code ?? result.signal}: ${lastLine(result.stderr)}`);
    times.push(result.ms);
  }
  return median(times);
}

// Steps of one ssh-r-sync run, each ending at the first log line that matches (client --debug,
// receiver --debug; the receiver's lines reach the client's stderr through ssh).
const PHASES: [string, RegExp | null][] = [
  ['client start-up: node, imports, daemon config, tunnel listener', /running .*"ssh"/],
  ['ssh login, login shell, receiver start-up and config, hello', /forwarded 127\.0\.0\.1:/],
  ['session message, tunnel check (the proof, in the client process)', /"type":"proven"/],
  ['lock, ready, client hooks, start, rsync.pre; rsync spawned', /ssh-r-sync-recv: running rsync /],
  ['rsync and its --rsh relay start, the command byte arrives', /"command":"rsync"/],
  ['rsync itself (daemon on the client, receiver on the server)', /"type":"served"/],
  ['result, done hooks, bye, ssh and listener teardown, exit', null],
];

function phases(run: Run): { label: string; ms: number }[] {
  const out: { label: string; ms: number }[] = [];
  let previous = 0;
  let from = 0;
  for (const [label, pattern] of PHASES) {
    let at = run.ms;
    if (pattern) {
      const index = run.lines.findIndex((l, i) => i >= from && pattern.test(l.line));
      if (index < 0) return out; // a log line changed: show what was found
      at = run.lines[index]!.ms;
      from = index + 1;
    }
    out.push({ label, ms: at - previous });
    previous = at;
  }
  return out;
}

// Prints the breakdown, each part timed max(5, runs) times: the one-file tree's backups by both
// tools against the start-ups and the login they contain.
export async function breakdown(setup: Setup, tinySource: string, tinyTarget: Target, runs: number): Promise<void> {
  const n = Math.max(5, runs);
  const ssh = (remote: string): Command => ({ file: 'ssh', args: [...setup.sshd.sshArgs(setup.plainKey), remote] });
  const parts: [string, Command, number][] = [
    ['node -e 0 (bare node start-up)', { file: process.execPath, args: ['-e', '0'] }, 0],
    ...(process.env.NODE_EXTRA_CA_CERTS === undefined
      ? []
      : [['node -e 0 with this machine\'s NODE_EXTRA_CA_CERTS', { file: process.execPath, args: ['-e', '0'], env: process.env }, 0] as [string, Command, number]]),
    ['ssh-r-sync --help (client start-up with its imports)', { file: process.execPath, args: [clientBin, '--help'] }, 0],
    ['ssh-r-sync-recv --help (receiver start-up with its imports)', { file: process.execPath, args: [recvBin, '--help'] }, 0],
    ['ssh login running `true` (kex, auth, login shell)', ssh('true'), 0],
  ];
  if (existsSync(join(os.homedir(), '.bashrc'))) parts.push(['bash -c \'. ~/.bashrc\' (bash run by sshd reads it)', { file: 'bash', args: ['-c', '. ~/.bashrc'] }, 0]);
  say('');
  say(`Breakdown (medians of ${n} runs each; load average ${loadText()}):`);
  for (const [label, command, code] of parts) say(`  ${label.padEnd(62)} ${(await timeMany(setup, command, n, code)).toFixed(0).padStart(5)} ms`);
  const plainTiny = await timeMany(setup, setup.plainTool.command(tinySource, tinyTarget), n);
  const srsTiny = await timeMany(setup, setup.srsTool.command(tinySource, tinyTarget), n);
  say(`  ${'plain rsync, no-change backup of 1 file'.padEnd(62)} ${plainTiny.toFixed(0).padStart(5)} ms`);
  say(`  ${'ssh-r-sync, no-change backup of 1 file'.padEnd(62)} ${srsTiny.toFixed(0).padStart(5)} ms`);

  // The same backup with --debug on both sides, n times: its steps (median of each) and the log of the median run.
  const debugRuns: Run[] = [];
  for (let i = 0; i < n; i++) debugRuns.push(await debugRun(setup, tinySource));
  const split = debugRuns.map(phases);
  say('');
  say(`Steps of ssh-r-sync's no-change backup of 1 file (--debug on both sides; medians of ${n} runs, total ${median(debugRuns.map((r) => r.ms)).toFixed(0)} ms):`);
  split[0]!.forEach(({ label }, i) => say(`  ${label.padEnd(62)} ${median(split.map((p) => p[i]?.ms ?? 0)).toFixed(0).padStart(5)} ms`));
  const middle = [...debugRuns].sort((a, b) => a.ms - b.ms)[Math.floor(n / 2)]!;
  say('');
  say(`Log of the median run (ms after the client started; the receiver's lines come through ssh):`);
  for (const { ms, line } of middle.lines) say(`  +${ms.toFixed(0).padStart(5)}  ${line.length > 140 ? `${line.slice(0, 139)}…` : line}`);
  say(`  +${middle.ms.toFixed(0).padStart(5)}  (client exited)`);
}
