// The server's own account of each run (issue 10, items 4 and 5), through real reverse backups
// through sshd of a mirror host (no plugins, setup.md's default): the run log
// ROOT/.ssh-r-sync/log/NAME.log keeps each run's outcome, config file, rsync's error lines and
// every hook's outcome, never a secret, within its cap; `ssh-r-sync-admin log` shows it;
// `status` tells "never succeeded" from "succeeded long ago" from "last run failed"; and each
// run leaves one summary line in the system log (a socket served here is the tests' /dev/log).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, rmSync, statSync, existsSync, readdirSync } from 'node:fs';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { appendRunLog, readRunLog, runLogPath, MAX_RUN_LOG_BYTES, type RunLogEntry } from '@ssh-r-sync/core/internal';
import { startBackupServer, type BackupServer } from './helpers/backup-server.js';
import { repoRoot, runNode, runRecv, tempDir, writeScript } from './helpers/cli.js';
import { LINK_DEST_DIST } from './helpers/nonroot-server.js';
import { startSyslogSocket, type SyslogSocket } from './helpers/syslog-socket.js';

const adminBin = join(repoRoot, 'packages/cli/bin/ssh-r-sync-admin.js');
const NAME = 'h';
let tmp: { dir: string; cleanup: () => Promise<void> };
let server: BackupServer;
let src: string;
let flag: string;
let secrets: string;
let doneHook: string;
let preHook: string;
let config: string;
let wrapper: string;
let socketPath: string;
let syslog: SyslogSocket;
// The receiver's config: the rsync.pre hook, and where the run summaries go (`syslog`).
const writeConfig = (syslogSetting: unknown) => writeFile(config, JSON.stringify({ hooks: { 'rsync.pre': preHook }, syslog: syslogSetting }));

before(async () => {
  tmp = await tempDir('srs-run-log-');
  src = join(tmp.dir, 'src');
  await mkdir(src);
  await writeFile(join(src, 'a.txt'), 'alpha\n');
  flag = join(tmp.dir, 'fail-next');
  secrets = join(tmp.dir, 'secrets-seen');
  // An rsync that keeps a copy of each run's daemon password; while `flag` exists it fails for
  // real (an option rsync does not know), while `flag.done` exists it prints the password (a leak
  // the run log must blank) and the done hook fails.
  wrapper = await writeScript(
    tmp.dir,
    'rsync-wrapper',
    `for a in "$@"; do case "$a" in --password-file=*) cat "\${a#--password-file=}" >> '${secrets}';; esac; done
[ -e '${flag}.done' ] && echo "rsync: the password is $(tail -n 1 '${secrets}')" >&2
[ -e '${flag}' ] && exec rsync --no-such-option "$@"
exec rsync "$@"
`,
  );
  preHook = await writeScript(tmp.dir, 'pre-ok', 'exit 0\n');
  doneHook = await writeScript(tmp.dir, 'done-check', `[ -e '${flag}.done' ] && exit 1\nexit 0\n`);
  socketPath = join(tmp.dir, 'syslog.sock');
  syslog = await startSyslogSocket(socketPath);
  config = join(tmp.dir, 'recv-config.json');
  await writeConfig(socketPath);
  server = await startBackupServer({ recvArgs: ['--name', NAME, '--config', config, '--rsync', wrapper, '-x', `done:${doneHook}`] });
});
after(async () => {
  await server?.stop();
  await syslog?.close();
  await tmp?.cleanup();
});

const admin = (args: string[]) => runNode(adminBin, args);

// One backup: with `fail`, rsync fails; with `doneFails`, the done hook does too.
async function backup(fail: boolean, doneFails = false) {
  if (fail) await writeFile(flag, '');
  else await rm(flag, { force: true });
  if (doneFails) await writeFile(`${flag}.done`, '');
  else await rm(`${flag}.done`, { force: true });
  return server.backup(src, ['-n', NAME]);
}

function statusOf(json: string) {
  return (JSON.parse(json) as { hosts: { kind: string; newestComplete: unknown; lastFailure: { source: string; detail: string } | null; stale: boolean; problem: string | null; lastSuccess?: string | null }[] }).hosts[0]!;
}

