// Another local user misbehaves on either end of the tunnel during a real backup through sshd:
// hundreds of silent connections plus a stream of garbage ones, to the client's listener L (on
// the client) or to the forwarded port T (on the server, where every connection to T becomes a
// connection from the client's own ssh to L). The backup must succeed and end; afterwards no
// process of the throwaway user is left, and the user is gone (SPEC §4 rule 10).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { chmod, mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { startBackupServer, type BackupServer } from './helpers/backup-server.js';
import { clientBin, tempDir, writeScript } from './helpers/cli.js';
import { closedPort, spawnLive, waitUntil, type LiveProcess } from './helpers/fake-peer.js';
import { tcpEntriesWithPort } from '../packages/core/src/session/tunnel/tcp-table.js';

const IDLE = 200;
const GARBAGE_IN_FLIGHT = 8;
const asRoot = process.getuid?.() === 0;

// The hostile user's program: holds IDLE silent connections to 127.0.0.1:PORT, opening a new one
// for each that is closed, and keeps GARBAGE connections in flight that send 64 random bytes.
// Prints "ready" once IDLE silent connections were opened, and its counts when stdin ends.
const ATTACKER = `
import net from 'node:net';
import { randomBytes } from 'node:crypto';
const [port, idle, garbage] = process.argv.slice(2).map(Number);
const counts = { silentOpened: 0, silentClosed: 0, garbageSent: 0 };
let stopping = false;
function silent() {
  if (stopping) return;
  const socket = net.connect(port, '127.0.0.1').on('error', () => {});
  socket.on('connect', () => { if (++counts.silentOpened === idle) console.log('ready'); });
  socket.on('close', () => { counts.silentClosed++; setTimeout(silent, 20); });
  socket.resume();
}
function junk() {
  if (stopping) return;
  const socket = net.connect(port, '127.0.0.1').on('error', () => {});
  socket.on('connect', () => socket.end(randomBytes(64)));
  socket.on('close', () => { counts.garbageSent++; setTimeout(junk, 5); });
  socket.resume();
}
for (let i = 0; i < idle; i++) silent();
for (let i = 0; i < garbage; i++) junk();
const stop = () => { stopping = true; console.log(JSON.stringify(counts)); process.exit(0); };
process.stdin.on('end', stop).resume();
setTimeout(stop, 120000);
`;

interface LocalUser {
  name: string;
  uid: number;
  gid: number;
}

// Processes (pid: command line) whose real uid is uid.
function processesOf(uid: number): string[] {
  const found: string[] = [];
  for (const pid of readdirSync('/proc').filter((name) => /^\d+$/.test(name))) {
    try {
      const status = readFileSync(`/proc/${pid}/status`, 'utf8');
      if (/^State:\s+Z/m.test(status)) continue;
      if (Number(/^Uid:\s+(\d+)/m.exec(status)?.[1]) === uid) found.push(`${pid}: ${readFileSync(`/proc/${pid}/cmdline`, 'latin1').replace(/\0/g, ' ')}`);
    } catch {
      // gone meanwhile
    }
  }
  return found;
}

// A throwaway local user, srs-XXXXXXXX.
function addUser(): LocalUser {
  const name = `srs-${randomBytes(4).toString('hex')}`;
  execFileSync('useradd', ['-m', '-s', '/usr/sbin/nologin', name]);
  const id = (flag: string) => Number(execFileSync('id', [flag, name], { encoding: 'utf8' }).trim());
  return { name, uid: id('-u'), gid: id('-g') };
}

interface Attacker {
  /** Ends the attacker and resolves with its counts. */
  stop(): Promise<{ silentOpened: number; silentClosed: number; garbageSent: number }>;
}

// Runs the attacker as user against 127.0.0.1:port; resolves once its silent connections are up.
async function attack(user: LocalUser, script: string, port: number, spawned: Set<ChildProcess>): Promise<Attacker> {
  const child = spawn('setpriv', [`--reuid=${user.uid}`, `--regid=${user.gid}`, '--clear-groups', process.execPath, script, String(port), String(IDLE), String(GARBAGE_IN_FLIGHT)], {
    stdio: ['pipe', 'pipe', 'inherit'],
    detached: true,
    cwd: '/',
  });
  spawned.add(child);
  let out = '';
  child.stdout!.on('data', (chunk: Buffer) => (out += chunk));
  const exited = new Promise<void>((resolve) => child.on('close', () => resolve()));
  assert.ok(await waitUntil(() => out.includes('ready') || child.exitCode !== null, 30_000), 'the attacker opened its connections');
  assert.ok(out.includes('ready'), `the attacker exited early (${child.exitCode}): ${out}`);
  return {
    async stop() {
      child.stdin!.end();
      await exited;
      return JSON.parse(out.trim().split('\n').at(-1)!) as { silentOpened: number; silentClosed: number; garbageSent: number };
    },
  };
}

// The tunnel events the client logged with --debug.
function tunnelEvents(stderr: string): { type: string; connection: number; reason?: string; command?: string }[] {
  return [...stderr.matchAll(/^ssh-r-sync: tunnel: (\{.*\})$/gm)].map((m) => JSON.parse(m[1]!));
}

