// What the server says besides the protocol, through a real sshd: a plugin's console.log (the
// channel is the receiver's alone), a login shell that prints before the receiver starts, control
// characters in the server's text (escaped on the client's terminal), and endless lines on a
// hook's or ssh's stderr (cut, with memory bounded).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { startBackupServer, type BackupServer } from './helpers/backup-server.js';
import { runRecv, tempDir, writeScript, type RunResult } from './helpers/cli.js';

const NAME = 'host1';
// The raw bytes a hostile server would use to retitle and clear the client's terminal.
const HOSTILE = '\x1b]0;pwned\x07\x1b[2J\rgotcha';
const ESCAPED = '\\x1b]0;pwned\\x07\\x1b[2J\\rgotcha';
// Bytes that must never reach a terminal raw from the server: C0 controls but tab and newline, DEL.
const RAW_CONTROL = /[\x00-\x08\x0b-\x1f\x7f]/;
// 50 MB on stderr without a newline, as a broken or hostile program might print.
const ENDLESS = "head -c 50000000 /dev/zero | tr '\\0' x >&2";
// A generous bound on a node process's peak memory; reading 50 MB into one line takes far more.
const MAX_PEAK_KB = 140_000;

let work: string;
let cleanup: () => Promise<void>;
let src: string;

before(async () => {
  ({ dir: work, cleanup } = await tempDir('srs-server-output-'));
  src = join(work, 'src');
  await mkdir(src);
  await writeFile(join(src, 'a.txt'), 'alpha\n');
});
after(() => cleanup());

function assertExit(run: RunResult, code: number, what: string): void {
  assert.equal(run.code, code, `${what}: exit ${run.code}\nstderr: ${run.stderr}\nstdout: ${run.stdout}`);
}

// The client's one "ssh-r-sync: error:" line.
function errorLine(run: RunResult): string {
  const errors = run.stderr.split('\n').filter((line) => line.startsWith('ssh-r-sync: error: '));
  assert.equal(errors.length, 1, `expected one error line:\n${run.stderr}`);
  return errors[0]!;
}

// VmHWM (peak resident memory, kB) that a hook printed as "peak <kB>" for its parent process.
function peakKb(stderr: string): number {
  const match = /peak (\d+)\b/.exec(stderr);
  assert.ok(match, `no peak memory line in:\n${stderr}`);
  return Number(match[1]);
}

// A hook that reports its parent's (the command that runs hooks) peak memory on stderr.
const reportPeak = 'echo "peak $(awk \'/^VmHWM/ { print $2 }\' /proc/$PPID/status)" >&2';

describe('a plugin that prints on stdout', () => {
  let server: BackupServer;
  let plugin: string;
  before(async () => {
    plugin = join(work, 'chatty.mjs');
    await writeFile(
      plugin,
      `console.log('chatty: loaded');
process.stdout.write('chatty: raw write\\n');
export default {
  name: 'chatty',
  apply(hooks) {
    console.log('chatty: apply');
    hooks.connect.tap('chatty', () => { console.log('chatty: connect'); return undefined; });
    hooks.handshake.tap('chatty', () => { console.log('chatty: handshake'); return undefined; });
    hooks.rsyncPre.tap('chatty', () => { process.stdout.write('chatty: rsync.pre, no newline'); return undefined; });
    hooks.rsyncPost.tap('chatty', (result) => { console.log('\\nchatty: rsync.post', result.exitCode); return result; });
    hooks.done.tap('chatty', () => { console.info('chatty: done'); });
  },
};
`,
    );
    server = await startBackupServer({ recvArgs: ['--name', NAME, '--plugin', plugin] });
  });
  after(() => server?.stop());

  test('console.log and process.stdout.write of a plugin do not touch the channel: the backup succeeds, the text shows as server log', async () => {
    const run = await server.backup(src, ['-n', NAME], { timeoutMs: 60_000 });
    assertExit(run, 0, 'the backup');
    assert.equal(await readFile(join(server.root, NAME, 'a.txt'), 'utf8'), 'alpha\n');
    for (const text of ['loaded', 'raw write', 'apply', 'connect', 'handshake', 'rsync.pre, no newline', 'rsync.post 0']) {
      assert.match(run.stderr, new RegExp(`^ssh-r-sync: server: ssh-r-sync-recv\\[stdout\\]: chatty: ${text}$`, 'm'));
    }
    assert.doesNotMatch(run.stderr, /garbage|error/);
  });
});