describe('a mirror host in status: never succeeded, succeeded long ago, last run failed', () => {
  test('each state reads differently, in words and in --json', async () => {
    // Never succeeded: the first run fails.
    const first = await backup(true);
    assert.equal(first.code, 1, first.stderr);
    const never = await admin(['status', server.root, NAME]);
    assert.equal(never.code, 1);
    assert.match(never.stderr, /^ssh-r-sync-admin: h: no complete backup: it never succeeded$/m);
    assert.match(never.stderr, /^ssh-r-sync-admin: h: last run failed: rsync exited with code 1: rsync: --no-such-option: unknown option/m);
    const neverJson = statusOf((await admin(['status', '--json', server.root, NAME])).stdout);
    assert.deepEqual([neverJson.kind, neverJson.newestComplete, neverJson.lastFailure?.source, neverJson.lastSuccess], ['none', null, 'record', null]);

    // Succeeded: fresh now; long ago as seen from 40 days later.
    const ok = await backup(false);
    assert.equal(ok.code, 0, ok.stderr);
    const fresh = await admin(['status', '--max-age', '36h', server.root, NAME]);
    assert.equal(fresh.code, 0, fresh.stderr);
    assert.equal(fresh.stderr, '');
    const later = new Date(Date.now() + 40 * 86400_000).toISOString();
    const old = await admin(['status', '--max-age', '36h', '--now', later, server.root, NAME]);
    assert.equal(old.code, 1);
    assert.match(old.stderr, /^ssh-r-sync-admin: h: the newest complete backup is 40d old, more than --max-age 36h$/m);
    assert.doesNotMatch(old.stderr, /last run failed/);
    const oldJson = statusOf((await admin(['status', '--json', '--now', later, server.root, NAME])).stdout);
    assert.equal(oldJson.kind, 'mirror');
    assert.equal(oldJson.lastFailure, null);
    assert.equal(typeof oldJson.lastSuccess, 'string');

    // Last run failed after a success: the mirror was being rewritten, so nothing is complete now,
    // but status says when it last succeeded and why the last run failed.
    assert.equal((await backup(true)).code, 1);
    const failed = await admin(['status', server.root, NAME]);
    assert.equal(failed.code, 1);
    assert.match(failed.stderr, /^ssh-r-sync-admin: h: no complete backup now \(the mirror is being rewritten, or its last run failed\); the last success was at \d{4}-\d\d-\d\dT[\d:]+Z/m);
    assert.match(failed.stderr, /^ssh-r-sync-admin: h: last run failed: rsync exited with code 1/m);
    const failedJson = statusOf((await admin(['status', '--json', server.root, NAME])).stdout);
    assert.equal(failedJson.lastSuccess, oldJson.lastSuccess);
    assert.equal(failedJson.lastFailure?.source, 'record');
    // The host record keeps the last success by itself: with the run log gone (rotated away
    // after many failures, or removed), status still knows it.
    const log = runLogPath(server.root, NAME);
    rmSync(log, { force: true });
    rmSync(`${log}.1`, { force: true });
    const unlogged = statusOf((await admin(['status', '--json', server.root, NAME])).stdout);
    assert.equal(typeof unlogged.lastSuccess, 'string');
    assert.ok(Math.abs(Date.parse(unlogged.lastSuccess!) - Date.parse(oldJson.lastSuccess!)) < 60_000, `${unlogged.lastSuccess} is the success ${oldJson.lastSuccess}`);
    await backup(false);
  });
});