describe('other local users crowding the tunnel', { skip: !asRoot && 'needs root (throwaway local users)', concurrency: 1 }, () => {
  let server: BackupServer;
  let work: { dir: string; cleanup: () => Promise<void> };
  let user: LocalUser;
  let script: string;
  let src: string;
  let release: string;
  const spawned = new Set<ChildProcess>();
  const clients: LiveProcess[] = [];

  before(async () => {
    work = await tempDir('srs-crowding-');
    await chmod(work.dir, 0o755); // the attacker reads its script here
    script = join(work.dir, 'attacker.mjs');
    await writeFile(script, ATTACKER, { mode: 0o644 });
    src = join(work.dir, 'src');
    await mkdir(src);
    await writeFile(join(src, 'a.txt'), 'alpha\n');
    release = join(work.dir, 'go');
    user = addUser();
    server = await startBackupServer();
  });

  after(async () => {
    for (const child of spawned) if (child.exitCode === null && child.signalCode === null) process.kill(-child.pid!, 'SIGKILL');
    for (const client of clients) client.kill('SIGKILL');
    await server?.stop();
    if (user) {
      await waitUntil(() => processesOf(user.uid).length === 0, 10_000);
      const left = processesOf(user.uid);
      execFileSync('userdel', ['-r', user.name], { stdio: 'ignore' });
      assert.deepEqual(left, [], `processes of ${user.name} are left`);
      assert.throws(() => execFileSync('id', [user.name], { stdio: 'ignore' }), `${user.name} was removed`);
    }
    await work?.cleanup();
  });

  // The receiver's connect hook (before the handshake) waits for the attacker to be in place.
  async function receiverWaitsForAttacker(extra: string[] = []): Promise<void> {
    const hook = await writeScript(work.dir, 'wait-for-attacker.sh', `i=0; while [ ! -e ${release} ] && [ $i -lt 600 ]; do sleep 0.05; i=$((i+1)); done\n`);
    const pace = await writeScript(work.dir, 'pace.sh', "printf -- '--bwlimit=2000\\0'\n");
    await server.setRecvArgs(['--name', 'host1', '-x', `connect:${hook}`, '-x', `rsync.pre:${pace}`, ...extra]);
    await rm(release, { force: true });
    await writeFile(join(src, 'data.bin'), randomBytes(4 << 20)); // every run has a few seconds of work
  }

  function startClient(args: string[] = []): LiveProcess {
    const client = spawnLive(clientBin, [...server.clientArgs(), '-n', 'host1', '--debug', ...args, `${server.sshd.user}@127.0.0.1`, src], { killAfterMs: 90_000 });
    clients.push(client);
    return client;
  }

  test(`on the client: ${IDLE} silent connections and a stream of garbage to the listener from another user do not stop a backup`, { timeout: 120_000 }, async () => {
    await receiverWaitsForAttacker();
    const client = startClient();
    const listenPort = Number((await client.waitFor(/"-R" "127\.0\.0\.1:\d+:127\.0\.0\.1:(\d+)"/, 30_000))[1]);
    const attacker = await attack(user, script, listenPort, spawned);
    await writeFile(release, '');
    const exit = await client.exited;
    const counts = await attacker.stop();
    assert.equal(exit.code, 0, client.stderr());
    assert.match(client.stderr(), /backup of host1 done: 2 files/);
    assert.ok(existsSync(join(server.root, 'host1', 'data.bin')));
    const events = tunnelEvents(client.stderr());
    const refused = events.filter((e) => e.type === 'rejected');
    assert.ok(refused.length >= IDLE, `the listener saw the crowd (${refused.length} connections dropped); attacker: ${JSON.stringify(counts)}`);
    assert.ok(counts.garbageSent > 0, JSON.stringify(counts));
    assert.deepEqual(refused.filter((e) => !/other local users|proof is wrong|timed out|listener closed/.test(e.reason!)), [], "no connection of this user's was pushed out");
  });

  test(`on the server: ${IDLE} silent connections and garbage to the forwarded port from another user do not stop a backup`, { timeout: 120_000 }, async () => {
    const tunnelPort = await closedPort();
    await receiverWaitsForAttacker(['--tunnel-port', String(tunnelPort)]);
    const client = startClient(['--tunnel-port', String(tunnelPort)]);
    const listening = () => tcpEntriesWithPort(tunnelPort)?.some((e) => e.state === 0x0a && e.local === `127.0.0.1:${tunnelPort}`);
    assert.ok(await waitUntil(listening, 30_000), `sshd listens on 127.0.0.1:${tunnelPort}`);
    const attacker = await attack(user, script, tunnelPort, spawned);
    await writeFile(release, '');
    const exit = await client.exited;
    const counts = await attacker.stop();
    assert.equal(exit.code, 0, client.stderr());
    assert.match(client.stderr(), /backup of host1 done: 1 file\b/);
    const events = tunnelEvents(client.stderr());
    const seen = Math.max(...events.map((e) => e.connection));
    assert.ok(seen > IDLE, `the attacker's connections reached the listener through ssh (${seen}); attacker: ${JSON.stringify(counts)}`);
    assert.equal(events.filter((e) => e.type === 'verified' && e.command === 'rsync').length, 1);
  });
});
