// `ssh-r-sync-admin`, the real binary on synthetic backup roots: `status` (exit codes 0/1/2 for
// cron and monitoring, --json, mirrors, last failures) and `prune` (--dry-run deletes nothing; a
// real prune deletes exactly the planned snapshots and leaves the hard-linked files of the kept
// ones intact; a host with a running backup is left alone).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { appendFile, mkdir, readFile, stat, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { lockHost, mirrorPaths, silentLogger, snapshotId, snapshotPaths, writeAtomic, type DoneMark } from '@ssh-r-sync/core/internal';
import { repoRoot, runNode, tempDir } from './helpers/cli.js';
import { throwawayUser } from './helpers/users.js';

const adminBin = join(repoRoot, 'packages/cli/bin/ssh-r-sync-admin.js');
const admin = (args: string[]) => runNode(adminBin, args);
const NOW = '2026-11-22T12:00:00Z';
const HOUR = 3_600_000;

let dir: string;
let cleanup: () => Promise<void>;
let count = 0;
before(async () => ({ dir, cleanup } = await tempDir('srs-admin-')));
after(() => cleanup());

async function newRoot(): Promise<string> {
  const root = join(dir, `root${++count}`);
  await mkdir(root);
  return root;
}

function doneMark(host: string, id: string | null, startedAt: Date): DoneMark {
  const completedAt = new Date(startedAt.getTime() + 60_000).toISOString();
  return { version: 1, host, snapshot: id, completedAt, startedAt: startedAt.toISOString(), rsyncExitCode: 0, originalExitCode: 0, files: 3, bytes: 30, durationMs: 60_000, hooks: [], extra: {} };
}

// Snapshots of `name` as plugin-link-dest leaves them: each tree hard-linked to the one before
// (plus one file of its own), a done mark on the complete ones, an in-progress marker on the others.
async function history(root: string, name: string, runs: [hoursBeforeNow: number, complete: boolean][]): Promise<string[]> {
  const hostDir = join(root, name);
  await mkdir(hostDir, { recursive: true });
  const ids: string[] = [];
  let previous: string | null = null;
  for (const [hours, complete] of runs) {
    const date = new Date(Date.parse(NOW) - hours * HOUR);
    const paths = snapshotPaths(hostDir, snapshotId(date));
    if (previous) execFileSync('cp', ['-al', previous, paths.tree]);
    else {
      await mkdir(join(paths.tree, 'etc'), { recursive: true });
      await writeFile(join(paths.tree, 'etc', 'shared.conf'), 'the same in every snapshot\n');
    }
    await writeFile(join(paths.tree, `own-${paths.id}.txt`), `${paths.id}\n`);
    await mkdir(paths.meta);
    if (complete) await writeAtomic(paths.doneMark, JSON.stringify(doneMark(name, paths.id, date)));
    else await writeFile(paths.inProgress, JSON.stringify({ pid: 999999, startedAt: date.toISOString() }));
    previous = paths.tree;
    ids.push(paths.id);
  }
  return ids;
}

// A host kept as a plain mirror, whose last run started `hours` before NOW.
async function mirror(root: string, name: string, hours: number): Promise<void> {
  await mkdir(join(root, name, 'etc'), { recursive: true });
  const paths = mirrorPaths(root, name, join(root, name));
  await mkdir(paths.meta, { recursive: true });
  await writeAtomic(paths.doneMark, JSON.stringify(doneMark(name, null, new Date(Date.parse(NOW) - hours * HOUR))));
}

