// The host lock (SPEC §4 rule 5): a kernel lock per host name, exact under contention, released by
// the kernel when its holder dies (even by SIGKILL), waits that are bounded and abortable, at most
// four waiters per host, and no symlink followed out of the backup root. Contenders are separate
// node processes calling core's lockHost (the lock is between processes); the last tests drive
// the real receiver.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { chownSync, existsSync, linkSync, readFileSync, readdirSync, statSync, symlinkSync } from 'node:fs';
import { chmod, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { createInterface } from 'node:readline';
import { lockHost, silentLogger, withHostLock } from '@ssh-r-sync/core/internal';
import { recvBin, repoRoot, tempDir, writeScript } from './helpers/cli.js';
import { deadPid, waitUntil } from './helpers/fake-peer.js';

const NAME = 'h';
const CORE = pathToFileURL(join(repoRoot, 'packages/core/dist/internal.js')).href;

let dir: string;
let cleanup: () => Promise<void>;
let contenderScript: string;
let roots = 0;
const spawned: Contender[] = [];

// A contender: `ready` on start; on `go` it calls lockHost and answers `locked PID` or
// `refused MESSAGE`; `abort` aborts its signal, `release` releases (answer `released`); stdin's
// end releases and exits. Its logger writes to stderr.
const CONTENDER = `
import { createInterface } from 'node:readline';
import { createLogger, lockHost } from ${JSON.stringify(CORE)};
const [root, name, wait] = process.argv.slice(2);
const logger = createLogger({ prefix: 'contender' });
const say = (line) => process.stdout.write(line + '\\n');
let release;
let controller;
const lines = createInterface({ input: process.stdin });
lines.on('line', async (line) => {
  if (line === 'go') {
    controller = new AbortController();
    try {
      release = await lockHost({ root, name, waitSeconds: Number(wait), logger, signal: controller.signal });
      say('locked ' + process.pid);
    } catch (error) {
      say('refused ' + error.message);
    }
  } else if (line === 'abort') controller.abort(new Error('aborted by the test'));
  else if (line === 'release') {
    await release();
    release = undefined;
    say('released');
  }
});
lines.on('close', async () => {
  await release?.();
  process.exit(0);
});
say('ready');
`;

class Contender {
  readonly child: ChildProcessWithoutNullStreams;
  readonly exited: Promise<number | null>;
  stderr = '';
  private readonly lines: string[] = [];
  private wake: (() => void) | undefined;

  constructor(root: string, wait: number, prefix: string[] = []) {
    const argv = [...prefix, process.execPath, contenderScript, root, NAME, String(wait)];
    this.child = spawn(argv[0]!, argv.slice(1), { env: { ...process.env, NO_COLOR: '1' } });
    this.child.stderr.on('data', (chunk) => (this.stderr += chunk));
    this.child.stdin.on('error', () => undefined);
    createInterface({ input: this.child.stdout }).on('line', (line) => {
      this.lines.push(line);
      this.wake?.();
    });
    this.exited = new Promise((resolve) => this.child.on('close', (code) => resolve(code)));
    spawned.push(this);
  }

  get pid(): number {
    return this.child.pid!;
  }

  // The next line it says (fails the test if it ends first). One call at a time: a second one
  // pending would take the line the first waits for.
  async next(): Promise<string> {
    let ended = false;
    void this.exited.then(() => {
      ended = true;
      this.wake?.();
    });
    while (this.lines.length === 0) {
      assert.ok(!ended, `contender ${this.pid} ended without an answer; stderr:\n${this.stderr}`);
      await new Promise<void>((resolve) => (this.wake = resolve));
    }
    return this.lines.shift()!;
  }

  // Whether it has said nothing more yet.
  silent(): boolean {
    return this.lines.length === 0;
  }

  send(line: string): void {
    this.child.stdin.write(`${line}\n`);
  }

  async end(): Promise<number | null> {
    this.child.stdin.end();
    return this.exited;
  }
}

// Starts `count` contenders and waits until each is ready.
async function contenders(root: string, count: number, wait = 0): Promise<Contender[]> {
  const all = Array.from({ length: count }, () => new Contender(root, wait));
  for (const c of all) assert.equal(await c.next(), 'ready');
  return all;
}

// The flock(1) processes a contender has started; with `waiting`, only one waiting for the lock
// itself (`flock -w`, that is past its waiter slot) and already flock, not the setpriv before it
// (which sets the parent-death signal, then execs flock). Reads only that process's children (a
// scan of all of /proc is slow on a busy machine).
function flockChildren(pid: number, waiting = false): number[] {
  const read = (path: string) => {
    try {
      return readFileSync(path, 'latin1');
    } catch {
      return '';
    }
  };
  return read(`/proc/${pid}/task/${pid}/children`)
    .split(' ')
    .filter(Boolean)
    .map(Number)
    .filter((child) => {
      const cmdline = read(`/proc/${child}/cmdline`).split('\0');
      return cmdline.includes('/usr/bin/flock') && (!waiting || (cmdline[0] === '/usr/bin/flock' && cmdline.includes('-w')));
    });
}

// Waits until a contender waits in `flock -w`; its pid.
async function waitingIn(c: Contender): Promise<number> {
  const found = await waitUntil(() => flockChildren(c.pid, true)[0], 20_000);
  assert.ok(found, `contender ${c.pid} does not wait in flock -w`);
  return found;
}

// Whether someone holds the kernel lock on the host's lock file (flock(1) is refused it).
function kernelHeld(root: string): boolean {
  return spawnSync('/usr/bin/flock', ['-n', '-E', '75', lockFile(root), 'true']).status === 75;
}

// Whether a process is gone (or a zombie).
function gone(pid: number): boolean {
  try {
    return readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.startsWith('Z');
  } catch {
    return true;
  }
}

// The kernel start time of a process, as a lock record holds it.
function startTime(pid: number): string {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]!;
}

