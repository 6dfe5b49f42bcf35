// plugin-prometheus: real backups (local, and through sshd and the reverse tunnel) with the plugin
// on, the textfile scraped over HTTP from Debian's real prometheus-node-exporter (only its
// textfile collector, on loopback): the metrics match the run log, a failed run shows as failed,
// the status timer's report marks a silent host stale, a verify's problems appear, a held lock
// shows, and a textfile directory that cannot be written leaves the backups' outcomes as they were.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, readlinkSync } from 'node:fs';
import { mkdir, readFile, readdir, rename, stat, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { hostStatus, listSnapshots, silentLogger, snapshotId, type StatusReport } from '@ssh-r-sync/core';
import { lockHost, readRunLog } from '@ssh-r-sync/core/internal';
import prometheus, { escapeLabelValue, lockPath, render, type HostMetrics } from '@ssh-r-sync/plugin-prometheus';
import { startBackupServer, type BackupServer } from './helpers/backup-server.js';
import { repoRoot, runNode, runRecv, tempDir, writeScript } from './helpers/cli.js';

const NODE_EXPORTER = '/usr/bin/prometheus-node-exporter';
const PROMTOOL = '/usr/bin/promtool';
const PLUGIN = '@ssh-r-sync/plugin-prometheus';
const LINK_DEST = '@ssh-r-sync/plugin-link-dest';
const MANIFEST = '@ssh-r-sync/plugin-manifest';
const adminBin = join(repoRoot, 'packages/cli/bin/ssh-r-sync-admin.js');

let tmp: { dir: string; cleanup: () => Promise<void> };
const cleanups: (() => Promise<void> | void)[] = [];
before(async () => (tmp = await tempDir('srs-prom-')));
// Every step runs, whatever an earlier one threw: a node_exporter left running would keep this file's process alive.
after(async () => {
  const errors: unknown[] = [];
  for (const step of cleanups.reverse()) await Promise.resolve().then(step).catch((error: unknown) => errors.push(error));
  await tmp?.cleanup();
  if (errors.length) throw errors[0];
});

// ---- a real node_exporter ----

interface Exporter {
  port: number;
  /** The samples of one scrape of /metrics: `name{a="x",b="y"}` → value. */
  scrape(): Promise<Map<string, number>>;
  stop(): Promise<void>;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

// Parses the text format as node_exporter serves it (labels sorted, values plain numbers).
function parseSamples(text: string): Map<string, number> {
  const samples = new Map<string, number>();
  for (const line of text.split('\n')) {
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})? (\S+)$/.exec(line);
    if (match) samples.set(`${match[1]}${match[2] ?? ''}`, Number(match[3]));
  }
  return samples;
}

// A test process killed before its cleanup (a closed pipe, a timeout) takes its node_exporters with it.
const DIES_WITH_US = existsSync('/usr/bin/setpriv') ? ['/usr/bin/setpriv', '--pdeathsig', 'SIGKILL', '--'] : [];

// Starts node_exporter with only the textfile collector on a free loopback port, in its own
// process group (killed with it in cleanup); resolves once /metrics answers.
async function startExporter(directory: string): Promise<Exporter> {
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    const argv = [
      ...DIES_WITH_US,
      NODE_EXPORTER,
      '--collector.disable-defaults', '--collector.textfile', `--collector.textfile.directory=${directory}`, `--web.listen-address=127.0.0.1:${port}`,
    ];
    const child = spawn(argv[0]!, argv.slice(1), { detached: true, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr!.on('data', (chunk: Buffer) => (stderr = (stderr + chunk.toString()).slice(-4000)));
    const exited = new Promise<void>((resolve) => child.once('close', () => resolve()));
    const stop = async () => {
      if (child.exitCode === null && child.signalCode === null) process.kill(-child.pid!, 'SIGKILL');
      await exited;
    };
    const url = `http://127.0.0.1:${port}/metrics`;
    const scrape = async () => {
      const response = await fetch(url, { signal: AbortSignal.timeout(10_000) });
      assert.equal(response.status, 200);
      return parseSamples(await response.text());
    };
    if (await answering(child, url)) {
      cleanups.push(stop);
      return { port, scrape, stop };
    }
    await stop();
    // Another process took the port between our probe and node_exporter's bind: try another.
    if (attempt >= 5 || !/address already in use/.test(stderr)) throw new Error(`node_exporter did not start: ${stderr}`);
  }
}

async function answering(child: ChildProcess, url: string): Promise<boolean> {
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) return false;
    const ok = await fetch(url, { signal: AbortSignal.timeout(2_000) }).then((r) => r.ok, () => false);
    if (ok) return true;
    await sleep(50);
  }
  return false;
}

