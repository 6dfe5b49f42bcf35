// Tests for the throwaway sshd helper, and experiments that pin down OpenSSH behaviour the
// reverse-tunnel design relies on (see the findings at the top of test/helpers/sshd.ts).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { makeKey, startSshd, type Sshd } from './helpers/sshd.js';

const TIMEOUT_MS = 10_000;

let work: string;
let sshd: Sshd;
let key: string; // authorized in every test
let keyPub: string;
let strangerKey: string; // never authorized
let tunnelKey: string; // authorized with the tunnel script as forced command
let tunnelPub: string;
let tunnelScript: string;
let echoServer: net.Server;
let echoPort: number;
const received: string[] = [];
// What the login shell itself prints on stderr before any command (root's ~/.bashrc may, and
// SRS_TEST_SHELL_NOISE makes it): part of every session's stderr, not ssh's words.
let shellNoise = '';

before(async () => {
  work = await mkdtemp(path.join(os.tmpdir(), 'sshd-harness-test-'));
  key = path.join(work, 'id_client');
  strangerKey = path.join(work, 'id_stranger');
  tunnelKey = path.join(work, 'id_tunnel');
  [keyPub, , tunnelPub] = await Promise.all([
    makeKey(key, 'client'),
    makeKey(strangerKey, 'stranger'),
    makeKey(tunnelKey, 'tunnel'),
  ]);

  // Forced command for the tunnel key: reads the forwarded port from stdin, sends one line through
  // 127.0.0.1:<port> and prints the reply. The server side has no other way to learn a dynamic port.
  const connect = path.join(work, 'connect.cjs');
  await writeFile(
    connect,
    `const s = require('node:net').connect(Number(process.argv[2]), '127.0.0.1');
s.on('error', (e) => { console.error('connect.cjs: ' + e.message); process.exit(2); });
s.end('ping through the tunnel\\n');
s.pipe(process.stdout);
`,
  );
  tunnelScript = path.join(work, 'tunnel.sh');
  await writeFile(tunnelScript, `#!/bin/sh\nread -r port || exit 3\nexec '${process.execPath}' '${connect}' "$port"\n`);
  await chmod(tunnelScript, 0o755);

  // The "client's" local service that the reverse forward points at.
  echoServer = net.createServer((socket) => {
    let data = '';
    socket.setEncoding('utf8');
    socket.on('data', (chunk) => (data += chunk));
    socket.on('end', () => {
      received.push(data);
      socket.end(`pong: ${data}`);
    });
    socket.on('error', () => {});
  });
  await new Promise<void>((resolve) => echoServer.listen(0, '127.0.0.1', resolve));
  echoPort = (echoServer.address() as net.AddressInfo).port;

  sshd = await startSshd();
  await sshd.setAuthorizedKeys([{ publicKey: keyPub, options: 'restrict,command="true"' }]);
  shellNoise = (await runSsh(sshd.sshArgs(key), '').done).stderr;
});

after(async () => {
  await sshd?.stop();
  await new Promise((resolve) => (echoServer ? echoServer.close(resolve) : resolve(undefined)));
  if (work) await rm(work, { recursive: true, force: true });
});

interface SshResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs ssh (no shell); `done` settles when it exits, `waitFor` resolves when a stream matches. */
function runSsh(args: string[], input?: string) {
  const child = spawn('ssh', args, { stdio: ['pipe', 'pipe', 'pipe'] });
  const out = { stdout: '', stderr: '' };
  const listeners = new Set<() => void>();
  const notify = () => listeners.forEach((l) => l());
  child.stdout.setEncoding('utf8').on('data', (d: string) => ((out.stdout += d), notify()));
  child.stderr.setEncoding('utf8').on('data', (d: string) => ((out.stderr += d), notify()));
  child.stdin.on('error', () => {});
  if (input !== undefined) child.stdin.end(input);
  let timedOut = false;
  const timer = setTimeout(() => ((timedOut = true), child.kill('SIGKILL')), TIMEOUT_MS);
  let exited = false;
  const done = new Promise<SshResult>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code) => {
      clearTimeout(timer);
      exited = true;
      notify();
      if (timedOut) reject(new Error(`ssh ${args.join(' ')} timed out after ${TIMEOUT_MS} ms; stderr: ${out.stderr}`));
      else resolve({ code, ...out });
    });
  });
  const waitFor = (stream: 'stdout' | 'stderr', re: RegExp) =>
    new Promise<RegExpMatchArray>((resolve, reject) => {
      const check = () => {
        const m = re.exec(out[stream]);
        if (m) resolve(m);
        else if (exited) reject(new Error(`ssh exited before ${stream} matched ${re}; stdout: ${out.stdout} stderr: ${out.stderr}`));
        else return;
        listeners.delete(check);
      };
      listeners.add(check);
      check();
    });
  return { child, done, waitFor };
}