async function newRoot(): Promise<string> {
  const root = join(dir, `root${++roots}`);
  await mkdir(root);
  return root;
}

const locks = (root: string) => join(root, '.ssh-r-sync', 'locks');
const lockFile = (root: string) => join(locks(root), `${NAME}.lock`);
const busy = (pid: number) => `refused another backup of ${NAME} is already running (pid ${pid}); try again later`;

before(async () => {
  ({ dir, cleanup } = await tempDir('srs-lock-'));
  contenderScript = join(dir, 'contender.mjs');
  await writeFile(contenderScript, CONTENDER);
});
after(async () => {
  for (const c of spawned) c.child.kill('SIGKILL');
  await Promise.all(spawned.map((c) => c.exited));
  await cleanup();
});

describe('the host lock', { concurrency: 1 }, () => {
  test('12 contenders racing for a stale lock, 20 rounds: exactly one wins each round, the others are refused naming it', { timeout: 240_000 }, async () => {
    const root = await newRoot();
    await mkdir(locks(root), { recursive: true, mode: 0o700 });
    // Round 1 finds the lock of a dead process; every later round that of the last winner, SIGKILLed.
    let dead = await deadPid();
    await writeFile(lockFile(root), JSON.stringify({ pid: dead, start: '1' }));
    let field = await contenders(root, 12);
    for (let round = 1; round <= 20; round++) {
      for (const c of field) c.send('go');
      const answers = await Promise.all(field.map((c) => c.next()));
      const winners = field.filter((_, i) => answers[i]!.startsWith('locked '));
      assert.equal(winners.length, 1, `round ${round}: one winner, got:\n${answers.join('\n')}`);
      const winner = winners[0]!;
      assert.equal(answers[field.indexOf(winner)], `locked ${winner.pid}`);
      for (const [i, c] of field.entries()) if (c !== winner) assert.equal(answers[i], busy(winner.pid), `round ${round}`);
      assert.match(winner.stderr, new RegExp(`^contender: warn: took over the lock of ${NAME} from dead process ${dead}$`, 'm'), `round ${round}`);
      for (const c of field) if (c !== winner) assert.doesNotMatch(c.stderr, /took over/, `round ${round}: a loser took over`);
      assert.deepEqual(JSON.parse(readFileSync(lockFile(root), 'utf8')), { pid: winner.pid, start: startTime(winner.pid) });
      // The winner dies holding the lock; a fresh contender takes its place.
      winner.child.kill('SIGKILL');
      await winner.exited;
      dead = winner.pid;
      field = [...field.filter((c) => c !== winner), ...(await contenders(root, 1))];
    }
    for (const c of field) assert.equal(await c.end(), 0, c.stderr);
    assert.deepEqual(readdirSync(locks(root)), [`${NAME}.lock`], 'the lock file stays; no waiter slot was needed');
  });

  test('a release empties the lock file: the next holder logs no takeover', async () => {
    const root = await newRoot();
    const [a, b] = await contenders(root, 2);
    a!.send('go');
    assert.equal(await a!.next(), `locked ${a!.pid}`);
    a!.send('release');
    assert.equal(await a!.next(), 'released');
    assert.equal(readFileSync(lockFile(root), 'utf8'), '');
    b!.send('go');
    assert.equal(await b!.next(), `locked ${b!.pid}`);
    assert.doesNotMatch(a!.stderr + b!.stderr, /took over/);
    assert.equal(await a!.end(), 0);
    assert.equal(await b!.end(), 0);
  });

  test('waiting with a bound: the waiter gets the lock when the holder releases, and is refused after the bound if it does not', { timeout: 60_000 }, async () => {
    const root = await newRoot();
    const [holder] = await contenders(root, 1);
    const [patient] = await contenders(root, 1, 60);
    const [hasty] = await contenders(root, 1, 1);
    holder!.send('go');
    assert.equal(await holder!.next(), `locked ${holder!.pid}`);

    const started = Date.now();
    hasty!.send('go');
    assert.equal(await hasty!.next(), busy(holder!.pid));
    assert.ok(Date.now() - started >= 900, `refused after ${Date.now() - started} ms, before its 1 s bound`);

    patient!.send('go');
    await waitingIn(patient!);
    assert.ok(patient!.silent(), 'it waits while the lock is held');
    holder!.send('release');
    assert.equal(await holder!.next(), 'released');
    assert.equal(await patient!.next(), `locked ${patient!.pid}`);
    assert.doesNotMatch(patient!.stderr, /took over/);
    for (const c of [holder!, patient!, hasty!]) assert.equal(await c.end(), 0, c.stderr);
  });

  test('a wait ends on abort, and with the waiter\'s death, leaving no flock process', { timeout: 60_000 }, async () => {
    const root = await newRoot();
    const [holder] = await contenders(root, 1);
    const [aborted, killed] = await contenders(root, 2, 60);
    holder!.send('go');
    assert.equal(await holder!.next(), `locked ${holder!.pid}`);

    aborted!.send('go');
    const waiting = await waitingIn(aborted!);
    aborted!.send('abort');
    assert.equal(await aborted!.next(), 'refused aborted by the test');
    assert.ok(gone(waiting), 'the flock process ended with the abort');
    assert.deepEqual(flockChildren(aborted!.pid), []);

    killed!.send('go');
    const orphan = await waitingIn(killed!);
    killed!.child.kill('SIGKILL');
    await killed!.exited;
    assert.ok(await waitUntil(() => gone(orphan), 20_000), 'the flock process died with its run (parent-death signal)');

    // The holder kept the lock through all of it.
    assert.deepEqual(JSON.parse(readFileSync(lockFile(root), 'utf8')).pid, holder!.pid);
    assert.equal(await aborted!.end(), 0);
    assert.equal(await holder!.end(), 0);
  });

  test('at most 4 runs wait for a host: a 5th is refused at once, and may wait again once a slot is free', { timeout: 60_000 }, async () => {
    const root = await newRoot();
    const [holder] = await contenders(root, 1);
    const waiters = await contenders(root, 5, 60);
    holder!.send('go');
    assert.equal(await holder!.next(), `locked ${holder!.pid}`);
    for (const w of waiters.slice(0, 4)) {
      w.send('go');
      await waitingIn(w);
    }
    const fifth = waiters[4]!;
    fifth.send('go');
    assert.equal(await fifth.next(), `refused too many runs of ${NAME} are waiting for its lock (4); try again later`);
    assert.ok(waiters.slice(0, 4).every((w) => w.silent()), 'the four still wait');

    // One waiter gives up: the fifth may now wait, and gets the lock in its turn.
    waiters[0]!.send('abort');
    assert.equal(await waiters[0]!.next(), 'refused aborted by the test');
    fifth.send('go');
    await waitingIn(fifth);
    holder!.send('release');
    assert.equal(await holder!.next(), 'released');
    // The lock passes from waiter to waiter, one at a time.
    const answered = new Set<Contender>();
    const pending = new Map(waiters.slice(1).map((w) => [w, w.next().then((answer) => (answered.add(w), answer))]));
    while (pending.size > 0) {
      const [w, answer] = await Promise.race([...pending].map(async ([w, next]) => [w, await next] as const));
      pending.delete(w);
      assert.equal(answer, `locked ${w.pid}`);
      assert.equal(JSON.parse(readFileSync(lockFile(root), 'utf8')).pid, w.pid);
      assert.ok([...pending.keys()].every((other) => !answered.has(other)), 'only one holder at a time');
      w.send('release');
      assert.equal(await w.next(), 'released');
    }
    for (const c of [holder!, ...waiters]) assert.equal(await c.end(), 0, c.stderr);
  });

  test('a live process named by a lock file it does not hold (an older ssh-r-sync) is respected until it ends', { timeout: 60_000 }, async () => {
    const root = await newRoot();
    await mkdir(locks(root), { recursive: true });
    const old = spawn('sleep', ['60']);
    try {
      await writeFile(lockFile(root), JSON.stringify({ pid: old.pid, start: startTime(old.pid!) }));
      const [refused] = await contenders(root, 1);
      const [patient] = await contenders(root, 1, 60);
      refused!.send('go');
      assert.equal(await refused!.next(), busy(old.pid!));
      patient!.send('go');
      // It holds the kernel lock while it polls the old holder.
      assert.ok(await waitUntil(() => kernelHeld(root), 20_000), 'the patient run took the kernel lock');
      assert.ok(patient!.silent(), 'and waits for the old holder');
      old.kill('SIGKILL');
      assert.equal(await patient!.next(), `locked ${patient!.pid}`);
      assert.match(patient!.stderr, new RegExp(`took over the lock of ${NAME} from dead process ${old.pid}`));
      for (const c of [refused!, patient!]) assert.equal(await c.end(), 0, c.stderr);
    } finally {
      old.kill('SIGKILL');
    }
  });

  test('run as root on a root of another user, it gives the lock directories and files to that user, who can then lock', async () => {
    const root = await newRoot();
    const uid = 4242; // no such user is needed: the ids are what counts
    chownSync(root, uid, uid);
    await chmod(dir, 0o711); // the other user must reach the contender script and the root
    const release = await lockHost({ root, name: NAME, waitSeconds: 0, logger: silentLogger });
    await release();
    for (const path of [join(root, '.ssh-r-sync'), locks(root), lockFile(root)]) {
      const st = statSync(path);
      assert.deepEqual([st.uid, st.gid], [uid, uid], path);
    }
    const other = new Contender(root, 0, ['setpriv', `--reuid=${uid}`, `--regid=${uid}`, '--clear-groups']);
    assert.equal(await other.next(), 'ready');
    other.send('go');
    assert.equal(await other.next(), `locked ${other.pid}`);
    assert.equal(await other.end(), 0, other.stderr);
  });

  test('no symlink or hard link below the root is followed: an error, nothing written outside the root', async () => {
    const outside = join(dir, 'outside');
    await mkdir(outside, { recursive: true });
    const victim = join(outside, 'victim');
    await writeFile(victim, 'precious\n');
    const attempt = (root: string) => lockHost({ root, name: NAME, waitSeconds: 0, logger: silentLogger });

    // The lock file: a symlink to a file outside, a dangling one, a hard link.
    for (const [plant, refusal] of [
      [(path: string) => symlinkSync(victim, path), /cannot open the lock file .*h\.lock: it is a symlink; remove it/],
      [(path: string) => symlinkSync(join(outside, 'new'), path), /it is a symlink; remove it/],
      [(path: string) => linkSync(victim, path), /refused the lock file .*h\.lock: it is not a plain file with one link; remove it/],
    ] as const) {
      const root = await newRoot();
      await mkdir(locks(root), { recursive: true });
      plant(lockFile(root));
      await assert.rejects(attempt(root), refusal);
    }
    // The locks directory, and the state directory above it.
    for (const sub of [['.ssh-r-sync', 'locks'], ['.ssh-r-sync']]) {
      const root = await newRoot();
      await mkdir(join(root, ...sub.slice(0, -1)), { recursive: true });
      symlinkSync(outside, join(root, ...sub));
      await assert.rejects(attempt(root), new RegExp(`refused the host lock: .*${sub.join('/').replace('.', '\\.')} is a symlink or not a directory; remove it`));
    }
    // A waiter slot.
    const root = await newRoot();
    const [holder] = await contenders(root, 1);
    holder!.send('go');
    assert.equal(await holder!.next(), `locked ${holder!.pid}`);
    symlinkSync(victim, join(locks(root), `${NAME}.wait.0`));
    await assert.rejects(lockHost({ root, name: NAME, waitSeconds: 5, logger: silentLogger }), /cannot open the lock file .*h\.wait\.0: it is a symlink/);
    assert.equal(await holder!.end(), 0);

    assert.deepEqual(readdirSync(outside).sort(), ['victim']);
    assert.equal(readFileSync(victim, 'utf8'), 'precious\n');
  });
});

