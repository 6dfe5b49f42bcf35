// Attacks on the commit point and what follows it (issue 8), on real processes: a real sshd, the
// real client and receiver, real rsync. Each test is a way a guarantee of docs/protocol.md
// ("The commit point", "After the session", "A vanished peer") was broken before its fix.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, realpathSync, renameSync } from 'node:fs';
import { spawn, spawnSync } from 'node:child_process';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { listSnapshots } from '@ssh-r-sync/core';
import { startBackupServer, type BackupServer } from './helpers/backup-server.js';
import { processesMatching, repoRoot, runNode, runRecv, tempDir, writeScript } from './helpers/cli.js';

const LINK_DEST = join(repoRoot, 'packages/plugin-link-dest/dist/index.js');
const adminBin = join(repoRoot, 'packages/cli/bin/ssh-r-sync-admin.js');

let tmp: { dir: string; cleanup: () => Promise<void> };
let server: BackupServer;
let src: string;
let hosts = 0;

before(async () => {
  tmp = await tempDir('srs-attack-commit-');
  src = join(tmp.dir, 'src');
  await mkdir(src);
  await writeFile(join(src, 'a.txt'), 'alpha\n');
  server = await startBackupServer({ recvArgs: ['--name', 'unused'] });
});
after(async () => {
  await server?.stop();
  await tmp?.cleanup();
});

// A fresh host name for each test: no test sees another's snapshots or lock.
function nextHost(): string {
  hosts += 1;
  return `atk${hosts}`;
}

// The newest complete snapshot as `ssh-r-sync-admin status --json` names it.
async function statusNewest(name: string): Promise<string | null> {
  const run = await runNode(adminBin, ['status', '--json', server.root, name]);
  return (JSON.parse(run.stdout) as { hosts: { newestComplete: { id: string | null } | null }[] }).hosts[0]!.newestComplete?.id ?? null;
}