/** A port that was free a moment ago. */
async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

const forward = (listen: string | number) => [
  '-o',
  'ExitOnForwardFailure=yes',
  '-R',
  `127.0.0.1:${listen}:127.0.0.1:${echoPort}`,
];

test('(a) a forced command runs whatever the client asks for', async () => {
  await sshd.setAuthorizedKeys([{ publicKey: keyPub, options: 'restrict,command="/bin/echo forced"' }]);
  const results = await Promise.all(
    [['ls', '/'], ['rm -rf /nonexistent'], []].map((cmd) => runSsh([...sshd.sshArgs(key), ...cmd], '').done),
  );
  for (const r of results) assert.deepEqual(r, { code: 0, stdout: 'forced\n', stderr: shellNoise });
});

test('(b) a key that is not in authorized_keys is refused', async () => {
  await sshd.setAuthorizedKeys([{ publicKey: keyPub, options: 'restrict,command="/bin/echo forced"' }]);
  const r = await runSsh([...sshd.sshArgs(strangerKey), 'true'], '').done;
  assert.equal(r.code, 255);
  assert.equal(r.stdout, '');
  assert.match(r.stderr, /Permission denied \(publickey\)/);
});

test('(c) reverse forward to a dynamic port: data flows, port is announced only at LogLevel INFO', async () => {
  await sshd.setAuthorizedKeys([
    { publicKey: keyPub, options: 'restrict,port-forwarding,command="/bin/echo forced"' },
    { publicKey: tunnelPub, options: `restrict,port-forwarding,command="${tunnelScript}"` },
  ]);
  const announce = new RegExp(`Allocated port (\\d+) for remote forward to 127\\.0\\.0\\.1:${echoPort}`);

  // Finding 1: the client learns the allocated port from stderr at INFO, and not at ERROR.
  const info = runSsh([...sshd.sshArgs(key, ['-o', 'LogLevel=INFO', ...forward(0)]), 'x'], '');
  const error = runSsh([...sshd.sshArgs(key, forward(0)), 'x'], ''); // helper default: LogLevel=ERROR

  // Data through the tunnel: read the announced port, hand it to the forced command on stdin.
  received.length = 0;
  const tunnel = runSsh([...sshd.sshArgs(tunnelKey, ['-o', 'LogLevel=INFO', ...forward(0)])]);
  const [, port] = await tunnel.waitFor('stderr', announce);
  tunnel.child.stdin.end(`${port}\n`);

  const [infoResult, errorResult, tunnelResult] = await Promise.all([info.done, error.done, tunnel.done]);
  assert.equal(infoResult.code, 0);
  assert.equal(infoResult.stdout, 'forced\n');
  assert.match(infoResult.stderr, announce);
  assert.deepEqual(errorResult, { code: 0, stdout: 'forced\n', stderr: shellNoise });
  assert.equal(tunnelResult.code, 0, tunnelResult.stderr);
  assert.equal(tunnelResult.stdout, 'pong: ping through the tunnel\n');
  assert.deepEqual(received, ['ping through the tunnel\n']);
  assert.notEqual(Number(port), 0);
});

