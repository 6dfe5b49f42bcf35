// What happens around the commit point (issue 8, items 2 and 5): every done tap runs, pruning
// never delays or fails a committed backup, and the receiver never mixes a mirror with snapshots.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, readlinkSync, rmSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { listSnapshots } from '@ssh-r-sync/core';
import { startBackupServer, type BackupServer } from './helpers/backup-server.js';
import { receiverPids, repoRoot, runNode, runRecv, tempDir, writeScript, type RunResult } from './helpers/cli.js';

const LINK_DEST = join(repoRoot, 'packages/plugin-link-dest/dist/index.js');
const MANIFEST = join(repoRoot, 'packages/plugin-manifest/dist/index.js');
const ROTATE = join(repoRoot, 'packages/plugin-rotate/dist/index.js');
const adminBin = join(repoRoot, 'packages/cli/bin/ssh-r-sync-admin.js');

let tmp: { dir: string; cleanup: () => Promise<void> };
let cases = 0;
before(async () => {
  tmp = await tempDir('srs-completion-');
});
after(() => tmp?.cleanup());

// A fresh source and backup root.
async function fixture() {
  cases += 1;
  const base = join(tmp.dir, `c${cases}`);
  const src = join(base, 'src');
  const root = join(base, 'root');
  await mkdir(join(src, 'sub'), { recursive: true });
  await mkdir(root, { mode: 0o700 }); // a privileged receiver refuses a root others can open
  await writeFile(join(src, 'a.txt'), 'alpha\n');
  await writeFile(join(src, 'sub', 'b.txt'), 'beta\n');
  return { base, src, root, host: join(root, 'h') };
}

function recv(f: { src: string; root: string; base: string }, extra: string[]): Promise<RunResult> {
  return runRecv(['--local', f.src, '--name', 'h', ...extra, f.root], { cwd: f.base });
}

function hostRecord(root: string, name = 'h'): { kind: string; afterSession?: { tasks: { name: string; outcome: string; error: string | null }[] } } {
  return JSON.parse(readFileSync(join(root, '.ssh-r-sync', 'hosts', `${name}.json`), 'utf8'));
}

describe('the done mark is the commit', () => {
  test('what fails after it (latest cannot be moved) is a warning: the run succeeds and its snapshot is complete', async () => {
    const f = await fixture();
    assert.equal((await recv(f, ['--plugin', LINK_DEST])).code, 0);
    // `latest` made a directory with something in it (by hand): renaming a link onto it fails.
    rmSync(join(f.host, 'latest'));
    mkdirSync(join(f.host, 'latest', 'x'), { recursive: true });
    await writeFile(join(f.src, 'c.txt'), 'gamma\n');
    const run = await recv(f, ['--plugin', LINK_DEST]);
    assert.equal(run.code, 0, run.stderr);
    const snapshots = await listSnapshots(f.host);
    assert.deepEqual(snapshots.map((s) => s.complete), [true, true]);
    const made = snapshots[1]!.id;
    assert.match(run.stderr, new RegExp(`warn: snapshot ${made} is committed, but .*/h/latest could not be pointed at it \\(EISDIR.*\\): the next run moves it`));
    assert.equal(existsSync(join(snapshots[1]!.paths.tree, 'c.txt')), true);
    assert.deepEqual(readdirSync(f.host).filter((n) => n.startsWith('.latest')), [], 'no temporary link is left');
    assert.equal(JSON.parse(readFileSync(join(f.root, '.ssh-r-sync', 'hosts', 'h.json'), 'utf8')).lastRun.status, 'success');
  });

  test('a store that throws after writing this run\'s done mark has committed: success, with the store\'s error as a warning', async () => {
    const f = await fixture();
    const store = join(f.base, 'late-store.mjs');
    await writeFile(
      store,
      `import linkDest from ${JSON.stringify(LINK_DEST)};
      const plugin = linkDest();
      const inner = plugin.store;
      const open = (l) => { const s = inner.open(l); return Object.assign(Object.create(s), { commit: async (...a) => { await s.commit(...a); throw new Error('late trouble'); } }); };
      export default { ...plugin, name: 'late-store', store: { ...inner, open } };\n`,
    );
    const run = await recv(f, ['--plugin', store]);
    assert.equal(run.code, 0, run.stderr);
    const [snapshot] = await listSnapshots(f.host);
    assert.equal(snapshot?.complete, true);
    assert.match(run.stderr, new RegExp(`warn: snapshot ${snapshot!.id} is committed \\(its done mark is written\\), but its store then failed: late trouble`));
  });
});

