// Issue 10 item 7: the set-up mistakes a new user makes get one line that says what to do, with
// the exit code of a configuration error (2) where the mistake is one. Each case runs the real
// commands against the throwaway sshd and checks the text the user reads; the ssh mistakes are
// checked for `ssh-r-sync restore` and `ssh-r-sync snapshots` too, which use the same key.
//
// Cases checked elsewhere, not repeated here:
// - rsync's own error lines reach the client of a reverse backup without --debug
//   (rsync-failures.test.ts, "a full BACKUP_ROOT on the server": rsync's "No space left on device (28)").
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { chmod, mkdir, symlink, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { join } from 'node:path';
import { forcedCommand, startBackupServer, type BackupServer } from './helpers/backup-server.js';
import { clientBin, recvBin, runNode, runRecv, tempDir, writeScript, type RunResult } from './helpers/cli.js';
import { line, session, spawnRecv, waitUntil } from './helpers/fake-peer.js';
import { LINK_DEST_DIST, startNonRootServer, type NonRootServer } from './helpers/nonroot-server.js';
import { makeKey } from './helpers/sshd.js';

const ROOT_ONLY = process.getuid?.() !== 0 ? 'needs root (a throwaway user)' : false;

// The only line on stderr, which must be an error of `prefix`.
function errorLine(result: RunResult, prefix = 'ssh-r-sync'): string {
  const lines = result.stderr.split('\n').filter((line) => line.trim() !== '');
  assert.equal(lines.length, 1, `expected one line on stderr, got:\n${result.stderr}`);
  assert.match(lines[0]!, new RegExp(`^${prefix}: error: `));
  return lines[0]!;
}

const escape = (text: string) => text.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');

describe('the client says what to do', { timeout: 180_000, concurrency: 1 }, () => {
  let server: BackupServer;
  let tmp: { dir: string; cleanup: () => Promise<void> };
  let src: string;
  let dest: string;
  let publicKey: string;
  // The server's options without its key: each case gives its own -k.
  let options: string[];
  const run = (args: string[], env?: NodeJS.ProcessEnv) => runNode(clientBin, [...options, ...args, '-n', 'host1', dest, src], { env });
  const withKey = (args: string[] = [], env?: NodeJS.ProcessEnv) => run(['-k', server.key, ...args], env);
  // `ssh-r-sync snapshots` and `ssh-r-sync restore` with the server's options and these arguments (-k …).
  let restores = 0;
  const subCommands = (args: string[]) => [
    { name: 'snapshots', run: () => runNode(clientBin, ['snapshots', ...options, ...args, dest]) },
    { name: 'restore', run: () => runNode(clientBin, ['restore', ...options, ...args, dest, join(tmp.dir, `restore-to-${(restores += 1)}`)]) },
  ];
  // Replaces the key's authorized_keys line: its options and forced command.
  const authorize = (keyOptions: string, command: string) =>
    server.sshd.setAuthorizedKeys([{ publicKey, options: `${keyOptions},command="${command.replace(/"/g, '\\"')}"` }]);

  before(async () => {
    tmp = await tempDir();
    src = join(tmp.dir, 'src');
    await mkdir(src);
    await writeFile(join(src, 'a.txt'), 'a');
    server = await startBackupServer({ recvArgs: ['--name', 'host1'] });
    dest = `${server.sshd.user}@127.0.0.1`;
    publicKey = readFileSync(`${server.key}.pub`, 'utf8');
    const all = server.clientArgs();
    options = [];
    for (let i = 2; i < all.length; i += 1) {
      if (all[i] === '-o' && all[i + 1]!.startsWith('IdentityFile=')) i += 1;
      else options.push(all[i]!);
    }
  });
  after(async () => {
    await server?.stop();
    await tmp?.cleanup();
  });

  test('a -k key file that does not exist: exit 2, which key the server wants', async () => {
    const missing = join(tmp.dir, 'no-such-key');
    const result = await run(['-k', missing]);
    assert.equal(result.code, 2, result.stderr);
    assert.match(errorLine(result), new RegExp(`-k ${escape(missing)}: no such file: give the private key whose \\.pub is in the server's authorized_keys`));
    // The same for the sub-commands that use the key.
    for (const sub of [['snapshots', dest], ['restore', dest, join(tmp.dir, 'restore-to')]]) {
      const other = await runNode(clientBin, [sub[0]!, ...options, '-k', missing, ...sub.slice(1)]);
      assert.equal(other.code, 2, `${sub[0]}: ${other.stderr}`);
      assert.match(errorLine(other), new RegExp(`-k ${escape(missing)}: no such file: give the private key`), sub[0]);
    }
  });

  test('a key the server refuses: exit 1, put its .pub in authorized_keys', async () => {
    const other = join(tmp.dir, 'other_key');
    await makeKey(other, 'other');
    const result = await run(['-k', other]);
    assert.equal(result.code, 1, result.stderr);
    const advice = new RegExp(`the server refused the key ${escape(other)}: put its \\.pub in the backup account's authorized_keys .*Permission denied \\(publickey\\)`);
    assert.match(errorLine(result), advice);
    // restore and snapshots use the same key: the same advice.
    for (const sub of subCommands(['-k', other])) {
      const said = await sub.run();
      assert.equal(said.code, 1, `${sub.name}: ${said.stderr}`);
      assert.match(errorLine(said), advice, sub.name);
    }
  });

  test('an unknown host key: exit 1, how to add it (ssh-keyscan, or one interactive ssh)', async () => {
    const empty = join(tmp.dir, 'empty_known_hosts');
    await writeFile(empty, '');
    const port = server.sshd.port;
    // ssh keeps the first value of an option: replace the pinned known_hosts in place.
    const pinned = options;
    options = pinned.map((option) => (option.startsWith('UserKnownHostsFile=') ? `UserKnownHostsFile=${empty}` : option));
    const results = [{ name: 'backup', run: () => run(['-k', server.key]) }, ...subCommands(['-k', server.key])];
    try {
      for (const each of results) {
        const result = await each.run();
        assert.equal(result.code, 1, `${each.name}: ${result.stderr}`);
        const line = errorLine(result);
        assert.match(line, new RegExp(`host key is not in known_hosts: add it with \`ssh-keyscan -p ${port} 127\\.0\\.0\\.1 >> ~/\\.ssh/known_hosts\``), each.name);
        assert.match(line, new RegExp(`connect once with \`ssh -p ${port} ${escape(dest)}\``), each.name);
      }
    } finally {
      options = pinned;
    }
  });

  test('a changed host key: exit 1, remove the old one with ssh-keygen -R (backup, snapshots and restore)', async () => {
    const port = server.sshd.port;
    const wrong = join(tmp.dir, 'wrong_known_hosts');
    const otherHostKey = join(tmp.dir, 'other_host_key');
    if (!existsSync(otherHostKey)) await makeKey(otherHostKey, 'other-host');
    const [type, body] = readFileSync(`${otherHostKey}.pub`, 'utf8').trim().split(/\s+/);
    await writeFile(wrong, `[127.0.0.1]:${port} ${type} ${body}\n`);
    const pinned = options;
    options = pinned.map((option) => (option.startsWith('UserKnownHostsFile=') ? `UserKnownHostsFile=${wrong}` : option));
    try {
      for (const each of [{ name: 'backup', run: () => run(['-k', server.key]) }, ...subCommands(['-k', server.key])]) {
        const result = await each.run();
        assert.equal(result.code, 1, `${each.name}: ${result.stderr}`);
        assert.match(errorLine(result), new RegExp(`the server's host key has changed: .*\`ssh-keygen -R '\\[127\\.0\\.0\\.1\\]:${port}'\``), each.name);
      }
    } finally {
      options = pinned;
    }
  });

  test('a forced command whose program is misspelt: exit 1, check the command= path in authorized_keys', async () => {
    await authorize('restrict,port-forwarding', `/usr/local/bin/ssh-r-sync-rcv --name host1 ${server.root}`);
    const advice = /the server could not run this key's forced command: check the command="…" path in the backup account's authorized_keys \(ssh: .*ssh-r-sync-rcv: No such file or directory\)/;
    const result = await withKey();
    assert.equal(result.code, 1, result.stderr);
    assert.match(errorLine(result), advice);
    for (const sub of subCommands(['-k', server.key])) {
      const said = await sub.run();
      assert.equal(said.code, 1, `${sub.name}: ${said.stderr}`);
      assert.match(errorLine(said), advice, sub.name);
    }
  });

  test('a forced command whose script path is misspelt (node cannot find it): the same advice', async () => {
    await authorize('restrict,port-forwarding', forcedCommand(['--name', 'host1'], server.root, `${recvBin}x`));
    const result = await withKey();
    assert.equal(result.code, 1, result.stderr);
    assert.match(errorLine(result), /could not run this key's forced command: check the command="…" path .*Cannot find module/);
    for (const sub of subCommands(['-k', server.key])) {
      const said = await sub.run();
      assert.equal(said.code, 1, `${sub.name}: ${said.stderr}`);
      assert.match(errorLine(said), /could not run this key's forced command: check the command="…" path .*Cannot find module/, sub.name);
    }
  });

  test('a forced command with a misspelt option: exit 2, the receiver\'s own words', async () => {
    await authorize('restrict,port-forwarding', forcedCommand(['--name', 'host1', '--mode', 'privilged'], server.root));
    const result = await withKey();
    assert.equal(result.code, 2, result.stderr);
    assert.match(errorLine(result), /ssh failed \(exit 2\): the server refused to start: option '-m, --mode <MODE>' argument 'privilged' is invalid/);
  });

  test('a tunnel port already taken on the server: "another backup of this host is running, or another key uses port P"', async () => {
    const blocker = net.createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    const port = (blocker.address() as net.AddressInfo).port;
    try {
      await authorize(`restrict,port-forwarding,permitlisten="127.0.0.1:${port}"`, forcedCommand(['--name', 'host1', '--tunnel-port', String(port)], server.root));
      const result = await withKey(['--tunnel-port', String(port)]);
      assert.equal(result.code, 1, result.stderr);
      const line = errorLine(result);
      assert.match(line, new RegExp(`another backup of this host is already running, or another key uses port ${port} on the server`));
      assert.doesNotMatch(line, /remote port forwarding failed/);
    } finally {
      blocker.close();
    }
  });

  test('a second concurrent run of a host with a fixed tunnel port: "already running", not a port-forwarding error', async () => {
    const held = join(tmp.dir, 'held');
    const release = join(tmp.dir, 'release');
    // Holds the first run in rsync.pre (its tunnel port forwarded) until the test releases it (at most 60 s).
    const hold = await writeScript(tmp.dir, 'hold.sh', `touch '${held}'\ni=0\nwhile [ ! -e '${release}' ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done\n`);
    const port = await freePort();
    await authorize(`restrict,port-forwarding,permitlisten="127.0.0.1:${port}"`, forcedCommand(['--name', 'host1', '--tunnel-port', String(port), '-x', `rsync.pre:${hold}`], server.root));
    const first = withKey(['--tunnel-port', String(port)]);
    try {
      assert.ok(await waitUntil(() => existsSync(held), 30_000), 'the first run reached rsync.pre');
      const second = await withKey(['--tunnel-port', String(port)]);
      assert.equal(second.code, 1, second.stderr);
      const line = errorLine(second);
      assert.match(line, /another backup of this host is already running/);
      assert.doesNotMatch(line, /port forwarding failed/);
    } finally {
      await writeFile(release, '');
    }
    const firstResult = await first;
    assert.equal(firstResult.code, 0, firstResult.stderr);
  });

  test('a second concurrent run of a host with the port the server picks: the lock\'s "is running; try again later" (exit 1), not a port-forwarding error', async () => {
    const held = join(tmp.dir, 'held-picked');
    const release = join(tmp.dir, 'release-picked');
    // Holds the first run in rsync.pre (the host's lock taken) until the test releases it (at most 60 s).
    const hold = await writeScript(tmp.dir, 'hold-picked.sh', `touch '${held}'\ni=0\nwhile [ ! -e '${release}' ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done\n`);
    await authorize('restrict,port-forwarding', forcedCommand(['--name', 'host1', '-x', `rsync.pre:${hold}`], server.root));
    const first = withKey();
    try {
      assert.ok(await waitUntil(() => existsSync(held), 30_000), 'the first run reached rsync.pre');
      const second = await withKey();
      assert.equal(second.code, 1, second.stderr);
      const line = errorLine(second);
      assert.match(line, /^ssh-r-sync: error: another backup of host1 is (?:already )?running \(pid \d+\); try again later$/);
      assert.doesNotMatch(line, /port forwarding|forward port/);
    } finally {
      await writeFile(release, '');
    }
    const firstResult = await first;
    assert.equal(firstResult.code, 0, firstResult.stderr);
  });

  test('a configuration error found after the handshake (a mirror host\'s forced command now loads a snapshot plugin): exit 2, the receiver\'s one line', async () => {
    await authorize('restrict,port-forwarding', forcedCommand(['--name', 'host1'], server.root));
    const mirror = await withKey();
    assert.equal(mirror.code, 0, mirror.stderr);
    await authorize('restrict,port-forwarding', forcedCommand(['--name', 'host1', '--plugin', LINK_DEST_DIST], server.root));
    const result = await withKey();
    assert.equal(result.code, 2, result.stderr);
    const hostDir = join(server.root, 'host1');
    assert.match(errorLine(result), new RegExp(`^ssh-r-sync: error: (?:rsync\\.pre hook "link-dest" failed: )?${escape(hostDir)} holds a mirror of host1 \\(made without snapshot plugins\\); .*: move it aside \\(mv ${escape(hostDir)} `));
    assert.ok(existsSync(join(hostDir, 'a.txt')), 'the mirror is untouched');
  });

  test('a forced command without --name and a config without a names map: exit 2 after the handshake, what is missing', async () => {
    await authorize('restrict,port-forwarding', forcedCommand([], server.root));
    const result = await withKey();
    assert.equal(result.code, 2, result.stderr);
    assert.match(errorLine(result), /^ssh-r-sync: error: cannot tell which host this is: no --name in the forced command and no names map in the config$/);
  });

  test('a client --tunnel-port that the key allows but its forced command does not name: exit 2, which port to give', async () => {
    const [allowed, named] = [await freePort(), await freePort()];
    await authorize(`restrict,port-forwarding,permitlisten="127.0.0.1:${allowed}"`, forcedCommand(['--name', 'host1', '--tunnel-port', String(named)], server.root));
    const result = await withKey(['--tunnel-port', String(allowed)]);
    assert.equal(result.code, 2, result.stderr);
    assert.match(errorLine(result), new RegExp(`^ssh-r-sync: error: client forwarded port ${allowed}, but this key's tunnel port is ${named} \\(--tunnel-port in its forced command\\): run the client with --tunnel-port ${named}`));
  });

  test('an older client (protocol version 1) still gets a result it understands: exit code 1 for a configuration error; version 2 gets 2', async () => {
    const root = join(tmp.dir, 'compat-root');
    await mkdir(root, { recursive: true, mode: 0o700 });
    type Result = { type: string; status: string; exitCode: number; message: string | null };
    const said: Record<number, Result> = {};
    for (const version of [1, 2]) {
      const receiver = spawnRecv(['--handshake-timeout', '5', root], { SSH_ORIGINAL_COMMAND: '' });
      const hello = JSON.parse((await receiver.waitFor(/^\{"v":1,"type":"hello".*\n/, 30_000, 'stdout'))[0]) as { versions: number[] };
      assert.ok([1, 2].every((offered) => hello.versions.includes(offered)), `the receiver offers both: ${hello.versions}`);
      receiver.end(line(session({ version })));
      const exit = await receiver.exited;
      assert.equal(exit.code, 2, receiver.stderr());
      const result = receiver.stdout().split('\n').filter(Boolean).map((text) => JSON.parse(text) as Result).find((message) => message.type === 'result');
      assert.ok(result, `a result on stdout:\n${receiver.stdout()}`);
      said[version] = result;
    }
    // Version 1's result allows exit codes 0, 1 and 75 only.
    assert.equal(said[1]!.status, 'failure');
    assert.equal(said[1]!.exitCode, 1);
    assert.equal(said[2]!.exitCode, 2);
    assert.match(said[1]!.message ?? '', /cannot tell which host this is/);
  });

  test('no rsync on the client: exit 2, says this machine and what to install (-r /nonexistent, and a PATH without rsync)', async () => {
    const wrong = await withKey(['-r', '/nonexistent/rsync']);
    assert.equal(wrong.code, 2, wrong.stderr);
    assert.match(errorLine(wrong), /cannot run \/nonexistent\/rsync on this machine \(the client\): install rsync here \(apt install rsync\) or fix -r/);
    // A PATH with ssh but no rsync.
    const bin = join(tmp.dir, 'bin-without-rsync');
    await mkdir(bin, { recursive: true });
    if (!existsSync(join(bin, 'ssh'))) await symlink('/usr/bin/ssh', join(bin, 'ssh'));
    const none = await withKey([], { PATH: bin });
    assert.equal(none.code, 2, none.stderr);
    assert.match(errorLine(none), /no rsync on PATH on this machine \(the client\): install rsync here \(apt install rsync\) or give its path with -r/);
  });

  test('no rsync on the server: exit 2, says the backup server and what to install', async () => {
    await authorize('restrict,port-forwarding', forcedCommand(['--name', 'host1', '-r', '/nonexistent/rsync'], server.root));
    const result = await withKey();
    assert.equal(result.code, 2, result.stderr);
    assert.match(errorLine(result), /the server refused to start: cannot run \/nonexistent\/rsync on the backup server: install rsync there \(apt install rsync\) or give its path with -r/);
  });

  test('a BACKUP_ROOT that does not exist: exit 2 on the client and on the receiver, how to create it, no ENOENT', async () => {
    const missing = join(tmp.dir, 'no-such-root');
    await authorize('restrict,port-forwarding', forcedCommand(['--name', 'host1'], missing));
    const result = await withKey();
    assert.equal(result.code, 2, result.stderr);
    const line = errorLine(result);
    assert.match(line, new RegExp(`BACKUP_ROOT ${escape(missing)} does not exist: create it \\(mkdir -m 700 ${escape(missing)}, owned by the backup account\\)`));
    assert.doesNotMatch(line, /ENOENT/);
    const local = await runRecv(['--local', src, '--name', 'host1', missing]);
    assert.equal(local.code, 2, local.stderr);
    assert.match(errorLine(local, 'ssh-r-sync-recv'), /does not exist: create it/);
    assert.doesNotMatch(local.stderr, /ENOENT/);
  });
});

describe('a non-root receiver says what to do', { skip: ROOT_ONLY, timeout: 180_000, concurrency: 1 }, () => {
  let server: NonRootServer;
  let tmp: { dir: string; cleanup: () => Promise<void> };
  let src: string;
  before(async () => {
    tmp = await tempDir();
    src = join(tmp.dir, 'src');
    await mkdir(src);
    await writeFile(join(src, 'a.txt'), 'a');
    server = await startNonRootServer();
  });
  after(async () => {
    if (server) await chmod(server.root, 0o700).catch(() => {});
    await server?.stop();
    await tmp?.cleanup();
  });

  test('--mode privileged as non-root is refused at start: exit 2, run it as root or use fake-super; nothing written', async () => {
    await server.setRecvArgs(['--name', 'nonroot', '--mode', 'privileged']);
    const result = await server.backup(src, ['-n', 'nonroot']);
    assert.equal(result.code, 2, result.stderr);
    assert.match(errorLine(result), /the server refused to start: mode privileged \(--mode\) needs root, and this receiver runs as uid \d+: run it as root, or use --mode fake-super/);
    assert.ok(!existsSync(join(server.root, 'nonroot')), 'nothing was written');
  });

  test('an unreadable BACKUP_ROOT: exit 2, chown it to the backup account; no raw EACCES', async () => {
    await server.setRecvArgs(['--name', 'nonroot', '--mode', 'fake-super']);
    await chmod(server.root, 0o000);
    try {
      const result = await server.backup(src, ['-n', 'nonroot']);
      assert.equal(result.code, 2, result.stderr);
      const line = errorLine(result);
      assert.match(line, new RegExp(`BACKUP_ROOT ${escape(server.root)} is not readable and writable by this account \\(uid \\d+\\): chown it to the backup account and chmod 700 it`));
      assert.doesNotMatch(line, /EACCES/);
    } finally {
      await chmod(server.root, 0o700);
    }
  });
});

// A port nobody listens on now (the kernel's pick, closed again).
async function freePort(): Promise<number> {
  const probe = net.createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const { port } = probe.address() as net.AddressInfo;
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  return port;
}