test('(d) permitlisten="127.0.0.1:P" allows exactly that port, not another one and not port 0', async () => {
  const permitted = await freePort();
  let other = await freePort();
  while (other === permitted) other = await freePort();
  await sshd.setAuthorizedKeys([
    {
      publicKey: tunnelPub,
      options: `restrict,port-forwarding,permitlisten="127.0.0.1:${permitted}",command="${tunnelScript}"`,
    },
  ]);
  received.length = 0;
  const [ok, wrongPort, dynamic] = await Promise.all([
    runSsh(sshd.sshArgs(tunnelKey, forward(permitted)), `${permitted}\n`).done,
    runSsh(sshd.sshArgs(tunnelKey, forward(other)), `${other}\n`).done,
    // Finding 2: a dynamic request is checked against the permitlisten port literally (0 != P): refused.
    runSsh(sshd.sshArgs(tunnelKey, ['-o', 'LogLevel=INFO', ...forward(0)]), '').done,
  ]);
  assert.equal(ok.code, 0, ok.stderr);
  assert.equal(ok.stdout, 'pong: ping through the tunnel\n');
  assert.deepEqual(received, ['ping through the tunnel\n']);

  assert.equal(wrongPort.code, 255);
  assert.equal(wrongPort.stdout, '', 'the forced command must not run');
  assert.match(wrongPort.stderr, new RegExp(`remote port forwarding failed for listen port ${other}`));

  assert.equal(dynamic.code, 255);
  assert.equal(dynamic.stdout, '', 'the forced command must not run');
  assert.match(dynamic.stderr, /remote port forwarding failed for listen port 0/);
  assert.doesNotMatch(dynamic.stderr, /Allocated port/);
});

/** /proc/<pid>/stat fields we need; undefined when the process is gone. */
function procStat(pid: number): { comm: string; state: string; ppid: number; start: string } | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return {
      comm: stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')')),
      state: rest[0] ?? '',
      ppid: Number(rest[1]),
      start: rest[19] ?? '',
    };
  } catch {
    return undefined;
  }
}

const pids = () => readdirSync('/proc').filter((e) => /^\d+$/.test(e)).map(Number);

/** Pids whose command line mentions `text`. */
function pidsWithCmdline(text: string): number[] {
  return pids().filter((pid) => {
    try {
      return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(text);
    } catch {
      return false;
    }
  });
}

test('(e) stop() leaves no sshd behind, including per-connection children', async () => {
  const server = await startSshd();
  const configFile = path.join(server.dir, 'sshd_config'); // where the helper writes it
  await server.setAuthorizedKeys([
    { publicKey: keyPub, options: 'restrict,command="echo ready; exec sleep 30"' },
  ]);
  // Keep a session open across stop(): its sshd children live in their own sessions.
  const session = runSsh([...server.sshArgs(key), 'x'], '');
  await session.waitFor('stdout', /ready/);

  const [listener, ...rest] = pidsWithCmdline(configFile);
  assert.ok(listener !== undefined && rest.length === 0, `one listener, got ${[listener, ...rest]}`);
  // "ready" is printed just before the shell execs sleep: under load, look again until it has.
  let tree: { pid: number; comm: string; start: string }[] = [];
  for (const deadline = Date.now() + 20_000; ; await new Promise((resolve) => setTimeout(resolve, 50))) {
    tree = [];
    const all = pids().map((pid) => ({ pid, stat: procStat(pid) }));
    for (let i = -1; i < tree.length; i++) {
      const parent = i < 0 ? listener : tree[i]!.pid;
      for (const { pid, stat } of all) {
        if (stat?.ppid === parent && stat.state !== 'Z') tree.push({ pid, comm: stat.comm, start: stat.start });
      }
    }
    if (tree.some((p) => p.comm === 'sleep') || Date.now() > deadline) break;
  }
  assert.ok(
    tree.some((p) => p.comm === 'sleep'),
    `expected the forced command below sshd: ${JSON.stringify(tree)}`,
  );

  await server.stop();
  await server.stop(); // idempotent
  assert.deepEqual(pidsWithCmdline(configFile), []);
  const survivors = tree.filter((p) => {
    const stat = procStat(p.pid);
    return stat !== undefined && stat.start === p.start && stat.state !== 'Z';
  });
  assert.deepEqual(survivors, []);
  assert.equal(existsSync(server.dir), false, 'the temp dir is removed');
  const closed = await session.done;
  assert.equal(closed.code, 255, 'the client sees the connection drop');
});

test('(f) shellStartup: the login shell runs the given lines before the command, from a throwaway HOME', async () => {
  const server = await startSshd({ shellStartup: 'echo "hello from .bashrc"; echo "warning from .bashrc" >&2' });
  try {
    await server.setAuthorizedKeys([{ publicKey: keyPub, options: 'restrict,command="echo forced; echo $HOME"' }]);
    const r = await runSsh(server.sshArgs(key), '').done;
    assert.deepEqual(r, { code: 0, stdout: `hello from .bashrc\nforced\n${path.join(server.dir, 'home')}\n`, stderr: 'warning from .bashrc\n' });
  } finally {
    await server.stop();
  }
});