describe('every done tap runs', () => {
  test('two failing done scripts do not skip the third; both failures are named; the snapshot stays committed', async () => {
    const f = await fixture();
    const first = await writeScript(f.base, 'first.sh', 'exit 3');
    const second = await writeScript(f.base, 'second.sh', 'exit 4');
    const third = await writeScript(f.base, 'third.sh', `echo "$4" > ${join(f.base, 'third-ran')}`);
    const run = await recv(f, ['--plugin', LINK_DEST, '-x', `done:${first}`, '-x', `done:${second}`, '-x', `done:${third}`]);
    assert.equal(run.code, 1, run.stderr);
    assert.match(run.stderr, /error: 2 done hooks failed: done hook ".*first\.sh" failed: exited with code 3; done hook ".*second\.sh" failed: exited with code 4/);
    assert.equal(await readFile(join(f.base, 'third-ran'), 'utf8'), 'success\n', 'the third done script ran, and saw the run as a success');
    const snapshots = await listSnapshots(f.host);
    assert.deepEqual(snapshots.map((s) => s.complete), [true], 'the backup itself is complete');
  });
});

describe("the server's own account of a run", () => {
  test('a failed run is in the host record, in words, and status shows it on the server', async () => {
    const f = await fixture();
    assert.equal((await recv(f, ['--plugin', LINK_DEST])).code, 0);
    const fail = await writeScript(f.base, 'fail.sh', 'echo 23');
    const failed = await recv(f, ['--plugin', LINK_DEST, '-x', `rsync.post:${fail}`]);
    assert.equal(failed.code, 1);
    const last = (hostRecord(f.root) as unknown as { lastRun: { status: string; committed: boolean; message: string } }).lastRun;
    assert.deepEqual([last.status, last.committed], ['failure', false]);
    assert.match(last.message, /rsync\.post changed 0 to 23/);
    const seen = await runNode(adminBin, ['status', f.root, 'h']);
    assert.match(seen.stderr, /h: last run failed: .*rsync\.post changed 0 to 23/);
    assert.match(seen.stdout, /last run failed/);
  });
});

describe('pruning after the session', () => {
  test('rotation that fails to delete never fails a committed backup; the error is logged and in the host record', async (t) => {
    const f = await fixture();
    const config = join(f.base, 'rotate-config.json'); // not a name the config search finds by itself
    await writeFile(config, JSON.stringify({ plugins: [LINK_DEST, [ROTATE, { keep: '1d', keepLast: 1 }]] }));
    assert.equal((await recv(f, ['--config', config])).code, 0);
    const [first] = (await listSnapshots(f.host)).map((s) => s.id);
    // An immutable file: rm cannot delete the expired snapshot.
    const stuck = join(f.host, first!, 'a.txt');
    if (spawnSync('chattr', ['+i', stuck]).status !== 0) return t.skip('chattr +i is not supported on this filesystem');
    t.after(() => spawnSync('chattr', ['-i', stuck]));
    const run = await recv(f, ['--config', config]);
    assert.equal(run.code, 0, `the backup is complete, so the run succeeds:\n${run.stderr}`);
    assert.match(run.stderr, /after the backup, rotate failed: .*could not be deleted.* \(the backup itself is complete\)/);
    const snapshots = await listSnapshots(f.host);
    assert.equal(snapshots.at(-1)!.complete, true);
    const task = hostRecord(f.root).afterSession!.tasks.find((x) => x.name === 'rotate')!;
    assert.equal(task.outcome, 'failed');
    assert.match(task.error!, new RegExp(first!));
    assert.match((await runNode(adminBin, ['status', f.root, 'h'])).stderr, /h: warning: after the backup of .*, rotate failed: /);
    // A later committed run without such work: the old failure is no longer shown as news.
    assert.equal((await recv(f, ['--plugin', LINK_DEST])).code, 0);
    assert.equal(hostRecord(f.root).afterSession, undefined);
    assert.doesNotMatch((await runNode(adminBin, ['status', f.root, 'h'])).stderr, /warning/);
  });
});

