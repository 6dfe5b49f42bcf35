// `ssh-r-sync-admin authorize --json` end to end: ONLY the printed authorized_keys line (and, in
// reverse mode, the printed sshd Match block) lock a key down in a throwaway sshd; real ssh, real
// rsync, real rrsync. Pull mode: the receiver pulls a snapshot, but cannot write and gets no shell.
// Reverse mode: the client key gets no shell, no pty, no -L forward and no other -R port.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, readdirSync, readlinkSync, realpathSync, rmSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { join } from 'node:path';
import { makeKey, startSshd, type Sshd } from './helpers/sshd.js';
import { recvBin, repoRoot, runNode, tempDir, writeScript } from './helpers/cli.js';

const adminBin = join(repoRoot, 'packages/cli/bin/ssh-r-sync-admin.js');
const LINK_DEST_DIST = join(repoRoot, 'packages/plugin-link-dest/dist/index.js');
const NAME = 'host1';

interface Printed {
  authorizedKeys: string;
  sshdMatch: string;
  port: number | null;
}

async function authorize(args: string[]): Promise<Printed> {
  const r = await runNode(adminBin, ['authorize', ...args, '--json']);
  assert.equal(r.code, 0, `authorize failed:\n${r.stderr}`);
  return JSON.parse(r.stdout) as Printed;
}

// Splits the printed line at the key type: [options, key].
function splitLine(line: string): { options: string; publicKey: string } {
  const m = / (ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp\d+|sk-\S+) /.exec(line);
  assert.ok(m, `no key type in ${line}`);
  return { options: line.slice(0, m.index), publicKey: line.slice(m.index + 1) };
}

interface Result {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

function run(file: string, args: string[], timeoutMs = 15_000): Promise<Result> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c) => (stdout += c));
    child.stderr.on('data', (c) => (stderr += c));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
    child.stdin.on('error', () => {});
    child.stdin.end();
  });
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

const marker = () => `/tmp/pwned-${randomBytes(6).toString('hex')}`;

describe('authorize --pull: the printed rrsync line in a real sshd', { concurrency: 1 }, () => {
  let tmp: { dir: string; cleanup: () => Promise<void> };
  let sshd: Sshd;
  let src: string;
  let key: string;

  before(async () => {
    tmp = await tempDir('srs-authorize-pull-');
    src = join(tmp.dir, 'src');
    await mkdir(join(src, 'sub'), { recursive: true });
    await writeFile(join(src, 'a.txt'), 'alpha\n');
    await writeFile(join(src, 'sub', 'b.txt'), 'beta\n');
    key = join(tmp.dir, 'recv_key');
    await makeKey(key, 'receiver');
    sshd = await startSshd();
    const printed = await authorize(['--pull', '--name', NAME, '--key', `${key}.pub`, src]);
    await sshd.setAuthorizedKeys([splitLine(printed.authorizedKeys)]);
  });
  after(async () => {
    await sshd?.stop();
    await tmp?.cleanup();
  });

  test('ssh-r-sync-recv --pull with link-dest makes a snapshot; the done hook sees success', async () => {
    const root = join(tmp.dir, 'root');
    await mkdir(root, { mode: 0o700 });
    const log = join(tmp.dir, 'done.log');
    const done = await writeScript(tmp.dir, 'done-hook', `for a in "$@"; do printf '%s\\n' "$a" >> ${log}; done\n`);
    const raw = sshd.sshOptions(key);
    const options: string[] = [];
    for (let i = 0; i < raw.length; i += 1) {
      const v = raw[i + 1];
      if (raw[i] === '-o' && v && /^(UserKnownHostsFile|GlobalKnownHostsFile|StrictHostKeyChecking|KexAlgorithms|IdentitiesOnly)=/.test(v)) options.push('--ssh-option', v);
    }
    const r = await runNode(recvBin, [
      '--pull', `${sshd.user}@127.0.0.1`, '--ssh-port', String(sshd.port), '--ssh-key', key, ...options,
      '--name', NAME, '--plugin', LINK_DEST_DIST, '-x', `done:${done}`, root,
    ]);
    assert.equal(r.code, 0, `pull failed (exit ${r.code}):\n${r.stderr}${r.stdout}\nsshd log:\n${sshd.log()}`);
    const host = join(realpathSync(root), NAME);
    const snapshot = readlinkSync(join(host, 'latest'));
    assert.equal(readFileSync(join(host, snapshot, 'a.txt'), 'utf8'), 'alpha\n');
    assert.equal(readFileSync(join(host, snapshot, 'sub', 'b.txt'), 'utf8'), 'beta\n');
    const args = readFileSync(log, 'utf8').trim().split('\n');
    assert.equal(args.at(-1), 'success', `done hook args: ${args.join(' ')}`);
  });

  test('the key cannot push files and gets no shell', async () => {
    const local = join(tmp.dir, `push-${randomBytes(4).toString('hex')}.txt`);
    await writeFile(local, 'evil\n');
    const name = `x-${randomBytes(4).toString('hex')}`;
    const e = ['ssh', ...sshd.sshArgs(key).slice(0, -1)].join(' ');
    const push = await run('rsync', ['-a', '-e', e, local, `${sshd.user}@127.0.0.1:/${name}`]);
    assert.notEqual(push.code, 0, `the push succeeded:\n${push.stderr}`);
    assert.match(push.stderr, /rrsync error: sending to read-only server is not allowed/, 'rrsync refused it (not some other failure)');
    assert.deepEqual(readdirSync(src).sort(), ['a.txt', 'sub']);
    assert.ok(!existsSync(`/${name}`), `/${name} was written`);
    const dirPush = await run('rsync', ['-a', '-e', e, local, `${sshd.user}@127.0.0.1:`]);
    assert.notEqual(dirPush.code, 0, `the push into the root succeeded:\n${dirPush.stderr}`);
    assert.match(dirPush.stderr, /read-only server/);
    assert.deepEqual(readdirSync(src).sort(), ['a.txt', 'sub']);

    const m = marker();
    try {
      const shell = await run('ssh', [...sshd.sshArgs(key), `touch ${m}`]);
      assert.notEqual(shell.code, 0, `the command ran:\n${shell.stderr}`);
      assert.match(shell.stderr, /rrsync error: SSH_ORIGINAL_COMMAND does not run rsync/);
      assert.ok(!existsSync(m), `${m} was created: the key has a shell`);
    } finally {
      rmSync(m, { force: true });
    }
  });
});

