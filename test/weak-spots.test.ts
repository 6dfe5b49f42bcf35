// Weak spots of the original (research/original-ssh-r-sync.md §8) not covered elsewhere, each
// with a test that would fail on the original behaviour.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { startBackupServer, type BackupServer } from './helpers/backup-server.js';
import { runRecv, tempDir, writeScript } from './helpers/cli.js';

let dir: string;
let cleanup: () => Promise<void>;
let src: string;

before(async () => {
  ({ dir, cleanup } = await tempDir('srs-weak-'));
  src = join(dir, 'src');
  await mkdir(src);
  await writeFile(join(src, 'a.txt'), 'alpha\n');
});
after(() => cleanup());

describe('original weak spot 6: done hooks raced the teardown', () => {
  let server: BackupServer;
  const marker = () => join(dir, 'done-finished');
  before(async () => {
    const slowDone = await writeScript(dir, 'slow-done.sh', `sleep 1.5\necho "$4" > ${marker()}`);
    const failingDone = await writeScript(dir, 'failing-done.sh', 'echo "cannot rotate" >&2; exit 6');
    server = await startBackupServer({
      recvArgs: ['--name', 'host1', '-x', `done:${slowDone}`],
      extraKeys: { failing: ['--name', 'host2', '-x', `done:${failingDone}`] },
    });
  });
  after(() => server.stop());

  test('the client waits for a slow done hook: it has finished when the client exits', async () => {
    const result = await server.backup(src, ['-n', 'host1']);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(await readFile(marker(), 'utf8'), 'success\n');
  });

  test("a failing done hook reaches the client: exit 1, with the hook's failure named", async () => {
    const result = await server.backup(src, ['-n', 'host2', '--json'], { key: server.keys.failing });
    assert.equal(result.code, 1, result.stderr);
    assert.match(result.stderr, /error: the backup is committed, but after it: done hook ".*failing-done\.sh" failed: exited with code 6/);
    const json = JSON.parse(result.stdout);
    assert.equal(json.status, 'failure');
    assert.equal(json.rsyncExitCode, 0, 'the pull itself worked');
    assert.ok(existsSync(join(server.root, 'host2', 'a.txt')));
  });
});

describe("original weak spot 11: rsync ran with a wiped environment", () => {
  test('rsync keeps the receiver\'s environment (PATH, HOME, LANG) plus RSYNC_COMPRESS_LIST', async () => {
    const envFile = join(dir, 'rsync.env');
    const wrapper = await writeScript(dir, 'rsync-wrapper', `env > ${envFile}\nexec rsync "$@"`);
    await mkdir(join(dir, 'root'), { recursive: true, mode: 0o700 });
    const result = await runRecv(['--local', src, '--name', 'h', '-r', wrapper, join(dir, 'root')], {
      env: { LANG: 'C.UTF-8', HOME: '/root', MY_SETTING: 'kept' },
    });
    assert.equal(result.code, 0, result.stderr);
    const env = await readFile(envFile, 'utf8');
    assert.match(env, /^PATH=.+$/m);
    assert.match(env, /^HOME=\/root$/m);
    assert.match(env, /^LANG=C\.UTF-8$/m);
    assert.match(env, /^MY_SETTING=kept$/m);
    assert.match(env, /^RSYNC_COMPRESS_LIST=zstd none$/m);
  });
});

describe('original weak spot 1, by key: names from a fingerprint map (ExposeAuthInfo)', () => {
  let server: BackupServer;
  before(async () => {
    const config = join(dir, 'names.json');
    server = await startBackupServer({ recvArgs: ['--config', config], sshdConfig: ['ExposeAuthInfo yes'] });
    const print = execFileSync('ssh-keygen', ['-lf', `${server.key}.pub`, '-E', 'sha256'], { encoding: 'utf8' }).split(' ')[1]!;
    await writeFile(config, JSON.stringify({ names: { [print]: 'mapped-host' } }));
  });
  after(() => server.stop());

  test("the key's fingerprint names the host; the client's claim must match it", async () => {
    const ok = await server.backup(src, ['-n', 'mapped-host']);
    assert.equal(ok.code, 0, ok.stderr);
    assert.ok(existsSync(join(server.root, 'mapped-host', 'a.txt')));
    const other = await server.backup(src, ['-n', 'someone-else']);
    assert.equal(other.code, 1);
    assert.match(other.stderr, /client claims to be "someone-else", but this key belongs to "mapped-host"/);
    assert.ok(!existsSync(join(server.root, 'someone-else')));
  });
});
