// What dies with a process that is SIGKILLed: every process group it listed with the watchdog,
// and a hook caught in the instant between its start and its listing (found by the token in its
// environment); not the work a listed hook deliberately set free with setsid.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const compiled = fileURLToPath(new URL('../dist/exec/process-group.js', import.meta.url));

function alive(pid: number): boolean {
  try {
    return !readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.startsWith('Z');
  } catch {
    return false;
  }
}

async function waitFor(check: () => boolean, ms: number): Promise<boolean> {
  for (const end = Date.now() + ms; Date.now() < end; await new Promise((r) => setTimeout(r, 50))) if (check()) return true;
  return check();
}

// Runs a node process that starts `script` under guardStart, registers it or not, waits for the
// script to write the pids it wants watched into `pids`, then SIGKILLs itself.
async function killedOwner(dir: string, script: string, register: boolean): Promise<number[]> {
  const pids = join(dir, 'pids');
  const owner = join(dir, 'owner.mjs');
  writeFileSync(
    owner,
    `import { guardStart } from ${JSON.stringify(compiled)};
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
const guard = await guardStart();
const child = spawn('/bin/sh', ['-c', ${JSON.stringify(script)}], { env: { PATH: process.env.PATH, PIDS: ${JSON.stringify(pids)}, ...guard.env }, detached: true, stdio: 'ignore' });
${register ? 'guard.started(child.pid);' : '// killed before the start is registered'}
while (!existsSync(${JSON.stringify(pids + '.done')})) await new Promise((r) => setTimeout(r, 20));
process.kill(process.pid, 'SIGKILL');
`,
  );
  const run = spawn(process.execPath, [owner], { stdio: 'ignore' });
  const ended = await new Promise<NodeJS.Signals | null>((resolve) => run.on('close', (_code, signal) => resolve(signal)));
  assert.equal(ended, 'SIGKILL', 'the owner was killed');
  assert.ok(existsSync(pids), 'the script wrote its pids');
  return readFileSync(pids, 'utf8').trim().split(/\s+/).map(Number);
}

test('a script started but not yet listed when its owner is SIGKILLed dies, and so do its children', { timeout: 60_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'srs-pgroup-'));
  let pids: number[] = [];
  try {
    pids = await killedOwner(dir, 'sleep 300 & echo $$ $! > "$PIDS"; touch "$PIDS.done"; exec sleep 301', false);
    assert.equal(pids.length, 2);
    assert.ok(await waitFor(() => pids.every((pid) => !alive(pid)), 30_000), `left running: ${pids.filter(alive).join(' ')}`);
  } finally {
    for (const pid of pids) if (alive(pid)) process.kill(pid, 'SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a listed script dies with its owner; a job it set free with setsid is left to run', { timeout: 60_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'srs-pgroup-'));
  let pids: number[] = [];
  try {
    // The freed job writes its own pid (setsid forks when its caller leads a group).
    const script = 'setsid sh -c \'echo $$ > "$PIDS.free"; exec sleep 302\' </dev/null >/dev/null 2>&1 & sleep 300 & while [ ! -s "$PIDS.free" ]; do sleep 0.02; done; echo $$ $! $(cat "$PIDS.free") > "$PIDS"; touch "$PIDS.done"; exec sleep 301';
    pids = await killedOwner(dir, script, true);
    assert.equal(pids.length, 3);
    const [leader, child, freed] = pids as [number, number, number];
    assert.ok(await waitFor(() => !alive(leader) && !alive(child), 30_000), 'the listed group died with its owner');
    // The watchdog has done its work once the group is gone; the freed job is still there.
    await new Promise((r) => setTimeout(r, 500));
    assert.ok(alive(freed), 'the job set free with setsid still runs');
  } finally {
    for (const pid of pids) if (alive(pid)) process.kill(pid, 'SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
});
