// Client-side hooks through real runs: the same stage names around the client's own work.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { startBackupServer, type BackupServer } from './helpers/backup-server.js';
import { tempDir, writeScript } from './helpers/cli.js';

let server: BackupServer;
let dir: string;
let cleanup: () => Promise<void>;
let src: string;

before(async () => {
  server = await startBackupServer();
  ({ dir, cleanup } = await tempDir('srs-client-hooks-'));
  src = join(dir, 'src');
  await mkdir(src);
  await writeFile(join(src, 'a.txt'), 'alpha\n');
});
after(async () => {
  await server.stop();
  await cleanup();
});

describe('client-side hooks', () => {
  test('fire in order around the client\'s work, with PATH and the accepted name', async () => {
    const log = join(dir, 'order.log');
    const args: string[] = [];
    for (const point of ['connect', 'handshake', 'rsync.pre', 'rsync.post', 'done']) {
      const script = await writeScript(dir, `c-${point}.sh`, `echo "${point} $* [$SSH_R_SYNC_ROLE] $(ls ${server.root}/host1 2>/dev/null | tr '\\n' ' ')" >> ${log}`);
      args.push('--hook', `${point}:${script}`);
    }
    const result = await server.backup(src, ['-n', 'host1', ...args]);
    assert.equal(result.code, 0, result.stderr);
    const lines = (await readFile(log, 'utf8')).trimEnd().split('\n');
    assert.deepEqual(lines, [
      `connect ${src} [client] `,
      `handshake ${src} ${src} host1 [client] `,
      `rsync.pre ${src} ${src} host1 1 [client] `,
      `rsync.post ${src} ${src} host1 0 [client] a.txt `,
      `done ${src} ${src} host1 success [client] a.txt`,
    ]);
  });

  test('a slow client rsync.post hook: the receiver\'s goodbye, sent while it runs, is still heard (exit 0)', async () => {
    // ssh exits as soon as the receiver does; what it wrote before must not be dropped while the
    // client is busy with its own rsync.post hook (node discards unread output of a child that
    // exited).
    const slow = await writeScript(dir, 'c-slow-post.sh', 'sleep 2');
    const result = await server.backup(src, ['-n', 'host1', '--hook', `rsync.post:${slow}`]);
    assert.equal(result.code, 0, result.stderr);
    assert.doesNotMatch(result.stderr, /goodbye/);
  });

  test('a client rsync.pre that exits 75 skips the run on both sides: exit 75, nothing pulled', async () => {
    const skip = await writeScript(dir, 'skip.sh', 'exit 75');
    const status = join(dir, 'status');
    const done = await writeScript(dir, 'c-done2.sh', `echo "$4" > ${status}`);
    await writeFile(join(src, 'new-file'), 'should not arrive\n');
    const result = await server.backup(src, ['-n', 'host1', '--hook', `rsync.pre:${skip}`, '--hook', `done:${done}`]);
    assert.equal(result.code, 75, result.stderr);
    assert.match(result.stderr, /skipped: the client said not now: rsync\.pre hook ".*skip\.sh" exited with 75/);
    assert.ok(!existsSync(join(server.root, 'host1', 'new-file')));
    assert.equal(await readFile(status, 'utf8'), 'skipped\n');
  });

  test('a failing client hook fails the run with the hook named; the receiver pulls nothing', async () => {
    const bad = await writeScript(dir, 'bad.sh', 'exit 4');
    await writeFile(join(src, 'another-file'), 'nope\n');
    const result = await server.backup(src, ['-n', 'host1', '--hook', `handshake:${bad}`]);
    assert.equal(result.code, 1);
    assert.match(result.stderr, /error: handshake hook ".*bad\.sh" failed: exited with code 4/);
    assert.ok(!existsSync(join(server.root, 'host1', 'another-file')));
  });

  test('an unknown client hook point is a usage error before anything connects', async () => {
    const result = await server.backup(src, ['-n', 'host1', '--hook', 'rsync.prr:/bin/true']);
    assert.equal(result.code, 2);
    assert.match(result.stderr, /unknown hook point "rsync\.prr"/);
  });
});