describe('authorize (reverse): the printed line and Match block in a real sshd', { concurrency: 1 }, () => {
  let tmp: { dir: string; cleanup: () => Promise<void> };
  let sshd: Sshd;
  let key: string;
  let printed: Printed;

  before(async () => {
    tmp = await tempDir('srs-authorize-rev-');
    const root = join(tmp.dir, 'backups');
    await mkdir(root, { mode: 0o700 });
    key = join(tmp.dir, 'client_key');
    await makeKey(key, 'client');
    const user = (await import('node:os')).userInfo().username;
    printed = await authorize(['--name', NAME, '--key', `${key}.pub`, '--user', user, '--recv', `${process.execPath} ${recvBin}`, root]);
    const match = printed.sshdMatch.trimEnd().split('\n').map((l) => l.trim());
    assert.equal(match[0], `Match User ${user}`);
    // Everything the printed block does not set is loosened (a later Match only fills keywords the
    // first matching block left unset), so only the printed line and block restrict the key.
    sshd = await startSshd({
      allowTcpForwarding: 'yes',
      extraConfig: [...match, 'Match all', 'PermitTTY yes', 'AllowTcpForwarding yes', 'PermitOpen any'],
    });
    await sshd.setAuthorizedKeys([splitLine(printed.authorizedKeys)]);
  });
  after(async () => {
    await sshd?.stop();
    await tmp?.cleanup();
  });

  test('no shell: a remote command is refused by the forced receiver, in one line', async () => {
    const m = marker();
    try {
      const r = await run('ssh', [...sshd.sshArgs(key), `touch ${m}`]);
      assert.notEqual(r.code, 0, `exit 0:\n${r.stderr}`);
      assert.match(r.stderr, /ssh-r-sync-recv: error: refused: .*not "touch"/, `the forced receiver did not answer:\n${r.stdout}${r.stderr}`);
      assert.equal(r.stdout, '');
      assert.ok(!existsSync(m), `${m} was created: the key has a shell`);
    } finally {
      rmSync(m, { force: true });
    }
  });

  test('no pty: ssh -tt gets the forced receiver, not a shell', async () => {
    const m = marker();
    try {
      const r = await run('ssh', ['-tt', ...sshd.sshArgs(key), `tty; touch ${m}`]);
      assert.notEqual(r.code, 0, `exit 0:\n${r.stdout}${r.stderr}`);
      assert.ok(!existsSync(m), `${m} was created`);
      assert.doesNotMatch(r.stdout, /\/dev\/pts|not a tty/, `tty ran:\n${r.stdout}`);
      assert.doesNotMatch(r.stdout, /[#$] $/m, `a shell prompt:\n${r.stdout}`);
      assert.match(r.stderr, /PTY allocation request failed/, r.stderr);
    } finally {
      rmSync(m, { force: true });
    }
  });

  test('-L forwards are refused', async () => {
    const local = await freePort();
    const child = spawn('ssh', ['-N', '-o', 'ExitOnForwardFailure=yes', '-L', `127.0.0.1:${local}:127.0.0.1:${sshd.port}`, ...sshd.sshArgs(key)], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (c) => (stderr += c));
    const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
    try {
      // Wait until ssh listens locally (or exits).
      let socket: net.Socket | undefined;
      const deadline = Date.now() + 10_000;
      while (!socket) {
        assert.equal(child.exitCode, null, `ssh -L exited early:\n${stderr}`);
        assert.ok(Date.now() < deadline, 'ssh -L never listened');
        socket = await new Promise<net.Socket | undefined>((resolve) => {
          const s = net.connect({ host: '127.0.0.1', port: local });
          s.once('connect', () => resolve(s));
          s.once('error', () => resolve(undefined));
        });
        if (!socket) await new Promise((r) => setTimeout(r, 50));
      }
      const received = await new Promise<string>((resolve) => {
        let data = '';
        const timer = setTimeout(() => resolve(data), 5_000);
        socket!.on('data', (c: Buffer) => (data += c.toString('latin1')));
        socket!.on('error', () => {});
        socket!.on('close', () => {
          clearTimeout(timer);
          resolve(data);
        });
      });
      socket.destroy();
      assert.ok(!received.startsWith('SSH-'), `the -L forward reached sshd: ${JSON.stringify(received)}\n${stderr}`);
    } finally {
      child.kill('SIGKILL');
      await exited;
    }
  });

  test('-R on any port but the printed one is refused (exit 255)', async () => {
    let other = await freePort();
    if (other === printed.port) other = await freePort();
    const r = await run('ssh', ['-N', '-o', 'ExitOnForwardFailure=yes', '-R', `127.0.0.1:${other}:127.0.0.1:1`, ...sshd.sshArgs(key)], 10_000);
    assert.equal(r.code, 255, `exit ${r.code} (signal ${r.signal}):\n${r.stderr}`);
    assert.match(r.stderr, /forward/i);
  });
});
