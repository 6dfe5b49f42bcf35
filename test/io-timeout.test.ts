// --io-timeout keeps its promise: a client whose connection stays open but that sends nothing
// loses the host's lock within about that time, whether only its rsync daemon stops or its whole
// process tree (ssh included, which keeps the TCP connection open). rsync's own --timeout misses
// both: its keep-alives fill buffers instead (see packages/core/src/session/tunnel/idle-watch.ts).
// Observable: a second run of the same host is no longer refused as "another backup … is running".
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { startBackupServer, type BackupServer } from './helpers/backup-server.js';
import { clientBin, repoRoot, runNode, tempDir, writeScript } from './helpers/cli.js';
import { descendants, spawnLive, waitUntil, type LiveProcess } from './helpers/fake-peer.js';
import { makeKey } from './helpers/sshd.js';

const IO_TIMEOUT_S = 3;
const LOCK_FREED_WITHIN_MS = 60_000;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('--io-timeout', { concurrency: 1 }, () => {
  let server: BackupServer;
  let work: { dir: string; cleanup: () => Promise<void> };
  let big: string;
  let small: string;
  let pace: string;
  const stopped = new Set<number>();
  const clients: LiveProcess[] = [];

  before(async () => {
    work = await tempDir('srs-io-timeout-');
    big = join(work.dir, 'big');
    small = join(work.dir, 'small');
    await mkdir(big);
    await mkdir(small);
    await writeFile(join(big, 'big.bin'), randomBytes(20 << 20));
    await writeFile(join(small, 'a.txt'), 'alpha\n');
    pace = await writeScript(work.dir, 'pace.sh', "printf -- '--bwlimit=1000\\0'\n"); // 20 s for big.bin
    server = await startBackupServer();
  });

  after(async () => {
    for (const pid of stopped) for (const signal of ['SIGCONT', 'SIGKILL'] as const) try { process.kill(pid, signal); } catch { /* gone */ }
    for (const client of clients) client.kill('SIGKILL');
    await server?.stop();
    await work?.cleanup();
  });

  // Starts a slow backup of big with --io-timeout 3 and resolves once data is arriving.
  async function slowRun(): Promise<LiveProcess> {
    await server.setRecvArgs(['--name', 'host1', '--io-timeout', String(IO_TIMEOUT_S), '-x', `rsync.pre:${pace}`]);
    const client = spawnLive(clientBin, [...server.clientArgs(), '-n', 'host1', '--debug', `${server.sshd.user}@127.0.0.1`, big], { killAfterMs: 120_000 });
    clients.push(client);
    await client.waitFor(/"command":"rsync"/, 30_000);
    const host = join(server.root, 'host1');
    assert.ok(await waitUntil(() => existsSync(host) && readdirSync(host).length > 0, 30_000), 'the transfer started');
    // The next runs (the probes for the lock) need no pace and no short timeout.
    await server.setRecvArgs(['--name', 'host1']);
    return client;
  }

  function stop(pids: number[]): void {
    for (const pid of pids) {
      stopped.add(pid);
      process.kill(pid, 'SIGSTOP');
    }
  }

  function resume(): void {
    for (const pid of stopped) try { process.kill(pid, 'SIGCONT'); } catch { /* gone */ }
    stopped.clear();
  }

  // Tries a second backup of host1 every second; resolves with the ms until one was not refused.
  async function lockFreedAfter(since: number): Promise<number> {
    for (;;) {
      const second = await server.backup(small, ['-n', 'host1', '-t', '5'], { timeoutMs: 30_000 });
      if (second.code === 0) return Date.now() - since;
      assert.match(second.stderr, /another backup of host1 is already running/, `the second run failed otherwise:\n${second.stderr}`);
      assert.ok(Date.now() - since < LOCK_FREED_WITHIN_MS, `host1 was still locked ${Date.now() - since} ms after the client stopped sending`);
      await sleep(1000);
    }
  }

  test('a client whose rsync daemon is stopped loses the lock after about --io-timeout; the run fails with a message', { timeout: 120_000 }, async (t) => {
    const client = await slowRun();
    const daemon = descendants(client.pid).find((p) => p.cmdline.startsWith('rsync --daemon'));
    assert.ok(daemon, "found the client's rsync daemon");
    const since = Date.now();
    stop([daemon.pid]);
    const ms = await lockFreedAfter(since);
    t.diagnostic(`host1 was free ${ms} ms after the daemon stopped (--io-timeout ${IO_TIMEOUT_S})`);
    // The client itself still runs: it is told, and ends (its listener kills the stopped daemon).
    const exit = await client.exited;
    assert.equal(exit.code, 1, client.stderr());
    assert.match(client.stderr(), new RegExp(`the client sent no data for ${IO_TIMEOUT_S} s \\(--io-timeout\\)`));
    assert.ok(await waitUntil(() => !existsSync(`/proc/${daemon.pid}`), 10_000), 'the stopped daemon was killed');
    stopped.clear();
  });

  test('a client whose whole process tree is stopped (ssh keeps the connection open) loses the lock the same way', { timeout: 120_000 }, async (t) => {
    const client = await slowRun();
    const tree = [client.pid, ...descendants(client.pid).map((p) => p.pid)];
    assert.ok(tree.length >= 3, 'the client, its ssh and its daemon');
    const since = Date.now();
    stop(tree);
    const ms = await lockFreedAfter(since);
    t.diagnostic(`host1 was free ${ms} ms after the client's tree stopped (--io-timeout ${IO_TIMEOUT_S})`);
    resume();
    const exit = await client.exited;
    assert.notEqual(exit.code, 0, 'the stopped run did not succeed');
    assert.ok(await waitUntil(() => descendants(client.pid).length === 0 && tree.every((pid) => !existsSync(`/proc/${pid}`)), 10_000), 'nothing of the stopped client is left');
  });

  test("the sshd Match block that authorize prints makes sshd drop a client that stops answering within a minute", async () => {
    const key = join(work.dir, 'authorize_key');
    await makeKey(key, 'authorize');
    const printed = await runNode(join(repoRoot, 'packages/cli/bin/ssh-r-sync-admin.js'), ['authorize', '--name', 'host1', '--key', `${key}.pub`, '--user', 'backup', '--recv', '/usr/bin/true', '--json', '/srv/backup']);
    assert.equal(printed.code, 0, printed.stderr);
    const config = join(work.dir, 'sshd_config');
    await writeFile(config, [`HostKey ${key}`, (JSON.parse(printed.stdout) as { sshdMatch: string }).sshdMatch].join('\n'));
    // sshd's own view of the block for that user (-T: the effective settings, -C: the connection).
    const effective = execFileSync('/usr/sbin/sshd', ['-T', '-f', config, '-C', 'user=backup,host=client,addr=192.0.2.1'], { encoding: 'utf8' });
    const setting = (name: string) => Number(new RegExp(`^${name} (\\d+)$`, 'm').exec(effective)?.[1]);
    const interval = setting('clientaliveinterval');
    const count = setting('clientalivecountmax');
    assert.ok(interval > 0 && count > 0 && interval * count <= 60, `ClientAliveInterval ${interval} × ClientAliveCountMax ${count}`);
  });
});