describe('ssh-r-sync-admin status', () => {
  test('every host fresh: exit 0, a table for people and a --json object for machines', async () => {
    const root = await newRoot();
    const ids = await history(root, 'host1', [[50, true], [26, true], [2, true]]);
    await mirror(root, 'host2', 20);
    await mkdir(join(root, '.ssh-r-sync', 'locks'), { recursive: true });
    const r = await admin(['status', root, '--max-age', '36h', '--now', NOW]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stderr, '');
    assert.deepEqual(r.stdout.split('\n').map((line) => line.split(/\s{2,}/)), [
      ['HOST', 'NEWEST COMPLETE', 'AGE', 'COMPLETE', 'INCOMPLETE', 'LAST FAILURE', 'LAST VERIFY'],
      ['host1', ids[2], '2h', '3', '0', '-', 'never'],
      ['host2', 'mirror, 2026-11-21T16:00:00Z', '20h', '1', '0', '-', 'never'],
      [''],
    ]);

    const json = await admin(['status', root, '--max-age', '36h', '--now', NOW, '--json']);
    assert.equal(json.code, 0, json.stderr);
    assert.deepEqual(JSON.parse(json.stdout), {
      schema: 1,
      root,
      now: '2026-11-22T12:00:00.000Z',
      maxAgeSeconds: 129600,
      ok: true,
      hosts: [
        {
          name: 'host1',
          kind: 'snapshots',
          store: 'snapshots',
          newestComplete: { id: ids[2], startedAt: '2026-11-22T10:00:00.000Z', completedAt: '2026-11-22T10:01:00.000Z', ageSeconds: 7200 },
          complete: 3,
          incomplete: 0,
          lastFailure: null,
          stale: false,
          problem: null,
          warnings: [],
          lastSuccess: null,
          lastVerify: null,
          maxAgeSeconds: 129600,
        },
        {
          name: 'host2',
          kind: 'mirror',
          store: 'mirror',
          newestComplete: { id: null, startedAt: '2026-11-21T16:00:00.000Z', completedAt: '2026-11-21T16:01:00.000Z', ageSeconds: 72000 },
          complete: 1,
          incomplete: 0,
          lastFailure: null,
          stale: false,
          problem: null,
          warnings: [],
          lastSuccess: null,
          lastVerify: null,
          maxAgeSeconds: 129600,
        },
      ],
    });
  });

  test('a silent host (newest complete older than --max-age) or one with nothing complete: exit 1, named on stderr', async () => {
    const root = await newRoot();
    await history(root, 'fresh', [[3, true]]);
    const old = await history(root, 'silent', [[100, true], [80, true]]);
    const failing = await history(root, 'failing', [[30, false], [5, false]]);

    const stale = await admin(['status', root, '--max-age', '2d', '--now', NOW]);
    assert.equal(stale.code, 1);
    assert.equal(
      stale.stderr,
      'ssh-r-sync-admin: failing: no complete backup among 2 snapshots\n' +
        `ssh-r-sync-admin: silent: the newest complete backup (${old[1]}) is 3d 8h old, more than --max-age 2d\n`,
    );
    const json = JSON.parse((await admin(['status', root, '--max-age', '2d', '--now', NOW, '--json'])).stdout);
    assert.equal(json.ok, false);
    assert.deepEqual(json.hosts.map((h: { name: string; stale: boolean }) => [h.name, h.stale]), [['failing', true], ['fresh', false], ['silent', true]]);
    assert.deepEqual(json.hosts[0].lastFailure, { at: '2026-11-22T07:00:00.000Z', source: 'snapshot', detail: `incomplete snapshot ${failing[1]} (failed, interrupted or still running)` });

    // Without --max-age only "nothing complete" counts; naming hosts narrows the check.
    assert.equal((await admin(['status', root, '--now', NOW])).code, 1);
    assert.equal((await admin(['status', root, 'fresh', 'silent', '--now', NOW])).code, 0);
    assert.equal((await admin(['status', root, 'silent', '--max-age', '80h', '--now', NOW])).code, 0);
    assert.equal((await admin(['status', root, 'silent', '--max-age', '79h', '--now', NOW])).code, 1);
    // A host named but missing has no backup.
    const missing = await admin(['status', root, 'fresh', 'gone', '--now', NOW]);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /^ssh-r-sync-admin: gone: no complete backup\n$/);
    // An empty root (the backup disk not mounted?) is not "all fine".
    const empty = await admin(['status', await newRoot()]);
    assert.equal(empty.code, 1);
    assert.match(empty.stderr, /no host directories under .*: is it the right directory, and is its disk mounted\?/);
  });

  test('the last failure: an incomplete snapshot newer than the newest complete, or runs.log (hooks/done-log)', async () => {
    const root = await newRoot();
    const ids = await history(root, 'host1', [[30, true], [6, false]]);
    await history(root, 'host2', [[4, true]]);
    await mkdir(join(root, '.ssh-r-sync'));
    await appendFile(join(root, '.ssh-r-sync', 'runs.log'), '2026-11-21T01:00:00Z host2 failure\n2026-11-22T07:30:00Z host2 success\n2026-11-20T01:00:00Z host1 failure\n');
    const r = await admin(['status', root, '--now', NOW, '--json']);
    assert.equal(r.code, 0, r.stderr);
    const hosts = JSON.parse(r.stdout).hosts;
    assert.deepEqual(hosts[0].lastFailure, { at: '2026-11-22T06:00:00.000Z', source: 'snapshot', detail: `incomplete snapshot ${ids[1]} (failed, interrupted or still running)` });
    assert.deepEqual(hosts[1].lastFailure, { at: '2026-11-21T01:00:00Z', source: 'runs.log', detail: 'a run ended as failure (runs.log)' });
    const table = await admin(['status', root, '--now', NOW]);
    assert.match(table.stdout, /host1 .* 2026-11-22T06:00:00Z incomplete snapshot +never\n/);
    assert.match(table.stdout, /host2 .* 2026-11-21T01:00:00Z runs\.log +never\n/);
  });

  test('usage errors exit 2 with one line', async () => {
    const root = await newRoot();
    const cases: [string[], RegExp][] = [
      [['status'], /^ssh-r-sync-admin: error: missing required argument 'BACKUP_ROOT'\n$/],
      [['status', join(root, 'nope')], /^ssh-r-sync-admin: error: BACKUP_ROOT .*nope is not a directory\n$/],
      [['status', root, '--max-age', '3 months'], /argument '3 months' is invalid\. unknown unit "months": e\.g\. 90s, 90m, 2h30m, 36h or 14d/],
      [['status', root, '--max-age', 'soon'], /argument 'soon' is invalid\. e\.g\. 90s, 90m, 2h30m, 36h or 14d \(s, m or min, h, d, w; a plain number is seconds\)/],
      [['status', root, '--now', 'yesterday'], /expected an ISO 8601 time/],
      [['status', root, '../etc'], /refused host name "\.\.\/etc"/],
      [['status', root, '--bogus'], /unknown option '--bogus'/],
      [['frobnicate'], /unknown command 'frobnicate'/],
      [[], /Usage: ssh-r-sync-admin <command>/],
    ];
    for (const [args, message] of cases) {
      const r = await admin(args);
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, message, args.join(' '));
    }
    const help = await admin(['status', '--help']);
    assert.equal(help.code, 0);
    assert.match(help.stdout, /--max-age <DURATION>/);
    assert.match(help.stdout, /Examples:\n {2}ssh-r-sync-admin status \/srv\/backup\n/);
  });
});