// One sample's value; undefined when node_exporter does not serve it.
function sample(samples: Map<string, number>, name: string, labels: Record<string, string>): number | undefined {
  const text = Object.keys(labels).sort().map((key) => `${key}="${escapeLabelValue(labels[key]!)}"`).join(',');
  return samples.get(`${name}{${text}}`);
}

// ---- fixtures ----

let count = 0;
async function fixture(textDirMode = 0o755) {
  count += 1;
  const base = join(tmp.dir, `f${count}`);
  const src = join(base, 'src');
  const root = join(base, 'root');
  const textDir = join(base, 'textfiles');
  await mkdir(join(src, 'sub'), { recursive: true });
  await mkdir(root, { mode: 0o700 }); // a privileged receiver refuses a ROOT others can read
  await mkdir(textDir, { mode: textDirMode });
  await writeFile(join(src, 'a.txt'), 'alpha\n');
  await writeFile(join(src, 'sub', 'b.txt'), 'beta beta\n');
  const textfile = join(textDir, 'ssh-r-sync.prom');
  const config = join(base, 'recv.json');
  await writeFile(config, JSON.stringify({ plugins: [LINK_DEST, MANIFEST, [PLUGIN, { textfile }]] }));
  const run = (name: string, ...extra: string[]) => runRecv(['--config', config, '--local', src, '--name', name, ...extra, root], { cwd: base });
  return { base, src, root, textDir, textfile, config, run };
}

const seconds = (iso: string) => Date.parse(iso) / 1000;

function promtoolCheck(file: string): { status: number | null; output: string } {
  const run = spawnSync(PROMTOOL, ['check', 'metrics'], { input: spawnSync('cat', [file]).stdout, timeout: 30_000, encoding: 'utf8' });
  return { status: run.status, output: `${run.stdout}${run.stderr}` };
}

const haveExporter = existsSync(NODE_EXPORTER);

