// Helpers for attack tests (test/attacks.test.ts): live child processes whose output can be
// awaited while they run, scripted protocol peers, strangers on TCP ports, a /proc scanner
// (command lines, environments, parents) and byte-for-byte snapshots of directory trees.
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync, readdirSync, readlinkSync, lstatSync, existsSync } from 'node:fs';
import { createServer, connect, type AddressInfo, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { repoRoot, recvBin } from './cli.js';

// ------------------------------------------------------------------------------------------
// Live processes.

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** Milliseconds from spawn to exit. */
  ms: number;
}

export interface LiveProcess {
  readonly child: ChildProcessWithoutNullStreams;
  readonly pid: number;
  readonly started: number;
  stdout(): string;
  stderr(): string;
  /** Resolves with the first match of `pattern` on stderr (or stdout with `from: 'stdout'`); rejects after ms or on exit. */
  waitFor(pattern: RegExp, ms: number, from?: 'stdout' | 'stderr'): Promise<RegExpMatchArray>;
  readonly exited: Promise<Exit>;
  write(data: string | Buffer): void;
  end(data?: string | Buffer): void;
  kill(signal?: NodeJS.Signals): void;
}

// Spawns `node script args…` (or any program with `program`) and keeps its output observable.
export function spawnLive(
  script: string,
  args: string[],
  options: { env?: NodeJS.ProcessEnv; program?: string; killAfterMs?: number; cwd?: string } = {},
): LiveProcess {
  const program = options.program ?? process.execPath;
  const argv = options.program ? args : [script, ...args];
  const started = Date.now();
  const child = spawn(program, argv, {
    cwd: options.cwd ?? repoRoot,
    env: { ...process.env, NO_COLOR: '1', ...options.env },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  const listeners = new Set<() => void>();
  const poke = () => listeners.forEach((l) => l());
  child.stdout.on('data', (chunk) => {
    out += chunk;
    poke();
  });
  child.stderr.on('data', (chunk) => {
    err += chunk;
    poke();
  });
  child.stdin.on('error', () => undefined);
  const guard = setTimeout(() => child.kill('SIGKILL'), options.killAfterMs ?? 60_000);
  let done = false;
  const exited = new Promise<Exit>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(guard);
      done = true;
      poke();
      resolve({ code, signal, ms: Date.now() - started });
    });
  });
  return {
    child,
    pid: child.pid!,
    started,
    stdout: () => out,
    stderr: () => err,
    exited,
    waitFor(pattern, ms, from = 'stderr') {
      return new Promise((resolve, reject) => {
        const check = () => {
          const m = (from === 'stderr' ? err : out).match(pattern);
          if (m) return finish(() => resolve(m));
          if (done) finish(() => reject(new Error(`exited before ${pattern} appeared on ${from}; stderr:\n${err}`)));
        };
        const timer = setTimeout(() => finish(() => reject(new Error(`${pattern} did not appear on ${from} within ${ms} ms; stderr:\n${err}`))), ms);
        const finish = (fn: () => void) => {
          clearTimeout(timer);
          listeners.delete(check);
          fn();
        };
        listeners.add(check);
        check();
      });
    },
    write: (data) => void child.stdin.write(data),
    end: (data) => void child.stdin.end(data),
    kill: (signal = 'SIGTERM') => void child.kill(signal),
  };
}

// ------------------------------------------------------------------------------------------
// A scripted client against the real receiver: spawn `ssh-r-sync-recv ARGS ROOT`, then speak.

export function spawnRecv(args: string[], env?: NodeJS.ProcessEnv): LiveProcess {
  return spawnLive(recvBin, args, { env, killAfterMs: 30_000 });
}

export interface SessionFields {
  v?: unknown;
  type?: unknown;
  protocol?: unknown;
  version?: unknown;
  name?: unknown;
  tunnelPort?: unknown;
  key?: unknown;
  options?: unknown;
  [extra: string]: unknown;
}

// A well-formed session message (as an object), with fields replaced by `fields`.
export function session(fields: SessionFields = {}): Record<string, unknown> {
  return {
    v: 1,
    type: 'session',
    protocol: 'ssh-r-sync',
    version: 1,
    name: 'host1',
    tunnelPort: 40000,
    key: randomBytes(32).toString('hex'),
    options: { oneFileSystem: false, fakeSuper: false },
    ...fields,
  };
}

export const line = (value: unknown): string => `${JSON.stringify(value)}\n`;

// ------------------------------------------------------------------------------------------
// Strangers on TCP ports.

export interface Stranger {
  readonly port: number;
  /** Connections accepted so far. */
  readonly accepted: () => number;
  /** Bytes the peers sent us. */
  readonly received: () => Buffer;
  close(): Promise<void>;
}

