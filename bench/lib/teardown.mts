// How every bench ends, whatever happened: a failure or a signal becomes a problem, every child
// still running, the sshd and any other process of ours is stopped, the problems are printed.
// A bench, not a test: the exit code says whether the runs worked, never how fast they were.
import { readFileSync } from 'node:fs';
import type { Sshd } from '../../test/helpers/sshd.js';
import { abort, descendants, running } from './runner.mjs';

// Runs `body` (the part of a bench with processes running) and cleans up after it; `problems`
// collects what went wrong, during `body` or here. Returns the exit code: 0, 1 (a problem) or 130
// (stopped by a signal). Processes running already when it is called (e.g. tsx's esbuild
// service, which stays) are left alone.
export async function runThenTearDown(problems: string[], sshd: () => Sshd | undefined, body: () => Promise<void>): Promise<number> {
  const before = new Set(descendants(process.pid));
  try {
    await body();
  } catch (error) {
    problems.push(abort.signal.aborted ? (abort.signal.reason as Error).message : `failed: ${(error as Error).message}`);
  } finally {
    for (const child of running) child.kill('SIGTERM');
    await sshd()?.stop().catch((error: unknown) => problems.push(`stopping sshd: ${(error as Error).message}`));
    const left = descendants(process.pid).filter((pid) => {
      if (before.has(pid)) return false;
      try {
        return !readFileSync(`/proc/${pid}/stat`, 'latin1').includes(') Z '); // exited since the listing
      } catch {
        return false;
      }
    });
    if (left.length) {
      problems.push(`processes left running: ${left.join(', ')} (killed now)`);
      left.forEach((pid) => { try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ } });
    }
  }
  for (const problem of problems) process.stderr.write(`bench: ${problem}\n`);
  if (abort.signal.aborted) return 130;
  return problems.length ? 1 : 0;
}