describe('plugin-prometheus through real runs and a real node_exporter', { skip: haveExporter ? false : `${NODE_EXPORTER} is missing: bash scripts/ensure-system.sh installs it` }, () => {
  test('a local run: node_exporter serves the host\'s metrics, and they match the run log; promtool finds nothing to fix', async (t) => {
    const f = await fixture();
    const exporter = await startExporter(f.textDir);
    const r = await f.run('host1');
    assert.equal(r.code, 0, r.stderr);
    assert.doesNotMatch(r.stderr, /prometheus/);
    const mode = (await stat(f.textfile)).mode & 0o777;
    assert.equal(mode, 0o644, 'node_exporter runs as its own user: the file is readable by all');

    const s = await exporter.scrape();
    assert.equal(s.get('node_textfile_scrape_error'), 0);
    const [logged] = readRunLog(f.root, 'host1');
    assert.ok(logged?.rsync);
    const h = { host: 'host1' };
    const snapshots = await listSnapshots(join(f.root, 'host1'));
    assert.equal(snapshots.length, 1);
    const expected: [string, Record<string, string>, number][] = [
      ['ssh_r_sync_last_run_start_timestamp_seconds', h, seconds(logged.startedAt)],
      ['ssh_r_sync_last_run_end_timestamp_seconds', h, seconds(logged.at)],
      ['ssh_r_sync_last_run_outcome', { ...h, outcome: 'success' }, 1],
      ['ssh_r_sync_last_run_outcome', { ...h, outcome: 'failure' }, 0],
      ['ssh_r_sync_last_run_outcome', { ...h, outcome: 'skipped' }, 0],
      ['ssh_r_sync_last_run_exit_code', h, 0],
      ['ssh_r_sync_last_run_rsync_exit_code', h, 0],
      ['ssh_r_sync_last_run_transferred_files', h, 2],
      ['ssh_r_sync_last_run_transferred_bytes', h, 16],
      ['ssh_r_sync_last_run_duration_seconds', h, logged.durationMs / 1000],
      ['ssh_r_sync_snapshots', { ...h, state: 'complete' }, 1],
      ['ssh_r_sync_snapshots', { ...h, state: 'incomplete' }, 0],
      ['ssh_r_sync_newest_complete_snapshot_timestamp_seconds', h, snapshots[0]!.date.getTime() / 1000],
      ['ssh_r_sync_last_verify_timestamp_seconds', h, 0],
      ['ssh_r_sync_last_verify_ok', h, 0],
      ['ssh_r_sync_lock_held', h, 0],
      ['ssh_r_sync_stale', h, 0],
      ['ssh_r_sync_host_info', { ...h, kind: 'snapshots', store: 'snapshots' }, 1],
    ];
    for (const [name, labels, value] of expected) assert.equal(sample(s, name, labels), value, `${name} ${JSON.stringify(labels)}`);
    assert.equal(logged.rsync.files, 2);
    assert.equal(logged.rsync.bytes, 16);
    // The last success is the host record's (written a moment after the run log's entry).
    const lastSuccess = sample(s, 'ssh_r_sync_last_success_timestamp_seconds', h)!;
    assert.ok(lastSuccess >= seconds(logged.at) && lastSuccess - seconds(logged.at) < 60, String(lastSuccess));
    // No max age is known before the status timer's first report.
    assert.equal(sample(s, 'ssh_r_sync_max_age_seconds', h), undefined);

    if (!existsSync(PROMTOOL)) return t.diagnostic(`${PROMTOOL} is missing (package prometheus): the promtool check was skipped`);
    const checked = promtoolCheck(f.textfile);
    assert.equal(checked.status, 0, checked.output);
    assert.equal(checked.output.trim(), '', 'promtool has no lint advice');
  });

  test('a failed run is written as failed (rsync exit 23, one incomplete snapshot), the last success stays that of the run before', async () => {
    const f = await fixture();
    const exporter = await startExporter(f.textDir);
    assert.equal((await f.run('host1')).code, 0);
    const success = sample(await exporter.scrape(), 'ssh_r_sync_last_success_timestamp_seconds', { host: 'host1' });
    const failed = await f.run('host1', '-x', `rsync.post:${await writeScript(f.base, 'fail-23', 'echo 23')}`);
    assert.equal(failed.code, 1, failed.stderr);
    assert.match(failed.stderr, /rsync exited with code 23/);
    assert.doesNotMatch(failed.stderr, /prometheus/);
    const s = await exporter.scrape();
    assert.equal(s.get('node_textfile_scrape_error'), 0);
    const h = { host: 'host1' };
    assert.equal(sample(s, 'ssh_r_sync_last_run_outcome', { ...h, outcome: 'failure' }), 1);
    assert.equal(sample(s, 'ssh_r_sync_last_run_outcome', { ...h, outcome: 'success' }), 0);
    assert.equal(sample(s, 'ssh_r_sync_last_run_exit_code', h), 1);
    assert.equal(sample(s, 'ssh_r_sync_last_run_rsync_exit_code', h), 23);
    assert.equal(sample(s, 'ssh_r_sync_snapshots', { ...h, state: 'complete' }), 1);
    assert.equal(sample(s, 'ssh_r_sync_snapshots', { ...h, state: 'incomplete' }), 1);
    assert.equal(sample(s, 'ssh_r_sync_last_success_timestamp_seconds', h), success);
    // Written after the session, from the records: the run log's entry of the failure.
    const logged = readRunLog(f.root, 'host1').at(-1)!;
    assert.equal(logged.status, 'failure');
    assert.equal(sample(s, 'ssh_r_sync_last_run_start_timestamp_seconds', h), seconds(logged.startedAt));
    assert.equal(sample(s, 'ssh_r_sync_last_run_end_timestamp_seconds', h), seconds(logged.at));
    assert.equal(sample(s, 'ssh_r_sync_last_run_duration_seconds', h), logged.durationMs / 1000);
  });

  test('through sshd and the reverse tunnel: a success and a failure of two hosts, both in the one file', async () => {
    const f = await fixture();
    const exporter = await startExporter(f.textDir);
    const fail = await writeScript(f.base, 'fail-23', 'echo 23');
    const server: BackupServer = await startBackupServer({
      recvArgs: ['--name', 'laptop', '--config', f.config],
      extraKeys: { desk: ['--name', 'desk', '--config', f.config, '-x', `rsync.post:${fail}`] },
    });
    cleanups.push(() => server.stop());
    const good = await server.backup(f.src, ['-n', 'laptop']);
    assert.equal(good.code, 0, good.stderr);
    const bad = await server.backup(f.src, ['-n', 'desk'], { key: server.keys.desk! });
    assert.equal(bad.code, 1, bad.stderr);
    const s = await exporter.scrape();
    assert.equal(s.get('node_textfile_scrape_error'), 0);
    assert.equal(sample(s, 'ssh_r_sync_last_run_outcome', { host: 'laptop', outcome: 'success' }), 1);
    assert.equal(sample(s, 'ssh_r_sync_last_run_transferred_files', { host: 'laptop' }), 2);
    assert.equal(sample(s, 'ssh_r_sync_last_run_outcome', { host: 'desk', outcome: 'failure' }), 1);
    assert.equal(sample(s, 'ssh_r_sync_last_run_rsync_exit_code', { host: 'desk' }), 23);
    assert.equal(sample(s, 'ssh_r_sync_last_success_timestamp_seconds', { host: 'desk' }), 0, 'never succeeded: 0');
    assert.equal(sample(s, 'ssh_r_sync_stale', { host: 'desk' }), 1, 'no complete backup');
    await server.stop();
  });

  test("the status timer's report: a silent host's old snapshot is stale against its max age; the limits stay through later runs; no host is lost", async () => {
    const f = await fixture();
    const exporter = await startExporter(f.textDir);
    for (const name of ['busy', 'silent']) assert.equal((await f.run(name)).code, 0);
    // The silent host's only backup, moved back three days (a snapshot's id is its start time).
    const old = new Date(Date.now() - 3 * 86_400_000);
    const [snapshot] = await listSnapshots(join(f.root, 'silent'));
    for (const suffix of ['', '.meta']) await rename(join(f.root, 'silent', `${snapshot!.id}${suffix}`), join(f.root, 'silent', `${snapshotId(old)}${suffix}`));
    const limits = { silent: 2 * 86_400 };
    // The status timer's command with the receiver's config, for the silent host only: the config
    // gives it its own max age (hosts.NAME.maxAge).
    await writeFile(f.config, JSON.stringify({ ...JSON.parse(await readFile(f.config, 'utf8')), maxAge: '1d', hosts: { silent: { maxAge: '2d' } } }));
    const timer = await runNode(adminBin, ['status', '--report', '--config', f.config, f.root, 'silent']);
    assert.equal(timer.code, 1, `a stale host fails the status timer: ${timer.stderr}`);
    assert.match(timer.stderr, /silent: the newest complete backup \(\S+\) is 3d\S* old, more than --max-age 2d/);
    assert.doesNotMatch(timer.stderr, /prometheus/);

    let s = await exporter.scrape();
    assert.equal(s.get('node_textfile_scrape_error'), 0);
    const oldStart = Math.floor(old.getTime() / 1000);
    assert.equal(sample(s, 'ssh_r_sync_newest_complete_snapshot_timestamp_seconds', { host: 'silent' }), oldStart);
    assert.ok(Date.now() / 1000 - oldStart > limits.silent, 'its age (time() minus the timestamp) is beyond its max age');
    assert.equal(sample(s, 'ssh_r_sync_stale', { host: 'silent' }), 1);
    assert.equal(sample(s, 'ssh_r_sync_max_age_seconds', { host: 'silent' }), limits.silent);
    // The host the report left out is still there, recomputed from its records.
    assert.equal(sample(s, 'ssh_r_sync_last_run_outcome', { host: 'busy', outcome: 'success' }), 1);
    assert.equal(sample(s, 'ssh_r_sync_stale', { host: 'busy' }), 0);

    // A later run of the busy host rewrites the file: the silent host keeps its limit and stays stale.
    assert.equal((await f.run('busy')).code, 0);
    s = await exporter.scrape();
    assert.equal(sample(s, 'ssh_r_sync_max_age_seconds', { host: 'silent' }), limits.silent);
    assert.equal(sample(s, 'ssh_r_sync_stale', { host: 'silent' }), 1);
    assert.equal(sample(s, 'ssh_r_sync_snapshots', { host: 'busy', state: 'complete' }), 2);

    // The limit taken out of the config: the next report drops it, and the host is no longer stale.
    await writeFile(f.config, JSON.stringify({ plugins: [LINK_DEST, MANIFEST, [PLUGIN, { textfile: f.textfile }]] }));
    const relaxed = await runNode(adminBin, ['status', '--report', '--config', f.config, f.root]);
    assert.equal(relaxed.code, 0, relaxed.stderr);
    s = await exporter.scrape();
    assert.equal(sample(s, 'ssh_r_sync_max_age_seconds', { host: 'silent' }), undefined);
    assert.equal(sample(s, 'ssh_r_sync_stale', { host: 'silent' }), 0);
    assert.equal(sample(s, 'ssh_r_sync_newest_complete_snapshot_timestamp_seconds', { host: 'silent' }), oldStart);
  });

  test('listed before plugin-rotate, it still counts the snapshots that are left after the pruning', async () => {
    const f = await fixture();
    await writeFile(f.config, JSON.stringify({ plugins: [[PLUGIN, { textfile: f.textfile }], LINK_DEST, ['@ssh-r-sync/plugin-rotate', { keep: '1d', keepLast: 1 }]] }));
    for (let i = 0; i < 2; i++) assert.equal((await f.run('host1')).code, 0);
    assert.equal((await listSnapshots(join(f.root, 'host1'))).length, 1, 'rotate kept one');
    const text = await readFile(f.textfile, 'utf8');
    assert.match(text, /^ssh_r_sync_snapshots\{host="host1",state="complete"\} 1$/m);
  });

  test('a verify that finds a problem, and a held lock, show at the next write', async () => {
    const f = await fixture();
    const exporter = await startExporter(f.textDir);
    assert.equal((await f.run('host1')).code, 0);
    const [snapshot] = await listSnapshots(join(f.root, 'host1'));
    const clean = await runNode(adminBin, ['verify', f.root, 'host1']);
    assert.equal(clean.code, 0, clean.stderr);
    await writeFile(join(snapshot!.paths.tree, 'a.txt'), 'ALPHA, a different size\n');
    const found = await runNode(adminBin, ['verify', f.root, 'host1']);
    assert.equal(found.code, 1, found.stderr);
    // Another process holds host1's lock (a prune, say) while the status timer writes.
    const release = await lockHost({ root: f.root, name: 'host1', waitSeconds: 0, logger: silentLogger });
    try {
      const holder = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60000)'], { detached: true, stdio: 'ignore' });
      cleanups.push(() => void (holder.exitCode === null && holder.signalCode === null && process.kill(-holder.pid!, 'SIGKILL')));
      // The lock file names its holder: the plugin, writing from this process, never counts itself.
      const lockFile = join(f.root, '.ssh-r-sync', 'locks', 'host1.lock');
      const stat = (await readFile(`/proc/${holder.pid}/stat`, 'utf8')).split(') ')[1]!.split(' ')[19]!;
      await writeFile(lockFile, JSON.stringify({ pid: holder.pid, start: stat }));
      const now = new Date();
      const report: StatusReport = { root: f.root, at: now.toISOString(), hosts: [{ ...(await hostStatus(f.root, 'host1', { now })), maxAgeSeconds: null }] };
      await prometheus({ textfile: f.textfile }).status!(report, silentLogger);
      const s = await exporter.scrape();
      const h = { host: 'host1' };
      assert.equal(sample(s, 'ssh_r_sync_lock_held', h), 1);
      assert.equal(sample(s, 'ssh_r_sync_last_verify_ok', h), 0);
      assert.equal(sample(s, 'ssh_r_sync_last_verify_problems', h), 1);
      const verified = sample(s, 'ssh_r_sync_last_verify_timestamp_seconds', h)!;
      assert.ok(verified > 0 && Math.abs(verified - Date.now() / 1000) < 600, String(verified));
      process.kill(-holder.pid!, 'SIGKILL');
      await new Promise((resolve) => holder.once('close', resolve));
      // Its holder gone (the kernel dropped the lock), the next write says so.
      await prometheus({ textfile: f.textfile }).status!(report, silentLogger);
      assert.equal(sample(await exporter.scrape(), 'ssh_r_sync_lock_held', h), 0);
    } finally {
      await release();
    }
  });

  test('a textfile directory that cannot be written: the backup still succeeds, a failure still fails as itself, and both say why', async (t) => {
    const f = await fixture();
    // Read-only for root too (permissions would not stop root): a read-only tmpfs.
    const mount = spawnSync('mount', ['-t', 'tmpfs', '-o', 'ro,size=64k,mode=0755', 'tmpfs', f.textDir], { stdio: 'pipe', timeout: 30_000 });
    if (mount.status !== 0) return t.skip(`cannot mount a read-only tmpfs here: ${mount.stderr}`);
    cleanups.push(() => void spawnSync('umount', [f.textDir], { stdio: 'pipe', timeout: 30_000 }));
    const good = await f.run('host1');
    assert.equal(good.code, 0, good.stderr);
    assert.match(good.stderr, /backup of host1 done/);
    const why = 'EROFS';
    assert.match(good.stderr, new RegExp(`after the backup, prometheus failed: cannot write the metrics file ${f.textfile} \\(${why}\\): create its directory, or make it writable by the receiver's account \\(the backup itself is complete\\)\n`));
    assert.equal((await listSnapshots(join(f.root, 'host1')))[0]?.complete, true);
    const bad = await f.run('host1', '-x', `rsync.post:${await writeScript(f.base, 'fail-23', 'echo 23')}`);
    assert.equal(bad.code, 1, bad.stderr);
    assert.match(bad.stderr, /error: rsync exited with code 23/);
    assert.match(bad.stderr, new RegExp(`after the run, prometheus failed: cannot write the metrics file ${f.textfile} \\(${why}\\): .* \\(the run's outcome stands\\)\n`));
    assert.equal(readRunLog(f.root, 'host1').at(-1)?.message?.includes('prometheus'), false, "the failure's own message is kept");
  });

  test('writers take turns under the lock beside the file: a run that ends while another writer holds it writes after it', async () => {
    const f = await fixture();
    assert.equal((await f.run('first')).code, 0);
    const lock = lockPath(f.textfile);
    // Another writer (a second receiver, the status timer) holds the lock until its stdin closes.
    const holder = spawn('flock', [lock, 'cat'], { stdio: ['pipe', 'ignore', 'ignore'] });
    try {
      while (spawnSync('flock', ['-n', lock, 'true']).status === 0) await sleep(20);
      const second = f.run('second');
      // Its backup commits; its write waits: a flock(1) of the receiver's is waiting on the lock file.
      const waiting = async () => {
        for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p) && Number(p) !== holder.pid)) {
          try {
            if (readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === 'flock' && readlinkSync(`/proc/${pid}/fd/3`) === lock) return true;
          } catch {
            // gone meanwhile
          }
        }
        return false;
      };
      const deadline = Date.now() + 60_000;
      while (!(await waiting())) {
        assert.ok(Date.now() < deadline, 'the second run never waited for the lock');
        await sleep(50);
      }
      assert.equal((await listSnapshots(join(f.root, 'second')))[0]?.complete, true, 'its backup is committed before the write');
      assert.doesNotMatch(await readFile(f.textfile, 'utf8'), /host="second"/, 'nothing written while the lock is held');
      holder.stdin.end();
      const run = await second;
      assert.equal(run.code, 0, run.stderr);
      assert.match(await readFile(f.textfile, 'utf8'), /host="second"/);
      assert.match(await readFile(f.textfile, 'utf8'), /host="first"/);
    } finally {
      holder.stdin.end();
      if (holder.exitCode === null) await new Promise((resolve) => holder.once('close', resolve));
    }
    assert.deepEqual((await readdir(f.textDir)).sort(), ['.ssh-r-sync.prom.lock', 'ssh-r-sync.prom']);
  });

  test('configuration errors are found when the config is loaded (exit 2, one line)', async () => {
    const f = await fixture();
    const cases: [unknown, RegExp][] = [
      [{}, /textfile is missing: the file node_exporter reads/],
      [{ textfile: 'metrics.prom' }, /textfile must be an absolute path ending in \.prom .*, got "metrics\.prom"/],
      [{ textfile: '/var/lib/prometheus/node-exporter/ssh-r-sync.txt' }, /textfile must be an absolute path ending in \.prom \(node_exporter's textfile collector reads only \*\.prom\)/],
      [{ textfile: f.textfile, textFile: 'x' }, /unknown option "textFile" \(known: textfile\)/],
    ];
    for (const [options, message] of cases) {
      await writeFile(f.config, JSON.stringify({ plugins: [[PLUGIN, options]] }));
      const r = await f.run('host1');
      assert.equal(r.code, 2, r.stderr);
      assert.match(r.stderr, new RegExp(`^ssh-r-sync-recv: error: @ssh-r-sync/plugin-prometheus: ${message.source}`));
      assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    }
    assert.equal(existsSync(join(f.root, 'host1')), false);
  });
});