// A server on 127.0.0.1 that accepts and runs `behave` on each connection.
export async function startStranger(behave: (socket: Socket) => void): Promise<Stranger> {
  let accepted = 0;
  const got: Buffer[] = [];
  const sockets = new Set<Socket>();
  const server: Server = createServer((socket) => {
    accepted += 1;
    sockets.add(socket);
    socket.on('error', () => undefined);
    socket.on('data', (chunk: Buffer) => got.push(chunk));
    socket.on('close', () => sockets.delete(socket));
    behave(socket);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    accepted: () => accepted,
    received: () => Buffer.concat(got),
    close: () =>
      new Promise((resolve) => {
        sockets.forEach((s) => s.destroy());
        server.close(() => resolve());
      }),
  };
}

// A port on 127.0.0.1 where nothing listens (bound and released a moment ago).
export async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

// Connects to 127.0.0.1:port as a stranger, optionally sends `send`, and collects what comes
// back until the peer closes or `ms` passes.
export function probePort(port: number, ms: number, send?: Buffer | string): Promise<{ data: Buffer; closedByPeer: boolean; error?: string }> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    const socket = connect({ host: '127.0.0.1', port });
    let settled = false;
    const finish = (closedByPeer: boolean, error?: string) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      resolve({ data: Buffer.concat(chunks), closedByPeer, ...(error ? { error } : {}) });
    };
    const timer = setTimeout(() => finish(false), ms);
    socket.on('connect', () => {
      if (send !== undefined) socket.write(send);
    });
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.on('end', () => finish(true));
    socket.on('close', () => finish(true));
    socket.on('error', (e) => finish(true, e.message));
  });
}

// ------------------------------------------------------------------------------------------
// /proc.

export interface Proc {
  pid: number;
  ppid: number;
  /** Process group. */
  pgid: number;
  cmdline: string;
  environ: Buffer;
}

// Every process, with its command line (NUL → space) and raw environment (root reads all).
export function processTable(): Proc[] {
  const procs: Proc[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const pid = Number(entry);
    let cmdline = '';
    let environ = Buffer.alloc(0);
    let ppid = -1;
    let pgid = -1;
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (fields[0] === 'Z') continue;
      ppid = Number(fields[1]);
      pgid = Number(fields[2]);
      cmdline = readFileSync(`/proc/${pid}/cmdline`).toString('latin1').replace(/\0/g, ' ').trim();
      environ = readFileSync(`/proc/${pid}/environ`);
    } catch {
      if (ppid === -1) continue;
    }
    procs.push({ pid, ppid, pgid, cmdline, environ });
  }
  return procs;
}

// Processes (other than this one) whose command line or environment contains `needle`.
export function processesUsing(needle: string): string[] {
  return processTable()
    .filter((p) => p.pid !== process.pid && (p.cmdline.includes(needle) || p.environ.includes(needle)))
    .map((p) => `${p.pid}: ${p.cmdline}`);
}

// All descendants of pid (children, grandchildren, …).
export function descendants(pid: number): Proc[] {
  const table = processTable();
  const out: Proc[] = [];
  const want = new Set([pid]);
  for (let grew = true; grew; ) {
    grew = false;
    for (const p of table) {
      if (want.has(p.ppid) && !want.has(p.pid)) {
        want.add(p.pid);
        out.push(p);
        grew = true;
      }
    }
  }
  return out;
}

// Polls `probe` every 50 ms until it returns a truthy value or `ms` passes (then returns the last value).
export async function waitUntil<T>(probe: () => T | Promise<T>, ms: number): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await probe();
    if (value || Date.now() >= deadline) return value;
    await new Promise((r) => setTimeout(r, 50));
  }
}

// A pid that is not in use (that of a process that just ended).
export async function deadPid(): Promise<number> {
  const child = spawn('/bin/true');
  const pid = child.pid!;
  await new Promise((r) => child.on('close', r));
  return existsSync(`/proc/${pid}`) ? deadPid() : pid;
}

// ------------------------------------------------------------------------------------------
// Trees.

// Every entry under dir: relative path → type, mode, owner, size, mtime and content hash (or link target).
export function treeSnapshot(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (rel: string) => {
    const path = rel ? join(dir, rel) : dir;
    const st = lstatSync(path);
    let what = '';
    if (st.isSymbolicLink()) what = `link ${readlinkSync(path)}`;
    else if (st.isFile()) what = `file ${createHash('sha256').update(readFileSync(path)).digest('hex')}`;
    else if (st.isDirectory()) what = 'dir';
    else what = 'other';
    out[rel || '.'] = `${what} mode=${st.mode.toString(8)} uid=${st.uid} gid=${st.gid} size=${st.size} mtime=${st.mtimeMs} ino=${st.ino}`;
    if (st.isDirectory()) for (const entry of readdirSync(path).sort()) walk(rel ? join(rel, entry) : entry);
  };
  if (existsSync(dir)) walk('');
  return out;
}

// Entries under dir (relative paths, recursive), for "nothing was written" checks.
export function listTree(dir: string): string[] {
  return Object.keys(treeSnapshot(dir)).filter((p) => p !== '.');
}