describe('ssh-r-sync-admin status --report (the status timer, the dead-man\'s switch)', () => {
  test('every host\'s health goes to the config\'s plugins with its own max age; a silent host is stale; exit 1', async () => {
    const root = await newRoot();
    await history(root, 'fresh', [[3, true]]);
    await history(root, 'silent', [[100, true]]);
    await history(root, 'weekly', [[100, true]]);
    const config = join(dir, `report-${count}`);
    await mkdir(config);
    const got = join(config, 'report.json');
    await writeFile(
      join(config, 'reporter.mjs'),
      `import { writeFileSync } from 'node:fs';
      export default { name: 'reporter', apply() {}, async status(report, logger) { logger.info('got ' + report.hosts.length); writeFileSync(${JSON.stringify(got)}, JSON.stringify(report)); } };\n`,
    );
    await writeFile(join(config, 'config.json'), JSON.stringify({ plugins: ['./reporter.mjs'], maxAge: '36h', hosts: { weekly: { maxAge: '8d' } } }));
    const r = await runNode(adminBin, ['status', '--report', '--now', NOW, root], { env: { SSH_R_SYNC_CONFIG_DIR: config } });
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /^ssh-r-sync-admin: silent: the newest complete backup \(\S+\) is 4d 4h old, more than --max-age 36h$/m);
    const report = JSON.parse(readFileSync(got, 'utf8')) as { root: string; at: string; hosts: { name: string; stale: boolean; maxAgeSeconds: number | null }[] };
    assert.equal(report.at, '2026-11-22T12:00:00.000Z');
    assert.deepEqual(report.hosts.map((h) => [h.name, h.stale, h.maxAgeSeconds]), [['fresh', false, 129600], ['silent', true, 129600], ['weekly', false, 691200]]);
    // --max-age on the command line is the default; a host's own max age still wins.
    const strict = await runNode(adminBin, ['status', '--report', '--max-age', '1h', '--now', NOW, '--json', root], { env: { SSH_R_SYNC_CONFIG_DIR: config } });
    assert.deepEqual(JSON.parse(strict.stdout).hosts.map((h: { name: string; stale: boolean }) => [h.name, h.stale]), [['fresh', true], ['silent', true], ['weekly', false]]);
    // Without --report (and --config) the config is not read: no plugin hears of it, --max-age alone counts.
    await writeFile(got, '');
    const plain = await runNode(adminBin, ['status', '--now', NOW, root], { env: { SSH_R_SYNC_CONFIG_DIR: config } });
    assert.equal(plain.code, 0, plain.stderr);
    assert.equal(readFileSync(got, 'utf8'), '');
  });

  test('a plugin that fails to report, a config without one, a bad max age: said on one line each', async () => {
    const root = await newRoot();
    await history(root, 'fresh', [[3, true]]);
    const config = join(dir, `report-${count}`);
    await mkdir(config);
    await writeFile(join(config, 'broken.mjs'), `export default { name: 'broken', apply() {}, async status() { throw new Error('the server said 503'); } };\n`);
    await writeFile(join(config, 'config.json'), JSON.stringify({ plugins: ['./broken.mjs'] }));
    const env = { SSH_R_SYNC_CONFIG_DIR: config };
    const failed = await runNode(adminBin, ['status', '--report', '--now', NOW, root], { env });
    assert.equal(failed.code, 1);
    assert.match(failed.stderr, /^ssh-r-sync-admin\[broken\]: error: could not report the status: the server said 503$/m);
    await writeFile(join(config, 'config.json'), JSON.stringify({}));
    const none = await runNode(adminBin, ['status', '--report', '--now', NOW, root], { env });
    assert.equal(none.code, 0, 'no reporter is a warning: the exit code still says whether a host is stale');
    assert.match(none.stderr, /config\.json loads no plugin that takes a status report: add @ssh-r-sync\/plugin-prometheus or @ssh-r-sync\/plugin-notify to its plugins/);
    await writeFile(join(config, 'config.json'), JSON.stringify({ hosts: { fresh: { maxAge: 'soon' } } }));
    const bad = await runNode(adminBin, ['status', '--report', '--now', NOW, root], { env });
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /invalid config .*config\.json: hosts\.fresh\.maxAge: cannot read duration "soon"/);
  });
});