describe('the run log', () => {
  test("after a failing and a succeeding run it shows both, with rsync's error line and the hooks' outcomes, and no secret", async () => {
    const before = readRunLog(server.root, NAME).length;
    assert.equal((await backup(true, true)).code, 1);
    assert.equal((await backup(false)).code, 0);
    const shown = await admin(['log', server.root, NAME, '--runs', '2']);
    assert.equal(shown.code, 0, shown.stderr);
    const [failure, success] = shown.stdout.split(/\n(?=\d{4}-)/);
    assert.match(failure!, /^\S+Z {2}failure \(exit 1\) after [\d.]+ s, reverse$/m);
    assert.match(failure!, new RegExp(`^  config: ${config}$`, 'm'));
    assert.match(failure!, /^  rsync: exit 1\n {4}rsync: the password is \[secret\]\n {4}rsync: --no-such-option: unknown option\n {4}rsync error: syntax or usage error \(code 1\)/m);
    assert.match(failure!, new RegExp(`^  hook rsync.pre ${preHook}: ok `, 'm'));
    assert.match(failure!, new RegExp(`^  hook done ${doneHook}: failed `, 'm'));
    assert.match(success!, /^\S+Z {2}success after [\d.]+ s, reverse$/m);
    assert.match(success!, new RegExp(`^  hook done ${doneHook}: ok `, 'm'));
    assert.doesNotMatch(success!, /^ {4}/m, 'a success has no error lines');

    const json = await admin(['log', '--json', '--runs', '1', server.root, NAME]);
    assert.equal(json.code, 0);
    const parsed = JSON.parse(json.stdout) as { version: number; name: string; runs: RunLogEntry[] };
    assert.deepEqual([parsed.version, parsed.name, parsed.runs.length, parsed.runs[0]!.status, parsed.runs[0]!.config], [1, NAME, 1, 'success', config]);
    assert.equal(readRunLog(server.root, NAME).length, before + 2);

    // Private, beside the host records, never in the host's directory, and no password in it.
    const path = runLogPath(server.root, NAME);
    assert.equal(path, join(server.root, '.ssh-r-sync', 'log', `${NAME}.log`));
    assert.equal(statSync(path).mode & 0o777, 0o600);
    assert.equal(statSync(join(server.root, '.ssh-r-sync', 'log')).mode & 0o777, 0o700);
    assert.deepEqual(readdirSync(join(server.root, NAME)), ['a.txt']);
    const seen = readFileSync(secrets, 'utf8').split('\n').filter(Boolean);
    assert.ok(seen.length >= 2, 'the wrapper saw the passwords');
    const text = readFileSync(path, 'utf8');
    for (const secret of seen) assert.ok(!text.includes(secret), 'the daemon password is not in the run log');
    assert.ok(!text.includes(server.key), 'nor the key path');
  });

  test('admin log: an unknown host is exit 2 in one line; a usage error too', async () => {
    const unknown = await admin(['log', server.root, 'nosuchhost']);
    assert.equal(unknown.code, 2);
    assert.equal(unknown.stderr, `ssh-r-sync-admin: error: no host nosuchhost under ${server.root} (hosts there: ${NAME})\n`);
    assert.equal(unknown.stdout, '');
    const badRuns = await admin(['log', '--runs', '0', server.root, NAME]);
    assert.equal(badRuns.code, 2);
    assert.equal(badRuns.stderr.trimEnd().split('\n').length, 1, badRuns.stderr);
    const missingRoot = await admin(['log', join(tmp.dir, 'nowhere'), NAME]);
    assert.equal(missingRoot.code, 2);
    assert.match(missingRoot.stderr, /^ssh-r-sync-admin: error: BACKUP_ROOT .* is not a directory\n$/);
  });

  test('the cap holds after many runs: two files of at most the cap, the newest runs kept', async () => {
    const { dir, cleanup } = await tempDir('srs-run-log-cap-');
    try {
      const big = 'x'.repeat(280);
      for (let i = 0; i < 400; i += 1) {
        const entry: RunLogEntry = {
          version: 1, name: 'cap', startedAt: new Date().toISOString(), at: new Date().toISOString(), transport: 'local', status: 'failure', exitCode: 1, durationMs: i,
          committed: false, snapshot: null, message: `run ${i} ${big}`, config: null, mode: 'plain',
          rsync: { exitCode: 23, signal: null, files: 0, bytes: 0, errors: Array.from({ length: 20 }, (_, j) => `rsync: line ${j} ${big}`) }, hooks: [],
        };
        await appendRunLog(dir, entry);
      }
      const path = runLogPath(dir, 'cap');
      assert.ok(statSync(path).size <= MAX_RUN_LOG_BYTES, `${statSync(path).size} bytes`);
      assert.ok(statSync(`${path}.1`).size <= MAX_RUN_LOG_BYTES);
      assert.deepEqual(readdirSync(join(dir, '.ssh-r-sync', 'log')).sort(), ['cap.log', 'cap.log.1']);
      const runs = readRunLog(dir, 'cap');
      assert.ok(runs.length > 20 && runs.length < 400, `${runs.length} runs kept`);
      assert.equal(runs.at(-1)!.durationMs, 399, 'the newest run is last');
      assert.deepEqual(runs.map((run) => run.durationMs), Array.from({ length: runs.length }, (_, i) => 400 - runs.length + i), 'in order, none lost in between');
      assert.ok(!existsSync(join(dir, 'cap')), 'nothing in a host directory');
    } finally {
      await cleanup();
    }
  });
});

// <PRI> of user.err and user.info (facility 1 × 8 + severity 3 or 6), then the date, the tag and its pid.
const ERR = /^<11>\w{3} [ \d]\d \d\d:\d\d:\d\d ssh-r-sync-recv(?:\[\d+\])?: /;
const INFO = /^<14>\w{3} [ \d]\d \d\d:\d\d:\d\d ssh-r-sync-recv(?:\[\d+\])?: /;

