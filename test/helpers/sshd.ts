/**
 * A throwaway OpenSSH server on 127.0.0.1 for tests, the demo and benchmarks.
 *
 * Each server gets a fresh ed25519 host key, its own sshd_config, authorized_keys and pid file in
 * `dir` (`<dir>/sshd_config` is the config path), and a free port. sshd runs as
 * `/usr/sbin/sshd -D -e -f <dir>/sshd_config` in its own process group, with stderr captured.
 * Run `scripts/ensure-system.sh` first if sshd or ssh might be missing.
 *
 * Findings from test/sshd-harness.test.ts (OpenSSH 9.2p1, Debian 12):
 * - With `-R 127.0.0.1:0:host:port` the client prints
 *   `Allocated port N for remote forward to host:port` on stderr at LogLevel INFO (ssh's default),
 *   but NOT at LogLevel=ERROR (this helper's default). A caller that needs the dynamic port must
 *   pass `-o LogLevel=INFO` in `extra` (ssh keeps the FIRST value given for an option, which is
 *   why `extra` goes before the defaults). The server-side forced command gets no hint of the port.
 * - `permitlisten="127.0.0.1:P"` in authorized_keys does NOT allow a dynamic `-R 127.0.0.1:0:...`
 *   request: it is refused ("remote port forwarding failed", ssh exits 255 with
 *   ExitOnForwardFailure=yes). Only `-R 127.0.0.1:P:...` (same host string, same port) passes.
 * - sshd's per-connection children call setsid(), so they are NOT in the listener's process group
 *   and their command lines are rewritten ("sshd: user@notty"). stop() therefore freezes and kills
 *   the listener's whole descendant tree (found through /proc), not just the process group.
 * - Logging in as root runs forced commands through root's login shell (`$SHELL -c`); root's
 *   ~/.bashrc may be slow (pyenv), which shows up in timings.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync, rmSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rename, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

/** One authorized_keys entry. */
export interface AuthorizedKey {
  /** Contents of a .pub file (one line). */
  publicKey: string;
  /** authorized_keys options, e.g. 'restrict,port-forwarding,command="..."'. */
  options?: string;
}

/** Options for startSshd(). */
export interface SshdOptions {
  /** Working dir for keys/config; default: a fresh mkdtemp under os.tmpdir(), removed by stop(). */
  dir?: string;
  /** Account clients log in as; default: the current user (os.userInfo().username). */
  user?: string;
  /** sshd's AllowTcpForwarding; default 'remote'. */
  allowTcpForwarding?: 'no' | 'remote' | 'local' | 'yes';
  /** Extra sshd_config lines, appended after the defaults. */
  extraConfig?: string[];
  /** sshd LogLevel; default 'ERROR'. sshd's stderr (-e) is captured into `log`. */
  logLevel?: string;
  /**
   * bash lines the login shell runs before each session's command, as a ~/.bashrc that prints
   * would (e.g. 'echo hi' or 'echo hi >&2'). sshd gets `SetEnv HOME=<dir>/home` with that file as
   * `<dir>/home/.bashrc`: the real user's dotfiles are not touched. Default: the environment
   * variable SRS_TEST_SHELL_NOISE, so the whole suite can be run against a noisy server shell.
   */
  shellStartup?: string;
}

/** A running throwaway sshd. */
export interface Sshd {
  readonly port: number;
  readonly host: '127.0.0.1';
  readonly dir: string;
  readonly user: string;
  /** A known_hosts file pinning this server's host key for [127.0.0.1]:port. */
  readonly knownHostsFile: string;
  /** sshd's captured stderr so far (the last 256 KiB). */
  readonly log: () => string;
  /** Replaces the authorized_keys file (0600) with these keys. Takes effect for the next connection. */
  setAuthorizedKeys(keys: AuthorizedKey[]): Promise<void>;
  /**
   * ssh argv (without the program) that logs into this server as `user` with the given private key,
   * pinned host key, BatchMode, no ~/.ssh/config influence (-F /dev/null),
   * KexAlgorithms=curve25519-sha256 (faster), IdentitiesOnly. Destination last: `user@127.0.0.1`
   * (append the remote command after it). `extra` is placed before the defaults, so `-o K=V` in
   * `extra` overrides them (ssh uses the first value it sees for an option).
   */
  sshArgs(identityFile: string, extra?: string[]): string[];
  /**
   * ssh -o options only (each as separate '-o', 'K=V' entries) for the same settings, plus '-p', port;
   * for callers that build their own destination. Does not include `-F /dev/null`.
   */
  sshOptions(identityFile: string): string[];
  /** SIGKILLs sshd and all its per-connection children, waits for them, removes dir if we created it; idempotent. */
  stop(): Promise<void>;
}

