// The transport bench's timed runs: one run of a tool (after `sync`, checked for the files it
// should have transferred), both tools side by side with the order alternating from run to run,
// and the untimed --debug run whose log the warm-up and the breakdown read.
import { execFileSync } from 'node:child_process';
import { seconds, say } from './report.mjs';
import type { Run } from './runner.mjs';
import type { Setup, Target, Tool } from './transport-setup.mjs';

export interface Sample {
  tool: string;
  ms: number;
  files: number | null;
}

export interface Case {
  source: string;
  target: Target;
  runs: number;
  /** Regular files each run must transfer (all of them, or none); a mismatch is a problem. */
  expectFiles: number | undefined;
  /** Runs untimed before each run (e.g. emptying the destination). */
  prepare?: (tool: Tool) => Promise<void>;
}

// One timed run of `tool`; a failed run throws, a wrong number of files becomes a problem.
export async function measure(setup: Setup, tool: Tool, problems: string[], source: string, target: Target, expectFiles: number | undefined): Promise<Sample> {
  execFileSync('sync'); // flush what the previous run wrote, outside the timing
  const result = await setup.run(tool.command(source, target));
  const outcome = tool.outcome(result);
  if ('error' in outcome) throw new Error(outcome.error);
  if (expectFiles !== undefined && outcome.files !== expectFiles) {
    problems.push(`${tool.label} transferred ${outcome.files ?? '?'} files where ${expectFiles} were expected`);
  }
  return { tool: tool.label, ms: result.ms, files: outcome.files };
}

// Runs both tools `runs` times, alternating which goes first (A B, B A, …), printing each run.
export async function compare(setup: Setup, problems: string[], c: Case): Promise<Record<'srs' | 'plain', number[]>> {
  const times = { srs: [] as number[], plain: [] as number[] };
  for (let r = 0; r < c.runs; r++) {
    const order = r % 2 === 0 ? (['srs', 'plain'] as const) : (['plain', 'srs'] as const);
    for (const which of order) {
      const tool = which === 'srs' ? setup.srsTool : setup.plainTool;
      await c.prepare?.(tool);
      const sample = await measure(setup, tool, problems, c.source, c.target, c.expectFiles);
      times[which].push(sample.ms);
      say(`  run ${r + 1}/${c.runs} ${tool.label.padEnd(11)} ${seconds(sample.ms)}  (${sample.files ?? '?'} files transferred)`);
    }
  }
  return times;
}

// One no-change backup of the one-file tree with --debug on both sides (untimed); throws if it failed.
export async function debugRun(setup: Setup, source: string): Promise<Run> {
  const result = await setup.run(setup.debugCommand(source));
  const outcome = setup.srsTool.outcome(result);
  if ('error' in outcome) throw new Error(`--debug run: ${outcome.error}`);
  return result;
}