describe('the exposition format', () => {
  test('label values are escaped (backslash, quote, line feed), and node_exporter and promtool read them back', async (t) => {
    assert.equal(escapeLabelValue('a\\b"c\nd'), 'a\\\\b\\"c\\nd');
    const host: HostMetrics = {
      host: 'h1', kind: 'snapshots', store: 'odd "store"\\with\nbreak', lastRun: null, lastSuccess: null, complete: 0, incomplete: 0,
      newestComplete: null, lastVerify: null, lockHeld: false, stale: true, maxAgeSeconds: 90,
    };
    const text = render([host]);
    assert.match(text, /^ssh_r_sync_host_info\{host="h1",kind="snapshots",store="odd \\"store\\"\\\\with\\nbreak"\} 1$/m);
    assert.match(text, /^ssh_r_sync_last_run_exit_code\{host="h1"\} -1$/m);
    const dir = join(tmp.dir, 'escapes');
    await mkdir(dir);
    await writeFile(join(dir, 'x.prom'), text);
    if (!haveExporter) return t.skip(`${NODE_EXPORTER} is missing`);
    const exporter = await startExporter(dir);
    const s = await exporter.scrape();
    assert.equal(s.get('node_textfile_scrape_error'), 0);
    assert.equal(sample(s, 'ssh_r_sync_host_info', { host: 'h1', kind: 'snapshots', store: 'odd "store"\\with\nbreak' }), 1);
    await exporter.stop();
    if (existsSync(PROMTOOL)) assert.equal(promtoolCheck(join(dir, 'x.prom')).status, 0);
  });
});