describe('ssh-r-sync-admin prune', () => {
  // 20 daily runs (the 4th failed), newest 2 h before NOW.
  async function twentyDays(root: string): Promise<string[]> {
    return history(root, 'host1', Array.from({ length: 20 }, (_, i) => [(19 - i) * 24 + 2, i !== 3] as [number, boolean]));
  }

  test('--dry-run prints every snapshot with KEEP or DELETE and its reasons, and deletes nothing', async () => {
    const root = await newRoot();
    const ids = await twentyDays(root);
    const r = await admin(['prune', root, '--keep', '7d', '--keep-last', '2', '--dry-run', '--now', NOW]);
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.trimEnd().split('\n');
    assert.equal(lines[0], 'host1: 20 snapshots, 10 kept; dry run: 10 would be deleted, nothing was');
    assert.deepEqual(lines[1]!.split(/\s{2,}/), ['', 'DELETE', ids[0], 'expired: beyond 7d']);
    assert.deepEqual(lines[4]!.split(/\s{2,}/), ['', 'DELETE', ids[3], `incomplete, superseded by ${ids[19]}`]);
    assert.deepEqual(lines[11]!.split(/\s{2,}/), ['', 'KEEP', ids[10], 'deletion cap reached (10 per run); next run: expired: beyond 7d']);
    assert.deepEqual(lines[14]!.split(/\s{2,}/), ['', 'KEEP', ids[13], 'daily 7/7 (2026-11-16)']);
    assert.deepEqual(lines[20]!.split(/\s{2,}/), ['', 'KEEP', ids[19], 'newest complete; keep-last 1/2; daily 1/7 (2026-11-22)']);
    for (const id of ids) assert.ok(existsSync(join(root, 'host1', id)) && existsSync(join(root, 'host1', `${id}.meta`)), id);
  });

  test('a real prune deletes what the plan deletes; kept snapshots and their hard-linked files stay intact', async () => {
    const root = await newRoot();
    const ids = await twentyDays(root);
    const shared = join(root, 'host1', ids[19]!, 'etc', 'shared.conf');
    assert.equal((await stat(shared)).nlink, 20);

    const r = await admin(['prune', root, 'host1', '--keep', '7d', '--keep-last', '2', '--max-deletes', 'all', '--now', NOW, '--json']);
    assert.equal(r.code, 0, r.stderr);
    const result = JSON.parse(r.stdout);
    assert.equal(result.policy, '7d, keep-last 2, no deletion cap');
    assert.equal(result.dryRun, false);
    const host = result.hosts[0];
    const expectedDeleted = ids.slice(0, 13);
    assert.deepEqual(host.deleted, expectedDeleted);
    assert.deepEqual(host.failed, []);
    assert.equal(host.error, null);
    assert.deepEqual(host.snapshots[3], { id: ids[3], complete: false, action: 'delete', reasons: [`incomplete, superseded by ${ids[19]}`] });
    assert.deepEqual(host.snapshots[19], { id: ids[19], complete: true, action: 'keep', reasons: ['newest complete', 'keep-last 1/2', 'daily 1/7 (2026-11-22)'] });
    // Every deletion is logged with its reason.
    assert.match(r.stderr, new RegExp(`^ssh-r-sync-admin\\[host1\\]: deleting ${ids[0]}: expired: beyond 7d$`, 'm'));

    for (const id of expectedDeleted) {
      assert.equal(existsSync(join(root, 'host1', id)), false, `${id} deleted`);
      assert.equal(existsSync(join(root, 'host1', `${id}.meta`)), false, `${id}.meta deleted`);
    }
    for (const [i, id] of ids.entries()) {
      if (i < 13) continue;
      assert.equal(await readFile(join(root, 'host1', id, 'etc', 'shared.conf'), 'utf8'), 'the same in every snapshot\n');
      // Every snapshot still holds the own file of each snapshot before it, deleted or not.
      assert.equal(readFileSync(join(root, 'host1', id, `own-${ids[0]}.txt`), 'utf8'), `${ids[0]}\n`);
      assert.ok(existsSync(join(root, 'host1', `${id}.meta`, 'done.json')));
    }
    assert.equal((await stat(shared)).nlink, 7);

    // Pruning again finds nothing more to do.
    const again = await admin(['prune', root, '--keep', '7d', '--keep-last', '2', '--now', NOW]);
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stdout, /^host1: 7 snapshots, 7 kept; 0 deleted\n/);
  });

  test('run as root over a store another account owns, it works as that account: root\'s rights never reach the account\'s tree', { skip: process.getuid?.() !== 0 && 'needs root (a throwaway user)' }, async (t) => {
    const { user, uid } = throwawayUser(t);
    const root = await newRoot();
    const clean = await history(root, 'clean', [[50, true], [26, true], [2, true]]);
    const planted = await history(root, 'planted', [[50, true], [2, true]]);
    execFileSync('chown', ['-R', `${uid}:${uid}`, root]);
    // Root put a folder of its own into the account's oldest snapshot: the account cannot empty it.
    const rootOnly = join(root, 'planted', planted[0]!, 'root-only');
    await mkdir(rootOnly, { mode: 0o755 });
    await writeFile(join(rootOnly, 'kept.txt'), 'root\'s\n');
    for (const d of [dir, root]) execFileSync('chmod', ['755', d]);
    const r = await admin(['prune', root, '--keep', '1d', '--now', NOW, '--debug']);
    assert.match(r.stderr, new RegExp(`running as ${user} \\(uid ${uid}\\), the owner of ${root}`));
    assert.match(r.stdout, /^clean: 3 snapshots, 1 kept; 2 deleted$/m);
    assert.deepEqual(clean.map((id) => existsSync(join(root, 'clean', id))), [false, false, true]);
    assert.equal(r.code, 1, 'the planted folder could not be deleted with the account\'s rights');
    assert.match(r.stdout, /^planted: 2 snapshots, 1 kept; 0 deleted, 1 could not be deleted$/m);
    assert.match(r.stdout + r.stderr, /Permission denied/);
    assert.ok(existsSync(join(rootOnly, 'kept.txt')), 'root\'s own file survives: nothing ran with root\'s rights in there');
    // What prune wrote (locks, records) is the account's.
    const owners = execFileSync('find', [root, '!', '-uid', String(uid), '!', '-path', `${rootOnly}*`], { encoding: 'utf8' }).trim();
    assert.equal(owners, '', 'everything but the planted folder is the account\'s');
  });

  test('run as root over its own store reached through a folder another account owns, it refuses: that account could swap the symlink to the store while root deletes', { skip: process.getuid?.() !== 0 && 'needs root (a throwaway user)' }, async (t) => {
    const { uid } = throwawayUser(t);
    const root = await newRoot();
    const ids = await history(root, 'host1', [[50, true], [26, true], [2, true]]);
    // The account's folder holds the way in: a symlink to root's store, which it can point elsewhere at will.
    const theirs = join(dir, `theirs${count}`);
    await mkdir(theirs);
    await symlink(root, join(theirs, 'backup'));
    execFileSync('chown', ['-h', '-R', `${uid}:${uid}`, theirs]);
    const r = await admin(['prune', join(theirs, 'backup'), '--keep', '1d', '--now', NOW]);
    assert.equal(r.code, 2, r.stdout + r.stderr);
    assert.match(r.stderr, new RegExp(`refusing to change ${join(theirs, 'backup')} as root: ${theirs} is owned by uid ${uid}`));
    assert.deepEqual(ids.map((id) => existsSync(join(root, 'host1', id))), [true, true, true], 'nothing was deleted');
    // Through its real path, which only root can change, it prunes.
    const direct = await admin(['prune', root, '--keep', '1d', '--now', NOW]);
    assert.equal(direct.code, 0, direct.stderr);
    assert.match(direct.stdout, /^host1: 3 snapshots, 1 kept; 2 deleted$/m);
  });

  test('a host whose backup is running is left alone (exit 1); other hosts are pruned', async () => {
    const root = await newRoot();
    const busy = await history(root, 'busy', [[50, true], [26, true], [2, true]]);
    const idle = await history(root, 'idle', [[50, true], [26, true], [2, true]]);
    // The lock a running receiver holds, taken here by this process.
    const release = await lockHost({ root, name: 'busy', waitSeconds: 0, logger: silentLogger });
    const r = await admin(['prune', root, '--keep', '1d', '--now', NOW]).finally(release);
    assert.equal(r.code, 1);
    assert.match(r.stdout, new RegExp(`^busy: not pruned: another backup of busy is already running \\(pid ${process.pid}\\); try again later$`, 'm'));
    assert.match(r.stdout, /^idle: 3 snapshots, 1 kept; 2 deleted$/m);
    for (const id of busy) assert.ok(existsSync(join(root, 'busy', id)));
    assert.deepEqual(idle.map((id) => existsSync(join(root, 'idle', id))), [false, false, true]);
    // A dry run only reads: no lock needed.
    assert.equal((await admin(['prune', root, 'busy', '--keep', '1d', '--dry-run', '--now', NOW])).code, 0);
  });

  test('an unreadable policy or bad options exit 2 and touch nothing', async () => {
    const root = await newRoot();
    const ids = await twentyDays(root);
    const cases: [string[], RegExp][] = [
      [['prune', root], /required option '--keep <PERIODS>' not specified/],
      [['prune', root, '--keep', ''], /^ssh-r-sync-admin: error: retention policy: keep is empty: e\.g\. '14d 4w 6m 2y'/],
      [['prune', root, '--keep', 'daily'], /retention policy: cannot read "daily"/],
      [['prune', root, '--keep', '7d', '--keep-last', '0'], /'--keep-last <N>' argument '0' is invalid\. expected a whole number >= 1/],
      [['prune', root, '--keep', '7d', '--max-deletes', 'many'], /expected a whole number >= 1, or 'all'/],
      [['prune', root, '--keep', '7d', '--min-age', '2m'], /retention policy: minAge: .*'m' is ambiguous/],
      [['prune', root, 'nohost', '--keep', '7d'], /no host nohost under/],
    ];
    for (const [args, message] of cases) {
      const r = await admin(args);
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, message, args.join(' '));
    }
    for (const id of ids) assert.ok(existsSync(join(root, 'host1', id)), id);
    const help = await admin(['prune', '--help']);
    assert.equal(help.code, 0);
    assert.match(help.stdout, /--keep <PERIODS>/);
    assert.match(help.stdout, /Reasons read like: "newest complete"/);
  });
});