const SSHD = '/usr/sbin/sshd';
const HOST = '127.0.0.1';
const LOG_LIMIT = 256 * 1024;
const START_TIMEOUT_MS = 10_000;
const STOP_TIMEOUT_MS = 5_000;
const MAX_ATTEMPTS = 5;
const BIND_RACE = /Address already in use|Cannot bind any address/;

/** Listener pid -> temp dir to remove, of servers not stopped yet; killed synchronously on process exit. */
const running = new Map<number, string | undefined>();
let exitHookInstalled = false;

/** Generates an ed25519 key pair (no passphrase) at `path` and `path.pub`; returns the public key line. */
export async function makeKey(path: string, comment = 'ssh-r-sync-test'): Promise<string> {
  await run('/usr/bin/ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', comment, '-f', path]);
  return (await readFile(`${path}.pub`, 'utf8')).trim();
}

/** Starts a throwaway sshd on 127.0.0.1 and resolves once it answers with an SSH banner. */
export async function startSshd(options: SshdOptions = {}): Promise<Sshd> {
  const user = options.user ?? os.userInfo().username;
  const ownDir = options.dir === undefined;
  const dir = options.dir ?? (await mkdtemp(path.join(os.tmpdir(), 'ssh-r-sync-sshd-')));
  try {
    await mkdir(dir, { recursive: true, mode: 0o700 });
    // sshd started as root refuses to run without its privilege separation directory.
    if (process.getuid?.() === 0) await mkdir('/run/sshd', { recursive: true, mode: 0o755 });

    const hostKey = path.join(dir, 'ssh_host_ed25519_key');
    await rm(hostKey, { force: true });
    await rm(`${hostKey}.pub`, { force: true });
    const hostPublicKey = (await makeKey(hostKey, 'ssh-r-sync-test-host')).split(/\s+/).slice(0, 2).join(' ');
    const authorizedKeysFile = path.join(dir, 'authorized_keys');
    await writeFile(authorizedKeysFile, '', { mode: 0o600 });
    const configFile = path.join(dir, 'sshd_config');
    const knownHostsFile = path.join(dir, 'known_hosts');
    const penalties = await hasPerSourcePenalties();
    const shellHome = await writeShellStartup(dir, user, options.shellStartup ?? process.env.SRS_TEST_SHELL_NOISE);
    const deadline = Date.now() + START_TIMEOUT_MS; // for all attempts together

    for (let attempt = 1; ; attempt++) {
      const port = await freePort();
      await writeFile(
        configFile,
        sshdConfig({ ...options, user, dir, port, hostKey, authorizedKeysFile, penalties, shellHome }),
        { mode: 0o600 },
      );
      const server = spawnSshd(configFile, ownDir ? dir : undefined);
      try {
        await waitReady(server, port, deadline);
      } catch (err) {
        killTreeSync(server.child.pid);
        await server.exited;
        running.delete(server.child.pid ?? -1);
        if (!(err instanceof BindRaceError)) throw err;
        if (attempt < MAX_ATTEMPTS) continue;
        throw new Error(`${err.message}\n(gave up after ${MAX_ATTEMPTS} ports that were taken before sshd could bind them)`);
      }
      server.child.unref(); // a forgotten server must not keep node alive; the exit hook kills it
      (server.child.stderr as net.Socket | null)?.unref();
      await writeFile(knownHostsFile, `[${HOST}]:${port} ${hostPublicKey}\n`, { mode: 0o600 });
      return makeHandle({ server, port, dir, ownDir, user, knownHostsFile, authorizedKeysFile });
    }
  } catch (err) {
    if (ownDir) await rm(dir, { recursive: true, force: true });
    throw err;
  }
}

interface Spawned {
  child: ChildProcess;
  log: () => string;
  exited: Promise<void>;
  stderrClosed: Promise<void>;
  spawnError: () => Error | undefined;
}

interface ConfigInput extends SshdOptions {
  user: string;
  dir: string;
  port: number;
  hostKey: string;
  authorizedKeysFile: string;
  penalties: boolean;
  shellHome: string | undefined;
}

