// The commit point (issue 8, item 1), through a real sshd, rsync and the snapshot plugins: the
// receiver is SIGKILLed at every stage of a run, and each time the client exits 0 only where the
// snapshot is complete on disk, `ssh-r-sync-admin status` says what is on disk, nothing is left
// running, and the next backup of the host works.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { listSnapshots } from '@ssh-r-sync/core';
import { startBackupServer, type BackupServer } from './helpers/backup-server.js';
import { processesMatching, receiverPids, repoRoot, runNode, tempDir, writeScript, type RunResult } from './helpers/cli.js';

const LINK_DEST = join(repoRoot, 'packages/plugin-link-dest/dist/index.js');
const MANIFEST = join(repoRoot, 'packages/plugin-manifest/dist/index.js');
const adminBin = join(repoRoot, 'packages/cli/bin/ssh-r-sync-admin.js');
const PLUGINS = ['--plugin', LINK_DEST, '--plugin', MANIFEST];

let tmp: { dir: string; cleanup: () => Promise<void> };
let server: BackupServer;
let src: string;
let hosts = 0;

before(async () => {
  tmp = await tempDir('srs-commit-');
  src = join(tmp.dir, 'src');
  await mkdir(join(src, 'sub'), { recursive: true });
  await writeFile(join(src, 'a.txt'), 'alpha\n');
  await writeFile(join(src, 'sub', 'b.txt'), 'beta\n');
  server = await startBackupServer({ recvArgs: ['--name', 'unused'] });
});
after(async () => {
  await server?.stop();
  await tmp?.cleanup();
});

// What status says of one host, from its --json output.
async function status(name: string): Promise<{ complete: number; newest: string | null; stale: boolean }> {
  const run = await runNode(adminBin, ['status', '--json', server.root, name]);
  const host = (JSON.parse(run.stdout) as { hosts: { complete: number; newestComplete: { id: string | null } | null; stale: boolean }[] }).hosts[0]!;
  return { complete: host.complete, newest: host.newestComplete?.id ?? null, stale: host.stale };
}