// Waits until the receiver of `name` has exited (it goes on for a while without its client).
async function receiverGone(name: string): Promise<void> {
  const deadline = Date.now() + 60_000;
  while ((await processesMatching(`--name ${name} `)).length > 0) {
    assert.ok(Date.now() < deadline, `the receiver of ${name} still runs a minute later`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

// SIGKILLs what a failed test left running (processes whose command line has one of `needles`).
async function killLeftovers(...needles: string[]): Promise<void> {
  for (const needle of needles) {
    for (const line of await processesMatching(needle)) {
      try {
        process.kill(Number(line.split(':')[0]), 'SIGKILL');
      } catch {
        // already gone
      }
    }
  }
}

describe('a client that vanishes at the commit', () => {
  test('a committed snapshot of an empty directory stays complete when the result cannot be delivered', async () => {
    // The receiver's session (its sshd process) is killed the moment the done mark is in place,
    // and the receiver is held until it is gone: the commit finishes, the result cannot be sent.
    // The committed snapshot must stay, whatever the run's status became: plugin-link-dest took
    // "not a success and nothing in it" for a failed run's leftover and deleted it, done mark and
    // all, leaving `latest` pointing at nothing.
    const name = nextHost();
    const empty = join(tmp.dir, `${name}-empty`);
    await mkdir(empty);
    const plugin = join(tmp.dir, `${name}-drop-session.mjs`);
    await writeFile(
      plugin,
      `import { watch } from 'node:fs';
      export default { name: 'drop-session-at-commit', apply(hooks) {
        hooks.beforeCommit.tapPromise('drop-session-at-commit', async (result, ctx) => {
          const watcher = watch(ctx.dir + '/' + ctx.snapshot + '.meta', (event, file) => {
            if (file !== 'done.json') return;
            watcher.close();
            const session = process.ppid;
            process.kill(session, 'SIGKILL');
            const until = Date.now() + 20000;
            while (process.ppid === session && Date.now() < until) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 10);
          });
          return result;
        });
      } };\n`,
    );
    await server.setRecvArgs(['--name', name, '--plugin', LINK_DEST, '--plugin', plugin]);
    const run = await server.backup(empty, ['-n', name], { timeoutMs: 60_000 });
    assert.equal(run.code, 1, run.stderr);
    assert.doesNotMatch(run.stderr, /backup of .* done/);
    const host = join(server.root, name);
    await receiverGone(name);
    const snapshots = await listSnapshots(host);
    assert.deepEqual(snapshots.map((s) => s.complete), [true], `the committed snapshot is still complete: ${JSON.stringify(readdirSync(host))}`);
    assert.equal(realpathSync(join(host, 'latest')), snapshots[0]!.paths.tree, '`latest` points at it');
    assert.equal(await statusNewest(name), snapshots[0]!.id);
  });
});

describe('--max-run-time', () => {
  test('bounds the done hooks too: one that never ends is killed, the client hears the goodbye, the host is free', async (t) => {
    // Done taps survive a stop (they release what connect took), so the run's limit used to stop
    // everything but them: a done hook that hung kept the receiver, its lock and the waiting
    // client (no --wait-timeout by default) for ever.
    const name = nextHost();
    const hang = await writeScript(tmp.dir, `${name}-hang.sh`, 'sleep 401\n');
    t.after(() => killLeftovers(`--name ${name} `, hang, 'sleep 401'));
    await server.setRecvArgs(['--name', name, '--plugin', LINK_DEST, '--max-run-time', '3', '-x', `done:${hang}`]);
    const run = await server.backup(src, ['-n', name, '--json'], { timeoutMs: 90_000 });
    assert.equal(run.signal, null, 'the client ended by itself');
    assert.equal(run.code, 1, run.stderr);
    assert.match(run.stderr, /error: snapshot \S+ is committed, but after it: the run took longer than its limit of 3 s \(--max-run-time\); done hook "[^"]*hang\.sh" failed: was killed by SIGKILL/);
    await receiverGone(name);
    assert.deepEqual(await processesMatching('sleep 401'), []);
    const snapshots = await listSnapshots(join(server.root, name));
    assert.deepEqual(snapshots.map((s) => s.complete), [true], 'the backup itself is committed');
    await server.setRecvArgs(['--name', name, '--plugin', LINK_DEST]);
    const next = await server.backup(src, ['-n', name], { timeoutMs: 60_000 });
    assert.equal(next.code, 0, `the host is not locked any more: ${next.stderr}`);
  });
});

describe('limits longer than a timer can hold', () => {
  test('a month of --max-run-time and --hook-timeout is a long limit, not an instant one', async () => {
    // setTimeout fires at once (with a warning) beyond 2^31-1 ms, about 24.8 days: the run was
    // stopped, or its hook timed out, the moment it began. A first backup of a huge tree is
    // exactly when a long --max-run-time is needed.
    const base = join(tmp.dir, 'month');
    const root = join(base, 'root');
    await mkdir(root, { recursive: true, mode: 0o700 });
    const hook = await writeScript(base, 'pause.sh', 'sleep 1\n');
    const month = String(30 * 24 * 3600);
    const run = await runRecv(['--local', src, '--name', 'month', '--max-run-time', month, '--hook-timeout', month, '-x', `rsync.pre:${hook}`, root], { cwd: base });
    assert.equal(run.code, 0, run.stderr);
    assert.doesNotMatch(run.stderr, /TimeoutOverflowWarning/);
  });
});

describe('--max-run-time against a plugin that ignores its signal', () => {
  for (const point of ['rsyncPre', 'done'] as const) {
    test(`a ${point} tap that never settles is abandoned: the run ends, with the limit as its reason`, async () => {
      // Scripts die when their signal aborts; a TS tap can only be asked. One awaiting what never
      // comes (a webhook without a timeout) kept the run, and the host's lock, for ever.
      const base = join(tmp.dir, `deaf-${point}`);
      const root = join(base, 'root');
      await mkdir(root, { recursive: true, mode: 0o700 });
      const plugin = join(base, 'deaf.mjs');
      await writeFile(plugin, `export default { name: 'deaf', apply(hooks) { hooks.${point}.tapPromise('deaf', () => new Promise(() => setInterval(() => {}, 1000))); } };\n`);
      const run = await runRecv(['--local', src, '--name', 'd', '--plugin', LINK_DEST, '--plugin', plugin, '--max-run-time', '2', root], { cwd: base, timeoutMs: 90_000 });
      assert.equal(run.signal, null, 'the receiver ended by itself');
      assert.equal(run.code, 1, run.stderr);
      assert.match(run.stderr, /error: .*the run took longer than its limit of 2 s \(--max-run-time\)/);
      const complete = (await listSnapshots(join(root, 'd'))).filter((s) => s.complete).length;
      assert.equal(complete, point === 'done' ? 1 : 0);
    });
  }
});

describe("the client's verdict on a receiver's word", () => {
  // A receiver (buggy, of another version, or not ours) answers with a result that no real one
  // sends. The client must not exit 0 unless the result is a committed success after its start.
  let fake: string;
  before(async () => {
    fake = join(tmp.dir, 'fake-receiver.mjs');
    await writeFile(
      fake,
      `import { createInterface } from 'node:readline';
      const [when, result] = [process.argv[2], JSON.parse(process.argv[3])];
      const say = (m) => process.stdout.write(JSON.stringify({ v: 1, ...m }) + '\\n');
      const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();
      say({ type: 'hello', protocol: 'ssh-r-sync', versions: [1] });
      await lines.next();
      if (when === 'after-start') { say({ type: 'ready', name: process.argv[4], mode: 'plain' }); await lines.next(); }
      say({ type: 'result', committed: false, rsyncExitCode: null, message: null, files: null, bytes: null, durationMs: 1, snapshot: null, ...result });
      say({ type: 'bye', status: result.status, message: null });
      `,
    );
  });

  // Runs the client against the fake receiver, which answers `when` with `result`.
  async function against(when: 'instead-of-ready' | 'after-start', result: Record<string, unknown>) {
    const name = nextHost();
    const publicKey = (await readFile(`${server.key}.pub`, 'utf8')).trim();
    const command = [process.execPath, fake, when, `'${JSON.stringify(result)}'`, name].join(' ');
    await server.sshd.setAuthorizedKeys([{ publicKey, options: `restrict,port-forwarding,command="${command.replace(/"/g, '\\"')}"` }]);
    return server.backup(src, ['-n', name, '--json'], { timeoutMs: 60_000 });
  }

  test('"success" before the client said start (in place of ready) is a failure: nothing was backed up', async () => {
    const run = await against('instead-of-ready', { status: 'success', committed: true, exitCode: 0 });
    assert.equal(run.code, 1, run.stderr);
    assert.match(run.stderr, /error: the receiver reported success before the backup started: treat it as failed/);
    assert.equal(JSON.parse(run.stdout).committed, false);
  });

  test('a failure that carries exit code 0 still exits 1', async () => {
    const run = await against('after-start', { status: 'failure', exitCode: 0, message: 'disk on fire' });
    assert.equal(run.code, 1, run.stderr);
    assert.match(run.stderr, /error: disk on fire/);
  });

  test('a skip that carries exit code 0 exits 75', async () => {
    const run = await against('after-start', { status: 'skipped', exitCode: 0, message: 'not now' });
    assert.equal(run.code, 75, run.stderr);
  });

  test('a committed failure that carries exit code 0 still exits 1', async () => {
    const run = await against('after-start', { status: 'failure', committed: true, exitCode: 0 });
    assert.equal(run.code, 1, run.stderr);
  });

  test('a "success" with exit code 1 is not reported as done', async () => {
    const run = await against('after-start', { status: 'success', committed: true, exitCode: 1 });
    assert.equal(run.code, 1, run.stderr);
    assert.doesNotMatch(run.stderr, /backup of .* done/);
    assert.match(run.stderr, /error: the receiver reported success with exit code 1: treat it as failed/);
  });

  test('a committed "success" after start, with a goodbye, but without pulling anything is a failure', async () => {
    const run = await against('after-start', { status: 'success', committed: true, exitCode: 0, snapshot: '2026-01-01T000000Z' });
    assert.equal(run.code, 1, run.stderr);
    assert.doesNotMatch(run.stderr, /backup of .* done/);
    assert.match(run.stderr, /error: the receiver reported a committed backup, but this client's daemon served it nothing: treat it as failed/);
  });

  after(() => server.setRecvArgs(['--name', 'unused'])); // the default key runs the real receiver again
});

describe('a host record is data, not code or a guess', () => {
  test('a record naming its store by path: the admin tools (often root) never import it', async () => {
    const base = join(tmp.dir, 'record-code');
    const root = join(base, 'root');
    await mkdir(join(root, '.ssh-r-sync', 'hosts'), { recursive: true, mode: 0o700 });
    await mkdir(join(root, 'evil', '2026-01-01T000000Z.meta'), { recursive: true });
    const marker = join(base, 'ran');
    const module = join(root, 'x.mjs');
    await writeFile(module, `import { writeFileSync } from 'node:fs'; writeFileSync(${JSON.stringify(marker)}, String(process.getuid()));\nexport default { name: 'x', apply() {}, store: { kind: 'zz', module: ${JSON.stringify(module)}, open() {} } };\n`);
    await writeFile(join(root, '.ssh-r-sync', 'hosts', 'evil.json'), JSON.stringify({ version: 1, kind: 'zz', store: module, since: '2026-01-01T00:00:00Z' }));
    for (const args of [['status', root], ['verify', root, 'evil'], ['prune', root, 'evil', '--keep', '1d']]) {
      const run = await runNode(adminBin, args);
      assert.notEqual(run.code, 0, `${args[0]}: ${run.stderr}`);
      assert.match(run.stderr, /which is not a package name: only a store shipped with ssh-r-sync or a package installed beside it/, args[0]);
    }
    assert.ok(!existsSync(marker), 'the module named by the record never ran');
  });

  test('a record that is not ours (or unreadable) is never taken for "no record": the host is not guessed to be hard-linked snapshots', async () => {
    const base = join(tmp.dir, 'record-bad');
    const root = join(base, 'root');
    const src = join(base, 'src');
    await mkdir(src, { recursive: true });
    await writeFile(join(src, 'a.txt'), 'a\n');
    await mkdir(root, { recursive: true, mode: 0o700 });
    const recv = (extra: string[]) => runRecv(['--local', src, '--name', 'b', ...extra, root], { cwd: base });
    assert.equal((await recv(['--plugin', LINK_DEST])).code, 0);
    const record = join(root, '.ssh-r-sync', 'hosts', 'b.json');
    // A kind this version does not know the shape of (a store of another version, a typo, a plant).
    await writeFile(record, JSON.stringify({ version: 1, kind: 'Btrfs_2', since: '2026-01-01T00:00:00Z' }));
    const before = readdirSync(join(root, 'b')).sort();
    const run = await recv(['--plugin', LINK_DEST]);
    assert.notEqual(run.code, 0, run.stderr);
    assert.match(run.stderr, /the host record of "b": .*b\.json is not a record of ours: repair it or move it aside/);
    assert.deepEqual(readdirSync(join(root, 'b')).sort(), before, 'nothing was written into the host');
    assert.match(await readFile(record, 'utf8'), /Btrfs_2/, 'the record was not overwritten');
    const seen = await runNode(adminBin, ['status', root, 'b']);
    assert.equal(seen.code, 1);
    assert.match(seen.stderr, /b: its snapshots cannot be read: the host record of "b"/);
  });
});

describe('a mirror moved aside as the refusal says', () => {
  test('the snapshot run then works, and the moved mirror (client files) is never read as snapshots', async () => {
    // A hostile client's mirror holds look-alike snapshots: an "expired" complete one and an
    // "interrupted" one. The first snapshot run is refused with a command to move the mirror
    // aside. Followed to the letter, it (1) left the host's record saying "mirror", so every
    // snapshot run was still refused, and (2) named the moved directory like a host (NAME.mirror)
    // without a record, so status and prune took the client's look-alikes for snapshots.
    const base = join(tmp.dir, 'moved');
    const root = join(base, 'root');
    const client = join(base, 'src');
    await mkdir(root, { recursive: true, mode: 0o700 });
    for (const id of ['2020-01-01T000000Z', '2020-01-02T000000Z']) await mkdir(join(client, `${id}.meta`), { recursive: true });
    await mkdir(join(client, '2020-01-01T000000Z'));
    await writeFile(join(client, '2020-01-01T000000Z', 'precious.txt'), 'the client data\n');
    await writeFile(join(client, '2020-01-01T000000Z.meta', 'done.json'), JSON.stringify({ version: 1, host: 'm', snapshot: '2020-01-01T000000Z' }));
    await writeFile(join(client, '2020-01-02T000000Z.meta', 'in-progress'), '{}\n');
    const recv = (extra: string[]) => runRecv(['--local', client, '--name', 'm', ...extra, root], { cwd: base });
    assert.equal((await recv([])).code, 0, 'a mirror run');
    const refused = await recv(['--plugin', LINK_DEST]);
    assert.equal(refused.code, 2, refused.stderr);
    const [, from, to] = /move it aside \(mv (\S+) (\S+)\)/.exec(refused.stderr) ?? [];
    assert.ok(from && to, refused.stderr);
    renameSync(from, to);
    const run = await recv(['--plugin', LINK_DEST, '--json']);
    assert.equal(run.code, 0, `after the move the snapshot run works: ${run.stderr}`);
    const made = JSON.parse(run.stdout.trim()).snapshot as string;
    const seen = JSON.parse((await runNode(adminBin, ['status', '--json', root])).stdout) as { hosts: { name: string; kind: string; newestComplete: { id: string | null } | null }[] };
    assert.deepEqual(
      seen.hosts.map((h) => [h.name, h.kind, h.newestComplete?.id]),
      [['m', 'snapshots', made]],
      'status shows the host and its one snapshot, nothing of the moved mirror',
    );
    const pruned = await runNode(adminBin, ['prune', root, '--keep', '1d', '--json']);
    assert.equal(pruned.code, 0, pruned.stderr);
    assert.ok(existsSync(join(to, '2020-01-01T000000Z', 'precious.txt')), 'prune left the moved mirror alone');
    assert.ok(existsSync(join(to, '2020-01-02T000000Z.meta', 'in-progress')));
  });
});

describe("the host's record of work after the session", () => {
  test('a failure with an endless message is recorded bounded, and status still shows it', async () => {
    // The record is read back bounded (256 KiB), and one over the bound counts as absent: an
    // after-session error of any length (rotate lists every snapshot it could not delete, with
    // rm's words) made the record unreadable, and the failure vanished from status.
    const base = join(tmp.dir, 'record');
    const root = join(base, 'root');
    await mkdir(root, { recursive: true, mode: 0o700 });
    const plugin = join(base, 'long-failure.mjs');
    await writeFile(
      plugin,
      `import { scheduleAfterSession } from ${JSON.stringify(join(repoRoot, 'packages/core/dist/index.js'))};
      export default { name: 'long-failure', apply(hooks) {
        hooks.done.tapPromise('long-failure', async (outcome, ctx) => {
          scheduleAfterSession(ctx, { name: 'long-failure', timeoutMs: 0, async run() {
            throw new Error('could not delete: ' + 'x'.repeat(400 * 1024));
          } });
        });
      } };\n`,
    );
    const run = await runRecv(['--local', src, '--name', 'r', '--plugin', LINK_DEST, '--plugin', plugin, root], { cwd: base });
    assert.equal(run.code, 0, run.stderr);
    const seen = await runNode(adminBin, ['status', '--json', root, 'r']);
    const host = JSON.parse(seen.stdout).hosts[0] as { kind: string; warnings: string[] };
    assert.equal(host.kind, 'snapshots');
    assert.equal(host.warnings.length, 1, seen.stderr);
    assert.match(host.warnings[0]!, /long-failure failed: could not delete: x+…$/);
    assert.ok(host.warnings[0]!.length < 8192, 'the recorded error is bounded');
  });
});

describe('SIGTERM during the work after the session', () => {
  test('a task that ignores its signal is abandoned: the receiver ends, and the record says why', async () => {
    const base = join(tmp.dir, 'deaf-after');
    const root = join(base, 'root');
    await mkdir(root, { recursive: true, mode: 0o700 });
    const started = join(base, 'started');
    const plugin = join(base, 'deaf-after.mjs');
    await writeFile(
      plugin,
      `import { scheduleAfterSession } from ${JSON.stringify(join(repoRoot, 'packages/core/dist/index.js'))};
      import { writeFileSync } from 'node:fs';
      export default { name: 'deaf-after', apply(hooks) {
        hooks.done.tapPromise('deaf-after', async (outcome, ctx) => {
          scheduleAfterSession(ctx, { name: 'deaf-after', timeoutMs: 0, run: () => new Promise(() => { writeFileSync(${JSON.stringify(started)}, ''); setInterval(() => {}, 1000); }) });
        });
      } };\n`,
    );
    const receiver = spawn(process.execPath, [join(repoRoot, 'packages/cli/bin/ssh-r-sync-recv.js'), '--local', src, '--name', 'da', '--plugin', LINK_DEST, '--plugin', plugin, root], { cwd: base, stdio: 'ignore' });
    const exited = new Promise<number | null>((resolve) => receiver.once('exit', (code) => resolve(code)));
    const deadline = Date.now() + 60_000;
    while (!existsSync(started)) {
      assert.ok(Date.now() < deadline, 'the after-session task did not start');
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    receiver.kill('SIGTERM');
    const killer = setTimeout(() => receiver.kill('SIGKILL'), 60_000);
    const code = await exited;
    clearTimeout(killer);
    assert.equal(code, 0, 'the receiver ended by itself after the SIGTERM; the backup was a success');
    const record = JSON.parse(await readFile(join(root, '.ssh-r-sync', 'hosts', 'da.json'), 'utf8'));
    assert.deepEqual(
      record.afterSession.tasks.map((task: { name: string; outcome: string; error: string }) => [task.name, task.outcome, task.error]),
      [['deaf-after', 'failed', 'stopped by SIGTERM; the task did not stop within 2 s']],
    );
  });
});

describe('reading many snapshots', () => {
  test('under a low open-file limit, every complete snapshot is still complete to status and prune', async () => {
    // listSnapshots opened every done mark at once (and status every host's at once) and took
    // any error for "no done mark": with hundreds of snapshots and a low RLIMIT_NOFILE, EMFILE
    // made complete snapshots incomplete, status named an old one as the newest (stale), and a
    // retention plan could delete them as "superseded".
    const root = join(tmp.dir, 'many');
    await mkdir(join(root, '.ssh-r-sync', 'hosts'), { recursive: true, mode: 0o700 });
    const names = ['many1', 'many2', 'many3', 'many4', 'many5', 'many6'];
    const ids: string[] = [];
    for (let i = 0; i < 60; i += 1) ids.push(new Date(Date.UTC(2026, 0, 1) + i * 3600_000).toISOString().replace(/\.\d{3}Z$/, 'Z').replace(/:/g, ''));
    for (const name of names) {
      await writeFile(join(root, '.ssh-r-sync', 'hosts', `${name}.json`), JSON.stringify({ version: 1, kind: 'snapshots', since: '2026-01-01T00:00:00Z' }));
      for (const id of ids) {
        await mkdir(join(root, name, id), { recursive: true });
        await mkdir(join(root, name, `${id}.meta`));
        await writeFile(join(root, name, `${id}.meta`, 'done.json'), JSON.stringify({ version: 1, host: name, snapshot: id, startedAt: '2026-01-01T00:00:00Z', completedAt: '2026-01-01T00:00:00Z' }));
      }
    }
    const admin = (...args: string[]) =>
      spawnSync('sh', ['-c', 'ulimit -n 64 && exec "$0" "$@"', process.execPath, adminBin, ...args, '--now', '2026-02-01T00:00:00Z', '--json', root], { encoding: 'utf8' });
    const status = admin('status');
    assert.equal(status.status, 0, status.stderr);
    const seen = JSON.parse(status.stdout).hosts as { complete: number; incomplete: number; newestComplete: { id: string } }[];
    assert.deepEqual(
      seen.map((host) => [host.complete, host.incomplete, host.newestComplete.id]),
      names.map(() => [60, 0, ids.at(-1)]),
    );
    const prune = admin('prune', '--keep', '300d', '--dry-run');
    const planned = JSON.parse(prune.stdout).hosts as { snapshots: { complete: boolean }[] }[];
    assert.deepEqual(planned.map((host) => host.snapshots.filter((s) => s.complete).length), names.map(() => 60), prune.stderr);
  });
});