// bash (Debian's, built with SSH_SOURCE_BASHRC) runs ~/.bashrc before a command sshd gives it,
// even when not interactive: a throwaway HOME holds the startup lines.
async function writeShellStartup(dir: string, user: string, lines: string | undefined): Promise<string | undefined> {
  if (!lines) return undefined;
  const shell = readFileSync('/etc/passwd', 'utf8').split('\n').find((l) => l.startsWith(`${user}:`))?.split(':')[6] ?? '';
  if (!shell.endsWith('/bash')) throw new Error(`shellStartup needs bash as ${user}'s login shell, not ${shell || 'none'}`);
  const home = path.join(dir, 'home');
  await mkdir(home, { recursive: true, mode: 0o700 });
  await writeFile(path.join(home, '.bashrc'), `${lines}\n`, { mode: 0o644 });
  return home;
}

function sshdConfig(c: ConfigInput): string {
  const lines = [
    `ListenAddress ${HOST}`,
    `Port ${c.port}`,
    `HostKey ${quote(c.hostKey)}`,
    `PidFile ${quote(path.join(c.dir, 'sshd.pid'))}`,
    `AuthorizedKeysFile ${quote(c.authorizedKeysFile)}`,
    'UsePAM no',
    'StrictModes no',
    'PasswordAuthentication no',
    'KbdInteractiveAuthentication no',
    'PubkeyAuthentication yes',
    `AllowUsers ${c.user}`,
    `AllowTcpForwarding ${c.allowTcpForwarding ?? 'remote'}`,
    'AllowStreamLocalForwarding no',
    'AllowAgentForwarding no',
    'X11Forwarding no',
    'PermitTTY no',
    'PermitUserRC no',
    'PermitUserEnvironment no',
    'PrintMotd no',
    // AcceptEnv: not set, so no client environment is accepted (we don't include /etc/ssh/sshd_config).
    `LogLevel ${c.logLevel ?? 'ERROR'}`,
    'MaxStartups 100',
    'PermitRootLogin prohibit-password',
    // OpenSSH >= 9.8 would block 127.0.0.1 for a while after refused logins (tests do that on purpose).
    ...(c.penalties ? ['PerSourcePenalties no'] : []),
    ...(c.shellHome ? [`SetEnv ${quote(`HOME=${c.shellHome}`)}`] : []),
    ...(c.extraConfig ?? []),
  ];
  return `${lines.join('\n')}\n`;
}

function spawnSshd(configFile: string, ownDir: string | undefined): Spawned {
  const child = spawn(SSHD, ['-D', '-e', '-f', configFile], {
    detached: true,
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let spawnError: Error | undefined;
  child.once('error', (err) => (spawnError = err));
  const tail = new TailBuffer(LOG_LIMIT);
  child.stderr?.on('data', (chunk: Buffer) => tail.push(chunk));
  const stderrClosed = new Promise<void>((resolve) => child.stderr?.once('close', () => resolve()));
  const exited = new Promise<void>((resolve) => {
    if (child.pid === undefined) child.once('error', () => resolve());
    child.once('exit', () => resolve());
  });
  if (child.pid !== undefined) {
    running.set(child.pid, ownDir);
    installExitHook();
  }
  return { child, log: () => tail.toString(), exited, stderrClosed, spawnError: () => spawnError };
}

class BindRaceError extends Error {}

async function waitReady(server: Spawned, port: number, deadline: number): Promise<void> {
  const { child } = server;
  for (;;) {
    const err = server.spawnError();
    if (err) throw new Error(`cannot run ${SSHD}: ${err.message} (run scripts/ensure-system.sh)`);
    if (child.exitCode !== null || child.signalCode !== null) {
      // Let the stderr pipe deliver sshd's last words (bounded: a child could still hold it).
      await Promise.race([server.stderrClosed, new Promise((r) => setTimeout(r, 200))]);
      const msg = `sshd exited (${child.exitCode ?? child.signalCode}) before accepting connections on ${HOST}:${port}; log:\n${server.log()}`;
      throw BIND_RACE.test(server.log()) ? new BindRaceError(msg) : new Error(msg);
    }
    const left = deadline - Date.now();
    if (left <= 0) {
      throw new Error(
        `sshd did not accept connections on ${HOST}:${port} within ${START_TIMEOUT_MS} ms; log:\n${server.log()}`,
      );
    }
    if ((await probe(port, Math.min(left, 1000), server.exited)) && child.exitCode === null) return;
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** True when something on the port sends an SSH banner; false on error, timeout or once `cancel`
 * settles (sshd exited: whatever holds the port is not ours). Sends a client banner back before
 * closing, so that sshd logs the probe at INFO ("Connection closed") rather than ERROR. */
function probe(port: number, timeoutMs: number, cancel: Promise<void>): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: HOST, port });
    let data = '';
    let settled = false;
    const done = (ok: boolean) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.removeAllListeners();
      socket.on('error', () => {});
      if (ok) socket.end('SSH-2.0-ssh-r-sync-probe\r\n');
      else socket.destroy();
      resolve(ok);
    };
    const timer = setTimeout(() => done(false), timeoutMs);
    socket.on('data', (chunk: Buffer) => {
      data += chunk.toString('latin1');
      if (data.includes('\n')) done(data.startsWith('SSH-'));
    });
    socket.on('error', () => done(false));
    socket.on('close', () => done(false));
    void cancel.then(() => done(false));
  });
}