describe('the host lock through ssh-r-sync-recv --local', { concurrency: 1 }, () => {
  interface Run {
    pid: number;
    exited: Promise<{ code: number | null; stderr: string }>;
  }
  const recv = (args: string[], prefix: string[] = []): Run => {
    const argv = [...prefix, process.execPath, recvBin, ...args];
    const child = spawn(argv[0]!, argv.slice(1), { env: { ...process.env, NO_COLOR: '1' }, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (chunk) => (stderr += chunk));
    const guard = setTimeout(() => child.kill('SIGKILL'), 60_000);
    return {
      pid: child.pid!,
      exited: new Promise((resolve) =>
        child.on('close', (code) => {
          clearTimeout(guard);
          resolve({ code, stderr });
        }),
      ),
    };
  };
  // A handshake hook (it runs with the lock held) that says it started, then waits for `stop`.
  async function gate(base: string): Promise<{ hook: string; started: string; stop: string }> {
    const started = join(base, 'started');
    const stop = join(base, 'stop');
    // It also ends when the test's folder is gone, so that a failed test leaves nothing running.
    const hook = await writeScript(base, 'gate', `echo $$ >> ${started}\nwhile [ ! -e ${stop} ] && [ -d ${base} ]; do sleep 0.05; done\n`);
    return { hook, started, stop };
  }
  async function fixture() {
    const base = await newRoot();
    const src = join(base, 'src');
    const root = join(base, 'root');
    await mkdir(src);
    await mkdir(root, { mode: 0o700 }); // a privileged receiver refuses a root others can open
    await writeFile(join(src, 'a.txt'), 'alpha\n');
    return { base, src, root };
  }

  test('two runs at once with --lock-wait 0: one succeeds, the other exits 1 naming it', { timeout: 90_000 }, async () => {
    const f = await fixture();
    const g = await gate(f.base);
    const args = ['--local', f.src, '--name', NAME, '--lock-wait', '0', '-x', `handshake:${g.hook}`, f.root];
    const runs = [recv(args), recv(args)];
    const first = await Promise.race(runs.map(async (r) => [r, await r.exited] as const));
    const [loser, lost] = first;
    const winner = runs.find((r) => r !== loser)!;
    assert.equal(lost.code, 1, lost.stderr);
    const errors = lost.stderr.split('\n').filter((l) => l.startsWith('ssh-r-sync-recv: error: '));
    assert.deepEqual(errors, [`ssh-r-sync-recv: error: another backup of ${NAME} is already running (pid ${winner.pid}); try again later`], lost.stderr);
    await writeFile(g.stop, '');
    const won = await winner.exited;
    assert.equal(won.code, 0, won.stderr);
    assert.equal(readFileSync(join(f.root, NAME, 'a.txt'), 'utf8'), 'alpha\n');
    assert.equal(readFileSync(g.started, 'utf8').trim().split('\n').length, 1, 'only the winner ran its handshake hook');
  });

  test('a brief holder (a record written after a run\'s session) is waited for: a run with --lock-wait 0 arriving meanwhile is not refused', { timeout: 90_000 }, async () => {
    const f = await fixture();
    let run: Run | undefined;
    await withHostLock({ root: f.root, name: NAME, waitSeconds: 0, logger: silentLogger, brief: true }, async () => {
      run = recv(['--local', f.src, '--name', NAME, '--lock-wait', '0', f.root]);
      // It waits (one of the host's waiter slots is taken), rather than being refused. Every
      // slot is probed: the probe's own brief flock can push the run on to the next slot.
      const locks = join(f.root, '.ssh-r-sync', 'locks');
      const slotTaken = () =>
        readdirSync(locks)
          .filter((file) => file.startsWith(`${NAME}.wait.`))
          .some((file) => spawnSync('flock', ['-n', join(locks, file), 'true']).status === 1);
      let ended = false;
      void run.exited.then(() => (ended = true));
      await waitUntil(() => ended || slotTaken(), 60_000);
      assert.equal(ended, false, 'the run was refused while the brief holder held the lock');
    });
    const done = await run!.exited;
    assert.equal(done.code, 0, done.stderr);
    assert.equal(readFileSync(join(f.root, NAME, 'a.txt'), 'utf8'), 'alpha\n');
  });

  test('a receiver SIGKILLed mid-run: its hook dies with it, and the next run takes its lock over with a log line', { timeout: 90_000 }, async () => {
    const f = await fixture();
    const g = await gate(f.base);
    const killed = recv(['--local', f.src, '--name', NAME, '-x', `handshake:${g.hook}`, f.root]);
    assert.ok(await waitUntil(() => existsSync(g.started), 30_000), 'the first run reached its handshake hook');
    process.kill(killed.pid, 'SIGKILL');
    await killed.exited;
    const hook = Number(readFileSync(g.started, 'utf8').trim());
    try {
      assert.ok(await waitUntil(() => gone(hook), 20_000), 'the hook died with its receiver');
      const next = await recv(['--local', f.src, '--name', NAME, f.root]).exited;
      assert.equal(next.code, 0, next.stderr);
      assert.match(next.stderr, new RegExp(`^ssh-r-sync-recv: warn: took over the lock of ${NAME} from dead process ${killed.pid}$`, 'm'));
    } finally {
      await writeFile(g.stop, '');
    }
  });

  test('an admin\'s `flock NAME.lock CMD` holds the host\'s backups off while CMD runs; a waiting run ends on SIGTERM', { timeout: 60_000 }, async () => {
    const f = await fixture();
    const started = join(f.base, 'held');
    const stop = join(f.base, 'stop');
    const lock = join(f.root, '.ssh-r-sync', 'locks', `${NAME}.lock`);
    await mkdir(join(f.root, '.ssh-r-sync', 'locks'), { recursive: true, mode: 0o700 });
    const admin = spawn('/usr/bin/flock', [lock, 'sh', '-c', `touch ${started}; while [ ! -e ${stop} ]; do sleep 0.05; done`]);
    const adminDone = new Promise((resolve) => admin.on('close', resolve));
    try {
      assert.ok(await waitUntil(() => existsSync(started), 20_000), 'the admin holds the lock');
      const refused = await recv(['--local', f.src, '--name', NAME, f.root]).exited;
      assert.equal(refused.code, 1, refused.stderr);
      assert.match(refused.stderr, new RegExp(`^ssh-r-sync-recv: error: another backup of ${NAME} is already running; try again later$`, 'm'));
      // A waiting run stopped by SIGTERM ends at once, its flock with it.
      const stopped = recv(['--local', f.src, '--name', NAME, '--lock-wait', '60', f.root]);
      const flock = await waitUntil(() => flockChildren(stopped.pid, true)[0], 20_000);
      assert.ok(flock, 'a run with --lock-wait waits');
      process.kill(stopped.pid, 'SIGTERM');
      const end = await stopped.exited;
      assert.equal(end.code, 1, end.stderr);
      assert.match(end.stderr, /^ssh-r-sync-recv: error: .*SIGTERM/m);
      assert.ok(gone(flock), 'its flock ended with it');
      assert.ok(!existsSync(join(f.root, NAME, 'a.txt')));

      const waiting = recv(['--local', f.src, '--name', NAME, '--lock-wait', '60', f.root]);
      assert.ok(await waitUntil(() => flockChildren(waiting.pid, true)[0], 20_000), 'a run with --lock-wait waits');
      await writeFile(stop, '');
      const ran = await waiting.exited;
      assert.equal(ran.code, 0, ran.stderr);
      assert.equal(readFileSync(join(f.root, NAME, 'a.txt'), 'utf8'), 'alpha\n');
    } finally {
      await writeFile(stop, '');
      await adminDone;
    }
  });

  test('without /usr/bin/flock the run ends with one line naming util-linux', { timeout: 60_000 }, async () => {
    const f = await fixture();
    // Only in a private mount namespace of this run: /usr/bin/flock made a non-executable file.
    const run = await recv(['--local', f.src, '--name', NAME, f.root], [
      'unshare', '--mount', '--propagation', 'private', 'sh', '-c', 'mount --bind /dev/null /usr/bin/flock && exec "$@"', 'sh',
    ]).exited;
    assert.equal(run.code, 1, run.stderr);
    assert.match(run.stderr, /^ssh-r-sync-recv: error: locks need \/usr\/bin\/flock, which is missing: install util-linux$/m);
    assert.ok(!existsSync(join(f.root, NAME, 'a.txt')), 'no backup without the lock');
  });
});