describe('after-session work through sshd', { concurrency: 1 }, () => {
  let server: BackupServer;
  let src: string;
  before(async () => {
    src = join(tmp.dir, 'sshd-src');
    await mkdir(src);
    await writeFile(join(src, 'a.txt'), 'alpha\n');
    server = await startBackupServer({ recvArgs: ['--name', 'slow-prune'] });
  });
  after(() => server?.stop());

  test('the client does not wait for it; the host stays locked until it ends; its failure is recorded', async () => {
    const go = join(tmp.dir, 'go');
    const plugin = join(tmp.dir, 'slow-after.mjs');
    // Written against core's public API by path: the plugin schedules work that waits for the test.
    await writeFile(
      plugin,
      `import { scheduleAfterSession } from ${JSON.stringify(join(repoRoot, 'packages/core/dist/index.js'))};
      import { existsSync } from 'node:fs';
      export default { name: 'slow-after', apply(hooks) {
        hooks.done.tapPromise('slow-after', async (outcome, ctx) => {
          scheduleAfterSession(ctx, { name: 'slow-after', timeoutMs: 0, async run(signal) {
            while (!existsSync(${JSON.stringify(go)})) { signal.throwIfAborted(); await new Promise((r) => setTimeout(r, 50)); }
            throw new Error('planted failure after the session');
          } });
        });
      } };\n`,
    );
    await server.setRecvArgs(['--name', 'slow-prune', '--plugin', LINK_DEST, '--plugin', plugin]);
    const run = await server.backup(src, ['-n', 'slow-prune'], { timeoutMs: 60_000 });
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stderr, /backup of slow-prune done/);
    const receiver = () => receiverPids('slow-prune');
    assert.equal((await receiver()).length, 1, 'the receiver is still at its after-session work');
    const second = await server.backup(src, ['-n', 'slow-prune'], { timeoutMs: 60_000 });
    assert.equal(second.code, 1, 'the host is still locked');
    assert.match(second.stderr, /another backup of slow-prune is already running/);
    await writeFile(go, '');
    const deadline = Date.now() + 30_000;
    while ((await receiver()).length > 0) {
      assert.ok(Date.now() < deadline, 'the receiver did not end after its work');
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    const task = hostRecord(server.root, 'slow-prune').afterSession!.tasks[0]!;
    assert.deepEqual([task.name, task.outcome, task.error], ['slow-after', 'failed', 'planted failure after the session']);
    assert.equal((await server.backup(src, ['-n', 'slow-prune'], { timeoutMs: 60_000 })).code, 0, 'and the next backup runs');
  });
});