interface HandleInput {
  server: Spawned;
  port: number;
  dir: string;
  ownDir: boolean;
  user: string;
  knownHostsFile: string;
  authorizedKeysFile: string;
}

function makeHandle(h: HandleInput): Sshd {
  let stopping: Promise<void> | undefined;
  const sshOptions = (identityFile: string): string[] =>
    [
      `IdentityFile=${quote(identityFile)}`,
      'IdentitiesOnly=yes',
      `UserKnownHostsFile=${quote(h.knownHostsFile)}`,
      'GlobalKnownHostsFile=/dev/null',
      'StrictHostKeyChecking=yes',
      'BatchMode=yes',
      'PasswordAuthentication=no',
      'KexAlgorithms=curve25519-sha256',
      'ControlMaster=no',
      'ControlPath=none',
      'LogLevel=ERROR',
    ]
      .flatMap((o) => ['-o', o])
      .concat('-p', String(h.port));

  return {
    port: h.port,
    host: HOST,
    dir: h.dir,
    user: h.user,
    knownHostsFile: h.knownHostsFile,
    log: h.server.log,
    async setAuthorizedKeys(keys) {
      const text = keys
        .map((k) => (k.options ? `${k.options} ${k.publicKey.trim()}` : k.publicKey.trim()))
        .join('\n');
      // Write then rename, so that a concurrent login never sees a half-written file.
      const tmp = `${h.authorizedKeysFile}.tmp`;
      await writeFile(tmp, text ? `${text}\n` : '', { mode: 0o600 });
      await rename(tmp, h.authorizedKeysFile);
    },
    sshArgs: (identityFile, extra = []) => [
      '-F',
      '/dev/null',
      ...extra,
      ...sshOptions(identityFile),
      `${h.user}@${HOST}`,
    ],
    sshOptions,
    stop() {
      stopping ??= (async () => {
        const { child } = h.server;
        child.ref();
        const victims = killTreeSync(child.pid);
        await withTimeout(h.server.exited, STOP_TIMEOUT_MS, `sshd (pid ${child.pid}) did not exit after SIGKILL`);
        await waitGone(victims, STOP_TIMEOUT_MS);
        running.delete(child.pid ?? -1);
        if (h.ownDir) await rm(h.dir, { recursive: true, force: true });
      })();
      return stopping;
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Process-tree handling. sshd's per-connection children setsid() into their own sessions, so a
// process-group kill misses them: freeze the listener's group, then freeze every descendant found
// through /proc until no new one appears, then SIGKILL them all. Synchronous, for the exit hook.

interface ProcId {
  pid: number;
  start: string;
}

function readStat(pid: number): { ppid: number; state: string; start: string } | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return { state: fields[0] ?? '?', ppid: Number(fields[1]), start: fields[19] ?? '' };
  } catch {
    return undefined;
  }
}

function childrenByParent(): Map<number, number[]> {
  const map = new Map<number, number[]>();
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return map; // no /proc: only the process group kill below applies
  }
  for (const entry of entries) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = readStat(Number(entry));
    if (!stat) continue;
    const list = map.get(stat.ppid) ?? [];
    list.push(Number(entry));
    map.set(stat.ppid, list);
  }
  return map;
}

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    // already gone
  }
}

