// The off-site round trip through a NON-ROOT fake-super receiver, as the default set-up runs it:
// the awkward tree backed up over ssh, copied by plugin-restic running as the backup user into a
// repository that user owns, then `ssh-r-sync-admin restore --from-offsite` as root: the client's
// tree comes back identical (owners, modes, devices, links, ACLs, xattrs), from the xattrs alone.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chown, mkdir, readdir, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { repoRoot, runNode, tempDir } from './helpers/cli.js';
import { buildTree, compareTrees } from './helpers/tree.js';
import { startNonRootServer, startRootLogin, type NonRootServer, type RootLogin } from './helpers/nonroot-server.js';

const HOST = 'nr-restic';
const adminBin = join(repoRoot, 'packages/cli/bin/ssh-r-sync-admin.js');

let tmp: Awaited<ReturnType<typeof tempDir>>;
let server: NonRootServer;
let login: RootLogin | undefined;
before(async () => (tmp = await tempDir('srs-restic-nr-')));
after(async () => {
  await login?.stop();
  await server?.stop();
  await tmp?.cleanup();
});

describe('off-site through a non-root fake-super receiver', () => {
  test('restore --from-offsite brings the client\'s tree back identical, owners and ACLs from the xattrs', async () => {
    const src = join(tmp.dir, 'src');
    await mkdir(src);
    const info = await buildTree(src);
    assert.deepEqual(info.missing, []);
    server = await startNonRootServer({ recvArgs: ['--name', HOST] });
    const { home, uid, gid } = server.user;
    // The receiver's config, password file and repository belong to the backup user.
    const passwordFile = join(home, 'restic.pass');
    await writeFile(passwordFile, 'nonroot-secret\n', { mode: 0o600 });
    const repository = join(home, 'repo');
    const config = join(home, 'ssh-r-sync.config.json');
    await writeFile(config, JSON.stringify({ plugins: ['@ssh-r-sync/plugin-link-dest', ['@ssh-r-sync/plugin-restic', { repositories: [{ name: 'offsite', repository, passwordFile }] }]] }));
    for (const file of [passwordFile, config]) await chown(file, uid, gid);
    execFileSync('restic', ['-r', repository, '--password-file', passwordFile, 'init'], { stdio: 'pipe', timeout: 120_000 });
    execFileSync('chown', ['-R', `${uid}:${gid}`, repository]);
    await server.setRecvArgs(['--name', HOST, '--config', config]);

    const run = await server.backup(src, ['-n', HOST], { timeoutMs: 180_000 });
    assert.equal(run.code, 0, run.stderr);
    // The copy is made after the session: wait for the receiver's record of it.
    const offsiteState = join(server.root, '.ssh-r-sync', 'offsite', `${HOST}.json`);
    let state: { repositories?: { offsite?: { newest?: unknown; lastFailure?: unknown } } } = {};
    for (let i = 0; i < 600 && !state.repositories?.offsite?.newest && !state.repositories?.offsite?.lastFailure; i++) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      try {
        state = JSON.parse(execFileSync('cat', [offsiteState], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] })) as typeof state;
      } catch {
        state = {};
      }
    }
    assert.ok(state.repositories?.offsite?.newest, `copied: ${JSON.stringify(state)}`);

    const dest = join(tmp.dir, 'dest');
    const r = await runNode(adminBin, ['restore', '--from-offsite', 'offsite', '--config', config, server.root, HOST, dest], { timeoutMs: 180_000 });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /\(stored fake-super\)/);
    assert.deepEqual(await compareTrees(src, dest, { xattrs: true, top: false }), []);

    // The same targets as a local restore: pushed over ssh with --to, and one path of it.
    login = await startRootLogin();
    const pushed = join(tmp.dir, 'pushed');
    const to = await runNode(adminBin, ['restore', '--from-offsite', 'offsite', '--config', config, '--to', login.to(pushed), ...login.restoreArgs(), server.root, HOST], { timeoutMs: 180_000 });
    assert.equal(to.code, 0, to.stderr);
    assert.deepEqual(await compareTrees(src, pushed, { xattrs: true, top: false }), []);
    const one = join(tmp.dir, 'one');
    const path = await runNode(adminBin, ['restore', '--from-offsite', 'offsite', '--config', config, '--path', 'dir', server.root, HOST, one], { timeoutMs: 180_000 });
    assert.equal(path.code, 0, path.stderr);
    assert.deepEqual(await compareTrees(join(src, 'dir'), join(one, 'dir'), { xattrs: true, top: false }), []);
    assert.deepEqual(await readdir(one), ['dir']);
    // Root staged outside the account's root (which could redirect root's writes there), in the
    // temporary folder, or in --stage DIR; nothing is left of either.
    assert.ok(!existsSync(join(server.root, '.ssh-r-sync', 'offsite-restore')), 'nothing of root\'s under the account\'s root');
    const stage = join(tmp.dir, 'stage');
    await mkdir(stage, { mode: 0o700 });
    const staged = await runNode(adminBin, ['restore', '--from-offsite', 'offsite', '--config', config, '--stage', stage, '--path', 'dir', server.root, HOST, join(tmp.dir, 'two')], { timeoutMs: 180_000 });
    assert.equal(staged.code, 0, staged.stderr);
    assert.deepEqual(await compareTrees(join(src, 'dir'), join(tmp.dir, 'two', 'dir'), { xattrs: true, top: false }), []);
    assert.deepEqual(await readdir(stage), []);
    assert.deepEqual((await readdir(tmpdir())).filter((name) => name.startsWith(`ssh-r-sync-offsite-${HOST}-`)), []);
    // A --stage in the account's root would hand root's writes back to the account: refused.
    const inside = join(server.root, 'stage');
    await mkdir(inside, { mode: 0o700 }); // root's own folder, but in the account's root
    const refused = await runNode(adminBin, ['restore', '--from-offsite', 'offsite', '--config', config, '--stage', inside, '--path', 'dir', server.root, HOST, join(tmp.dir, 'three')], { timeoutMs: 180_000 });
    assert.equal(refused.code, 2, refused.stdout + refused.stderr);
    assert.match(refused.stderr, /--stage \S+: \S+ is owned by uid \d+, so another account could redirect root's writes there/);
    assert.deepEqual(await readdir(inside), []);
    // So is a $TMPDIR (sudo may keep the caller's) in a folder the account owns.
    const theirs = join(home, 'tmp');
    await mkdir(theirs, { mode: 0o700 });
    await chown(theirs, uid, gid);
    const viaTmp = await runNode(adminBin, ['restore', '--from-offsite', 'offsite', '--config', config, '--path', 'dir', server.root, HOST, join(tmp.dir, 'four')], { timeoutMs: 180_000, env: { TMPDIR: theirs } });
    assert.equal(viaTmp.code, 2, viaTmp.stdout + viaTmp.stderr);
    assert.match(viaTmp.stderr, /the temporary folder \S+ \(\$TMPDIR\): \S+ is owned by uid \d+/);
    assert.deepEqual(await readdir(theirs), []);
  });
});
