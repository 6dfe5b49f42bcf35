// The conventions every command keeps (issue 10, item 9), through the real commands: sizes in
// human units on a terminal (a pty from `script`) and exact byte counts in a pipe and in --json;
// correct plurals; `"schema": 1` in every --json object, and one run-result shape from the client
// and from the receiver; NO_COLOR and FORCE_COLOR as no-color.org and chalk define them; one
// duration syntax (90m, 2h30m, 36h, 14d; a plain number is seconds) for every time option.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { clientBin, recvBin, repoRoot, runNode, runRecv, tempDir, type RunResult } from './helpers/cli.js';
import { startBackupServer, type BackupServer } from './helpers/backup-server.js';

const adminBin = join(repoRoot, 'packages/cli/bin/ssh-r-sync-admin.js');
const admin = (args: string[]) => runNode(adminBin, args);
const PLUGINS = ['--plugin', join(repoRoot, 'packages/plugin-link-dest/dist/index.js'), '--plugin', join(repoRoot, 'packages/plugin-manifest/dist/index.js')];
const HOST = 'conv-host';
const LOCAL = 'conv-local';
const BIG = 3000; // > 1024: "2.9 KiB" on a terminal, "3000 bytes" in a pipe
const RUN_KEYS = ['schema', 'status', 'exitCode', 'committed', 'name', 'snapshot', 'files', 'bytes', 'durationMs', 'rsyncExitCode', 'message'];
const SYNTAX = /e\.g\. 90s, 90m, 2h30m, 36h or 14d/;

let work: { dir: string; cleanup: () => Promise<void> };
let server: BackupServer;
let src: string;
let firstRun: RunResult;
let secondRun: RunResult;
let ids: string[];

before(async () => {
  work = await tempDir('srs-conventions-');
  src = join(work.dir, 'src');
  await mkdir(src);
  await writeFile(join(src, 'big.bin'), Buffer.alloc(BIG, 7));
  await writeFile(join(src, 'small.txt'), 'small\n');
  server = await startBackupServer({ recvArgs: ['--name', HOST, ...PLUGINS] });
  // The top keeps one time, so that the second backup differs from the first by small.txt alone.
  const keepTop = () => execFileSync('touch', ['-d', '@1600000000', src]);
  keepTop();
  // The client's time options in the shared syntax: a plain number is seconds, 2h30m, 90m.
  firstRun = await server.backup(src, ['-n', HOST, '--json', '--hook-timeout', '2h30m', '--wait-timeout', '90m', '-t', '30'], { timeoutMs: 120_000 });
  assert.equal(firstRun.code, 0, firstRun.stderr);
  await writeFile(join(src, 'small.txt'), 'small, changed\n');
  keepTop();
  secondRun = await server.backup(src, ['-n', HOST], { timeoutMs: 120_000 });
  assert.equal(secondRun.code, 0, secondRun.stderr);
  ids = readdirSync(join(server.root, HOST)).filter((name) => /^\d{4}-\d\d-\d\dT\d{6}Z$/.test(name)).sort();
  assert.equal(ids.length, 2);
});

after(async () => {
  await server?.stop();
  await work?.cleanup();
});