// Waits until no process names the host's directory (its rsync) or the receiver's key any more.
async function nothingLeftFor(name: string): Promise<void> {
  const needle = join(server.root, name);
  const deadline = Date.now() + 60_000;
  for (;;) {
    const left = (await processesMatching(needle)).concat(await processesMatching(`--name ${name} `));
    if (left.length === 0) return;
    assert.ok(Date.now() < deadline, `still running a minute after the receiver died:\n${left.join('\n')}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

// The client's --json result (its last stdout line), if it printed one.
function clientResult(run: RunResult): { status: string; committed: boolean; snapshot: string | null } | null {
  const last = run.stdout.trim().split('\n').at(-1);
  return last ? JSON.parse(last) : null;
}

// Runs a backup of a fresh host whose receiver gets `extra` args; returns the run and the host's name.
async function backupWith(extra: string[]): Promise<{ run: RunResult; name: string }> {
  hosts += 1;
  const name = `kill${hosts}`;
  await server.setRecvArgs(['--name', name, ...PLUGINS, ...extra]);
  const run = await server.backup(src, ['-n', name, '--json'], { timeoutMs: 120_000 });
  return { run, name };
}

// After the receiver was killed: what the client said against what is on disk, and a clean next run.
async function assertTruthful(run: RunResult, name: string, completeOnDisk: boolean, message: RegExp): Promise<void> {
  await nothingLeftFor(name);
  const snapshots = await listSnapshots(join(server.root, name));
  const complete = snapshots.filter((s) => s.complete);
  assert.equal(complete.length, completeOnDisk ? 1 : 0, `complete snapshots on disk: ${JSON.stringify(snapshots.map((s) => [s.id, s.complete]))}`);
  assert.notEqual(run.code, 0, `the client must not report success:\n${run.stderr}`);
  assert.doesNotMatch(run.stderr, /backup of .* done/);
  assert.match(run.stderr, message);
  const result = clientResult(run);
  if (result) assert.equal(result.status, 'failure');
  const seen = await status(name);
  assert.equal(seen.complete, complete.length, 'status counts what is complete on disk');
  assert.equal(seen.newest, complete.at(-1)?.id ?? null, 'status names the complete snapshot, or none');
  // The lock died with the receiver: the next backup runs, completes and is reported.
  await server.setRecvArgs(['--name', name, ...PLUGINS]);
  const next = await server.backup(src, ['-n', name, '--json'], { timeoutMs: 120_000 });
  assert.equal(next.code, 0, next.stderr);
  const nextResult = clientResult(next)!;
  assert.equal(nextResult.committed, true);
  assert.ok(existsSync(join(server.root, name, `${nextResult.snapshot}.meta`, 'done.json')), 'the reported snapshot is complete');
  assert.equal((await status(name)).newest, nextResult.snapshot);
}

describe('a receiver SIGKILLed at each stage', { concurrency: 1 }, () => {
  let killer: string;
  before(async () => {
    // A hook whose parent is the receiver: it kills it where it runs.
    killer = await writeScript(tmp.dir, 'kill-receiver.sh', 'kill -9 "$PPID"\nexit 0\n');
  });

  for (const point of ['connect', 'handshake', 'rsync.pre', 'rsync.post']) {
    test(`in a ${point} hook: the client fails, nothing is complete`, async () => {
      const { run, name } = await backupWith(['-x', `${point}:${killer}`]);
      await assertTruthful(run, name, false, /error: /);
    });
  }

  test('during rsync: rsync dies with the receiver, the client fails, nothing is complete, the next run resumes', async () => {
    const big = join(src, 'zz-big.bin');
    await writeFile(big, randomBytes(4 * 1024 * 1024)); // incompressible, so --bwlimit holds rsync back
    const slow = await writeScript(tmp.dir, 'slow.sh', "printf -- '--bwlimit=128\\0'");
    hosts += 1;
    const name = `kill${hosts}`;
    await server.setRecvArgs(['--name', name, ...PLUGINS, '-x', `rsync.pre:${slow}`]);
    const running = server.backup(src, ['-n', name, '--json'], { timeoutMs: 120_000 });
    const host = join(server.root, name);
    const deadline = Date.now() + 60_000;
    let receiver: number | undefined;
    for (;;) {
      const ids = existsSync(host) ? readdirSync(host).filter((entry) => /Z$/.test(entry)) : [];
      const writing = ids.some((id) => readdirSync(join(host, id)).length > 0);
      [receiver] = await receiverPids(name);
      if (writing && receiver) break;
      assert.ok(Date.now() < deadline, 'rsync did not start writing within a minute');
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    assert.ok((await processesMatching(host)).some((line) => line.includes('rsync')), 'rsync is writing the snapshot');
    process.kill(receiver!, 'SIGKILL');
    const run = await running;
    await writeFile(big, ''); // the next runs need not wait for it
    await assertTruthful(run, name, false, /error: /);
  });

  test('after the manifest, before the commit: the client fails, nothing is complete', async () => {
    const plugin = join(tmp.dir, 'kill-after-manifest.mjs');
    await writeFile(
      plugin,
      `export default { name: 'kill-after-manifest', apply(hooks) {
        hooks.beforeCommit.tapPromise('kill-after-manifest', async () => { process.kill(process.pid, 'SIGKILL'); });
      } };\n`,
    );
    const { run, name } = await backupWith(['--plugin', plugin]);
    assert.ok(existsSync(join(server.root, name)) && readdirSync(join(server.root, name)).some((entry) => entry.endsWith('.meta')));
    const meta = readdirSync(join(server.root, name)).find((entry) => entry.endsWith('.meta'))!;
    assert.ok(existsSync(join(server.root, name, meta, 'manifest.tsv')), 'the manifest was written: the kill came after it');
    await assertTruthful(run, name, false, /error: /);
  });

  test('the moment the done mark is in place (between commit and report): complete on disk, and the client does not say "done"', async () => {
    // Killed by the inotify event of the done mark's rename: before the result leaves, or at
    // worst between result and goodbye. Either way the client exits non-zero and the data is complete.
    const plugin = join(tmp.dir, 'kill-at-commit.mjs');
    await writeFile(
      plugin,
      `import { watch } from 'node:fs';
      export default { name: 'kill-at-commit', apply(hooks) {
        hooks.beforeCommit.tapPromise('kill-at-commit', async (result, ctx) => {
          watch(ctx.dir + '/' + ctx.snapshot + '.meta', (event, file) => { if (file === 'done.json') process.kill(process.pid, 'SIGKILL'); });
        });
      } };\n`,
    );
    const { run, name } = await backupWith(['--plugin', plugin]);
    await assertTruthful(run, name, true, /error: /);
  });

  test('in a done hook (after the committed result): complete on disk; the client says so, and that the goodbye never came', async () => {
    const { run, name } = await backupWith(['-x', `done:${killer}`]);
    assert.match(run.stderr, /snapshot \S+ is committed on the server, but the receiver ended before its goodbye/);
    assert.equal(clientResult(run)?.committed, true);
    await assertTruthful(run, name, true, /its done hooks may not have run/);
  });
});