/** SIGKILLs `pid`, its process group and all its descendants; returns what was killed. */
function killTreeSync(pid: number | undefined): ProcId[] {
  if (pid === undefined) return [];
  signal(-pid, 'SIGSTOP');
  const tree = new Set([pid]);
  for (let grew = true; grew; ) {
    grew = false;
    const children = childrenByParent();
    for (const parent of [...tree]) {
      for (const c of children.get(parent) ?? []) {
        if (tree.has(c)) continue;
        signal(c, 'SIGSTOP');
        tree.add(c);
        grew = true;
      }
    }
  }
  const victims: ProcId[] = [];
  for (const p of tree) {
    const stat = readStat(p);
    if (stat && p !== pid) victims.push({ pid: p, start: stat.start });
    signal(p, 'SIGKILL');
  }
  signal(-pid, 'SIGKILL');
  return victims;
}

function alive(p: ProcId): boolean {
  const stat = readStat(p.pid);
  return stat !== undefined && stat.start === p.start && stat.state !== 'Z';
}

async function waitGone(procs: ProcId[], timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (procs.some(alive)) {
    if (Date.now() > deadline) {
      const left = procs.filter(alive).map((p) => p.pid);
      throw new Error(`sshd child processes ${left.join(', ')} still running ${timeoutMs} ms after SIGKILL`);
    }
    await new Promise((r) => setTimeout(r, 5));
  }
}

function killAllSync(): void {
  for (const [pid, dir] of running) {
    killTreeSync(pid);
    if (dir) rmSync(dir, { recursive: true, force: true });
  }
  running.clear();
}

// Kills leftover servers when the process exits, also on SIGINT/SIGTERM/SIGHUP (which skip 'exit'):
// the signal is re-raised afterwards if nobody else handles it.
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', killAllSync);
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    const onSignal = () => {
      killAllSync();
      process.removeListener(sig, onSignal);
      if (process.listenerCount(sig) === 0) process.kill(process.pid, sig);
    };
    process.on(sig, onSignal);
  }
}

// ---------------------------------------------------------------------------------------------
// Small utilities.

/** Keeps the last `limit` bytes pushed into it. */
class TailBuffer {
  private chunks: Buffer[] = [];
  private size = 0;
  constructor(private readonly limit: number) {}
  push(chunk: Buffer): void {
    this.chunks.push(chunk);
    this.size += chunk.length;
    while (this.chunks.length > 1 && this.size - this.chunks[0]!.length >= this.limit) {
      this.size -= this.chunks.shift()!.length;
    }
  }
  toString(): string {
    const all = Buffer.concat(this.chunks);
    return all.subarray(Math.max(0, all.length - this.limit)).toString('utf8');
  }
}

/** Quotes a path for sshd_config / ssh -o when it contains whitespace. */
function quote(value: string): string {
  return /[\s"]/.test(value) ? `"${value}"` : value;
}

/** A port that was free a moment ago (bind port 0, read it, close). */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.once('error', reject);
    server.listen(0, HOST, () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

/** Runs a program (no shell) with a 10 s limit; rejects with its stderr on failure. */
function run(file: string, args: string[]): Promise<{ stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = execFile(file, args, { timeout: 10_000, killSignal: 'SIGKILL' }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${file} ${args.join(' ')} failed: ${err.message.trim()}\n${stderr}`));
      else resolve({ stdout, stderr });
    });
    child.stdin?.end();
  });
}

let penaltiesCheck: Promise<boolean> | undefined;
/** Whether this sshd (OpenSSH >= 9.8) knows PerSourcePenalties. `sshd -V` prints the version
 * (older releases print it in their usage text for the unknown flag). */
function hasPerSourcePenalties(): Promise<boolean> {
  penaltiesCheck ??= new Promise((resolve) => {
    execFile(SSHD, ['-V'], { timeout: 5_000 }, (_err, stdout, stderr) => {
      const m = /OpenSSH_(\d+)\.(\d+)/.exec(`${stdout}${stderr}`);
      resolve(m !== null && (Number(m[1]) > 9 || (Number(m[1]) === 9 && Number(m[2]) >= 8)));
    });
  });
  return penaltiesCheck;
}

async function withTimeout<T>(promise: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(message)), ms))),
    ]);
  } finally {
    clearTimeout(timer);
  }
}