// Runs a node script on a pseudo-terminal (util-linux `script`): stdout and stderr are a TTY.
function onTty(script: string, args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number | null; output: string }> {
  const command = [process.execPath, script, ...args].map((word) => `'${word.replace(/'/g, `'\\''`)}'`).join(' ');
  return new Promise((resolve, reject) => {
    const child = spawn('script', ['-qec', command, '/dev/null'], { env: { ...process.env, NO_COLOR: undefined, FORCE_COLOR: undefined, TERM: 'xterm', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (chunk) => (output += chunk));
    child.stderr.on('data', (chunk) => (output += chunk));
    const timer = setTimeout(() => child.kill('SIGKILL'), 120_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, output: output.replace(/\r\n/g, '\n') });
    });
  });
}

function assertUsageError(r: RunResult, pattern: RegExp, what: string): void {
  assert.equal(r.code, 2, `${what}: exit ${r.code}\n${r.stderr}`);
  assert.equal(r.stderr.trimEnd().split('\n').length, 1, `${what}: not one line: ${r.stderr}`);
  assert.match(r.stderr, pattern, what);
}

describe('sizes and plurals', () => {
  test('a run, the snapshot listing and verify: KiB on a terminal, exact bytes in a pipe and in --json', async () => {
    const json = JSON.parse(firstRun.stdout) as { files: number; bytes: number };
    assert.equal(json.files, 2);
    assert.ok(json.bytes >= BIG, firstRun.stdout);
    // In a pipe: exact; the second run sent one file.
    assert.match(firstRun.stderr, new RegExp(`backup of ${HOST} done: 2 files, ${json.bytes} bytes \\(snapshot `));
    assert.match(secondRun.stderr, new RegExp(`backup of ${HOST} done: 1 file, \\d+ bytes \\(snapshot `));

    const piped = await runNode(clientBin, ['snapshots', ...server.clientArgs(), `${server.sshd.user}@127.0.0.1`], { timeoutMs: 60_000 });
    assert.equal(piped.code, 0, piped.stderr);
    assert.match(piped.stdout, new RegExp(`^${ids[0]} .* \\d+ +${json.bytes} bytes +never verified$`, 'm'));
    const tty = await onTty(clientBin, ['snapshots', ...server.clientArgs(), `${server.sshd.user}@127.0.0.1`]);
    assert.equal(tty.code, 0, tty.output);
    assert.match(tty.output, new RegExp(`^${ids[0]} .* \\d+ +${(json.bytes / 1024).toFixed(1)} KiB +never verified$`, 'm'));

    const verifyArgs = ['verify', '--data', '--snapshot', ids[0]!, server.root, HOST];
    const exact = await admin(verifyArgs);
    assert.equal(exact.code, 0, exact.stderr);
    assert.match(exact.stdout, /: ok: \d+ entries checked, 2 of 2 regular files reread \(\d+ bytes\)\n$/);
    const human = await onTty(adminBin, verifyArgs);
    assert.match(human.output, /: ok: \d+ entries checked, 2 of 2 regular files reread \(\d+\.\d KiB\)\n/);
  });

  test('plurals: "1 version in 2 backups", "2 versions", "none of the 2 backups"', async () => {
    const versions = await admin(['versions', server.root, HOST, 'big.bin']);
    assert.equal(versions.code, 0, versions.stderr);
    assert.equal(versions.stdout.split('\n')[0], `${HOST}: big.bin: 1 version in 2 of 2 backups searched`, versions.stdout + versions.stderr);
    const two = await admin(['versions', server.root, HOST, 'small.txt']);
    assert.equal(two.stdout.split('\n')[0], `${HOST}: small.txt: 2 versions in 2 of 2 backups searched`, two.stdout + two.stderr);
    const diff = await admin(['diff', server.root, HOST, ids[0]!, ids[1]!]);
    assert.equal(diff.code, 0, diff.stderr);
    assert.match(diff.stdout, /: 0 added, 0 removed, 1 changed, \d+ unchanged; \+\d+ bytes, -\d+ bytes\n$/);
    const none = await admin(['versions', server.root, HOST, 'nothing-here']);
    assert.match(none.stderr, /is in none of the 2 backups searched/);
  });
});

describe('--json', () => {
  test('every command prints "schema": 1; the run result has one shape from the receiver and the client', async () => {
    const client = JSON.parse(firstRun.stdout) as Record<string, unknown>;
    assert.deepEqual(Object.keys(client), RUN_KEYS);
    const local = join(work.dir, 'local-root');
    await mkdir(local, { mode: 0o700 });
    const recv = await runRecv(['--local', src, '--name', LOCAL, '--json', ...PLUGINS, local]);
    assert.equal(recv.code, 0, recv.stderr);
    const received = JSON.parse(recv.stdout) as Record<string, unknown>;
    assert.deepEqual(Object.keys(received), RUN_KEYS);
    assert.equal(received.name, LOCAL);
    assert.equal(client.name, HOST);

    const dest = join(work.dir, 'restored');
    const outputs: [string, Promise<RunResult>][] = [
      ['ssh-r-sync snapshots', runNode(clientBin, ['snapshots', ...server.clientArgs(), '--json', `${server.sshd.user}@127.0.0.1`], { timeoutMs: 60_000 })],
      ['ssh-r-sync restore', runNode(clientBin, ['restore', ...server.clientArgs(), '--json', '--dry-run', `${server.sshd.user}@127.0.0.1`, dest], { timeoutMs: 60_000 })],
      ['status', admin(['status', server.root, '--json'])],
      ['verify', admin(['verify', server.root, '--json'])],
      ['versions', admin(['versions', server.root, HOST, 'big.bin', '--json'])],
      ['diff', admin(['diff', server.root, HOST, ids[0]!, ids[1]!, '--json'])],
      ['prune', admin(['prune', server.root, '--keep', '7d', '--dry-run', '--json'])],
      ['restore', admin(['restore', '--dry-run', '--json', server.root, HOST, join(work.dir, 'admin-restored')])],
      ['authorize', admin(['authorize', '--name', 'x', '--key', `${server.key}.pub`, '--authorized-keys', 'none', '--json', '/srv'])],
      ['authorize --pull', admin(['authorize', '--pull', '--name', 'x', '--key', `${server.key}.pub`, '--json', '/srv'])],
      ['systemd', admin(['systemd', '--name', 'x', '--json', '--', '/bin/true'])],
    ];
    for (const [what, pending] of outputs) {
      const r = await pending;
      assert.ok(r.code === 0 || r.code === 1, `${what}: exit ${r.code}\n${r.stderr}`);
      assert.equal(r.stdout.trimEnd().split('\n').length, 1, `${what}: one line of JSON`);
      assert.equal((JSON.parse(r.stdout) as { schema?: unknown }).schema, 1, `${what}: ${r.stdout.slice(0, 200)}`);
    }
  });
});

describe('colour', () => {
  // The client's --debug lines are dim (SGR 2) when coloured; ssh to a closed port ends the run fast.
  const args = ['--debug', '-p', '1', '-o', 'ConnectTimeout=5', '-n', 'x', 'nobody@127.0.0.1', '/tmp'];
  const ESC = '\x1b[';

  test('a terminal is coloured unless NO_COLOR (non-empty) or FORCE_COLOR=0 says no', async () => {
    assert.ok((await onTty(clientBin, args)).output.includes(ESC), 'a terminal gets colour');
    assert.ok(!(await onTty(clientBin, args, { NO_COLOR: '1' })).output.includes(ESC), 'NO_COLOR=1');
    assert.ok((await onTty(clientBin, args, { NO_COLOR: '' })).output.includes(ESC), 'an empty NO_COLOR is not set (no-color.org)');
    assert.ok(!(await onTty(clientBin, args, { FORCE_COLOR: '0' })).output.includes(ESC), 'FORCE_COLOR=0');
    assert.ok(!(await onTty(clientBin, args, { FORCE_COLOR: 'false' })).output.includes(ESC), 'FORCE_COLOR=false');
  });

  test('a pipe is plain unless FORCE_COLOR asks, which wins over NO_COLOR (as in chalk and Node)', async () => {
    const plain = await runNode(clientBin, args, { env: { NO_COLOR: undefined } });
    assert.ok(plain.stderr.includes('running') && !plain.stderr.includes(ESC), plain.stderr);
    assert.ok((await runNode(clientBin, args, { env: { NO_COLOR: undefined, FORCE_COLOR: '1' } })).stderr.includes(ESC), 'FORCE_COLOR=1');
    assert.ok((await runNode(clientBin, args, { env: { NO_COLOR: undefined, FORCE_COLOR: '' } })).stderr.includes(ESC), 'FORCE_COLOR empty');
    assert.ok((await runNode(clientBin, args, { env: { NO_COLOR: '1', FORCE_COLOR: '1' } })).stderr.includes(ESC), 'FORCE_COLOR=1 with NO_COLOR=1');
  });
});

describe('durations', () => {
  test('every time option takes the shared syntax and refuses garbage in one line (exit 2)', async () => {
    const cases: [string, string[]][] = [
      [clientBin, ['--hook-timeout', 'X', '-n', 'x', 'u@h', '/tmp']],
      [clientBin, ['--wait-timeout', 'X', '-n', 'x', 'u@h', '/tmp']],
      [clientBin, ['--handshake-timeout', 'X', '-n', 'x', 'u@h', '/tmp']],
      [clientBin, ['restore', '--io-timeout', 'X', 'u@h', '/tmp/r']],
      [clientBin, ['snapshots', '--timeout', 'X', 'u@h']],
      [recvBin, ['--hook-timeout', 'X', '/tmp']],
      [recvBin, ['--io-timeout', 'X', '/tmp']],
      [recvBin, ['--max-run-time', 'X', '/tmp']],
      [recvBin, ['--lock-wait', 'X', '/tmp']],
      [recvBin, ['--wait-timeout', 'X', '/tmp']],
      [adminBin, ['status', '--max-age', 'X', '/tmp']],
      [adminBin, ['restore', '--io-timeout', 'X', '/tmp', 'h', '/tmp/r']],
      [adminBin, ['prune', '--keep', '7d', '--lock-wait', 'X', '/tmp']],
    ];
    for (const [bin, template] of cases) {
      for (const garbage of ['soon', '10 parsecs', '-5m', '1h1h']) {
        const args = template.map((word) => (word === 'X' ? garbage : word));
        assertUsageError(await runNode(bin, args), new RegExp(`'${garbage}' is invalid\\. .*${SYNTAX.source}`), `${bin} ${args.join(' ')}`);
      }
    }
  });

  test('the receiver takes 2h30m, 90m, 36h, 1d; status --max-age 2h30m means two and a half hours', async () => {
    const local = join(work.dir, 'durations-root');
    await mkdir(local, { mode: 0o700 });
    const r = await runRecv(['--local', src, '--name', 'dur', '--hook-timeout', '2h30m', '--io-timeout', '90m', '--max-run-time', '36h', '--lock-wait', '1m30s', '--wait-timeout', '1d', local]);
    assert.equal(r.code, 0, r.stderr);
    const started = Date.parse((JSON.parse((await admin(['status', server.root, HOST, '--json'])).stdout) as { hosts: { newestComplete: { startedAt: string } }[] }).hosts[0]!.newestComplete.startedAt);
    const at = (ms: number) => new Date(started + ms).toISOString();
    const fresh = await admin(['status', server.root, HOST, '--max-age', '2h30m', '--now', at(2 * 3_600_000 + 29 * 60_000)]);
    assert.equal(fresh.code, 0, fresh.stderr);
    const stale = await admin(['status', server.root, HOST, '--max-age', '2h30m', '--now', at(2 * 3_600_000 + 31 * 60_000)]);
    assert.equal(stale.code, 1, stale.stderr);
    assert.match(stale.stderr, /more than --max-age 2h ?30m/);
    assert.equal(JSON.parse((await admin(['status', server.root, HOST, '--max-age', '9000', '--json'])).stdout).maxAgeSeconds, 9000, 'a plain number is seconds');
    assert.equal(JSON.parse((await admin(['status', server.root, HOST, '--max-age', '90m', '--json'])).stdout).maxAgeSeconds, 5400, '90m is minutes');
  });
});
