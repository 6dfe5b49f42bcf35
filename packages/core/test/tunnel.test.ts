// The tunnel end to end with real rsync and no ssh: the "tunnel" is the listener's loopback port.
// Checks what a user would notice: the pull works (byte for byte, also under a flood of silent
// connections), strangers, wrong keys and stray bytes get nothing, stalls are dropped, a pending
// connection costs no process, and no rsync daemon survives close() or a SIGKILLed client.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { randomBytes } from 'node:crypto';
import { spawn, type ChildProcess, type ChildProcessByStdio } from 'node:child_process';
import type { Readable, Writable } from 'node:stream';
import { connect, createServer, type Socket } from 'node:net';
import { chmodSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { checkTunnel, connectTunnel, openTunnel, relayArgv, startTunnelListener, tunnelRsyncArgs, type OpenTunnelOptions, type TunnelEvent } from '../src/session/tunnel/index.js';
import { spawnRsync } from '../src/rsync/rsync.js';
import { proveReceiver } from '../src/session/tunnel/client-proof.js';
import { MAC_BYTES, NONCE_BYTES, OPENER_BYTES, clientMac, receiverMac } from '../src/session/tunnel/proof.js';
import { loopbackPeerUids } from '../src/session/tunnel/tcp-table.js';

const TIMEOUT_MS = 15_000;
const children = new Set<ChildProcess>();
const dirs: string[] = [];

process.on('exit', () => {
  for (const child of children) if (child.pid && child.exitCode === null) try { process.kill(-child.pid, 'SIGKILL'); } catch {}
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

// A temp dir with a source tree, a daemon config for it and the secrets rsync needs.
function fixture() {
  const dir = mkdtempSync(join(tmpdir(), 'ssh-r-sync-tunnel-'));
  dirs.push(dir);
  const src = join(dir, 'src');
  mkdirSync(join(src, 'sub'), { recursive: true });
  writeFileSync(join(src, 'hello.txt'), 'hello\n');
  writeFileSync(join(src, 'sub', 'tool.sh'), '#!/bin/sh\necho hi\n');
  chmodSync(join(src, 'sub', 'tool.sh'), 0o750);
  writeFileSync(join(src, 'private'), randomBytes(5000));
  chmodSync(join(src, 'private'), 0o600);
  symlinkSync('sub/tool.sh', join(src, 'link'));
  chmodSync(join(src, 'sub'), 0o710);
  utimesSync(join(src, 'hello.txt'), 1_600_000_000, 1_600_000_000);
  const password = randomBytes(32).toString('hex');
  writeFileSync(join(dir, 'secrets'), `ssh-r-sync:${password}\n`, { mode: 0o600 });
  writeFileSync(join(dir, 'password'), `${password}\n`, { mode: 0o600 });
  const config = join(dir, 'rsyncd.conf');
  writeFileSync(
    config,
    [
      '[ssh-r-sync]',
      `path = ${src}`,
      'read only = yes',
      'use chroot = no',
      'auth users = ssh-r-sync',
      `secrets file = ${join(dir, 'secrets')}`,
      'numeric ids = yes',
      'munge symlinks = no',
      // A daemon started by root would otherwise switch to "nobody" and fail on 0600 files.
      `uid = ${process.getuid?.()}`,
      `gid = ${process.getgid?.()}`,
      `log file = ${join(dir, 'rsyncd.log')}`,
      '',
    ].join('\n'),
  );
  const key = randomBytes(32);
  return { dir, src, config, key, dst: join(dir, 'dst'), rsyncArgv: ['rsync', '--daemon', `--config=${config}`] };
}
type Fixture = ReturnType<typeof fixture>;

async function listen(fx: Fixture, options: { handshakeTimeoutMs?: number; maxConcurrent?: number; maxPending?: number; maxPendingOthers?: number } = {}) {
  const events: TunnelEvent[] = [];
  const listener = await startTunnelListener({
    key: fx.key,
    rsyncArgv: fx.rsyncArgv,
    handshakeTimeoutMs: options.handshakeTimeoutMs ?? TIMEOUT_MS,
    maxConcurrent: options.maxConcurrent,
    maxPending: options.maxPending,
    maxPendingOthers: options.maxPendingOthers,
    onEvent: (event) => events.push(event),
  });
  return { listener, events };
}

// Pulls the module through the tunnel as the receiver does: a connection proven by openTunnel(),
// claimed and passed as rsync's fd 3 by core's spawnRsync(), rsync run with tunnelRsyncArgs().
async function startPull(fx: Fixture, port: number, key: Buffer, extra: string[] = [], dst = fx.dst, idle?: OpenTunnelOptions['idle']) {
  const connection = await openTunnel({ port, key, timeoutMs: TIMEOUT_MS, idle });
  const command = {
    program: 'rsync',
    args: ['-a', ...extra],
    transportArgs: [...tunnelRsyncArgs(), `--password-file=${join(fx.dir, 'password')}`],
    source: 'ssh-r-sync@tunnel::ssh-r-sync/',
    destination: `${dst}/`,
    env: {},
    connection,
  };
  const child = spawnRsync(command, [...command.args, ...command.transportArgs, command.source, command.destination]);
  children.add(child);
  let output = '';
  child.stdout.on('data', (d: Buffer) => (output += d));
  child.stderr.on('data', (d: Buffer) => (output += d));
  const result = once(child, 'close').then(([code]) => ({ code: code as number | null, output }));
  return { child, result };
}

// Live (non-zombie) processes whose command line contains text.
function processesWith(text: string): string[] {
  const found: string[] = [];
  for (const pid of readdirSync('/proc').filter((name) => /^\d+$/.test(name))) {
    try {
      const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ');
      if (cmdline.includes(text) && Number(pid) !== process.pid) found.push(`${pid} ${cmdline}`);
    } catch {
      // gone meanwhile
    }
  }
  return found;
}

// Processes whose argv or environment holds the key, in hex or raw.
function processesExposing(key: Buffer): string[] {
  const needles = [Buffer.from(key.toString('hex')), Buffer.from(key.toString('hex').toUpperCase()), key];
  const found: string[] = [];
  for (const pid of readdirSync('/proc').filter((name) => /^\d+$/.test(name))) {
    for (const file of ['cmdline', 'environ']) {
      try {
        const data = readFileSync(`/proc/${pid}/${file}`);
        if (needles.some((needle) => data.includes(needle))) found.push(`${pid} ${file}`);
      } catch {
        // gone meanwhile
      }
    }
  }
  return found;
}

async function waitFor<T>(what: string, probe: () => T | undefined | false, timeoutMs = 10_000): Promise<T> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const value = probe();
    if (value) return value;
    if (Date.now() > until) assert.fail(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

const daemonsOf = (fx: Fixture) => processesWith(fx.config).filter((line) => line.split(' ')[1] === 'rsync');

// The live children of pid (pid and command line).
function childrenOf(pid: number): string[] {
  const found: string[] = [];
  for (const child of readdirSync('/proc').filter((name) => /^\d+$/.test(name))) {
    try {
      const stat = readFileSync(`/proc/${child}/stat`, 'utf8');
      const [state, ppid] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(ppid) === pid && state !== 'Z') found.push(`${child} ${readFileSync(`/proc/${child}/cmdline`, 'utf8').replace(/\0/g, ' ').trim()}`);
    } catch {
      // gone meanwhile
    }
  }
  return found;
}

// A process of its own that owns a listener, as the client does: plain node on the compiled
// listener (tsx would add an esbuild child). scripts/test.mjs builds before running the tests.
async function startOwner(fx: Fixture): Promise<{ owner: ChildProcess; port: number }> {
  const compiled = fileURLToPath(new URL('../dist/session/tunnel/listener.js', import.meta.url));
  assert.ok(existsSync(compiled), `${compiled} is missing: build first (node scripts/test.mjs builds)`);
  const script = join(fx.dir, 'owner.mjs');
  writeFileSync(
    script,
    [
      `import { startTunnelListener } from ${JSON.stringify(compiled)};`,
      `const key = Buffer.from(await new Promise((r) => process.stdin.once('data', (d) => r(String(d).trim()))), 'hex');`,
      `const listener = await startTunnelListener({ key, rsyncArgv: ${JSON.stringify(fx.rsyncArgv)}, handshakeTimeoutMs: ${TIMEOUT_MS} });`,
      'process.stdout.write(`${listener.port}\\n`);',
    ].join('\n'),
  );
  const owner = spawn(process.execPath, [script], { stdio: ['pipe', 'pipe', 'inherit'] });
  children.add(owner);
  owner.stdin.write(`${fx.key.toString('hex')}\n`);
  const [portLine] = (await once(owner.stdout, 'data')) as [Buffer];
  return { owner, port: Number(String(portLine).trim()) };
}

// A scripted receiver: proves itself with key, appending `withReply` to its 64-byte reply and
// `withCommand` to its command byte (0x01). Resolves with all it got once the client closes.
async function scriptedReceiver(port: number, key: Buffer, extra: { withReply?: Buffer; withCommand?: Buffer }): Promise<Buffer> {
  const socket = connect(port, '127.0.0.1');
  socket.on('error', () => undefined);
  let received = Buffer.alloc(0);
  let step = 0;
  const closed = once(socket, 'close');
  socket.on('data', (chunk: Buffer) => {
    received = Buffer.concat([received, chunk]);
    if (step === 0 && received.length >= OPENER_BYTES) {
      step = 1;
      const receiverNonce = randomBytes(NONCE_BYTES);
      const clientNonce = received.subarray(4, OPENER_BYTES);
      socket.write(Buffer.concat([receiverNonce, receiverMac(key, clientNonce, receiverNonce), extra.withReply ?? Buffer.alloc(0)]));
    } else if (step === 1 && received.length >= OPENER_BYTES + MAC_BYTES) {
      step = 2;
      socket.write(Buffer.concat([Buffer.from([1]), extra.withCommand ?? Buffer.alloc(0)]));
    }
  });
  await closed;
  return received;
}

// Opens n connections that never say anything.
async function silentConnections(port: number, n: number): Promise<Socket[]> {
  const sockets = Array.from({ length: n }, () => connect(port, '127.0.0.1').on('error', () => undefined));
  await Promise.all(sockets.map((socket) => once(socket, 'connect')));
  return sockets;
}

// Everything about a tree a pull must reproduce: type, mode, size, content, link, mtime.
function describeTree(root: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (rel: string): void => {
    const path = join(root, rel);
    const stat = lstatSync(path);
    const mode = (stat.mode & 0o7777).toString(8);
    if (stat.isSymbolicLink()) out[rel] = `link ${readlinkSync(path)}`;
    else if (stat.isDirectory()) {
      out[rel] = `dir ${mode}`;
      for (const name of readdirSync(path).sort()) walk(join(rel, name));
    } else out[rel] = `file ${mode} ${Math.floor(stat.mtimeMs / 1000)} ${readFileSync(path).toString('base64')}`;
  };
  walk('.');
  return out;
}

// A file big enough that a bandwidth-limited pull is still running when we interfere.
function addBigFile(fx: Fixture): void {
  writeFileSync(join(fx.src, 'big.bin'), randomBytes(16 * 1024 * 1024));
}

async function stopPull(pull: Awaited<ReturnType<typeof startPull>>): Promise<void> {
  if (pull.child.exitCode === null && pull.child.pid) process.kill(-pull.child.pid, 'SIGKILL');
  await pull.result;
}


test('a pull through the tunnel reproduces the tree', async () => {
  const fx = fixture();
  const { listener, events } = await listen(fx);
  try {
    const pull = await startPull(fx, listener.port, fx.key);
    const { code, output } = await pull.result;
    assert.equal(code, 0, output);
    assert.deepEqual(describeTree(fx.dst), describeTree(fx.src));
    assert.deepEqual(
      events.filter((e) => e.type !== 'log').map((e) => e.type),
      ['proven', 'verified', 'served'],
    );
    assert.deepEqual(events.find((e) => e.type === 'served'), { type: 'served', connection: 1, exitCode: 0 });
  } finally {
    await listener.close();
  }
});

test('no byte is lost at the hand-over: a multi-MB pull with -c is identical, and 20 quick pulls in a row succeed', { timeout: 120_000 }, async () => {
  const fx = fixture();
  writeFileSync(join(fx.src, 'big.bin'), randomBytes(6 * 1024 * 1024));
  const { listener, events } = await listen(fx);
  try {
    const { code, output } = await (await startPull(fx, listener.port, fx.key, ['-c'])).result;
    assert.equal(code, 0, output);
    assert.ok(readFileSync(join(fx.dst, 'big.bin')).equals(readFileSync(join(fx.src, 'big.bin'))), 'big.bin is byte-identical');
    rmSync(join(fx.src, 'big.bin'));
    for (let i = 0; i < 20; i++) {
      const dst = join(fx.dir, `dst-${i}`);
      const pull = await (await startPull(fx, listener.port, fx.key, ['-c'], dst)).result;
      assert.equal(pull.code, 0, `pull ${i}: ${pull.output}`);
      assert.deepEqual(describeTree(dst), describeTree(fx.src), `pull ${i}`);
    }
    assert.deepEqual(events.filter((e) => e.type === 'rejected'), []);
    assert.equal(events.filter((e) => e.type === 'served' && e.exitCode === 0).length, 21);
  } finally {
    await listener.close();
  }
});

test("the relay holds rsync's bytes back until the daemon has spoken, then relays both ways", async () => {
  // The relay as rsync runs it: its stdin/stdout are rsync's pipes, fd 3 the proven connection
  // (blocking, as TunnelConnection.claim() leaves it).
  const server = createServer({ pauseOnConnect: true });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const accepted = once(server, 'connection') as Promise<[Socket]>;
  const connection = await connectTunnel((server.address() as { port: number }).port, TIMEOUT_MS);
  const [daemonSide] = await accepted;
  daemonSide.on('error', () => undefined);
  (connection as unknown as { _handle: { setBlocking(on: boolean): number } })._handle.setBlocking(true);
  const [sh, ...args] = relayArgv() as [string, ...string[]];
  const relay = spawn(sh, [...args, 'tunnel', 'rsync', '--server', '--daemon', '.'], { stdio: ['pipe', 'pipe', 'inherit', connection] }) as ChildProcessByStdio<Writable, Readable, null>;
  connection.destroy();
  children.add(relay);
  const clientGreeting = Buffer.from('@RSYNCD: 32.0 (the client greeting)\n');
  const daemonGreeting = Buffer.from('@RSYNCD: 32.0 (the daemon greeting)\n');
  relay.stdin.write(clientGreeting); // at once, as rsync does
  const fromRelay: Buffer[] = [];
  const toRsync: Buffer[] = [];
  daemonSide.on('data', (chunk: Buffer) => fromRelay.push(chunk));
  daemonSide.resume();
  relay.stdout.on('data', (chunk: Buffer) => toRsync.push(chunk));
  await new Promise((resolve) => setTimeout(resolve, 500));
  assert.equal(Buffer.concat(fromRelay).length, 0, 'nothing from rsync before the daemon greeted');
  daemonSide.write(daemonGreeting);
  await waitFor("rsync's greeting", () => Buffer.concat(fromRelay).equals(clientGreeting));
  await waitFor("the daemon's greeting", () => Buffer.concat(toRsync).equals(daemonGreeting));
  // A bigger exchange, both ways at once, arrives whole and in order.
  const up = randomBytes(3 * 1024 * 1024);
  const down = randomBytes(3 * 1024 * 1024);
  relay.stdin.end(up);
  daemonSide.write(down);
  const wantUp = Buffer.concat([clientGreeting, up]);
  const wantDown = Buffer.concat([daemonGreeting, down]);
  await waitFor('the bytes from rsync', () => Buffer.concat(fromRelay).length >= wantUp.length, 10_000);
  await waitFor('the bytes from the daemon', () => Buffer.concat(toRsync).length >= wantDown.length, 10_000);
  assert.ok(Buffer.concat(fromRelay).equals(wantUp), 'rsync to daemon: byte-identical');
  assert.ok(Buffer.concat(toRsync).equals(wantDown), 'daemon to rsync: byte-identical');
  // The daemon is done: the relay ends (rsync waits for it), with nothing left running.
  daemonSide.end();
  const [code] = await once(relay, 'exit');
  assert.equal(code, 0);
  await waitFor('no relay process left', () => processesWith('ssh-r-sync-tunnel').length === 0);
  server.close();
});

test('rsync started without the connection on fd 3 fails with a message naming it', async () => {
  const fx = fixture();
  const args = ['-a', ...tunnelRsyncArgs(), `--password-file=${join(fx.dir, 'password')}`, 'ssh-r-sync@tunnel::ssh-r-sync/', `${fx.dst}/`];
  const child = spawn('rsync', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  let output = '';
  child.stdout.on('data', (d: Buffer) => (output += d));
  child.stderr.on('data', (d: Buffer) => (output += d));
  const [code] = await once(child, 'close');
  assert.notEqual(code, 0);
  assert.match(output, /^ssh-r-sync: rsync was started without its tunnel connection on fd 3$/m);
  assert.equal(existsSync(fx.dst), false);
});

test('checkTunnel proves the tunnel without starting any process', async () => {
  const fx = fixture();
  const { listener, events } = await listen(fx);
  try {
    await checkTunnel({ port: listener.port, key: fx.key, timeoutMs: TIMEOUT_MS });
    await waitFor('the check command', () => events.length === 2);
    assert.deepEqual(events, [
      { type: 'proven', connection: 1 },
      { type: 'verified', connection: 1, command: 'check' },
    ]);
    assert.deepEqual(processesWith(fx.config), []);
    assert.equal(existsSync(join(fx.dir, 'rsyncd.log')), false, 'rsync never ran');
  } finally {
    await listener.close();
  }
});

test('a stranger gets the 36-byte opener and nothing else', async () => {
  const fx = fixture();
  const { listener, events } = await listen(fx);
  try {
    const socket = connect(listener.port, '127.0.0.1');
    socket.on('error', () => undefined); // an RST for bytes the listener never read is fine
    let received = Buffer.alloc(0);
    socket.on('data', (chunk: Buffer) => (received = Buffer.concat([received, chunk])));
    const closed = new Promise((resolve) => socket.on('close', resolve));
    socket.write(randomBytes(96));
    await closed;
    assert.equal(received.length, 36);
    assert.equal(received.subarray(0, 4).toString(), 'SRT1');
    assert.equal(received.includes('@RSYNCD'), false);
    await waitFor('the rejection', () => events.find((e) => e.type === 'rejected'));
    assert.deepEqual(events, [{ type: 'rejected', connection: 1, reason: "tunnel proof failed: receiver's proof is wrong" }]);
  } finally {
    await listener.close();
  }
});

test('a receiver that sends a byte more than its proof is rejected before the client proves itself', async () => {
  const fx = fixture();
  const { listener, events } = await listen(fx);
  try {
    const received = await scriptedReceiver(listener.port, fx.key, { withReply: Buffer.from([0]) });
    assert.equal(received.length, OPENER_BYTES, 'only the opener, no client proof');
    await waitFor('the rejection', () => events.find((e) => e.type === 'rejected'));
    assert.deepEqual(events, [{ type: 'rejected', connection: 1, reason: 'tunnel proof failed: receiver sent 1 byte after its proof' }]);
  } finally {
    await listener.close();
  }
});

test('a receiver that sends rsync bytes together with its command byte is rejected and no daemon starts', async () => {
  const fx = fixture();
  const { listener, events } = await listen(fx);
  try {
    const greeting = Buffer.from('@RSYNCD: 32.0\n');
    const received = await scriptedReceiver(listener.port, fx.key, { withCommand: greeting });
    assert.equal(received.length, OPENER_BYTES + MAC_BYTES, 'the opener and the client proof, nothing from rsync');
    await waitFor('the rejection', () => events.find((e) => e.type === 'rejected'));
    assert.deepEqual(events, [
      { type: 'proven', connection: 1 },
      { type: 'rejected', connection: 1, reason: `tunnel proof failed: receiver sent ${greeting.length} bytes after its command` },
    ]);
    assert.deepEqual(processesWith(fx.config), []);
    assert.equal(existsSync(join(fx.dir, 'rsyncd.log')), false, 'rsync never ran');
  } finally {
    await listener.close();
  }
});

test('a receiver with the wrong key gets a one-line error at once and rsync never starts', async () => {
  const fx = fixture();
  const { listener, events } = await listen(fx);
  try {
    const started = Date.now();
    const error = await checkTunnel({ port: listener.port, key: randomBytes(32), timeoutMs: TIMEOUT_MS }).then(
      () => assert.fail('checkTunnel should fail'),
      (e: Error) => e,
    );
    assert.equal(error.message, "tunnel proof failed: connection closed after 0 of 32 bytes (the client did not accept the receiver's proof: wrong key?)");
    assert.ok(Date.now() - started < TIMEOUT_MS / 2);
    await waitFor('the rejection', () => events.find((e) => e.type === 'rejected'));
    assert.deepEqual(events, [{ type: 'rejected', connection: 1, reason: "tunnel proof failed: receiver's proof is wrong" }]);
  } finally {
    await listener.close();
  }
});

test('a stalled peer is dropped after the handshake timeout and costs no process meanwhile', async () => {
  const fx = fixture();
  const { listener, events } = await listen(fx, { handshakeTimeoutMs: 1500 });
  try {
    const socket = connect(listener.port, '127.0.0.1');
    socket.on('error', () => undefined);
    socket.resume();
    await once(socket, 'connect');
    const started = Date.now();
    await new Promise((resolve) => setTimeout(resolve, 300));
    assert.deepEqual(processesWith(fx.config), []);
    await once(socket, 'close');
    const elapsed = Date.now() - started;
    // Never early; late only by what a loaded machine adds (a peer never dropped would never close).
    assert.ok(elapsed > 1000 && elapsed < 15_000, `dropped after ${elapsed} ms`);
    assert.deepEqual(
      events.filter((e) => e.type === 'rejected'),
      [{ type: 'rejected', connection: 1, reason: 'tunnel proof timed out after 1.5s' }],
    );
  } finally {
    await listener.close();
  }
});

test('a connection beyond maxPending drops the oldest unproven one, not itself', async () => {
  const fx = fixture();
  const { listener, events } = await listen(fx, { maxPending: 1 });
  try {
    const [first] = await silentConnections(listener.port, 1);
    first!.resume();
    await waitFor('the opener on the first connection', () => first!.bytesRead > 0);
    const second = connect(listener.port, '127.0.0.1').on('error', () => undefined);
    await once(first!, 'close');
    assert.deepEqual(events, [
      { type: 'rejected', connection: 1, reason: 'dropped for a newer connection: at most 1 unproven tunnel connections from this user at a time, and this was the oldest' },
    ]);
    assert.equal(second.destroyed, false, 'the newest connection is kept');
    second.destroy();
  } finally {
    await listener.close();
  }
});

test('60 silent connections at once do not stop a real pull through the same listener', { timeout: 60_000 }, async () => {
  const fx = fixture();
  const { listener, events } = await listen(fx);
  const silent = await silentConnections(listener.port, 60);
  try {
    const { code, output } = await (await startPull(fx, listener.port, fx.key)).result;
    assert.equal(code, 0, output);
    assert.deepEqual(describeTree(fx.dst), describeTree(fx.src));
    assert.deepEqual(events.filter((e) => e.type === 'rejected'), []);
    assert.ok(silent.every((socket) => !socket.destroyed), 'the silent connections are still pending');
  } finally {
    silent.forEach((socket) => socket.destroy());
    await listener.close();
  }
});

test('a proven rsync connection beyond maxConcurrent daemons is closed; the running pull goes on', { timeout: 60_000 }, async () => {
  const fx = fixture();
  addBigFile(fx);
  const { listener, events } = await listen(fx, { maxConcurrent: 1 });
  const first = await startPull(fx, listener.port, fx.key, ['--bwlimit=2000']);
  try {
    await waitFor('the rsync daemon', () => daemonsOf(fx).length > 0);
    const second = await (await startPull(fx, listener.port, fx.key, [], join(fx.dir, 'dst-2'))).result;
    assert.notEqual(second.code, 0, 'the second pull fails');
    assert.deepEqual(
      events.filter((e) => e.type === 'rejected'),
      [{ type: 'rejected', connection: 2, reason: 'too many rsync daemons (at most 1 at a time)' }],
    );
    assert.equal(first.child.exitCode, null, 'the first pull is still running');
    assert.equal(daemonsOf(fx).length, 1);
  } finally {
    await stopPull(first);
    await listener.close();
  }
});

test('a pull with the wrong key fails before rsync starts and writes nothing', async () => {
  const fx = fixture();
  const { listener } = await listen(fx);
  try {
    await assert.rejects(startPull(fx, listener.port, randomBytes(32)), {
      message: "tunnel proof failed: connection closed after 0 of 32 bytes (the client did not accept the receiver's proof: wrong key?)",
    });
    assert.equal(existsSync(fx.dst), false);
    assert.deepEqual(processesWith(fx.config), []);
  } finally {
    await listener.close();
  }
});

test('during a pull the listener process has exactly one child, the daemon; none after a check', { timeout: 60_000 }, async () => {
  const fx = fixture();
  addBigFile(fx);
  const { owner, port } = await startOwner(fx);
  const pull = await startPull(fx, port, fx.key, ['--bwlimit=2000']);
  try {
    await waitFor('the transfer to start', () => existsSync(fx.dst) && readdirSync(fx.dst).some((name) => name.includes('big.bin')));
    for (let i = 0; i < 10; i++) {
      const kids = childrenOf(owner.pid!);
      assert.equal(kids.length, 1, kids.join('\n'));
      assert.match(kids[0]!, new RegExp(`^\\d+ rsync --daemon --config=${fx.config}$`));
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    await stopPull(pull);
    await waitFor('the daemon to end', () => childrenOf(owner.pid!).length === 0);
    await checkTunnel({ port, key: fx.key, timeoutMs: TIMEOUT_MS });
    assert.deepEqual(childrenOf(owner.pid!), []);
  } finally {
    owner.kill('SIGKILL');
    await stopPull(pull);
  }
});

test('close() during a transfer leaves no rsync daemon; the key is never exposed', async () => {
  const fx = fixture();
  addBigFile(fx);
  const { listener } = await listen(fx);
  const pull = await startPull(fx, listener.port, fx.key, ['--bwlimit=1000']);
  try {
    await waitFor('the rsync daemon', () => daemonsOf(fx).length > 0);
    await waitFor('the transfer to start', () => existsSync(fx.dst) && readdirSync(fx.dst).some((name) => name.includes('big.bin')));
    assert.ok(processesWith('ssh-r-sync-tunnel').length > 0, 'the relay is running');
    assert.equal(processesWith(fx.config).length, 1, 'the rsync daemon and nothing else');
    assert.deepEqual(processesExposing(fx.key), []);
    await listener.close();
    assert.deepEqual(processesWith(fx.config), []);
    const { code } = await pull.result;
    assert.notEqual(code, 0, 'the interrupted pull fails');
  } finally {
    await listener.close();
    await stopPull(pull);
  }
});

test('a SIGKILLed client takes its rsync daemons with it; a connection still in the proof holds no process', async () => {
  const fx = fixture();
  addBigFile(fx);
  const { owner, port } = await startOwner(fx);
  const pull = await startPull(fx, port, fx.key, ['--bwlimit=1000']);
  // A second connection that never speaks: it is still in the proof.
  const stalled = connect(port, '127.0.0.1').on('error', () => undefined);
  try {
    await waitFor('the rsync daemon', () => daemonsOf(fx).length > 0);
    assert.equal(processesWith(fx.config).length, 1, 'the daemon and nothing else');
    owner.kill('SIGKILL');
    await once(owner, 'exit');
    await waitFor('the daemon to die', () => processesWith(fx.config).length === 0, 5000);
    const { code } = await pull.result;
    assert.notEqual(code, 0);
  } finally {
    stalled.destroy();
    await stopPull(pull);
  }
});

// Runs `node -e code args…` as another local user (nobody) and resolves once it printed "ready".
async function asNobody(code: string, args: string[]): Promise<ChildProcess> {
  const child = spawn('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, '-e', code, ...args], {
    stdio: ['pipe', 'pipe', 'inherit'],
    detached: true,
    cwd: '/',
  });
  children.add(child);
  let out = '';
  child.stdout!.on('data', (chunk: Buffer) => (out += chunk));
  await waitFor('the other user to be ready', () => out.includes('ready') || child.exitCode !== null, 20_000);
  assert.ok(out.includes('ready'), `the other user's process exited ${child.exitCode}`);
  return child;
}

// Opens N silent connections to 127.0.0.1:PORT, prints "ready", and holds them until stdin ends.
const SILENT_CONNECTIONS = `
const net = require('node:net');
const [port, n] = process.argv.slice(1).map(Number);
let open = 0;
for (let i = 0; i < n; i++) net.connect(port, '127.0.0.1').on('error', () => {}).on('connect', () => { if (++open === n) console.log('ready'); });
process.stdin.on('end', () => process.exit(0)).resume();
`;

const asRoot = process.getuid?.() === 0;

test('the kernel table names the user behind each end of a loopback connection, IPv4-mapped IPv6 included', { skip: !asRoot && 'needs root for another uid' }, async () => {
  const server = createServer({ pauseOnConnect: true });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as { port: number }).port;
  const accepted: Socket[] = [];
  server.on('connection', (socket: Socket) => accepted.push(socket));
  const mine = connect(port, '127.0.0.1');
  const mapped = connect(port, '::ffff:127.0.0.1');
  const other = await asNobody(SILENT_CONNECTIONS, [String(port), '1']);
  try {
    await waitFor('three connections', () => accepted.length === 3);
    const peers = accepted.map((socket) => ({ address: socket.remoteAddress!, port: socket.remotePort! }));
    const uids = loopbackPeerUids(port, peers);
    const byPort = new Map(peers.map((peer, i) => [peer.port, uids?.[i]]));
    assert.equal(byPort.get(mine.localPort!), process.geteuid!());
    assert.equal(byPort.get(mapped.localPort!), process.geteuid!());
    assert.deepEqual([...byPort.values()].filter((uid) => uid !== process.geteuid!()), [65534], "the other user's connection");
    assert.deepEqual(loopbackPeerUids(port, [{ address: '127.0.0.1', port: 1 }]), [undefined], 'a peer that is not there');
  } finally {
    other.stdin!.end();
    mine.destroy();
    mapped.destroy();
    accepted.forEach((socket) => socket.destroy());
    server.close();
  }
});

test('a silent connection is dropped after the short reply timeout, long before the handshake timeout', async () => {
  const fx = fixture();
  const events: TunnelEvent[] = [];
  const listener = await startTunnelListener({ key: fx.key, rsyncArgv: fx.rsyncArgv, handshakeTimeoutMs: TIMEOUT_MS, replyTimeoutMs: 500, onEvent: (e) => events.push(e) });
  try {
    const [socket] = await silentConnections(listener.port, 1);
    socket!.resume();
    const started = Date.now();
    await once(socket!, 'close');
    assert.ok(Date.now() - started < TIMEOUT_MS / 2, `dropped after ${Date.now() - started} ms`);
    assert.deepEqual(events, [{ type: 'rejected', connection: 1, reason: 'tunnel proof timed out after 0.5s' }]);
  } finally {
    await listener.close();
  }
});

test('with maxPending 32, a flood of 300 silent connections cannot keep a real pull out', { timeout: 60_000 }, async () => {
  const fx = fixture();
  const { listener, events } = await listen(fx, { maxPending: 32 });
  const flood: Socket[] = [];
  let flooding = true;
  const more = async (): Promise<void> => {
    while (flooding && flood.length < 300) {
      flood.push(...(await silentConnections(listener.port, 10)));
      await new Promise((resolve) => setImmediate(resolve));
    }
  };
  const flooded = more();
  try {
    // The whole flood first: the budget is then full of silent connections held open, and the
    // real pull must still get in. (Racing the pull against the flood's arrival failed on a busy
    // machine: a connection slower to send its opener than 32 new arrivals is, by design, the
    // oldest one pushed out.)
    await waitFor('the flood to be opened', () => flood.length >= 300);
    // Opened on our side is not yet accepted on the listener's: under load its accepts lag, and a
    // pull that arrived in one batch with 32 of the flood would go as the latest of them. Each
    // flood connection is sorted once it was dropped (closed) or admitted (it got the opener).
    flood.forEach((socket) => socket.resume());
    await waitFor('the listener to sort the whole flood', () => flood.every((socket) => socket.destroyed || socket.readableEnded || socket.bytesRead > 0), 30_000);
    const { code, output } = await (await startPull(fx, listener.port, fx.key)).result;
    assert.equal(code, 0, output);
    assert.deepEqual(describeTree(fx.dst), describeTree(fx.src));
    assert.ok(events.filter((e) => e.type === 'rejected').length >= 8, 'the flood pushed out its own oldest connections');
    assert.equal(events.filter((e) => e.type === 'served' && e.exitCode === 0).length, 1);
  } finally {
    flooding = false;
    await flooded;
    flood.forEach((socket) => socket.destroy());
    await listener.close();
  }
});

test("another user's connections have a budget of their own: they crowd out only each other", { skip: !asRoot && 'needs root for another uid', timeout: 60_000 }, async () => {
  const fx = fixture();
  const { listener, events } = await listen(fx, { maxPending: 2, maxPendingOthers: 4 });
  const [ours] = await silentConnections(listener.port, 1);
  ours!.resume();
  await waitFor('the opener on our connection (it is in its budget)', () => ours!.bytesRead > 0);
  const other = await asNobody(SILENT_CONNECTIONS, [String(listener.port), '50']);
  try {
    await waitFor("the other user's connections sorted", () => events.filter((e) => e.type === 'rejected').length >= 46);
    const { code, output } = await (await startPull(fx, listener.port, fx.key)).result;
    assert.equal(code, 0, output);
    assert.equal(ours!.destroyed, false, 'our own silent connection was not pushed out by theirs');
    const reasons = events.flatMap((e) => (e.type === 'rejected' ? [e.reason] : []));
    assert.deepEqual(reasons.filter((reason) => !/^dropped.* from other local users /.test(reason)), [], 'only their connections were dropped');
  } finally {
    other.stdin!.end();
    ours!.destroy();
    await listener.close();
  }
});

// A pull whose connection is watched for stalls of idleMs; `stalled` lists when onIdle fired.
async function watchedPull(fx: Fixture, port: number, idleMs: number) {
  const stalled: number[] = [];
  const pull = await startPull(fx, port, fx.key, ['--bwlimit=2000'], fx.dst, { ms: idleMs, onIdle: () => stalled.push(Date.now()) });
  await waitFor('the transfer to start', () => existsSync(fx.dst) && readdirSync(fx.dst).some((name) => name.includes('big.bin')), 20_000);
  return { pull, stalled };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

test("the idle watch reports a pull whose daemon stopped sending, and not while data flows", { timeout: 60_000 }, async () => {
  const fx = fixture();
  addBigFile(fx);
  const { listener } = await listen(fx);
  const { pull, stalled } = await watchedPull(fx, listener.port, 1500);
  const daemon = Number(daemonsOf(fx)[0]?.split(' ')[0]);
  try {
    await sleep(4000); // more than twice the idle time, with data flowing
    assert.deepEqual(stalled, [], 'no stall while the daemon sends');
    const stoppedAt = Date.now();
    process.kill(daemon, 'SIGSTOP');
    await waitFor('the stall', () => stalled.length > 0, 30_000);
    assert.ok(stalled[0]! - stoppedAt >= 1000, `reported ${stalled[0]! - stoppedAt} ms after the daemon stopped`);
    assert.equal(pull.child.exitCode, null, 'the watch only reports; the caller stops the run');
  } finally {
    await stopPull(pull);
    await listener.close(); // SIGKILLs the stopped daemon
  }
});

test('bytes that wait unread are not a stall: a pull whose own rsync is stopped is not reported', { timeout: 60_000 }, async () => {
  const fx = fixture();
  addBigFile(fx);
  const { listener } = await listen(fx);
  const { pull, stalled } = await watchedPull(fx, listener.port, 1500);
  try {
    process.kill(-pull.child.pid!, 'SIGSTOP'); // rsync and its relay: nobody reads the connection
    await sleep(5000);
    assert.deepEqual(stalled, [], 'the client kept sending into our buffers: not its stall');
  } finally {
    process.kill(-pull.child.pid!, 'SIGCONT');
    await stopPull(pull);
    await listener.close();
  }
});
