// What the benches print and how: one line at a time on stdout, times, sizes, table rows, command
// lines a reader can paste, and the description of the machine the figures were taken on.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import os from 'node:os';
import { join, relative } from 'node:path';
import { repoRoot } from '../../test/helpers/cli.js';
import { shellWord, type Command } from './runner.mjs';

// Prints one line of the report (stdout; problems go to stderr at the end, from each bench's main).
export function say(text: string): void {
  process.stdout.write(`${text}\n`);
}

// Milliseconds as seconds with three decimals: "1.234 s".
export function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(3)} s`;
}

// A byte count in powers of 1024 with one decimal: "20.0 MiB" (plain bytes below 1 KiB).
export function bytesText(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) (v /= 1024), i++;
  return i === 0 ? `${n} B` : `${v.toFixed(1)} ${units[i]}`;
}

// The load averages now (1, 5, 15 min): on a shared machine, the figures' context.
export function loadText(): string {
  return os.loadavg().map((l) => l.toFixed(2)).join(' ');
}

// The CPUs: "2 CPUs (Intel(R) Xeon(R) Processor)".
export function cpusText(): string {
  const cpus = os.cpus();
  return `${cpus.length} CPUs (${cpus[0]?.model ?? '?'})`;
}

// The machine: CPUs, memory and kernel.
export function machineText(): string {
  return `${cpusText()}, ${bytesText(os.totalmem())} RAM, ${os.type()} ${os.release()}`;
}

// The filesystem type that holds `path` (from /proc/self/mounts: the longest matching mount point).
export function fsType(path: string): string {
  try {
    let best = { point: '', type: '?' };
    for (const line of readFileSync('/proc/self/mounts', 'utf8').split('\n')) {
      const [, point, type] = line.split(' ');
      if (point && type && (path === point || path.startsWith(point.endsWith('/') ? point : `${point}/`)) && point.length > best.point.length) best = { point, type };
    }
    return best.type;
  } catch {
    return '?';
  }
}

// The first line a program prints on stdout or stderr (ssh -V uses stderr): its version.
export function firstLine(command: string, args: string[]): string {
  const result = spawnSync(command, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  if (result.error) return `${command}: ${result.error.message}`;
  return `${result.stdout}\n${result.stderr}`.trim().split('\n')[0]!.trim();
}

// The source files of core and cli newer than their compiled output (the benches run dist/).
export function staleBuild(): string[] {
  const stale: string[] = [];
  for (const pkg of ['core', 'cli']) {
    const walk = (dir: string): void => {
      for (const entry of readdirSync(dir, { withFileTypes: true })) {
        const path = join(dir, entry.name);
        if (entry.isDirectory()) walk(path);
        else if (entry.name.endsWith('.ts') && !entry.name.endsWith('.d.ts')) {
          const built = path.replace(`${join('packages', pkg, 'src')}`, join('packages', pkg, 'dist')).replace(/\.ts$/, '.js');
          if (!existsSync(built) || statSync(built).mtimeMs < statSync(path).mtimeMs) stale.push(relative(repoRoot, path));
        }
      }
    };
    walk(join(repoRoot, 'packages', pkg, 'src'));
  }
  return stale;
}

// A table row: the first cell left-aligned, the others right-aligned, each in its width.
export function row(cells: string[], widths: number[]): string {
  return cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ').trimEnd();
}

// A command as a shell line (quoted where needed), with `envVars` in front: what a reader pastes.
export function commandLine(command: Command, envVars: Record<string, string> = {}): string {
  const env = Object.entries(envVars).map(([k, v]) => `${k}=${shellWord(v)}`);
  return [...env, ...[command.file, ...command.args].map(shellWord)].join(' ');
}
