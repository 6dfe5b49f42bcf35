// Pull mode end to end (seed 004): `ssh-r-sync-recv --pull` dials out with plain ssh to a throwaway
// sshd (the "client") whose authorized_keys locks the receiver's key down with
// `restrict,command="/usr/bin/rrsync -ro SRC"`; real ssh, real rsync, real rrsync.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, lstatSync, readFileSync, readdirSync, readlinkSync, realpathSync, statSync } from 'node:fs';
import { chmod, lutimes, mkdir, readFile, symlink, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { makeKey, startSshd, type Sshd } from './helpers/sshd.js';
import { repoRoot, runRecv, tempDir, writeScript, type RunResult } from './helpers/cli.js';

const NAME = 'host1';
const RRSYNC = '/usr/bin/rrsync';
const LINK_DEST_DIST = join(repoRoot, 'packages/plugin-link-dest/dist/index.js');
const MTIME = new Date('2021-03-04T05:06:07Z');

function json(result: RunResult): Record<string, unknown> {
  const line = result.stdout.trim().split('\n').at(-1) ?? '';
  try {
    return JSON.parse(line) as Record<string, unknown>;
  } catch {
    assert.fail(`no JSON result on stdout (exit ${result.code}):\nstdout: ${result.stdout}\nstderr: ${result.stderr}`);
  }
}

function assertSuccess(result: RunResult, what = 'pull'): void {
  assert.equal(result.code, 0, `${what} failed (exit ${result.code}):\n${result.stderr}${result.stdout}`);
}

// A small tree: files with distinct modes and an old mtime, a sub-directory, a symlink.
async function buildSource(src: string): Promise<void> {
  await mkdir(join(src, 'sub'), { recursive: true });
  await writeFile(join(src, 'a.txt'), 'alpha\n');
  await writeFile(join(src, 'sub', 'b.bin'), Buffer.alloc(70_000, 7));
  await writeFile(join(src, 'secret'), 'only me\n');
  await chmod(join(src, 'a.txt'), 0o640);
  await chmod(join(src, 'sub', 'b.bin'), 0o755);
  await chmod(join(src, 'secret'), 0o600);
  await symlink('sub/b.bin', join(src, 'link'));
  for (const file of ['a.txt', 'sub/b.bin', 'secret']) await utimes(join(src, file), MTIME, MTIME);
  await lutimes(join(src, 'link'), MTIME, MTIME);
}

function assertTree(src: string, dest: string): void {
  for (const file of ['a.txt', 'sub/b.bin', 'secret']) {
    const [s, d] = [statSync(join(src, file)), statSync(join(dest, file))];
    assert.ok(d.isFile(), `${file} arrived`);
    assert.deepEqual(readFileSync(join(dest, file)), readFileSync(join(src, file)), `${file}: content`);
    assert.equal((d.mode & 0o7777).toString(8), (s.mode & 0o7777).toString(8), `${file}: mode`);
    assert.equal(d.mtime.getTime(), MTIME.getTime(), `${file}: mtime`);
  }
  const link = lstatSync(join(dest, 'link'));
  assert.ok(link.isSymbolicLink(), 'link is a symlink');
  assert.equal(readlinkSync(join(dest, 'link')), 'sub/b.bin');
  assert.equal(link.mtime.getTime(), MTIME.getTime(), 'link: mtime');
}

describe('ssh-r-sync-recv --pull through rrsync -ro', { concurrency: 1 }, () => {
  let tmp: { dir: string; cleanup: () => Promise<void> };
  let sshd: Sshd;
  let src: string;
  let key: string;
  let otherKey: string;

  // --pull options that reach the sshd as its user with `which` key.
  const pullArgs = (which = key): string[] => {
    const raw = sshd.sshOptions(which);
    const options: string[] = [];
    for (let i = 0; i < raw.length; i += 1) {
      const value = raw[i + 1];
      if (raw[i] === '-o' && value && /^(UserKnownHostsFile|GlobalKnownHostsFile|StrictHostKeyChecking|KexAlgorithms|IdentitiesOnly)=/.test(value)) {
        options.push('-o', value);
      }
    }
    // The client command's short ssh options (-p, -k, -o); the long forms are used below.
    return ['--pull', `${sshd.user}@127.0.0.1`, '-p', String(sshd.port), '-k', which, ...options, '--name', NAME];
  };
  const freshRoot = async (label: string): Promise<string> => {
    const root = join(tmp.dir, `root-${label}`);
    await mkdir(root, { mode: 0o700 });
    return realpathSync(root);
  };

  before(async () => {
    assert.ok(existsSync(RRSYNC), `${RRSYNC} is missing (apt-get install rsync)`);
    tmp = await tempDir('srs-pull-');
    src = join(tmp.dir, 'src');
    await buildSource(src);
    key = join(tmp.dir, 'recv_key');
    otherKey = join(tmp.dir, 'other_key');
    const publicKey = await makeKey(key, 'receiver');
    await makeKey(otherKey, 'stranger');
    sshd = await startSshd();
    await sshd.setAuthorizedKeys([{ publicKey, options: `restrict,command="${RRSYNC} -ro ${src}"` }]);
  });
  after(async () => {
    await sshd?.stop();
    await tmp?.cleanup();
  });

  test('the tree arrives in ROOT/host1; a second run transfers nothing; hooks get the SPEC argv', async () => {
    const root = await freshRoot('mirror');
    const log = join(tmp.dir, 'hooks.log');
    const hook = await writeScript(tmp.dir, 'log-hook', `printf '%s' "$SSH_R_SYNC_POINT" >> ${log}\nfor a in "$@"; do printf ' %s' "$a" >> ${log}; done\necho >> ${log}\n`);
    const hooks = ['connect', 'handshake', 'done'].flatMap((point) => ['--hook', `${point}:${hook}`]);
    const first = await runRecv([...pullArgs(), ...hooks, '--json', root]);
    assertSuccess(first);
    const out = json(first);
    assert.equal(out.status, 'success');
    assert.equal(out.name, NAME);
    assert.equal(out.rsyncExitCode, 0);
    assert.ok(typeof out.files === 'number' && out.files >= 3, `files: ${out.files}`);
    assertTree(src, join(root, NAME));
    const dir = join(root, NAME);
    assert.deepEqual((await readFile(log, 'utf8')).trim().split('\n'), [`connect ${root}`, `handshake ${root} ${dir} ${NAME}`, `done ${root} ${dir} ${NAME} success`]);

    const second = await runRecv([...pullArgs(), '--json', root]);
    assertSuccess(second, 'second pull');
    assert.equal(json(second).files, 0, 'nothing changed: nothing transferred');
    assertTree(src, dir);
  });

  test('plugin-link-dest works in pull mode: two snapshots share inodes', async () => {
    const root = await freshRoot('snapshots');
    const host = join(root, NAME);
    const first = await runRecv([...pullArgs(), '--plugin', LINK_DEST_DIST, '--json', root]);
    assertSuccess(first, 'first snapshot');
    // No pause needed: a snapshot id sorts after the newest one even within the same second.
    const snapshot1 = readlinkSync(join(host, 'latest'));
    const second = await runRecv([...pullArgs(), '--plugin', LINK_DEST_DIST, '--json', root]);
    assertSuccess(second, 'second snapshot');
    const snapshot2 = readlinkSync(join(host, 'latest'));
    assert.notEqual(snapshot1, snapshot2, 'a new snapshot');
    assert.equal(json(second).snapshot, snapshot2);
    assertTree(src, join(host, snapshot1));
    assertTree(src, join(host, snapshot2));
    for (const file of ['a.txt', 'sub/b.bin', 'secret']) {
      assert.equal(statSync(join(host, snapshot1, file)).ino, statSync(join(host, snapshot2, file)).ino, `${file} is hard-linked`);
    }
  });

  test('rrsync -ro makes writing impossible: --remove-source-files fails the run, the source stays', async () => {
    const root = await freshRoot('write');
    const pre = await writeScript(tmp.dir, 'remove-source', "printf '%s\\0' --remove-source-files\n");
    const result = await runRecv([...pullArgs(), '--hook', `rsync.pre:${pre}`, '--json', root]);
    assert.equal(result.code, 1, `exit 1 expected:\n${result.stderr}`);
    assert.equal(json(result).status, 'failure');
    assert.match(result.stderr, /^ssh-r-sync-recv: error: rsync exited with code \d+: \S*rrsync error: option --remove-source-files has been disabled/m, 'rrsync refused it');
    assert.deepEqual(readdirSync(src).sort(), ['a.txt', 'link', 'secret', 'sub']);
  });

  test('a wrong key fails with exit 1 and a one-line error', async () => {
    const root = await freshRoot('wrong-key');
    const result = await runRecv([...pullArgs(otherKey), root]);
    assert.equal(result.code, 1, `exit 1 expected:\n${result.stderr}`);
    const errors = result.stderr.split('\n').filter((line) => line.startsWith('ssh-r-sync-recv: error:'));
    assert.equal(errors.length, 1, result.stderr);
    // rsync ends with ssh's 255, or with 12 when it notices the closed stream first: the cause is ssh's words.
    assert.match(errors[0]!, /rsync exited with code (255|12): .*Permission denied \(publickey\)/);
  });

  test('usage: --pull needs --name; --pull and --local exclude each other; ssh options need --pull', async () => {
    const root = await freshRoot('usage');
    const noName = await runRecv(['--pull', `${sshd.user}@127.0.0.1`, '--ssh-port', String(sshd.port), root]);
    assert.equal(noName.code, 2, noName.stderr);
    assert.match(noName.stderr, /--pull needs --name/);
    const both = await runRecv(['--pull', '127.0.0.1', '--local', src, '--name', NAME, root]);
    assert.equal(both.code, 2, both.stderr);
    assert.match(both.stderr, /mutually exclusive/);
    const dash = await runRecv(['--pull', '-oProxyCommand=x', '--name', NAME, root]);
    assert.equal(dash.code, 2, dash.stderr);
    const stray = await runRecv(['--ssh-key', key, '--local', src, '--name', NAME, root]);
    assert.equal(stray.code, 2, stray.stderr);
  });

  test('one pull per host at a time: a second concurrent pull for host1 is refused', async () => {
    const root = await freshRoot('lock');
    const marker = join(tmp.dir, 'first-is-running');
    const release = join(tmp.dir, 'first-may-end');
    // The first pull holds the lock until the second one was refused (at most 30 s), not a fixed time.
    const slow = await writeScript(tmp.dir, 'slow-handshake', `touch ${marker}\ni=0\nwhile [ ! -e ${release} ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done\n`);
    const first = runRecv([...pullArgs(), '--hook', `handshake:${slow}`, root]);
    const deadline = Date.now() + 20_000;
    while (!existsSync(marker)) {
      assert.ok(Date.now() < deadline, 'the first pull never reached its handshake hook');
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    const second = await runRecv([...pullArgs(), root]);
    await writeFile(release, '');
    assert.notEqual(second.code, 0, 'the second pull must not run');
    assert.match(second.stderr, /another backup of host1 is already running/);
    assertSuccess(await first, 'first pull');
    assertTree(src, join(root, NAME));
  });
});