describe('a host directory is a mirror or snapshots, never both', () => {
  test('turning snapshot plugins on for a mirror host is refused, saying what to do; the mirror is untouched', async () => {
    const f = await fixture();
    // The client's own files include a directory that looks like a snapshot with a done mark.
    await mkdir(join(f.src, '2026-01-01T000000Z.meta'), { recursive: true });
    await mkdir(join(f.src, '2026-01-01T000000Z'));
    await writeFile(join(f.src, '2026-01-01T000000Z.meta', 'done.json'), JSON.stringify({ version: 1, host: 'h', snapshot: '2026-01-01T000000Z' }));
    assert.equal((await recv(f, [])).code, 0, 'a mirror run');
    assert.equal(hostRecord(f.root).kind, 'mirror');
    const before = readdirSync(f.host).sort();
    const run = await recv(f, ['--plugin', LINK_DEST, '--plugin', MANIFEST]);
    assert.equal(run.code, 2, run.stderr);
    assert.match(run.stderr, /holds a mirror of h .*: move it aside \(mv .*\/h .*\/\.h\.mirror\) or remove it/);
    assert.deepEqual(readdirSync(f.host).sort(), before, 'nothing was added to or removed from the mirror');
    assert.ok(!existsSync(join(f.host, 'latest')));
    // The admin tools read the record, not the client's names: no snapshot to show or to prune.
    const seen = await runNode(adminBin, ['status', '--json', f.root, 'h']);
    const host = JSON.parse(seen.stdout).hosts[0];
    assert.deepEqual([host.kind, host.complete, host.newestComplete.id], ['mirror', 1, null]);
    const pruned = await runNode(adminBin, ['prune', f.root, 'h', '--keep', '1d']);
    assert.equal(pruned.code, 0, pruned.stderr);
    assert.match(pruned.stdout, /h: no snapshots \(a plain mirror, or no backup yet\): nothing to prune/);
    assert.ok(existsSync(join(f.host, '2026-01-01T000000Z.meta', 'done.json')), "the client's look-alike is still in the mirror");
  });

  test('a snapshot dated in the future is never "newest": new runs get ids from the clock, rotation keeps the real latest, status warns', async () => {
    const f = await fixture();
    assert.equal((await recv(f, ['--plugin', LINK_DEST])).code, 0);
    // Planted (or left by a clock that was years ahead): a complete snapshot of 2099.
    const future = '2099-01-01T000000Z';
    const [real] = (await listSnapshots(f.host)).map((s) => s.id);
    await mkdir(join(f.host, `${future}.meta`));
    await mkdir(join(f.host, future));
    await writeFile(join(f.host, `${future}.meta`, 'done.json'), readFileSync(join(f.host, `${real}.meta`, 'done.json')));
    const config = join(f.base, 'rotate-config.json'); // not a name the config search finds by itself
    await writeFile(config, JSON.stringify({ plugins: [LINK_DEST, [ROTATE, { keep: '1d', keepLast: 1 }]] }));
    const run = await recv(f, ['--config', config, '--json']);
    assert.equal(run.code, 0, run.stderr);
    const made = JSON.parse(run.stdout.trim()).snapshot as string;
    assert.ok(made.startsWith(new Date().toISOString().slice(0, 4)), `the new id follows the clock: ${made}`);
    assert.equal(readlinkSync(join(f.host, 'latest')), made);
    const ids = (await listSnapshots(f.host)).map((s) => s.id);
    assert.ok(ids.includes(made) && ids.includes(future), `rotation kept the new snapshot and the future one: ${ids}`);
    const seen = await runNode(adminBin, ['status', '--json', f.root, 'h']);
    const host = JSON.parse(seen.stdout).hosts[0];
    assert.equal(host.newestComplete.id, made);
    assert.ok(host.newestComplete.ageSeconds >= 0);
    assert.match(seen.stderr, /h: warning: 1 snapshot dated in the future \(2099-01-01T000000Z\)/);
  });

  test('a host never changes store kind by itself; two snapshot stores in one run are refused', async () => {
    const f = await fixture();
    assert.equal((await recv(f, ['--plugin', LINK_DEST])).code, 0);
    const snapshots = readdirSync(f.host).sort();
    // A store of another kind: what the host's record names must be what the run uses.
    const other = join(f.base, 'other-store.mjs');
    await writeFile(
      other,
      `import linkDest from ${JSON.stringify(LINK_DEST)};
      const inner = linkDest().store;
      export default { name: 'other-store', apply() {}, store: { kind: 'other', module: ${JSON.stringify(other)}, open: (l) => ({ ...inner.open(l), kind: 'other' }) } };\n`,
    );
    const run = await recv(f, ['--plugin', other]);
    assert.equal(run.code, 2, run.stderr);
    assert.match(run.stderr, /holds snapshots of h, but this run stores other snapshots; a host never changes store kind by itself: load @ssh-r-sync\/plugin-link-dest as before, or move the old snapshots aside \(mv .*\/h .*\/\.h\.snapshots\)/);
    assert.deepEqual(readdirSync(f.host).sort(), snapshots, 'nothing was added or removed');
    assert.equal(hostRecord(f.root).kind, 'snapshots');
    const both = await recv(f, ['--plugin', LINK_DEST, '--plugin', other]);
    assert.equal(both.code, 2, both.stderr);
    assert.match(both.stderr, /plugins "link-dest" and "other-store" both store snapshots \(snapshots, other\): load only one of them/);
  });

  test('a run without snapshot plugins on a snapshot host is refused before rsync could delete the snapshots', async () => {
    const f = await fixture();
    assert.equal((await recv(f, ['--plugin', LINK_DEST])).code, 0);
    const snapshots = readdirSync(f.host).sort();
    const run = await recv(f, []);
    assert.equal(run.code, 2, run.stderr);
    assert.match(run.stderr, /holds snapshots of h, but this run has no snapshot plugin .*: load @ssh-r-sync\/plugin-link-dest as before/);
    assert.deepEqual(readdirSync(f.host).sort(), snapshots, 'every snapshot is still there');
  });
});