describe("the README's alert rules", () => {
  test('promtool reads them, and they fire for a host past its max age (or the 36 h default), a failed last run and verify problems only', async (t) => {
    if (!existsSync(PROMTOOL)) return t.skip(`${PROMTOOL} is missing (package prometheus): the rules were not checked`);
    const readme = await readFile(join(repoRoot, 'packages/plugin-prometheus/README.md'), 'utf8');
    const rules = /```yaml\n([\s\S]*?)```/.exec(readme)?.[1];
    assert.ok(rules, 'the README has its rules in a yaml block');
    const dir = join(tmp.dir, 'rules');
    await mkdir(dir);
    await writeFile(join(dir, 'rules.yml'), rules);
    const at = (host: string, extra = '') => `{instance="srv:9100",job="node",host="${host}"${extra}}`;
    const expected = (host: string, summary: string, extra: Record<string, string> = {}) =>
      `          - exp_labels: ${JSON.stringify({ instance: 'srv:9100', job: 'node', host, ...extra })}\n            exp_annotations: ${JSON.stringify({ summary })}`;
    // promtool's clock starts at 0: a timestamp that keeps up with it is a fresh backup, a 0 one ages.
    await writeFile(join(dir, 'test.yml'), [
      'rule_files: [rules.yml]',
      'evaluation_interval: 1m',
      'tests:',
      '  - interval: 1m',
      '    input_series:',
      `      - { series: 'ssh_r_sync_newest_complete_snapshot_timestamp_seconds${at('fresh')}', values: '0+60x2300' }`,
      `      - { series: 'ssh_r_sync_newest_complete_snapshot_timestamp_seconds${at('silent')}', values: '0x2300' }`,
      `      - { series: 'ssh_r_sync_max_age_seconds${at('silent')}', values: '3600x2300' }`,
      `      - { series: 'ssh_r_sync_newest_complete_snapshot_timestamp_seconds${at('nolimit')}', values: '0x2300' }`,
      `      - { series: 'ssh_r_sync_last_run_outcome${at('fresh', ',outcome="failure"')}', values: '1x2300' }`,
      `      - { series: 'ssh_r_sync_last_run_outcome${at('silent', ',outcome="failure"')}', values: '0x2300' }`,
      `      - { series: 'ssh_r_sync_last_verify_problems${at('fresh')}', values: '0x2300' }`,
      `      - { series: 'ssh_r_sync_last_verify_problems${at('silent')}', values: '2x2300' }`,
      '    alert_rule_test:',
      '      - eval_time: 3h',
      '        alertname: BackupStale',
      '        exp_alerts:',
      expected('silent', 'silent: newest complete backup is 3h 0m 0s old'),
      '      - eval_time: 37h',
      '        alertname: BackupStale',
      '        exp_alerts:',
      expected('nolimit', 'nolimit: newest complete backup is 1d 13h 0m 0s old'),
      expected('silent', 'silent: newest complete backup is 1d 13h 0m 0s old'),
      '      - eval_time: 3h',
      '        alertname: BackupLastRunFailed',
      '        exp_alerts:',
      expected('fresh', 'fresh: the last backup failed (ssh-r-sync-admin log /srv/backup fresh)', { outcome: 'failure' }),
      '      - eval_time: 3h',
      '        alertname: BackupVerifyProblems',
      '        exp_alerts:',
      expected('silent', 'silent: the last verify found 2 problems (ssh-r-sync-admin verify /srv/backup silent)'),
      '',
    ].join('\n'));
    const checked = spawnSync(PROMTOOL, ['check', 'rules', join(dir, 'rules.yml')], { encoding: 'utf8', timeout: 30_000 });
    assert.equal(checked.status, 0, `${checked.stdout}${checked.stderr}`);
    const tested = spawnSync(PROMTOOL, ['test', 'rules', 'test.yml'], { cwd: dir, encoding: 'utf8', timeout: 60_000 });
    assert.equal(tested.status, 0, `${tested.stdout}${tested.stderr}`);
  });
});
