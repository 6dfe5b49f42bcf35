// Attacks on the security rules of SPEC §4, against the real commands: a throwaway sshd whose
// forced command is the real receiver, the real client, scripted peers on the receiver's stdin
// and strangers on the tunnel ports. Tests named "(original weak spot N)" cover item N of §8
// ("Weak spots") of the research notes on the original tool (shared/research/original-ssh-r-sync.md).
// A failing test here is a security bug.
//
// Every refusal asserts: a non-zero exit, one line `<prefix>: error: <cause>` on stderr and no
// stack trace, an end within the timeout plus slack, and nothing written under BACKUP_ROOT.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, lstatSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { chmod, chown, mkdir, readFile, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { startBackupServer, type BackupServer } from './helpers/backup-server.js';
import { clientBin, recvBin, runNode, runRecv, tempDir, writeScript } from './helpers/cli.js';
import {
  closedPort,
  deadPid,
  descendants,
  line,
  listTree,
  probePort,
  processTable,
  processesUsing,
  session,
  spawnLive,
  spawnRecv,
  startStranger,
  treeSnapshot,
  waitUntil,
  type LiveProcess,
  type Proc,
} from './helpers/fake-peer.js';

const HANDSHAKE_S = 2;
// Beyond a timeout, how late a refusal may come on a loaded machine and still count as "on time":
// well below the 20 s default that would apply if the test's own timeout were ignored.
const SLACK_MS = 10_000;
// How long processes of a session may take to go away after it ended (the wait ends when they have).
const GONE_MS = 15_000;
const LIMIT = { timeout: 45_000 };

let work: string;
let cleanupWork: () => Promise<void>;
let small: string; // one small file
let big: string; // 20 MB of random data: a slow run with --bwlimit=2000
let medium: string; // 4 MB: a slow run with --bwlimit=1000
let bigHash: string;
let slow2000: string; // rsync.pre hook: --bwlimit=2000
let slow1000: string; // rsync.pre hook: --bwlimit=1000
const servers: BackupServer[] = [];
// Unique paths (BACKUP_ROOTs, session dirs) whose processes must not outlive the tests.
const reapLater = new Set<string>();

before(async () => {
  ({ dir: work, cleanup: cleanupWork } = await tempDir('srs-attacks-'));
  small = join(work, 'small');
  big = join(work, 'big');
  medium = join(work, 'medium');
  await Promise.all([mkdir(small), mkdir(big), mkdir(medium)]);
  await writeFile(join(small, 'a.txt'), 'alpha\n');
  const data = randomBytes(20 << 20);
  bigHash = createHash('sha256').update(data).digest('hex');
  await writeFile(join(big, 'big.bin'), data);
  await writeFile(join(medium, 'medium.bin'), randomBytes(4 << 20));
  slow2000 = await writeScript(work, 'slow2000.sh', `env > "${work}/rsync.pre.env"\nprintf -- '--bwlimit=2000\\0'\n`);
  slow1000 = await writeScript(work, 'slow1000.sh', "printf -- '--bwlimit=1000\\0'\n");
});

after(async () => {
  reap([...reapLater]);
  await Promise.all(servers.map((s) => s.stop().catch(() => undefined)));
  await cleanupWork?.();
});

async function server(options: Parameters<typeof startBackupServer>[0] = {}): Promise<BackupServer> {
  const s = await startBackupServer(options);
  servers.push(s);
  reapLater.add(s.root);
  return s;
}

// ------------------------------------------------------------------------------------------
// Assertions.

// Exactly one `<prefix>: error: …` line matching `cause`, and no stack trace.
function assertOneLineError(stderr: string, prefix: 'ssh-r-sync' | 'ssh-r-sync-recv', cause: RegExp): void {
  assert.doesNotMatch(stderr, /^\s{4}at /m, `stack trace on stderr:\n${stderr}`);
  const errors = stderr.split('\n').filter((l) => l.startsWith(`${prefix}: error: `));
  assert.equal(errors.length, 1, `expected one "${prefix}: error:" line, got ${errors.length}:\n${stderr}`);
  assert.match(errors[0]!, cause);
}

// The receiver's result message on its stdout (what a client would print).
function resultMessage(stdout: string): { status: string; exitCode: number; message: string | null } | undefined {
  for (const l of stdout.split('\n')) {
    try {
      const m = JSON.parse(l) as { type?: string; status: string; exitCode: number; message: string | null };
      if (m.type === 'result') return m;
    } catch {
      // not JSON
    }
  }
  return undefined;
}

