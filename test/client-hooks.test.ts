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

describe('client-side plugins (the receiver\'s stage driver on the client)', () => {
  test('a plugin from the client\'s own config taps every point in order, with the same contracts; --plugin adds one', async () => {
    const config = join(dir, 'client-config');
    await mkdir(config, { recursive: true });
    const log = join(dir, 'plugin-order.log');
    const plugin = join(config, 'note.mjs');
    await writeFile(
      plugin,
      `import { appendFileSync } from 'node:fs';
      const note = (line) => appendFileSync(${JSON.stringify(log)}, line + '\\n');
      export default (options) => ({ name: 'note-' + options.tag, apply(hooks) {
        hooks.connect.tapPromise('note', async (ctx) => note(options.tag + ' connect ' + ctx.role));
        hooks.handshake.tapPromise('note', async (ctx) => note(options.tag + ' handshake ' + ctx.name));
        hooks.rsyncPre.tapPromise('note', async (command, ctx) => note(options.tag + ' rsync.pre ' + command.source));
        hooks.rsyncPost.tapPromise('note', async (result) => { note(options.tag + ' rsync.post ' + result.exitCode); return result; });
        hooks.done.tapPromise('note', async (outcome) => note(options.tag + ' done ' + outcome.status));
      } });\n`,
    );
    await writeFile(join(config, 'client.json'), JSON.stringify({ plugins: [['./note.mjs', { tag: 'cfg' }]] }));
    const extra = join(dir, 'extra.mjs');
    await writeFile(extra, `export { default } from ${JSON.stringify(plugin)};\n`);
    const env = { SSH_R_SYNC_CONFIG_DIR: config };
    const result = await server.backup(src, ['-n', 'host1', '--debug'], { env });
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stderr, new RegExp(`config: ${join(config, 'client.json')}`));
    assert.deepEqual((await readFile(log, 'utf8')).trimEnd().split('\n'), [
      'cfg connect client', 'cfg handshake host1', `cfg rsync.pre ${src}`, 'cfg rsync.post 0', 'cfg done success',
    ]);

    // A plugin that skips at connect skips the run (exit 75), as on the receiver.
    const skipper = join(dir, 'skipper.mjs');
    await writeFile(skipper, `export default { name: 'skipper', apply(hooks) { hooks.connect.tapPromise('skipper', async () => ({ skip: true, reason: 'on battery' })); } };\n`);
    const skipped = await server.backup(src, ['-n', 'host1', '--plugin', skipper], { env });
    assert.equal(skipped.code, 75, skipped.stderr);
    assert.match(skipped.stderr, /on battery/);
  });

  test('what a client plugin cannot do is refused with what to do: a store, rsync options, a missing plugin (exit 2)', async () => {
    const store = join(dir, 'store.mjs');
    await writeFile(store, `export default { name: 'my-store', apply() {}, store: { kind: 'x', module: '/x', open() {} } };\n`);
    const refused = await server.backup(src, ['-n', 'host1', '--plugin', store]);
    assert.equal(refused.code, 2, refused.stderr);
    assert.match(refused.stderr, /plugin "my-store" stores snapshots, which only the receiver keeps: load it in the server's config/);
    const missing = await server.backup(src, ['-n', 'host1', '--plugin', 'srs-no-such-plugin']);
    assert.equal(missing.code, 2, missing.stderr);
    assert.match(missing.stderr, /cannot load plugin "srs-no-such-plugin".*npm install srs-no-such-plugin/);
    const options = join(dir, 'options.mjs');
    await writeFile(options, `export default { name: 'adds-options', apply(hooks) { hooks.rsyncPre.tapPromise('adds-options', async (command) => { command.args.push('--bwlimit=1'); }); } };\n`);
    const pushed = await server.backup(src, ['-n', 'host1', '--plugin', options]);
    assert.equal(pushed.code, 1, pushed.stderr);
    assert.match(pushed.stderr, /printed rsync options \(--bwlimit=1\), but the client's daemon options are fixed/);
  });
});

