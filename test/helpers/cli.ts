// Runs the compiled commands as a user would, and writes tiny executables for hook tests.
import { spawn } from 'node:child_process';
import { chmod, mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const repoRoot = fileURLToPath(new URL('../..', import.meta.url));
export const recvBin = join(repoRoot, 'packages/cli/bin/ssh-r-sync-recv.js');
export const clientBin = join(repoRoot, 'packages/cli/bin/ssh-r-sync.js');

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  input?: string;
  timeoutMs?: number;
}

// Runs a node script with arguments; resolves when it exits (killed after timeoutMs).
export function runNode(script: string, args: string[], options: RunOptions = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [script, ...args], {
      cwd: options.cwd ?? repoRoot,
      env: { ...process.env, NO_COLOR: '1', ...options.env },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk) => (stdout += chunk));
    child.stderr.on('data', (chunk) => (stderr += chunk));
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 60_000);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
    child.stdin.on('error', () => {});
    child.stdin.end(options.input ?? '');
  });
}

// Runs a program (no shell) in its own process group with exactly `env`; the whole group is
// SIGKILLed after `timeoutMs` (npm, bash scripts: their children must not outlive the test).
export function runProgram(program: string, args: string[], options: { cwd: string; env: NodeJS.ProcessEnv; timeoutMs: number }): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(program, args, { cwd: options.cwd, env: options.env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk) => (stdout += chunk));
    child.stderr.on('data', (chunk) => (stderr += chunk));
    const timer = setTimeout(() => process.kill(-child.pid!, 'SIGKILL'), options.timeoutMs);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

// Runs `ssh-r-sync-recv` with the given arguments.
export function runRecv(args: string[], options: RunOptions = {}): Promise<RunResult> {
  return runNode(recvBin, args, options);
}

// Writes an executable file (a hook script) and returns its path.
export async function writeScript(dir: string, name: string, body: string): Promise<string> {
  const path = join(dir, name);
  await writeFile(path, body.startsWith('#!') ? body : `#!/bin/sh\n${body}`);
  await chmod(path, 0o755);
  return path;
}

// A fresh temporary directory, removed by the returned cleanup.
export async function tempDir(prefix = 'srs-test-'): Promise<{ dir: string; cleanup: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  return { dir, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

// Command lines of all processes whose cmdline contains `needle` (root sees everyone's).
export async function processesMatching(needle: string): Promise<string[]> {
  const { readdir, readFile } = await import('node:fs/promises');
  const found: string[] = [];
  for (const pid of await readdir('/proc')) {
    if (!/^\d+$/.test(pid) || Number(pid) === process.pid) continue;
    const cmdline = (await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '')).replace(/\0/g, ' ').trimEnd();
    if (cmdline.includes(needle)) found.push(`${pid}: ${cmdline}`);
  }
  return found;
}

// Pids of the receivers (node running ssh-r-sync-recv) of host `name`; not the login shell that
// sshd started them with, whose command line names them too.
export async function receiverPids(name: string): Promise<number[]> {
  const lines = await processesMatching(recvBin);
  return lines
    .map((line) => ({ pid: Number(line.slice(0, line.indexOf(':'))), cmdline: line.slice(line.indexOf(':') + 2) }))
    .filter(({ cmdline }) => cmdline.startsWith(`${process.execPath} ${recvBin} `) && cmdline.includes(` --name ${name} `))
    .map(({ pid }) => pid);
}

// A backup case under `base`: src/ with one file, root/ (0700), and node_modules/@ssh-r-sync/
// linking the workspace's packages named, so that a config beside it finds plugins by name.
export async function backupCase(base: string, packages: string[]): Promise<{ base: string; src: string; root: string }> {
  const src = join(base, 'src');
  await mkdir(src, { recursive: true });
  await writeFile(join(src, 'a.txt'), 'alpha\n');
  await mkdir(join(base, 'root'), { mode: 0o700 });
  await mkdir(join(base, 'node_modules', '@ssh-r-sync'), { recursive: true });
  for (const name of packages) await symlink(join(repoRoot, 'packages', name), join(base, 'node_modules', '@ssh-r-sync', name));
  return { base, src, root: join(base, 'root') };
}