describe('the run summary in the system log (tag ssh-r-sync-recv)', { concurrency: 1 }, () => {
  test("reverse mode through sshd: a failure is one user.err line with rsync's lines and the failed hook, no secret; a success one user.info line", async () => {
    const start = syslog.lines.length;
    assert.equal((await backup(true, true)).code, 1);
    const line = await syslog.line(start);
    assert.match(line, ERR);
    assert.match(line, /: h: backup failed \(exit 1\): done hook "[^"]+" failed: exited with code 1; /);
    assert.match(line, /; rsync exit 1: "rsync: the password is \[secret\]" "rsync: --no-such-option: unknown option"/);
    assert.match(line, new RegExp(`; failed hooks: done ${doneHook} \\(failed\\); reverse, [\\d.]+ s; config ${config}$`));
    for (const secret of readFileSync(secrets, 'utf8').split('\n').filter(Boolean)) assert.ok(!syslog.lines.join('\n').includes(secret), 'no daemon password in the system log');

    assert.equal((await backup(false)).code, 0);
    const success = await syslog.line(start + 1);
    assert.match(success, INFO);
    assert.match(success, /: h: backup done \(exit 0\); rsync exit 0, \d+ files, \d+ bytes; reverse, [\d.]+ s; config /);
    assert.equal(syslog.lines.length, start + 2, 'one line per run');
  });

  test('"syslog": false sends nothing; a socket nobody serves changes nothing for the backup', async () => {
    const start = syslog.lines.length;
    try {
      await writeConfig(false);
      assert.equal((await backup(false)).code, 0);
      await writeConfig(join(tmp.dir, 'nobody-here.sock'));
      const unserved = await backup(false);
      assert.equal(unserved.code, 0, unserved.stderr);
      assert.doesNotMatch(unserved.stderr, /logger|syslog/);
    } finally {
      await writeConfig(socketPath);
    }
    // The next run that logs is the first line since: the two before sent none.
    assert.equal((await backup(false)).code, 0);
    assert.match(await syslog.line(start), /: h: backup done \(exit 0\)/);
    assert.equal(syslog.lines.length, start + 1);
  });

  test('refused runs are logged too: a key without a host name (exit 2), a missing BACKUP_ROOT at start', async () => {
    const start = syslog.lines.length;
    await server.setRecvArgs(['--config', config]);
    try {
      assert.equal((await backup(false)).code, 2);
    } finally {
      await server.setRecvArgs(['--name', NAME, '--config', config, '--rsync', wrapper, '-x', `done:${doneHook}`]);
    }
    const refused = await syslog.line(start);
    assert.match(refused, ERR);
    assert.match(refused, /: \(no host: refused before its name was known\): backup failed \(exit 2\): cannot tell which host this is: no --name in the forced command and no names map in the config; reverse, /);
    const missing = join(tmp.dir, 'unmounted-disk');
    const run = await runRecv(['--local', src, '--name', 'gone', '--config', config, missing]);
    assert.equal(run.code, 2, run.stderr);
    assert.match(await syslog.line(start + 1), new RegExp(`^<11>.*: gone: refused to start \\(exit 2\\): BACKUP_ROOT ${missing} does not exist: create it .*; config ${config}$`));
  });

  test('a --local run logs the same summary (a pull run takes the same path), with its snapshot', async () => {
    const start = syslog.lines.length;
    const root = join(tmp.dir, 'local-root');
    await mkdir(root, { mode: 0o700 });
    const local = join(tmp.dir, 'local-config.json');
    await writeFile(local, JSON.stringify({ syslog: socketPath, plugins: [LINK_DEST_DIST] }));
    const run = await runRecv(['--local', src, '--name', 'loc', '--config', local, '--json', root]);
    assert.equal(run.code, 0, run.stderr);
    const snapshot = (JSON.parse(run.stdout) as { snapshot: string }).snapshot;
    const line = await syslog.line(start);
    assert.match(line, INFO);
    assert.match(line, new RegExp(`: loc: backup done \\(exit 0\\); snapshot ${snapshot}; rsync exit 0, .*; local, [\\d.]+ s; config ${local}$`));
  });

  test('a config whose syslog is neither a boolean nor an absolute path is refused (exit 2, one line)', async () => {
    const bad = join(tmp.dir, 'bad-config.json');
    await writeFile(bad, JSON.stringify({ syslog: 'dev/log' }));
    const run = await runRecv(['--check-config', '--config', bad]);
    assert.equal(run.code, 2, run.stderr);
    assert.match(run.stderr, /invalid config .*bad-config\.json: syslog: /);
  });
});
