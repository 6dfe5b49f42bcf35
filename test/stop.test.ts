// Stopping, through a real sshd (issue 8, items 3 and 4): the client's stop has two steps like
// the receiver's; a client that disappears at any stage ends the receiver and frees the lock; a
// run that never ends is stopped by --max-run-time; client hook output is honoured or refused.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { startBackupServer, type BackupServer } from './helpers/backup-server.js';
import { clientBin, processesMatching, receiverPids, tempDir, writeScript, type RunResult } from './helpers/cli.js';

let server: BackupServer;
let tmp: { dir: string; cleanup: () => Promise<void> };
let src: string;

before(async () => {
  tmp = await tempDir('srs-stop-');
  src = join(tmp.dir, 'src');
  await mkdir(src);
  await writeFile(join(src, 'a.txt'), 'alpha\n');
  server = await startBackupServer({ recvArgs: ['--name', 'stop1'] });
});
after(async () => {
  await server?.stop();
  await tmp?.cleanup();
});

// Resolves once `path` exists (a hook wrote it), failing after a minute.
async function appears(path: string, what: string): Promise<void> {
  const deadline = Date.now() + 60_000;
  while (!existsSync(path)) {
    assert.ok(Date.now() < deadline, `${what} did not happen within a minute`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

// Resolves once no process runs `needle` any more, failing after a minute.
async function gone(needle: string, what: string): Promise<void> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    const left = await processesMatching(needle);
    if (left.length === 0) return;
    assert.ok(Date.now() < deadline, `${what} still runs a minute later:\n${left.join('\n')}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

// Starts the real client in the background.
function startClient(args: string[]) {
  const child = spawn(process.execPath, [clientBin, ...server.clientArgs(), '-n', 'stop1', ...args, `${server.sshd.user}@127.0.0.1`, src], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, NO_COLOR: '1' },
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk) => (stdout += chunk));
  child.stderr.on('data', (chunk) => (stderr += chunk));
  const exited = new Promise<RunResult>((resolve) => child.once('close', (code, signal) => resolve({ code, signal, stdout, stderr })));
  return { child, exited };
}

// A receiver-side hook that marks its start, then works "for ever" until it is killed.
async function endlessHook(name: string): Promise<{ path: string; started: string }> {
  const started = join(tmp.dir, `${name}.started`);
  const path = await writeScript(tmp.dir, `${name}.sh`, `touch ${started}\nexec sleep 300\n`);
  return { path, started };
}

describe("the client's stop has two steps", { concurrency: 1 }, () => {
  test('the first SIGTERM stops the run, but the done script still runs to its end and releases what connect took', async () => {
    const held = join(tmp.dir, 'db.lock');
    const status = join(tmp.dir, 'done.status');
    const take = await writeScript(tmp.dir, 'take-lock.sh', `touch ${held}`);
    // A done script that takes its time: killed at once by the first signal, it would leave the lock.
    const release = await writeScript(tmp.dir, 'release-lock.sh', `sleep 1\nrm ${held}\necho "$4" > ${status}`);
    const hook = await endlessHook('recv-handshake-1');
    await server.setRecvArgs(['--name', 'stop1', '-x', `handshake:${hook.path}`]);
    const client = startClient(['--hook', `connect:${take}`, '--hook', `done:${release}`]);
    await appears(hook.started, "the receiver's handshake hook");
    assert.ok(existsSync(held), 'connect took the lock');
    client.child.kill('SIGTERM');
    const run = await client.exited;
    assert.equal(run.code, 1, run.stderr);
    assert.match(run.stderr, /error: stopped by SIGTERM/);
    assert.doesNotMatch(run.stderr, /backup of .* done/);
    assert.equal(existsSync(held), false, 'the done script released the lock');
    assert.equal(await readFile(status, 'utf8'), 'failure\n');
    await gone(hook.path, "the receiver's handshake hook");
  });

  test('a second SIGTERM kills the done script too', async () => {
    const doneStarted = join(tmp.dir, 'slow-done.started');
    const doneFinished = join(tmp.dir, 'slow-done.finished');
    const slowDone = await writeScript(tmp.dir, 'slow-done.sh', `touch ${doneStarted}\nsleep 300\ntouch ${doneFinished}`);
    const hook = await endlessHook('recv-handshake-2');
    await server.setRecvArgs(['--name', 'stop1', '-x', `handshake:${hook.path}`]);
    const client = startClient(['--hook', `done:${slowDone}`]);
    await appears(hook.started, "the receiver's handshake hook");
    client.child.kill('SIGTERM');
    await appears(doneStarted, 'the client done script');
    client.child.kill('SIGTERM');
    const run = await client.exited;
    assert.equal(run.code, 1, run.stderr);
    await gone(slowDone, 'the client done script');
    assert.equal(existsSync(doneFinished), false);
    await gone(hook.path, "the receiver's handshake hook");
  });
});

describe('client hook output is honoured or refused, never dropped', { concurrency: 1 }, () => {
  test('rsync.pre options on the client are refused with what to do instead; nothing is pulled', async () => {
    await server.setRecvArgs(['--name', 'stop1']);
    const pre = await writeScript(tmp.dir, 'client-pre.sh', "printf -- '--bwlimit=10\\0'");
    await writeFile(join(src, 'not-pulled.txt'), 'x\n');
    const run = await startClient(['--hook', `rsync.pre:${pre}`]).exited;
    assert.equal(run.code, 1, run.stderr);
    assert.match(run.stderr, /a client rsync\.pre hook printed rsync options \(--bwlimit=10\), but the client's daemon options are fixed: give rsync options to the server/);
    assert.equal(existsSync(join(server.root, 'stop1', 'not-pulled.txt')), false);
  });

  test('an rsync.post exit-code mapping on the client is refused: the receiver decides the result', async () => {
    await server.setRecvArgs(['--name', 'stop1']);
    const post = await writeScript(tmp.dir, 'client-post.sh', 'echo 5');
    const run = await startClient(['--hook', `rsync.post:${post}`]).exited;
    assert.equal(run.code, 1, run.stderr);
    assert.match(run.stderr, /a client rsync\.post hook changed rsync's exit code from 0 to 5, but the receiver decides the result/);
  });
});

describe('a receiver that refuses before its hello', { concurrency: 1 }, () => {
  test("a failing connect hook reaches the client in the receiver's words; exit 75 skips", async () => {
    const failing = await writeScript(tmp.dir, 'connect-fails.sh', 'exit 3');
    await server.setRecvArgs(['--name', 'stop1', '-x', `connect:${failing}`]);
    const run = await startClient([]).exited;
    assert.equal(run.code, 1, run.stderr);
    assert.match(run.stderr, /error: connect hook ".*connect-fails\.sh" failed: exited with code 3/);
    const later = await writeScript(tmp.dir, 'connect-later.sh', 'exit 75');
    await server.setRecvArgs(['--name', 'stop1', '-x', `connect:${later}`]);
    const skipped = await startClient([]).exited;
    assert.equal(skipped.code, 75, skipped.stderr);
    assert.match(skipped.stderr, /skipped: connect hook ".*connect-later\.sh" exited with 75 \(not now\)/);
  });
});

describe('a client that disappears ends the receiver, at any stage', { concurrency: 1 }, () => {
  for (const point of ['connect', 'handshake']) {
    test(`SIGKILLed during the receiver's ${point} hook: the hook is killed and the host's lock freed`, async () => {
      const hook = await endlessHook(`recv-${point}-gone`);
      await server.setRecvArgs(['--name', 'stop1', '--lock-wait', '0', '-x', `${point}:${hook.path}`]);
      const client = startClient([]);
      await appears(hook.started, `the receiver's ${point} hook`);
      client.child.kill('SIGKILL');
      await client.exited;
      await gone(hook.path, `the receiver's ${point} hook`);
      await gone('--name stop1 ', 'the receiver');
      await server.setRecvArgs(['--name', 'stop1', '--lock-wait', '0']);
      const next = await startClient([]).exited;
      assert.equal(next.code, 0, `the lock was released:\n${next.stderr}`);
    });
  }

  test('a SIGKILLed receiver takes its hook processes with it, children of the script included', async () => {
    const started = join(tmp.dir, 'orphan.started');
    const hook = await writeScript(tmp.dir, 'orphan-hook.sh', `touch ${started}\nsleep 307\necho unreachable\n`);
    await server.setRecvArgs(['--name', 'stop1', '-x', `handshake:${hook}`]);
    const client = startClient([]);
    await appears(started, "the receiver's handshake hook");
    const [receiver] = await receiverPids('stop1');
    process.kill(receiver!, 'SIGKILL');
    const run = await client.exited;
    assert.equal(run.code, 1, run.stderr);
    await gone(hook, 'the hook script');
    await gone('sleep 307', "the hook script's child");
  });

  test('--max-run-time stops a run that never ends, and says so', async () => {
    const hook = await endlessHook('recv-endless');
    await server.setRecvArgs(['--name', 'stop1', '--max-run-time', '2', '-x', `rsync.pre:${hook.path}`]);
    const run = await startClient([]).exited;
    assert.equal(run.code, 1, run.stderr);
    assert.match(run.stderr, /error: .*the run took longer than its limit of 2 s \(--max-run-time\)/);
    await gone(hook.path, 'the endless hook');
  });
});
