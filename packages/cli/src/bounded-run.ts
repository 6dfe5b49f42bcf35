// Runs a short helper program (getent, systemd-analyze) the way every subprocess here runs: no
// shell, its own process group killed on timeout, output bounded. For the admin's set-up helpers.
import { spawn } from 'node:child_process';
import { killGroup } from '@ssh-r-sync/core/internal';

export interface BoundedResult {
  /** null when the program could not be started (ENOENT: not installed) or was killed. */
  exitCode: number | null;
  stdout: string;
  stderr: string;
  /** Set when the program is not there or could not be started. */
  missing: boolean;
  timedOut: boolean;
}

// Runs FILE ARGS with a time and size limit; never throws.
export function runBounded(file: string, args: string[], options: { timeoutMs?: number; maxBytes?: number } = {}): Promise<BoundedResult> {
  const timeoutMs = options.timeoutMs ?? 5000;
  const maxBytes = options.maxBytes ?? 64 * 1024;
  return new Promise((resolve) => {
    const child = spawn(file, args, { stdio: ['ignore', 'pipe', 'pipe'], detached: true, env: { ...process.env, LC_ALL: 'C', SYSTEMD_COLORS: '0', SYSTEMD_PAGER: '' } });
    const out: Record<'stdout' | 'stderr', string> = { stdout: '', stderr: '' };
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      killGroup(child.pid);
    }, timeoutMs);
    for (const name of ['stdout', 'stderr'] as const) {
      child[name].setEncoding('utf8');
      child[name].on('data', (chunk: string) => {
        out[name] += chunk;
        if (out[name].length > maxBytes) {
          out[name] = out[name].slice(0, maxBytes);
          killGroup(child.pid);
        }
      });
    }
    // 'close' may follow 'error'; the first settles the promise.
    child.once('error', () => {
      clearTimeout(timer);
      resolve({ exitCode: null, ...out, missing: true, timedOut: false });
    });
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ exitCode: code, ...out, missing: false, timedOut });
    });
  });
}
