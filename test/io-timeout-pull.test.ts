// --io-timeout keeps its promise in pull mode too: a client whose sshd stays up but whose rsync
// (the sender rrsync started) sends nothing loses the host's lock within about that time. rsync's
// own --timeout misses it: the receiver's generator counts its keep-alives, which fill the ssh
// channel's buffers instead of reaching the stopped sender, as activity.
// Observable: the stalled pull fails with a message, and the next pull of the host is not refused.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync, realpathSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { makeKey, startSshd, type Sshd } from './helpers/sshd.js';
import { recvBin, runRecv, tempDir, writeScript } from './helpers/cli.js';
import { descendants, processTable, spawnLive, waitUntil, type LiveProcess } from './helpers/fake-peer.js';

const NAME = 'host1';
const RRSYNC = '/usr/bin/rrsync';
const IO_TIMEOUT_S = 3;
const ENDS_WITHIN_MS = 60_000;

describe('--io-timeout in pull mode', { concurrency: 1 }, () => {
  let tmp: { dir: string; cleanup: () => Promise<void> };
  let sshd: Sshd;
  let src: string;
  let key: string;
  let pace: string;
  const stopped = new Set<number>();
  const runs: LiveProcess[] = [];

  // --pull options that reach the sshd as its user with our key (as in pull.test.ts).
  const pullArgs = (): string[] => {
    const raw = sshd.sshOptions(key);
    const options: string[] = [];
    for (let i = 0; i < raw.length; i += 1) {
      const value = raw[i + 1];
      if (raw[i] === '-o' && value && /^(UserKnownHostsFile|GlobalKnownHostsFile|StrictHostKeyChecking|KexAlgorithms|IdentitiesOnly)=/.test(value)) {
        options.push('-o', value);
      }
    }
    return ['--pull', `${sshd.user}@127.0.0.1`, '-p', String(sshd.port), '-k', key, ...options, '--name', NAME];
  };

  before(async () => {
    assert.ok(existsSync(RRSYNC), `${RRSYNC} is missing (apt-get install rsync)`);
    tmp = await tempDir('srs-io-timeout-pull-');
    src = join(tmp.dir, 'src');
    await mkdir(src);
    await writeFile(join(src, 'big.bin'), randomBytes(8 << 20)); // incompressible: -z does not speed it up
    pace = await writeScript(tmp.dir, 'pace.sh', "printf -- '--bwlimit=500\\0'\n"); // about 16 s for big.bin
    key = join(tmp.dir, 'recv_key');
    const publicKey = await makeKey(key, 'receiver');
    sshd = await startSshd();
    await sshd.setAuthorizedKeys([{ publicKey, options: `restrict,command="${RRSYNC} -ro ${src}"` }]);
  });

  after(async () => {
    for (const pid of stopped) for (const signal of ['SIGCONT', 'SIGKILL'] as const) try { process.kill(pid, signal); } catch { /* gone */ }
    for (const run of runs) run.kill('SIGKILL');
    await sshd?.stop();
    await tmp?.cleanup();
  });

  test('a live but slow pull that lasts longer than --io-timeout is not stopped', { timeout: 120_000 }, async () => {
    const root = join(tmp.dir, 'root-slow');
    await mkdir(root, { mode: 0o700 });
    const steady = await writeScript(tmp.dir, 'steady.sh', "printf -- '--bwlimit=2000\\0'\n"); // about 4 s for big.bin
    const result = await runRecv([...pullArgs(), '--io-timeout', String(IO_TIMEOUT_S), '--hook', `rsync.pre:${steady}`, root], { timeoutMs: 90_000 });
    assert.equal(result.code, 0, result.stderr);
    assert.doesNotMatch(result.stderr, /--io-timeout/);
    assert.ok(existsSync(join(realpathSync(root), NAME, 'big.bin')), 'big.bin arrived');
  });

  test('a client whose rsync sender is stopped loses the lock after about --io-timeout; the pull fails with a message', { timeout: 150_000 }, async (t) => {
    const root = join(tmp.dir, 'root');
    await mkdir(root, { mode: 0o700 });
    const host = join(realpathSync(root), NAME);
    const run = spawnLive(recvBin, [...pullArgs(), '--io-timeout', String(IO_TIMEOUT_S), '--hook', `rsync.pre:${pace}`, root], { killAfterMs: 120_000 });
    runs.push(run);
    // Under way: rsync's temporary file for big.bin (.big.bin.XXXXXX) is in the host's directory.
    const arriving = () => existsSync(host) && readdirSync(host).some((entry) => entry.startsWith('.big.bin.'));
    assert.ok(await waitUntil(arriving, 30_000), `the transfer started; stderr:\n${run.stderr()}`);
    // The client's side: the rsync sender that rrsync started under the client's sshd (not ours).
    const ours = new Set(descendants(run.pid).map((p) => p.pid));
    const senders = processTable().filter((p) => !ours.has(p.pid) && /^(\S*\/)?rsync --server --sender /.test(p.cmdline) && p.cmdline.includes(src));
    assert.ok(senders.length > 0, "found the client's rsync sender");
    const since = Date.now();
    for (const sender of senders) {
      stopped.add(sender.pid);
      process.kill(sender.pid, 'SIGSTOP');
    }
    const ended = await Promise.race([run.exited, new Promise<undefined>((resolve) => setTimeout(() => resolve(undefined), ENDS_WITHIN_MS).unref())]);
    assert.ok(ended, `the pull still ran ${ENDS_WITHIN_MS} ms after the client's sender stopped (--io-timeout ${IO_TIMEOUT_S})`);
    t.diagnostic(`the pull ended ${Date.now() - since} ms after the sender stopped (--io-timeout ${IO_TIMEOUT_S})`);
    assert.equal(ended.code, 1, run.stderr());
    assert.match(run.stderr(), new RegExp(`^ssh-r-sync-recv: error: .*the client sent no data for ${IO_TIMEOUT_S} s \\(--io-timeout\\)`, 'm'));
    assert.ok(await waitUntil(() => [...ours].every((pid) => !existsSync(`/proc/${pid}`)), 10_000), 'nothing of the stalled pull (its rsync, its ssh) is left running');

    // The host is free again: the next pull is not refused, and it completes.
    const second = await runRecv([...pullArgs(), root], { timeoutMs: 60_000 });
    assert.doesNotMatch(second.stderr, /another backup of host1 is already running/);
    assert.equal(second.code, 0, second.stderr);
    assert.ok(existsSync(join(host, 'big.bin')), 'the second pull brought big.bin');
  });
});