// Kills (SIGKILL, by pid and own process group) every process whose command line or
// environment holds one of these unique test paths, or that belongs to one of these process
// groups: leftovers of a failed cleanup test.
function reap(needles: string[], groups: number[] = []): string[] {
  const victims = processTable().filter(
    (p) => p.pid !== process.pid && (groups.includes(p.pgid) || needles.some((n) => p.cmdline.includes(n) || p.environ.includes(n))),
  );
  for (const p of victims) {
    for (const target of [-p.pid, p.pid]) {
      try {
        process.kill(target, 'SIGKILL');
      } catch {
        // gone, or not a group leader
      }
    }
  }
  // Session dirs among the needles hold secrets: a killed process cannot remove its own.
  for (const n of needles) if (/^\/tmp\/ssh-r-sync-(recv-)?\d+-[A-Za-z0-9]{6}$/.test(n)) rmSync(n, { recursive: true, force: true });
  return victims.map((p) => `${p.pid}: ${p.cmdline.slice(0, 200)}`);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// Runs fn over items, a few at a time (the machine has few CPUs and node starts slowly).
async function inChunks<T, R>(items: T[], fn: (item: T) => Promise<R>, size = 3): Promise<R[]> {
  const out: R[] = [];
  for (let i = 0; i < items.length; i += size) out.push(...(await Promise.all(items.slice(i, i + size).map(fn))));
  return out;
}

// A client run that can be watched while it runs.
function liveClient(s: BackupServer, path: string, args: string[], key?: string): LiveProcess {
  return spawnLive(clientBin, [...s.clientArgs(key), ...args, `${s.sshd.user}@127.0.0.1`, path], { killAfterMs: 40_000 });
}

// The session of a live client: its tunnel listener port and, once a gate ran, its temp dir.
async function clientSession(c: LiveProcess): Promise<{ listenPort: number; serverPort: number; dir: string }> {
  const m = await c.waitFor(/forwarded 127\.0\.0\.1:(\d+) on the server to 127\.0\.0\.1:(\d+)/, 20_000);
  const dir = await waitUntil(
    () => descendants(c.pid).map((p) => /--config=(\/\S+)\/rsyncd\.conf/.exec(p.cmdline)?.[1]).find(Boolean),
    20_000,
  );
  assert.ok(dir, 'found the client session dir through its gate');
  reapLater.add(dir);
  return { serverPort: Number(m[1]), listenPort: Number(m[2]), dir };
}

// The receiver side of a live run under `root`: its node pid and its session temp dir.
async function receiverSession(root: string): Promise<{ pid: number; dir: string }> {
  const found = await waitUntil(() => {
    const table = processTable();
    const recv = table.find((p) => p.cmdline.includes(recvBin) && p.cmdline.includes(root));
    const dir = table.map((p) => (p.cmdline.includes(root) ? /--password-file=(\/\S+)\/rsync\.secret/.exec(p.cmdline)?.[1] : undefined)).find(Boolean);
    return recv && dir ? { pid: recv.pid, dir } : undefined;
  }, 20_000);
  assert.ok(found, `found the receiver and its rsync under ${root}`);
  reapLater.add(found.dir);
  return found;
}

// What is left of a session a few seconds after it should have ended: processes that name one
// of the needles, and members of the given process groups (the receiver's rsync runs in a group
// of its own, with its tunnel relay, whose `cat` names nothing).
async function leftovers(needles: string[], ms: number, groups: number[] = []): Promise<string[]> {
  const inGroups = () => processTable().filter((p) => groups.includes(p.pgid)).map((p) => `${p.pid} (group ${p.pgid}): ${p.cmdline}`);
  const left = () => [...new Set([...needles.flatMap((n) => processesUsing(n)), ...inGroups()])];
  return (await waitUntil(() => (left().length === 0 ? [] : undefined), ms)) ?? left();
}

// ------------------------------------------------------------------------------------------
// A scripted client against the receiver run directly (no ssh): reads the hello, sends `script`.

interface PeerRun {
  code: number | null;
  ms: number; // from the end of the hello to the exit
  stdout: string;
  stderr: string;
  root: string;
}

async function againstReceiver(script: (p: LiveProcess) => void | Promise<void>, extraArgs: string[] = []): Promise<PeerRun> {
  const root = join(work, `peer-root-${randomBytes(4).toString('hex')}`);
  await mkdir(root, { mode: 0o700 });
  reapLater.add(root);
  const p = spawnRecv(['--name', 'host1', '--handshake-timeout', String(HANDSHAKE_S), '--debug', ...extraArgs, root]);
  await p.waitFor(/^\{"v":1,"type":"hello".*\n/, 30_000, 'stdout');
  const t = Date.now();
  await script(p);
  const exit = await p.exited;
  return { code: exit.code, ms: Date.now() - t, stdout: p.stdout(), stderr: p.stderr(), root };
}

// The common checks of a refused scripted session.
function assertRefused(run: PeerRun, cause: RegExp, limitMs = HANDSHAKE_S * 1000 + SLACK_MS): void {
  assert.notEqual(run.code, 0, `exit code ${run.code}`);
  assert.ok(run.ms <= limitMs, `took ${run.ms} ms (limit ${limitMs} ms)`);
  assertOneLineError(run.stderr, 'ssh-r-sync-recv', cause);
  const result = resultMessage(run.stdout);
  assert.ok(result, `a result message for the client on stdout:\n${run.stdout}`);
  assert.equal(result.status, 'failure');
  assert.match(result.message ?? '', cause);
  assert.deepEqual(listTree(run.root), [], 'nothing written under BACKUP_ROOT');
}

const BAD_NAMES = ['..', '/x', '-rf', 'a/b', '.', 'host1/../x', 'a'.repeat(65), 'h\u043est1' /* Cyrillic о */];

// ==========================================================================================

describe('SPEC §4 attacks', { concurrency: 3 }, () => {
  // ----------------------------------------------------------------------------------------
  describe('rule 1: the receiver decides who the client is', { concurrency: 2 }, () => {
    let s: BackupServer;
    let seeded: Record<string, string>;
    before(async () => {
      s = await server({ extraKeys: { other: ['--name', 'other', '--handshake-timeout', '2'] } });
      await s.setRecvArgs(['--name', 'host1', '--handshake-timeout', '2']);
      await mkdir(join(s.root, 'host1', 'sub'), { recursive: true });
      await writeFile(join(s.root, 'host1', 'precious.txt'), 'the real host1 backup\n');
      await writeFile(join(s.root, 'host1', 'sub', 'deep.txt'), randomBytes(4096));
      seeded = treeSnapshot(s.root);
    });

    test("another key's client claiming -n host1 is refused; host1's backup is untouched byte for byte (original weak spot 1)", LIMIT, async () => {
      const started = Date.now();
      const r = await s.backup(small, ['-n', 'host1', '-t', '2'], { key: s.keys.other, timeoutMs: 30_000 });
      assert.equal(r.code, 1, r.stderr);
      assertOneLineError(r.stderr, 'ssh-r-sync', /client claims to be "host1", but this key belongs to "other"/);
      assert.ok(Date.now() - started < 15_000);
      assert.deepEqual(treeSnapshot(s.root), seeded, 'BACKUP_ROOT unchanged (no other/, no lock dir, host1 intact)');
    });

    test('bad names are refused as client claims: by the client itself (exit 2) and by the receiver (original weak spot 1)', LIMIT, async () => {
      // The real client refuses to even ask for such a name.
      const client = await inChunks(BAD_NAMES, (name) => s.backup(small, [`--name=${name}`, '-t', '2'], { timeoutMs: 30_000 }));
      client.forEach((r, i) => {
        assert.equal(r.code, 2, `client -n ${JSON.stringify(BAD_NAMES[i])}: ${r.stderr}`);
        assertOneLineError(r.stderr, 'ssh-r-sync', /invalid name/);
      });
      // A hostile client that sends them anyway (scripted session message).
      const runs = await inChunks(BAD_NAMES, (name) => againstReceiver((p) => p.write(line(session({ name })))));
      runs.forEach((run) => assertRefused(run, /client claims to be .*, but this key belongs to "host1"/));
      assert.deepEqual(treeSnapshot(s.root), seeded);
    });

    test('bad names are refused as the receiver\'s --name (exit 2)', LIMIT, async () => {
      const root = join(work, 'bad-name-root');
      await mkdir(root);
      const runs = await inChunks(BAD_NAMES, (name) => runRecv([`--name=${name}`, '--handshake-timeout', '2', root], { timeoutMs: 30_000 }));
      const wrong: string[] = [];
      runs.forEach((r, i) => {
        assertOneLineError(r.stderr, 'ssh-r-sync-recv', /refused host name/);
        assert.equal(r.stdout, '', 'no hello: refused before speaking');
        if (r.code !== 2) wrong.push(`--name=${JSON.stringify(BAD_NAMES[i])} exited ${r.code}`);
      });
      assert.deepEqual(listTree(root), []);
      assert.deepEqual(wrong, [], 'an invalid --name in the forced command is a configuration error: exit 2');
    });

    test('BACKUP_ROOT/host1 as a symlink to a directory outside ROOT is refused; nothing written outside', LIMIT, async () => {
      const t = await server();
      await t.setRecvArgs(['--name', 'host1', '--handshake-timeout', '2']);
      const outside = join(work, 'outside');
      await mkdir(outside);
      await writeFile(join(outside, 'keep.txt'), 'outside\n');
      await symlink(outside, join(t.root, 'host1'));
      const before = treeSnapshot(outside);
      const r = await t.backup(small, ['-n', 'host1', '-t', '2'], { timeoutMs: 30_000 });
      assert.equal(r.code, 1, r.stderr);
      assertOneLineError(r.stderr, 'ssh-r-sync', /refused host directory .*outside/);
      assert.deepEqual(treeSnapshot(outside), before, 'nothing written outside ROOT');
      assert.ok(!existsSync(join(outside, 'a.txt')));
      assert.deepEqual(listTree(t.root), ['host1'], 'only the symlink itself in ROOT');
    });

    test('BACKUP_ROOT/host1 as a dangling symlink to a path outside ROOT is refused; nothing created there', LIMIT, async () => {
      const t = await server();
      await t.setRecvArgs(['--name', 'host1', '--handshake-timeout', '2']);
      const target = join(work, 'not-there');
      await symlink(target, join(t.root, 'host1'));
      const r = await t.backup(small, ['-n', 'host1', '-t', '2'], { timeoutMs: 30_000 });
      assert.equal(r.code, 1, r.stderr);
      assert.doesNotMatch(r.stderr, /^\s{4}at /m);
      assert.match(r.stderr, /^ssh-r-sync: error: /m);
      assert.ok(!existsSync(target), 'the symlink target was not created');
      assert.deepEqual(listTree(t.root), ['host1']);
    });
  });

  // ----------------------------------------------------------------------------------------
  describe('rule 2: the receiver decides privileges', { concurrency: 2 }, () => {
    let s: BackupServer;
    let src: string;
    before(async () => {
      s = await server({ extraKeys: { fs: ['--name', 'host2', '--mode', 'fake-super', '--handshake-timeout', '2'] } });
      await s.setRecvArgs(['--name', 'host1', '--mode', 'plain', '--handshake-timeout', '2']);
      src = join(work, 'setuid-src');
      await mkdir(src);
      for (const [name, uid] of [['suid-root', 0], ['suid-user', 1234]] as const) {
        const path = join(src, name);
        await writeFile(path, '#!/bin/sh\necho pwned\n');
        await chown(path, uid, uid);
        await chmod(path, 0o4755);
      }
      await writeFile(join(src, 'plain.txt'), 'x\n');
      await chown(join(src, 'plain.txt'), 1234, 1234);
    });

    test('plain mode: a client without -X gets no setuid file and no owner of its choosing (original weak spot 2)', LIMIT, async () => {
      const r = await s.backup(src, ['-n', 'host1', '-t', '2', '--debug'], { timeoutMs: 30_000 });
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stderr, /receiver accepted host1 \(plain\)/);
      for (const name of ['suid-root', 'suid-user', 'plain.txt']) {
        const st = statSync(join(s.root, 'host1', name));
        assert.equal(st.mode & 0o7000, 0, `${name} has no setuid/setgid/sticky bit (mode ${st.mode.toString(8)})`);
        assert.notEqual(st.uid, 1234, `${name} is not owned by the client's uid 1234`);
        assert.equal(st.uid, process.getuid!(), `${name} is owned by the receiver's own user`);
      }
    });

    test('fake-super mode: no real setuid-root file, but owner and mode are kept in xattrs (original weak spots 2 and 3)', LIMIT, async () => {
      const r = await s.backup(src, ['-n', 'host2', '-t', '2', '--debug'], { key: s.keys.fs, timeoutMs: 30_000 });
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stderr, /receiver accepted host2 \(fake-super\)/);
      const stats: Record<string, string> = {};
      for (const name of ['suid-root', 'suid-user']) {
        const path = join(s.root, 'host2', name);
        const st = statSync(path);
        assert.ok(!(st.uid === 0 && st.mode & 0o4000), `${name} is not a real setuid-root file (uid ${st.uid}, mode ${st.mode.toString(8)})`);
        assert.equal(st.mode & 0o6000, 0, `${name}: no real setuid/setgid bit`);
        stats[name] = await xattr(path, 'user.rsync.%stat');
      }
      assert.match(stats['suid-root']!, /^104755 \d+,\d+ 0:0$/, 'owner root and mode 4755 stored as fake-super metadata');
      assert.match(stats['suid-user']!, /^104755 \d+,\d+ 1234:1234$/);
    });

    test('no client option can raise privileges: "su" in the session or its options is refused; the client has no --super', LIMIT, async () => {
      const runs = await Promise.all([
        againstReceiver((p) => p.write(line(session({ su: true })))),
        againstReceiver((p) => p.write(line(session({ options: { oneFileSystem: false, fakeSuper: false, su: true } })))),
        againstReceiver((p) => p.write(line(session({ options: { oneFileSystem: false, fakeSuper: false, super: true } })))),
      ]);
      assertRefused(runs[0]!, /invalid session message from client: unknown key "su"/);
      assertRefused(runs[1]!, /invalid session message from client: options: unknown key "su"/);
      assertRefused(runs[2]!, /invalid session message from client: options: unknown key "super"/);
      for (const flag of ['--super', '-u', '--privileged']) {
        const r = await runNode(clientBin, [flag, '-n', 'host1', 'root@127.0.0.1', small], { timeoutMs: 30_000 });
        assert.equal(r.code, 2, `${flag}: ${r.stderr}`);
        assertOneLineError(r.stderr, 'ssh-r-sync', /unknown option/);
      }
    });
  });

  // ----------------------------------------------------------------------------------------
  describe('rule 3: options come only from the receiver', { concurrency: 2 }, () => {
    let s: BackupServer;
    let seeded: Record<string, string>;
    before(async () => {
      s = await server();
      await s.setRecvArgs(['--name', 'host1', '--handshake-timeout', '2']);
      await mkdir(join(s.root, 'host1'));
      await writeFile(join(s.root, 'host1', 'precious.txt'), 'keep me\n');
      seeded = treeSnapshot(s.root);
    });

    test('a remote command requested by the client never reaches the receiver: it is refused in one line (original weak spot 4)', LIMIT, async () => {
      const marker = join(work, 'rule3-marker');
      const hook = await writeScript(work, 'rule3-hook.sh', `touch "${marker}"\n`);
      const evilRoot = join(work, 'rule3-evil-root');
      // If SSH_ORIGINAL_COMMAND reached argv, the name would be "evil", the connect hook would
      // create the marker and the backup would go to evilRoot.
      const asArgs = spawnLive('', [...s.sshd.sshArgs(s.key), `ssh-r-sync-recv --name evil --debug -x connect:${hook} ${evilRoot}`], { program: 'ssh', killAfterMs: 20_000 });
      asArgs.end(line(session({ name: 'evil' })));
      const shell = spawnLive('', [...s.sshd.sshArgs(s.key), `touch ${marker}; rm -rf ${s.root}`], { program: 'ssh', killAfterMs: 20_000 });
      shell.end();
      const [a, b] = await Promise.all([asArgs.exited, shell.exited]);
      assert.equal(a.code, 2);
      assert.equal(b.code, 2);
      // Only a backup (no command), `ssh-r-sync snapshots` and `ssh-r-sync restore` are served (test/attacks-restore.test.ts).
      assertOneLineError(asArgs.stderr(), 'ssh-r-sync-recv', /refused: this key runs backups, `ssh-r-sync snapshots` and `ssh-r-sync restore` only, not "ssh-r-sync-recv"/);
      assertOneLineError(shell.stderr(), 'ssh-r-sync-recv', /refused: this key runs backups, .* not "touch"/);
      assert.equal(asArgs.stdout() + shell.stdout(), '', 'no protocol greeting, nothing served');
      assert.doesNotMatch(asArgs.stderr() + shell.stderr(), /^\s{4}at /m);
      assert.ok(!existsSync(marker), 'no hook or command of the client ran');
      assert.ok(!existsSync(evilRoot), 'no BACKUP_ROOT of the client was used');
      assert.deepEqual(treeSnapshot(s.root), seeded, 'BACKUP_ROOT unchanged');
    });

    test('the receiver refuses login-shell mode (-c "…") with exit 2 (original weak spot 4)', LIMIT, async () => {
      const evilRoot = join(work, 'rule3-shell-root');
      for (const command of ['', `ssh-r-sync-recv --name evil ${evilRoot}`, 'rm -rf /nonexistent-srs']) {
        const r = await runRecv(['-c', command], { timeoutMs: 30_000 });
        assert.equal(r.code, 2, r.stderr);
        assertOneLineError(r.stderr, 'ssh-r-sync-recv', /not a login shell/);
        assert.equal(r.stdout, '');
      }
      assert.ok(!existsSync(evilRoot));
    });

    test('hooks do not inherit the protocol channel: a hook that prints a forged result and reads stdin changes nothing (original weak spot 5)', LIMIT, async () => {
      const t = await server();
      const forged = JSON.stringify({ v: 1, type: 'result', status: 'success', committed: true, exitCode: 0, rsyncExitCode: 0, message: 'forged', files: 999, bytes: 999, durationMs: 1, snapshot: 'forged' });
      const hook = await writeScript(work, 'chatty-hook.sh', `echo '${forged}'\necho '{"v":1,"type":"start"}'\ncat >/dev/null\n`);
      await t.setRecvArgs(['--name', 'host1', '--handshake-timeout', '2', '--hook-timeout', '5', '-x', `connect:${hook}`, '-x', `handshake:${hook}`]);
      const r = await t.backup(small, ['-n', 'host1', '-t', '2', '--json'], { timeoutMs: 30_000 });
      assert.equal(r.code, 0, r.stderr);
      const out = JSON.parse(r.stdout.trim().split('\n').pop()!) as { files: number; snapshot: string | null };
      assert.equal(out.files, 1, 'the real result, not the forged one');
      assert.equal(out.snapshot, null);
      assert.equal(await readFile(join(t.root, 'host1', 'a.txt'), 'utf8'), 'alpha\n');
    });
  });

  // ----------------------------------------------------------------------------------------
  describe('rule 4: secrets; tunnel strangers', { concurrency: 1 }, () => {
    test('during a slow real run no key or rsync secret is in any argv, environment, log or hook environment; files 0600 in 0700 dirs, gone after; strangers on both tunnel ends get no @RSYNCD (original weak spots 7 and 8)', LIMIT, async () => {
      const s = await server();
      await s.setRecvArgs(['--name', 'host1', '--handshake-timeout', '2', '--debug', '-x', `rsync.pre:${slow2000}`]);
      const c = liveClient(s, big, ['-n', 'host1', '-t', '2', '--debug']);
      const client = await clientSession(c);
      const recv = await receiverSession(s.root);

      // The secrets, read from their files while the run is going.
      const clientSecretLine = readFileSync(join(client.dir, 'rsyncd.secrets'), 'utf8').trim();
      const secret = clientSecretLine.split(':')[1]!;
      assert.match(secret, /^[0-9a-f]{64}$/, 'rsync secret of 256 bits');
      assert.equal(readFileSync(join(recv.dir, 'rsync.secret'), 'utf8').trim(), secret);
      assert.deepEqual(readdirSync(recv.dir), ['rsync.secret'], "the receiver's only file: the session key is in no file at all");
      const needles = [secret, secret.toUpperCase()];
      // The session key lives only in the two node processes' memory and the ssh channel, so no
      // file shows it to this test: any 64-hex-digit string in an argv or environment of the
      // run's processes (all descend from this test) counts, except those already in ours.
      const ownHex = new Set(Object.values(process.env).flatMap((v) => v?.match(/[0-9a-f]{64}/gi) ?? []));
      const hex64 = (text: string): string[] => (text.match(/[0-9a-f]{64}/gi) ?? []).filter((h) => !ownHex.has(h));

      // File and directory modes.
      for (const dir of [client.dir, recv.dir]) {
        assert.equal(statSync(dir).mode & 0o777, 0o700, `${dir} is 0700`);
        for (const entry of readdirSync(dir)) {
          const st = lstatSync(join(dir, entry));
          if (st.isFile()) assert.equal(st.mode & 0o777, 0o600, `${dir}/${entry} is 0600`);
        }
      }

      // Scan every process until the run ends.
      const hits = new Set<string>();
      let exited = false;
      void c.exited.then(() => (exited = true));
      const scanning = (async () => {
        while (!exited) {
          for (const p of processTable()) {
            for (const n of needles) {
              if (p.cmdline.includes(n)) hits.add(`argv of ${p.pid}: ${p.cmdline.slice(0, 200)}`);
              if (p.environ.includes(n)) hits.add(`environment of ${p.pid}: ${p.cmdline.slice(0, 200)}`);
            }
          }
          for (const p of descendants(process.pid)) {
            if (hex64(p.cmdline).length > 0) hits.add(`64 hex digits in the argv of ${p.pid}: ${p.cmdline.slice(0, 200)}`);
            if (hex64(p.environ.toString('latin1')).length > 0) hits.add(`64 hex digits in the environment of ${p.pid}: ${p.cmdline.slice(0, 200)}`);
          }
          await sleep(150);
        }
      })();

      // Strangers on the client's listener and on the server's forwarded port, without the key
      // (a few at a time: the listener serves at most 4 connections at once).
      const raw = [
        ...(await Promise.all([probePort(client.listenPort, 3000), probePort(client.serverPort, 3000)])),
        ...(await Promise.all([
          probePort(client.listenPort, 3000, '@RSYNCD: 32.0\n'),
          probePort(client.serverPort, 3000, Buffer.concat([Buffer.from('SRT1'), randomBytes(200)])),
        ])),
      ];
      for (const p of raw) {
        assert.ok(!p.data.includes('@RSYNCD'), `a stranger got an rsync greeting: ${p.data.toString('latin1')}`);
        assert.ok(p.data.length <= 36, `a stranger got more than the gate's opener (${p.data.length} bytes)`);
      }
      for (const r of await Promise.all([rsyncList(client.listenPort), rsyncList(client.serverPort)])) {
        assert.notEqual(r.code, 0, 'rsync through the tunnel without the key fails');
        assert.doesNotMatch(r.stdout, /big\.bin/);
      }
      assert.equal(c.child.exitCode, null, 'the strangers were done before the run ended (make the run slower)');
      await scanning;
      const exit = await c.exited;
      assert.equal(exit.code, 0, c.stderr());
      assert.deepEqual([...hits], [], 'no secret in any /proc/*/cmdline or environ');
      const logs = c.stderr() + c.stdout();
      assert.match(logs, /server: ssh-r-sync-recv: /, "the receiver's --debug log reached the client's stderr");
      for (const n of needles) assert.ok(!logs.includes(n), `a secret in the logs of client or receiver`);
      assert.deepEqual(hex64(logs), [], 'no 64-hex-digit string (the session key?) in the logs');
      const hookEnv = await readFile(join(work, 'rsync.pre.env'), 'utf8');
      for (const n of needles) assert.ok(!hookEnv.includes(n), 'a secret in the hook environment');
      assert.ok(!existsSync(client.dir), 'client session dir removed');
      assert.ok(!existsSync(recv.dir), 'receiver session dir removed');
      assert.equal(createHash('sha256').update(readFileSync(join(s.root, 'host1', 'big.bin'))).digest('hex'), bigHash);
      assert.deepEqual(await leftovers([client.dir, recv.dir, `127.0.0.1:${client.listenPort}`], GONE_MS), []);
    });
  });

  // ----------------------------------------------------------------------------------------
  describe('rule 5: one run per host', { concurrency: 1 }, () => {
    let s: BackupServer;
    const lockFile = () => join(s.root, '.ssh-r-sync', 'locks', 'host1.lock');
    // The lock file names its holder; it stays, emptied on release, and nobody holds its kernel lock.
    const held = () => existsSync(lockFile()) && readFileSync(lockFile(), 'utf8') !== '';
    const released = () => readFileSync(lockFile(), 'utf8') === '' && spawnSync('/usr/bin/flock', ['-n', lockFile(), 'true']).status === 0;
    before(async () => {
      s = await server();
      await s.setRecvArgs(['--name', 'host1', '--handshake-timeout', '2', '-x', `rsync.pre:${slow1000}`]);
    });

    test('a second concurrent run for host1 is refused (exit 1) while the first one still succeeds (original weak spot 14)', LIMIT, async () => {
      const first = liveClient(s, medium, ['-n', 'host1', '-t', '2']);
      assert.ok(await waitUntil(held, 20_000), 'the first run took the lock');
      const second = await s.backup(small, ['-n', 'host1', '-t', '2'], { timeoutMs: 30_000 });
      assert.equal(second.code, 1, second.stderr);
      assertOneLineError(second.stderr, 'ssh-r-sync', /another backup of host1 is already running/);
      const exit = await first.exited;
      assert.equal(exit.code, 0, first.stderr());
      assert.ok(existsSync(join(s.root, 'host1', 'medium.bin')));
      assert.ok(released(), 'the lock is released');
    });

    test('a stale lock of a dead pid is taken over with a log line', LIMIT, async () => {
      await mkdir(join(s.root, '.ssh-r-sync', 'locks'), { recursive: true });
      const pid = await deadPid();
      await writeFile(lockFile(), JSON.stringify({ pid, start: '1' }));
      const r = await s.backup(small, ['-n', 'host1', '-t', '2'], { timeoutMs: 30_000 });
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stderr, new RegExp(`took over the lock of host1 from dead process ${pid}`));
      assert.ok(released());
    });

    test('--lock-wait 10 makes the second run wait, then succeed', LIMIT, async () => {
      await s.setRecvArgs(['--name', 'host1', '--handshake-timeout', '2', '--lock-wait', '10', '-x', `rsync.pre:${slow1000}`]);
      await writeFile(join(medium, 'changed.bin'), randomBytes(1 << 20)); // the first run has work to do again
      const first = liveClient(s, medium, ['-n', 'host1', '-t', '2']);
      assert.ok(await waitUntil(held, 20_000));
      const second = await s.backup(medium, ['-n', 'host1', '-t', '2'], { timeoutMs: 30_000 });
      const exit = await first.exited;
      assert.equal(exit.code, 0, first.stderr());
      assert.equal(second.code, 0, second.stderr);
      assert.match(second.stderr, /backup of host1 done/);
    });
  });

  // ----------------------------------------------------------------------------------------
  describe('rule 6: cleanup is certain', { concurrency: 3 }, () => {
    // Starts a slow run and waits until the pull is under way.
    async function midTransfer() {
      const s = await server();
      await s.setRecvArgs(['--name', 'host1', '--handshake-timeout', '2', '-x', `rsync.pre:${slow2000}`]);
      const c = liveClient(s, big, ['-n', 'host1', '-t', '2', '--debug']);
      const client = await clientSession(c);
      const recv = await receiverSession(s.root);
      await c.waitFor(/"command":"rsync"/, 20_000);
      const clientSide = [client.dir, `127.0.0.1:0:127.0.0.1:${client.listenPort}`];
      const serverSide = [s.root, recv.dir];
      // The receiver's rsync leads a process group with its tunnel relay (sh, then two cats).
      const isRsync = (p: Proc) => p.pgid === p.pid && p.cmdline.startsWith('rsync ') && p.cmdline.includes(recv.dir);
      const isRelay = (p: Proc) => /^(cat|\/bin\/sh -c)/.test(p.cmdline);
      // Wait until rsync and its relay are both up (the pull is under way), not a fixed time.
      const table = await waitUntil(() => {
        const now = processTable();
        const leader = now.find(isRsync);
        return leader && now.some((p) => p.pgid === leader.pid && isRelay(p)) ? now : undefined;
      }, 20_000) ?? processTable();
      const rsync = table.find(isRsync);
      assert.ok(rsync, "found the receiver's rsync");
      const group = table.filter((p) => p.pgid === rsync.pid);
      assert.ok(group.some(isRelay), `the relay runs in rsync's group: ${group.map((p) => p.cmdline.slice(0, 60)).join(' | ')}`);
      return { s, c, client, recv, clientSide, serverSide, serverGroups: [rsync.pid] };
    }

    for (const signal of ['SIGTERM', 'SIGKILL', 'SIGINT', 'SIGHUP'] as const) {
      test(`${signal} to the client mid-transfer: it ends promptly and no daemon, gate or ssh of the session remains; nor the receiver's side (original weak spot 16)`, LIMIT, async (t) => {
        const { c, client, clientSide, serverSide, serverGroups } = await midTransfer();
        const killed = Date.now();
        c.kill(signal);
        const exit = await c.exited;
        t.diagnostic(`client exited ${Date.now() - killed} ms after ${signal}`);
        // Generous, it only catches a hang: the exit code and message below show the signal was obeyed.
        assert.ok(Date.now() - killed < 20_000, `client took ${Date.now() - killed} ms to exit after ${signal}`);
        if (signal !== 'SIGKILL') {
          assert.equal(exit.code, 1);
          assertOneLineError(c.stderr(), 'ssh-r-sync', new RegExp(`stopped by ${signal}`));
          assert.ok(!existsSync(client.dir), 'client session dir removed');
        }
        assert.deepEqual(await leftovers(clientSide, GONE_MS), [], 'client side: no rsync --daemon, gate or ssh left');
        if (signal === 'SIGKILL') {
          // Nobody could remove the killed client's session dir (its rsync secret inside): the next
          // client session does, even one that fails at once (here: nothing listens on the port).
          // (A session of a test running alongside may have removed it already.)
          const next = await runNode(clientBin, ['-n', 'host1', '-p', String(await closedPort()), '--no-ssh-opts', '-o', 'BatchMode=yes', 'root@127.0.0.1', small], { timeoutMs: 30_000 });
          assert.equal(next.code, 1, next.stderr);
          assert.ok(!existsSync(client.dir), "the next session removed the dead client's session dir");
        }
        const left = await leftovers(serverSide, GONE_MS, serverGroups);
        reap(serverSide, serverGroups);
        assert.deepEqual(left, [], "server side: no receiver, rsync or tunnel relay left (they would hold host1's lock forever)");
      });
    }

    test('SIGTERM to the receiver mid-transfer: the client exits non-zero with a message; nothing remains on either side', LIMIT, async (t) => {
      const { c, recv, clientSide, serverSide, serverGroups } = await midTransfer();
      const killed = Date.now();
      process.kill(recv.pid, 'SIGTERM');
      const exit = await c.exited;
      t.diagnostic(`client exited ${Date.now() - killed} ms after SIGTERM to the receiver: ${c.stderr().split('\n').filter((l) => l.startsWith('ssh-r-sync: error:')).join(' ')}`);
      // Generous: a client that missed the closed session would wait for ssh's keepalives (~60 s).
      assert.ok(Date.now() - killed < 20_000, `client took ${Date.now() - killed} ms to exit`);
      assert.equal(exit.code, 1, c.stderr());
      assertOneLineError(c.stderr(), 'ssh-r-sync', /SIGTERM|rsync|closed/);
      assert.deepEqual(await leftovers(clientSide, GONE_MS), [], 'client side');
      const left = await leftovers(serverSide, GONE_MS, serverGroups);
      reap(serverSide, serverGroups);
      assert.deepEqual(left, [], 'server side');
      assert.ok(!existsSync(recv.dir), 'receiver session dir removed');
    });
  });

  // ----------------------------------------------------------------------------------------
  describe('rule 7: bad input from a client (original weak spot 9)', { concurrency: 3 }, () => {
    const cases: [string, (p: LiveProcess) => void | Promise<void>, RegExp][] = [
      ['a garbage line', (p) => p.write('SSH-2.0-OpenSSH_9.2 hello there\n'), /garbage from client/],
      ['binary garbage', (p) => p.write(Buffer.from([0xff, 0xfe, 0x00, 0x41, 0x0a])), /garbage from client/],
      ['a JSON value that is not an object', (p) => p.write('[1,2,3]\n'), /garbage from client/],
      ['a valid message of the wrong type', (p) => p.write('{"v":1,"type":"start"}\n'), /expected session from client, got start/],
      ['a session with fields of the wrong type', (p) => p.write(line(session({ tunnelPort: '4000', version: '1' }))), /invalid session message from client/],
      ['an unknown message type', (p) => p.write('{"v":1,"type":"pwn"}\n'), /unknown message type "pwn" from client/],
      ['a 100 kB line without newline', (p) => p.write('{"v":1,"x":"' + 'x'.repeat(100_000)), /message from client exceeds 65536 bytes/],
      ['truncated JSON then EOF', (p) => p.end('{"v":1,"type":"session","proto'), /truncated message from client/],
      ['EOF at once', (p) => p.end(), /client closed the connection while we waited for the session message/],
      ['nothing at all (a stall)', () => undefined, /timed out after 2 s waiting for the session message from client/],
      ['a session key of the wrong length', (p) => p.write(line(session({ key: 'ab'.repeat(31) }))), /invalid session message from client: key: must be 64 hex/],
      ['a session with an unknown field', (p) => p.write(line(session({ backupDir: '/etc' }))), /invalid session message from client: unknown key "backupDir"/],
      ['envelope version 2', (p) => p.write(line(session({ v: 2 }))), /unsupported protocol version 2 from client/],
      ['a session version the receiver does not speak', (p) => p.write(line(session({ version: 7 }))), /client chose protocol version 7; this receiver speaks 1, 2/],
      ['a tunnel port below 1024', (p) => p.write(line(session({ tunnelPort: 22 }))), /refused tunnel port 22/],
    ];
    for (const [what, script, cause] of cases) {
      test(`${what} → one-line error within the handshake timeout, nothing written`, LIMIT, async () => {
        assertRefused(await againstReceiver(script), cause);
      });
    }

    test('a session whose tunnel port is closed → tunnel error, nothing written', LIMIT, async () => {
      const port = await closedPort();
      assertRefused(await againstReceiver((p) => p.write(line(session({ tunnelPort: port })))), new RegExp(`tunnel connect to 127\\.0\\.0\\.1:${port} failed`));
    });

    const strangers: [string, (socket: import('node:net').Socket) => void, RegExp, number][] = [
      ['sends random bytes', (sock) => sock.write(randomBytes(4096)), /tunnel proof failed: wrong magic/, 0],
      ['says nothing', () => undefined, /tunnel proof timed out/, 0],
      ['sends the magic and a nonce, then a wrong proof', (sock) => {
        sock.write(Buffer.concat([Buffer.from('SRT1'), randomBytes(32)]));
        sock.once('data', () => sock.write(randomBytes(32)));
      }, /tunnel proof failed: client's proof is wrong/, 64],
      ['sends the magic and a nonce, then stalls', (sock) => sock.write(Buffer.concat([Buffer.from('SRT1'), randomBytes(32)])), /tunnel proof (timed out|failed)/, 64],
      ['greets like an rsync daemon', (sock) => sock.write('@RSYNCD: 32.0 sha512 sha256 sha1 md5 md4\n'), /tunnel proof failed: wrong magic/, 0],
    ];
    for (const [what, behave, cause, maxBytes] of strangers) {
      test(`a stranger on the tunnel port that ${what} is refused: one-line tunnel proof error, it learns nothing (original weak spot 8)`, LIMIT, async () => {
        const stranger = await startStranger(behave);
        try {
          const run = await againstReceiver((p) => p.write(line(session({ tunnelPort: stranger.port }))));
          assertRefused(run, cause);
          assert.equal(stranger.accepted(), 1, 'one connection: the check, and no rsync pull');
          assert.ok(stranger.received().length <= maxBytes, `the stranger got ${stranger.received().length} bytes (at most the receiver's nonce and MAC)`);
        } finally {
          await stranger.close();
        }
      });
    }
  });

  // ----------------------------------------------------------------------------------------
  describe('rule 7: bad input from a receiver (original weak spot 9)', { concurrency: 2 }, () => {
    let s: BackupServer;
    const fakes: Record<string, string> = {
      garbage: "printf 'SSH-2.0-OpenSSH not our protocol\\n'; cat >/dev/null",
      stall: `printf '%s\\n' '{"v":1,"type":"hello","protocol":"ssh-r-sync","versions":[1]}'; cat >/dev/null`,
      silent: 'cat >/dev/null',
      huge: `head -c 100000 /dev/zero | tr '\\0' x; cat >/dev/null`,
      future: `printf '%s\\n' '{"v":1,"type":"hello","protocol":"ssh-r-sync","versions":[7,8]}'; cat >/dev/null`,
    };
    before(async () => {
      s = await server({ extraKeys: Object.fromEntries(Object.keys(fakes).map((k) => [k, []])) });
      const entries = [];
      for (const [name, body] of Object.entries(fakes)) {
        const script = await writeScript(work, `fake-receiver-${name}.sh`, `${body}\n`);
        const publicKey = await readFile(`${s.keys[name]}.pub`, 'utf8');
        entries.push({ publicKey, options: `restrict,port-forwarding,command="${script}"` });
      }
      await s.sshd.setAuthorizedKeys(entries);
    });

    const expectations: [string, RegExp, number][] = [
      // Not the receiver's words: the client blames what runs before it, the server's login shell.
      ['garbage', /the server's shell printed "SSH-2\.0-OpenSSH not our protocol" before ssh-r-sync-recv started/, 1000],
      ['stall', /timed out after 3 s waiting for the handshake result from receiver/, 3000],
      ['silent', /timed out after 3 s waiting for the receiver's hello/, 3000],
      ['huge', /message from receiver exceeds 65536 bytes/, 1000],
      ['future', /receiver speaks protocol versions 7, 8; this client speaks 1, 2/, 1000],
    ];
    for (const [name, cause, waitMs] of expectations) {
      test(`a fake receiver (${name}) → the client exits non-zero with one line within its timeout; nothing of its session remains`, LIMIT, async () => {
        const c = liveClient(s, small, ['-n', 'host1', '-t', '2', '--wait-timeout', '3', '--debug'], s.keys[name]);
        const port = (await c.waitFor(/"127\.0\.0\.1:0:127\.0\.0\.1:(\d+)"/, 10_000))[1]!;
        const exit = await c.exited;
        assert.equal(exit.code, 1, c.stderr());
        assertOneLineError(c.stderr(), 'ssh-r-sync', cause);
        // ssh login (root's login shell is slow) + the wait + teardown (stdin close, 2 s for ssh).
        assert.ok(exit.ms < 4000 + waitMs + 3000 + SLACK_MS, `took ${exit.ms} ms`);
        assert.deepEqual(await leftovers([`127.0.0.1:0:127.0.0.1:${port}`], GONE_MS), []);
      });
    }
  });
});

// `rsync --list-only` against a tunnel port, as a local user without the key would try.
function rsyncList(port: number): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn('rsync', ['--list-only', '--contimeout=4', '--timeout=4', `rsync://ssh-r-sync@127.0.0.1:${port}/ssh-r-sync/`], {
      env: { ...process.env, RSYNC_PASSWORD: 'guess' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), 8000);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

// Reads an extended attribute (node has no xattr API; python's os.getxattr does).
function xattr(path: string, name: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn('/usr/bin/python3', ['-c', 'import os,sys; sys.stdout.write(os.getxattr(sys.argv[1], sys.argv[2]).decode())', path, name], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    child.on('close', (code) => (code === 0 ? resolve(out) : reject(new Error(`getxattr ${name} of ${path}: ${err.trim()}`))));
  });
}
