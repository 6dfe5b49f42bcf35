// Issue 10 item 5, the journal's part: each run leaves one summary line in the server's system
// log through util-linux logger, tagged ssh-r-sync-recv, user.err for a failure and user.info
// otherwise, with the host, outcome, exit code, snapshot, config file, rsync's first error lines
// and the failed hooks, no secret; in reverse mode through sshd too, where the receiver's stderr
// is the client's; refused runs (no host name, a missing BACKUP_ROOT at start) too. The receiver
// config's `syslog` names a unix stream socket served here (the test's /dev/log); false turns it
// off; a socket nobody serves changes nothing for the backup.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { join } from 'node:path';
import { startBackupServer, type BackupServer } from './helpers/backup-server.js';
import { runRecv, tempDir, writeScript } from './helpers/cli.js';
import { waitUntil } from './helpers/fake-peer.js';
import { LINK_DEST_DIST } from './helpers/nonroot-server.js';

const NAME = 'h';
// <PRI> of user.err and user.info (facility 1 × 8 + severity 3 or 6).
const ERR = '<11>';
const INFO = '<14>';

// A unix stream socket that keeps every line it is sent, as a syslog daemon would.
async function syslogSocket(path: string) {
  const lines: string[] = [];
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    let rest = '';
    socket.on('data', (chunk) => {
      const parts = (rest + chunk.toString('utf8')).split('\n');
      rest = parts.pop()!;
      lines.push(...parts.filter(Boolean));
    });
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(path, resolve));
  return {
    lines,
    // The line number `index` (0-based), once it has come.
    async line(index: number): Promise<string> {
      assert.ok(await waitUntil(() => lines.length > index, 30_000), `syslog line ${index} arrived (have ${lines.length}: ${lines.join(' | ')})`);
      return lines[index]!;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}

describe('the run summary in the system log', { timeout: 180_000, concurrency: 1 }, () => {
  let tmp: { dir: string; cleanup: () => Promise<void> };
  let server: BackupServer;
  let src: string;
  let flag: string;
  let secrets: string;
  let doneHook: string;
  let config: string;
  let socketPath: string;
  let syslog: Awaited<ReturnType<typeof syslogSocket>>;
  const setConfig = (value: unknown) => writeFile(config, JSON.stringify({ syslog: value }));

  before(async () => {
    tmp = await tempDir('srs-syslog-');
    src = join(tmp.dir, 'src');
    await mkdir(src);
    await writeFile(join(src, 'a.txt'), 'alpha\n');
    flag = join(tmp.dir, 'fail-next');
    secrets = join(tmp.dir, 'secrets-seen');
    // As in run-log.test.ts: an rsync that keeps each run's daemon password and, while `flag`
    // exists, prints it (a leak the summary must blank) and fails for real.
    const wrapper = await writeScript(
      tmp.dir,
      'rsync-wrapper',
      `for a in "$@"; do case "$a" in --password-file=*) cat "\${a#--password-file=}" >> '${secrets}';; esac; done
[ -e '${flag}' ] && echo "rsync: the password is $(tail -n 1 '${secrets}')" >&2 && exec rsync --no-such-option "$@"
exec rsync "$@"
`,
    );
    doneHook = await writeScript(tmp.dir, 'done-check', `[ -e '${flag}' ] && exit 1\nexit 0\n`);
    socketPath = join(tmp.dir, 'syslog.sock');
    syslog = await syslogSocket(socketPath);
    config = join(tmp.dir, 'recv-config.json');
    await setConfig(socketPath);
    server = await startBackupServer({ recvArgs: ['--name', NAME, '--config', config, '--rsync', wrapper, '-x', `done:${doneHook}`] });
  });
  after(async () => {
    await server?.stop();
    await syslog?.close();
    await tmp?.cleanup();
  });

  async function backup(fail: boolean) {
    if (fail) await writeFile(flag, '');
    else await rm(flag, { force: true });
    return server.backup(src, ['-n', NAME]);
  }

  test('reverse mode through sshd: a failure is one user.err line with rsync\'s lines and the failed hook, no secret; a success one user.info line', async () => {
    const start = syslog.lines.length;
    const failed = await backup(true);
    assert.equal(failed.code, 1, failed.stderr);
    const line = await syslog.line(start);
    assert.ok(line.startsWith(ERR), line);
    assert.match(line, /^<11>\w{3} [ \d]\d \d\d:\d\d:\d\d ssh-r-sync-recv(?:\[\d+\])?: h: backup failed \(exit 1\): done hook "[^"]+" failed: exited with code 1; /);
    assert.match(line, /rsync exit 1: "rsync: the password is \[secret\]" "rsync: --no-such-option: unknown option"/);
    assert.match(line, new RegExp(`failed hooks: done ${doneHook} \\(failed\\)`));
    assert.match(line, new RegExp(`; reverse, [\\d.]+ s; config ${config}$`));
    const seen = readFileSync(secrets, 'utf8').split('\n').filter(Boolean);
    assert.ok(seen.length >= 1, 'the wrapper saw the password');
    for (const secret of seen) assert.ok(!syslog.lines.join('\n').includes(secret), 'no daemon password in the system log');

    const ok = await backup(false);
    assert.equal(ok.code, 0, ok.stderr);
    const success = await syslog.line(start + 1);
    assert.match(success, /^<14>.* ssh-r-sync-recv(?:\[\d+\])?: h: backup done \(exit 0\); rsync exit 0, \d+ files, \d+ bytes; reverse, [\d.]+ s; config /);
    assert.doesNotMatch(success, /failed hooks/);
    assert.equal(syslog.lines.length, start + 2, 'one line per run');
  });

  test('"syslog": false sends nothing; a socket nobody serves changes nothing for the backup', async () => {
    const start = syslog.lines.length;
    await setConfig(false);
    assert.equal((await backup(false)).code, 0);
    await setConfig(join(tmp.dir, 'nobody-here.sock'));
    const unserved = await backup(false);
    assert.equal(unserved.code, 0, unserved.stderr);
    assert.doesNotMatch(unserved.stderr, /logger|syslog/);
    // The next run that logs is the first line since: the two before sent none.
    await setConfig(socketPath);
    assert.equal((await backup(false)).code, 0);
    assert.match(await syslog.line(start), /h: backup done \(exit 0\)/);
    assert.equal(syslog.lines.length, start + 1);
  });

  test('refused runs are logged too: a key without a host name (exit 2), a missing BACKUP_ROOT at start', async () => {
    const start = syslog.lines.length;
    await server.setRecvArgs(['--config', config]);
    try {
      const refused = await backup(false);
      assert.equal(refused.code, 2, refused.stderr);
    } finally {
      await server.setRecvArgs(['--name', NAME, '--config', config, '--rsync', join(tmp.dir, 'rsync-wrapper'), '-x', `done:${doneHook}`]);
    }
    assert.match(await syslog.line(start), /^<11>.*: \(no host: refused before its name was known\): backup failed \(exit 2\): cannot tell which host this is: no --name in the forced command and no names map in the config; reverse, /);
    const missing = join(tmp.dir, 'unmounted-disk');
    const run = await runRecv(['--local', src, '--name', 'gone', '--config', config, missing]);
    assert.equal(run.code, 2, run.stderr);
    assert.match(await syslog.line(start + 1), new RegExp(`^<11>.*: gone: refused to start \\(exit 2\\): BACKUP_ROOT ${missing} does not exist: create it .*; config ${config}$`));
  });

  test('a --local run logs the same summary (a pull run takes the same path): the snapshot, and the config file', async () => {
    const start = syslog.lines.length;
    const root = join(tmp.dir, 'local-root');
    await mkdir(root, { mode: 0o700 });
    const local = join(tmp.dir, 'local-config.json');
    await writeFile(local, JSON.stringify({ syslog: socketPath, plugins: [LINK_DEST_DIST] }));
    const run = await runRecv(['--local', src, '--name', 'loc', '--config', local, '--json', root]);
    assert.equal(run.code, 0, run.stderr);
    const snapshot = (JSON.parse(run.stdout) as { snapshot: string }).snapshot;
    const line = await syslog.line(start);
    assert.ok(line.startsWith(INFO), line);
    assert.match(line, new RegExp(`ssh-r-sync-recv(?:\\[\\d+\\])?: loc: backup done \\(exit 0\\); snapshot ${snapshot}; rsync exit 0, .*; local, [\\d.]+ s; config ${local}$`));
  });

  test('a config whose syslog is neither a boolean nor an absolute path is refused (exit 2, one line)', async () => {
    const bad = join(tmp.dir, 'bad-config.json');
    await writeFile(bad, JSON.stringify({ syslog: 'dev/log' }));
    const run = await runRecv(['--check-config', '--config', bad]);
    assert.equal(run.code, 2, run.stderr);
    assert.match(run.stderr, /invalid config .*bad-config\.json: syslog: /);
  });
});