describe("a server whose login shell prints on stdout before the receiver starts", () => {
  let server: BackupServer;
  before(async () => {
    server = await startBackupServer({ shellStartup: 'echo "Welcome to the backup box"' });
  });
  after(() => server?.stop());

  test('the client names the shell and the fix, in one line', async () => {
    const run = await server.backup(src, ['-n', NAME], { timeoutMs: 60_000 });
    assertExit(run, 1, 'the backup');
    assert.equal(
      errorLine(run),
      `ssh-r-sync: error: the server's shell printed "Welcome to the backup box" before ssh-r-sync-recv started: make non-interactive logins quiet (e.g. ~/.bashrc of the backup user)`,
    );
  });

  test('text without a newline, run into the receiver\'s hello, is quoted alone', async () => {
    const other = await startBackupServer({ shellStartup: 'printf "\\033[1mhi\\033[0m "' });
    try {
      const run = await other.backup(src, ['-n', NAME], { timeoutMs: 60_000 });
      assertExit(run, 1, 'the backup');
      assert.match(errorLine(run), /^ssh-r-sync: error: the server's shell printed "\\x1b\[1mhi\\x1b\[0m " before ssh-r-sync-recv started: /);
    } finally {
      await other.stop();
    }
  });
});

describe("control characters in the server's text", () => {
  test("a receiver hook's stderr with control characters reaches the client escaped", async () => {
    const hook = await writeScript(work, 'hostile-hook.sh', "printf '\\033]0;pwned\\007\\033[2J\\rgotcha\\n' >&2\n");
    const server = await startBackupServer({ recvArgs: ['--name', NAME, '-x', `connect:${hook}`] });
    try {
      const run = await server.backup(src, ['-n', NAME], { timeoutMs: 60_000 });
      assertExit(run, 0, 'the backup');
      assert.ok(run.stderr.includes(ESCAPED), `no escaped hook line in:\n${run.stderr}`);
      assert.doesNotMatch(run.stderr, RAW_CONTROL);
    } finally {
      await server.stop();
    }
  });

  test('a name and a result message with control characters, from a fake receiver, are printed escaped', async () => {
    const hello = { v: 1, type: 'hello', protocol: 'ssh-r-sync', versions: [1] };
    const ready = { v: 1, type: 'ready', name: `host1${HOSTILE}`, mode: 'plain' };
    const result = { v: 1, type: 'result', status: 'failure', committed: false, exitCode: 1, rsyncExitCode: null, message: `refused ${HOSTILE}`, files: null, bytes: null, durationMs: 1, snapshot: null };
    const bye = { v: 1, type: 'bye', status: 'failure', message: null };
    const send = (message: object) => `printf '%s\\n' '${JSON.stringify(message)}'\n`;
    const fake = await writeScript(work, 'fake-receiver.sh', `${send(hello)}read -r session\n${send(ready)}read -r start\n${send(result)}${send(bye)}cat >/dev/null\n`);
    const server = await startBackupServer();
    try {
      await server.sshd.setAuthorizedKeys([{ publicKey: await readFile(`${server.key}.pub`, 'utf8'), options: `restrict,port-forwarding,command="${fake}"` }]);
      const run = await server.backup(src, ['-n', NAME, '--debug'], { timeoutMs: 60_000 });
      assertExit(run, 1, 'the backup');
      assert.ok(run.stderr.includes(`receiver accepted host1${ESCAPED} (plain)`), `no escaped name in:\n${run.stderr}`);
      assert.equal(errorLine(run), `ssh-r-sync: error: refused ${ESCAPED}`);
      assert.doesNotMatch(run.stderr, RAW_CONTROL);
    } finally {
      await server.stop();
    }
  });
});

describe('endless lines on stderr', () => {
  test('a hook that prints 50 MB without a newline: the run succeeds, the line is cut, the receiver stays small', async () => {
    const root = join(work, 'endless-root');
    await mkdir(root, { mode: 0o700 });
    const endless = await writeScript(work, 'endless-hook.sh', `${ENDLESS}\n`);
    const peak = await writeScript(work, 'peak-hook.sh', `${reportPeak}\n`);
    const run = await runRecv(['--local', src, '--name', NAME, '-x', `connect:${endless}`, '-x', `done:${peak}`, root], { timeoutMs: 120_000 });
    assertExit(run, 0, 'the run');
    const cut = run.stderr.split('\n').find((line) => line.includes('xxxx'));
    assert.ok(cut?.endsWith('x…'), `no cut line in the log:\n${run.stderr.slice(0, 500)}`);
    assert.ok(run.stderr.length < 20_000, `${run.stderr.length} characters of log`);
    assert.ok(peakKb(run.stderr) < MAX_PEAK_KB, `the receiver's peak memory was ${peakKb(run.stderr)} kB`);
  });

  test("a server shell that prints 50 MB on stderr without a newline: the backup succeeds, the client stays small", async () => {
    const server = await startBackupServer({ shellStartup: ENDLESS });
    try {
      const peak = await writeScript(work, 'client-peak-hook.sh', `${reportPeak}\n`);
      const run = await server.backup(src, ['-n', NAME, '--hook', `done:${peak}`], { timeoutMs: 120_000 });
      assertExit(run, 0, 'the backup');
      assert.ok(run.stderr.length < 20_000, `${run.stderr.length} characters of log`);
      assert.ok(peakKb(run.stderr) < MAX_PEAK_KB, `the client's peak memory was ${peakKb(run.stderr)} kB`);
    } finally {
      await server.stop();
    }
  });
});
