// Whole reverse-tunnel backups: the real `ssh-r-sync` client against a throwaway sshd whose forced
// command is the real `ssh-r-sync-recv`, with real rsync on both ends. Trees are compared entry by
// entry (type, mode, owner, size, mtime, link target, content, hard links, xattrs, ACLs).
// Each suite has its own server; suites run side by side, the tests of one suite in order.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { lstatSync } from 'node:fs';
import { mkdir, readFile, rm, stat, unlink, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { join } from 'node:path';
import { startBackupServer, type BackupServer } from './helpers/backup-server.js';
import { tempDir, writeScript, type RunResult } from './helpers/cli.js';
import { descendants } from './helpers/fake-peer.js';
import {
  NON_UTF8_NAME,
  OTHER_GID,
  OTHER_UID,
  SPARSE_SIZE,
  buildTree,
  compareTrees,
  pseudoRandom,
  readXattrs,
  showName,
  walkTree,
  type TreeInfo,
} from './helpers/tree.js';

const NAME = 'host1';
const DONE_LINE = /^ssh-r-sync: backup of host1 done: (\d+) files, (\d+) bytes in [\d.]+ s$/m;

// The client's --json result (the last line of stdout).
function json(result: RunResult): Record<string, unknown> {
  const line = result.stdout.trim().split('\n').at(-1) ?? '';
  try {
    return JSON.parse(line) as Record<string, unknown>;
  } catch {
    assert.fail(`no JSON result on stdout (exit ${result.code}):\nstdout: ${result.stdout}\nstderr: ${result.stderr}`);
  }
}

// Runs the client as host1 (the name the key's forced command gives).
function backup(server: BackupServer, path: string, args: string[] = [], timeoutMs = 60_000): Promise<RunResult> {
  return server.backup(path, ['-n', NAME, ...args], { timeoutMs });
}

// Asserts exit 0, with everything the client said in the message otherwise.
function assertSuccess(result: RunResult, what = 'backup'): void {
  assert.equal(result.code, 0, `${what} failed (exit ${result.code}):\n${result.stderr}${result.stdout}`);
}

// The mode the receiver used, from `ssh-r-sync --debug`'s "receiver accepted host1 (MODE)".
function acceptedMode(result: RunResult): string | undefined {
  return /receiver accepted host1 \(([\w-]+)\)/.exec(result.stderr)?.[1];
}

function assertSameTree(diffs: string[], what: string): void {
  assert.deepEqual(diffs, [], `${what} differs from the source:\n  ${diffs.join('\n  ')}`);
}

const hex = (text: string) => Buffer.from(text).toString('hex');

async function freshDir(path: string): Promise<string> {
  await rm(path, { recursive: true, force: true });
  await mkdir(path, { recursive: true });
  return path;
}

// A TCP port on 127.0.0.1 that nothing listens on (a moment ago).
function closedPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer().once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

// Samples the command lines of this test's process tree (the sshd, both sides' node processes, ssh,
// rsync and hook scripts all descend from it) until stopped; returns those of ssh/rsync processes that
// hold a long hex string (the session key and the rsync secret are 64 hex digits). Other processes on
// the machine are none of this test's business: a CI runner's own command lines hold hex too.
function watchArgvForSecrets(): () => { leaks: string[]; rsyncSeen: number } {
  const found = new Set<string>();
  let rsyncSeen = 0;
  const sample = () => {
    for (const { cmdline } of descendants(process.pid)) {
      if (/^\S*rsync /.test(cmdline)) rsyncSeen += 1;
      if (/rsync|ssh|tunnel/.test(cmdline) && /[0-9a-f]{32,}/i.test(cmdline)) found.add(cmdline.slice(0, 300));
    }
  };
  const timer = setInterval(sample, 50);
  return () => {
    clearInterval(timer);
    return { leaks: [...found], rsyncSeen };
  };
}

describe('reverse-tunnel backups end to end', { concurrency: true }, () => {
  describe('privileged receiver: a full mirror', { concurrency: 1 }, () => {
    let server: BackupServer;
    let tmp: { dir: string; cleanup: () => Promise<void> };
    let src: string;
    let dest: string;
    let info: TreeInfo;

    before(async () => {
      tmp = await tempDir('srs-e2e-full-');
      src = await freshDir(join(tmp.dir, 'src'));
      info = await buildTree(src);
      server = await startBackupServer();
      dest = join(server.root, NAME);
    });
    after(async () => {
      await server?.stop();
      await tmp?.cleanup();
    });

    test('the first backup makes BACKUP_ROOT/host1 identical to the source', async () => {
      const result = await backup(server, src, ['--json']);
      assertSuccess(result);
      const done = DONE_LINE.exec(result.stderr);
      assert.ok(done, `no "backup of host1 done: N files, …" line on stderr:\n${result.stderr}`);
      const out = json(result);
      assert.equal(out.status, 'success');
      assert.equal(out.rsyncExitCode, 0);
      assert.equal(out.name, NAME);
      assert.ok(typeof out.files === 'number' && out.files > 0, `files: ${out.files}`);
      assert.equal(Number(done[1]), out.files, 'the printed count is the reported one');
      // The top directory itself is the receiver's (0700, root: test/privacy.test.ts), not the client's.
      assertSameTree(await compareTrees(src, dest, { top: false }), 'the backup');

      // The things a compare of attributes would not show on its own.
      const sparse = await stat(join(dest, 'sparse.img'));
      assert.equal(sparse.size, SPARSE_SIZE);
      assert.ok(sparse.blocks * 512 < 1024 * 1024, `sparse.img copy uses ${sparse.blocks * 512} bytes on disk: holes were filled`);
      const [a, b] = [await stat(join(dest, 'hard-a')), await stat(join(dest, 'dir', 'hard-b'))];
      assert.equal(a.ino, b.ino, 'hard-a and dir/hard-b share an inode in the backup');
      assert.equal(lstatSync(Buffer.concat([Buffer.from(`${dest}/`), NON_UTF8_NAME])).size, 'not utf-8\n'.length);
      const owned = await stat(join(dest, 'owned'));
      assert.deepEqual([owned.uid, owned.gid], [OTHER_UID, OTHER_GID]);
      assert.equal((await stat(join(dest, 'setuid'))).mode & 0o7777, 0o4755);
      assert.ok(lstatSync(join(dest, 'fifo')).isFIFO(), 'fifo is a FIFO');
      if (info.device) assert.ok(lstatSync(join(dest, 'chardev')).isCharacterDevice(), 'chardev is a character device');
    });

    test('xattrs and ACLs are kept', async (t) => {
      if (!info.xattrs || !info.acl) return t.skip(`cannot set xattrs/ACLs here: ${info.missing.join('; ')}`);
      const attrs = readXattrs(dest);
      if (!attrs) return t.skip('no python3 to read xattrs (getfattr/getfacl are not installed either)');
      assert.equal(attrs.get(hex('xattr-file'))?.['user.test'], hex('hello'));
      assert.ok(attrs.get(hex('acl-file'))?.['system.posix_acl_access'], 'acl-file has its ACL');
      assertSameTree(await compareTrees(src, dest, { xattrs: true, top: false }), 'the backup (with xattrs and ACLs)');
    });

    test('a second run transfers nothing; then only the changed file; a deleted file goes', async () => {
      const unchanged = await backup(server, src, ['--json']);
      assertSuccess(unchanged, 'the unchanged run');
      assert.equal(json(unchanged).files, 0, `an unchanged tree transferred files:\n${unchanged.stderr}`);

      await writeFile(join(src, 'small.txt'), 'changed content, longer than before\n');
      await unlink(join(src, 'medium.bin'));
      const changed = await backup(server, src, ['--json']);
      assertSuccess(changed, 'the run after a change');
      assert.equal(json(changed).files, 1, `one changed file, but: ${changed.stdout}`);
      assert.equal(await readFile(join(dest, 'small.txt'), 'utf8'), 'changed content, longer than before\n');
      await assert.rejects(stat(join(dest, 'medium.bin')), { code: 'ENOENT' }, 'medium.bin was deleted from the source');
      assertSameTree(await compareTrees(src, dest, { top: false }), 'the backup after a change');
    });
  });

  describe('fake-super and who decides the mode', { concurrency: 1 }, () => {
    let server: BackupServer;
    let tmp: { dir: string; cleanup: () => Promise<void> };
    let src: string;
    let dest: string;
    let info: TreeInfo;

    before(async () => {
      tmp = await tempDir('srs-e2e-fake-');
      src = await freshDir(join(tmp.dir, 'src'));
      info = await buildTree(src);
      server = await startBackupServer({ recvArgs: ['--name', NAME, '--mode', 'fake-super'] });
      dest = join(server.root, NAME);
    });
    after(async () => {
      await server?.stop();
      await tmp?.cleanup();
    });

    test('a fake-super receiver stores files as root and keeps owner, mode and devices in xattrs', async () => {
      const result = await backup(server, src, ['--debug']);
      assertSuccess(result);
      assert.equal(acceptedMode(result), 'fake-super');
      for (const [key, entry] of await walkTree(dest)) {
        assert.equal(entry.fields.owner, '0:0', `${showName(Buffer.from(key, 'hex'))} is owned by ${entry.fields.owner} on the receiver`);
      }
      assert.equal(lstatSync(join(dest, 'setuid')).mode & 0o4000, 0, 'no real setuid file on the receiver');
      if (info.device) assert.ok(lstatSync(join(dest, 'chardev')).isFile(), 'no real device on the receiver');

      const attrs = readXattrs(dest);
      if (attrs) {
        const statOf = (name: string) => Buffer.from(attrs.get(hex(name))?.['user.rsync.%stat'] ?? '', 'hex').toString();
        assert.equal(statOf('owned'), `100644 0,0 ${OTHER_UID}:${OTHER_GID}`);
        assert.equal(statOf('setuid'), '104755 0,0 0:0');
        if (info.device) assert.equal(statOf('chardev'), '20644 1,3 0:0');
      }

      // Proof that everything is kept: restore with rsync reading the fake-super xattrs
      // (--fake-super on a local copy acts on both sides; -M--super makes the writing side real root).
      const restored = await freshDir(join(tmp.dir, 'restored'));
      execFileSync('rsync', ['-aHAXS', '--numeric-ids', '--fake-super', '-M--super', `${dest}/`, `${restored}/`]);
      const xattrs = Boolean(info.xattrs && info.acl && readXattrs(restored));
      assertSameTree(await compareTrees(src, restored, { xattrs, top: false }), `the tree restored from a fake-super backup${xattrs ? ' (with xattrs and ACLs)' : ''}`);
    });

    test('a client asking -X lowers a privileged receiver to fake-super', async () => {
      await server.setRecvArgs(['--name', NAME]);
      await rm(dest, { recursive: true, force: true });
      const result = await backup(server, src, ['-X', '--debug']);
      assertSuccess(result);
      assert.equal(acceptedMode(result), 'fake-super');
      const owned = lstatSync(join(dest, 'owned'));
      assert.deepEqual([owned.uid, owned.gid], [0, 0], 'owned is stored as root, not as 1234:5678');
      const attrs = readXattrs(dest);
      if (attrs) assert.ok(attrs.get(hex('owned'))?.['user.rsync.%stat'], 'owned has its user.rsync.%stat xattr');

      const plainRequest = await backup(server, src, ['--debug']);
      assertSuccess(plainRequest);
      assert.equal(acceptedMode(plainRequest), 'privileged', 'without -X the receiver keeps its own privileged mode');
    });

    test('a client cannot raise a plain or fake-super receiver to privileged', async () => {
      for (const mode of ['plain', 'fake-super']) {
        await server.setRecvArgs(['--name', NAME, '--mode', mode]);
        await rm(dest, { recursive: true, force: true });
        for (const args of [[], ['-X']]) {
          const result = await backup(server, src, ['--debug', ...args]);
          assertSuccess(result, `backup to a ${mode} receiver with [${args.join(' ')}]`);
          assert.equal(acceptedMode(result), mode, `${mode} receiver, client [${args.join(' ')}]`);
        }
        for (const [key, entry] of await walkTree(dest)) {
          const name = showName(Buffer.from(key, 'hex'));
          assert.equal(entry.fields.owner, '0:0', `${mode}: ${name} owned by ${entry.fields.owner}`);
          if (entry.type !== 'symlink') assert.equal(Number.parseInt(entry.fields.mode!, 8) & 0o6000, 0, `${mode}: ${name} is set-id on disk (${entry.fields.mode})`);
          assert.ok(entry.type !== 'chardev', `${mode}: ${name} is a real device`);
        }
      }
    });
  });

  describe('filter rules are the client daemon\'s', { concurrency: 1 }, () => {
    let server: BackupServer;
    let tmp: { dir: string; cleanup: () => Promise<void> };
    let src: string;
    let dest: string;
    let filterFile: string;

    before(async () => {
      tmp = await tempDir('srs-e2e-filter-');
      src = await freshDir(join(tmp.dir, 'src'));
      for (const file of ['keep.txt', 'a.tmp', 'sub/b.tmp', 'secret/s.txt', 'sub/secret/kept.txt', 'sub/skipme', 'sub/deeper/skipme', 'skipme']) {
        await mkdir(join(src, file, '..'), { recursive: true });
        await writeFile(join(src, file), `${file}\n`);
      }
      await writeFile(join(src, 'sub', '.rsync-filter'), '- skipme\n');
      filterFile = join(tmp.dir, 'filter');
      await writeFile(filterFile, '- *.tmp\n- /secret/\n');
      server = await startBackupServer();
      dest = join(server.root, NAME);
    });
    after(async () => {
      await server?.stop();
      await tmp?.cleanup();
    });

    const expectFiltered = async () => {
      const has = async (name: string) => stat(join(dest, name)).then(() => true, () => false);
      const present = { 'keep.txt': true, 'sub/secret/kept.txt': true, skipme: true, 'a.tmp': false, 'sub/b.tmp': false, secret: false, 'sub/skipme': false, 'sub/deeper/skipme': false };
      const actual = Object.fromEntries(await Promise.all(Object.keys(present).map(async (name) => [name, await has(name)] as const)));
      assert.deepEqual(actual, present, 'which files reached the backup');
    };

    test('-f FILE and -d .rsync-filter keep excluded files out', async () => {
      const result = await backup(server, src, ['-f', filterFile, '-d', '.rsync-filter']);
      assertSuccess(result);
      await expectFiltered();
    });

    test('a receiver that replaces every rsync option still gets no excluded file', async () => {
      const pre = await writeScript(tmp.dir, 'replace-all.sh', "printf '\\0-a\\0--include=*.tmp\\0--include=/secret/***\\0--include=skipme\\0'\n");
      await server.setRecvArgs(['--name', NAME, '-x', `rsync.pre:${pre}`, '--debug']);
      await rm(dest, { recursive: true, force: true });
      const result = await backup(server, src, ['-f', filterFile, '-d', '.rsync-filter']);
      assertSuccess(result);
      await expectFiltered();
    });
  });

  describe('-x/--one-file-system', { concurrency: 1 }, () => {
    let server: BackupServer;
    let tmp: { dir: string; cleanup: () => Promise<void> };
    let src: string;
    let dest: string;
    let mountError: string | undefined;
    let mounted = false;

    before(async () => {
      tmp = await tempDir('srs-e2e-xdev-');
      src = await freshDir(join(tmp.dir, 'src'));
      await writeFile(join(src, 'here.txt'), 'on the source filesystem\n');
      await mkdir(join(src, 'mnt'));
      try {
        execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'none', join(src, 'mnt')], { stdio: 'pipe' });
        mounted = true;
        await writeFile(join(src, 'mnt', 'inside.txt'), 'on another filesystem\n');
      } catch (error) {
        mountError = String((error as { stderr?: Buffer }).stderr ?? error).trim();
      }
      server = await startBackupServer();
      dest = join(server.root, NAME);
    });
    after(async () => {
      if (mounted) execFileSync('umount', ['-l', join(src, 'mnt')]);
      await server?.stop();
      await tmp?.cleanup();
    });

    test('with -x a mounted filesystem stays out; without it comes along', async (t) => {
      if (!mounted) return t.skip(`cannot mount a tmpfs here: ${mountError}`);
      const withX = await backup(server, src, ['-x']);
      assertSuccess(withX, 'backup with -x');
      assert.equal(await readFile(join(dest, 'here.txt'), 'utf8'), 'on the source filesystem\n');
      await assert.rejects(stat(join(dest, 'mnt', 'inside.txt')), { code: 'ENOENT' }, 'with -x, mnt/inside.txt must not be backed up');

      await rm(dest, { recursive: true, force: true });
      const withoutX = await backup(server, src);
      assertSuccess(withoutX, 'backup without -x');
      assert.equal(await readFile(join(dest, 'mnt', 'inside.txt'), 'utf8'), 'on another filesystem\n');
    });
  });

  describe('hook scripts through a real run', { concurrency: 1 }, () => {
    let server: BackupServer;
    let tmp: { dir: string; cleanup: () => Promise<void> };
    let src: string;
    const points = ['connect', 'handshake', 'rsync.pre', 'rsync.post', 'done'];

    before(async () => {
      tmp = await tempDir('srs-e2e-hooks-');
      src = await freshDir(join(tmp.dir, 'src'));
      await writeFile(join(src, 'a.txt'), 'alpha\n');
      const args = ['--name', NAME];
      for (const point of points) {
        const out = join(tmp.dir, point);
        // Chatter on stdout (where the point logs it) and stderr must not disturb the protocol channel.
        const noise = ['connect', 'handshake', 'done'].includes(point) ? `echo '${point} says hello on stdout'\n` : '';
        const script = await writeScript(
          tmp.dir,
          `${point}.sh`,
          `printf '%s\\n' "$@" > '${out}.argv'\ncat > '${out}.stdin'\nenv > '${out}.env'\n${noise}echo '${point} says hello on stderr' >&2\n`,
        );
        args.push('-x', `${point}:${script}`);
      }
      server = await startBackupServer({ recvArgs: args });
    });
    after(async () => {
      await server?.stop();
      await tmp?.cleanup();
    });

    test('every point gets its argv, and nothing a hook sees holds the session key or rsync secret', async () => {
      const result = await backup(server, src);
      assertSuccess(result);
      const root = server.root;
      const dir = join(root, NAME);
      const argv = async (point: string) => (await readFile(join(tmp.dir, `${point}.argv`), 'utf8')).trimEnd().split('\n');
      assert.deepEqual(await argv('connect'), [root]);
      assert.deepEqual(await argv('handshake'), [root, dir, NAME]);
      assert.deepEqual(await argv('rsync.pre'), [root, dir, NAME, '1']);
      assert.deepEqual(await argv('rsync.post'), [root, dir, NAME, '0']);
      assert.deepEqual(await argv('done'), [root, dir, NAME, 'success']);

      const leaks: string[] = [];
      for (const point of points) {
        const env = await readFile(join(tmp.dir, `${point}.env`), 'utf8');
        assert.match(env, new RegExp(`^SSH_R_SYNC_POINT=${point.replace('.', '\\.')}$`, 'm'));
        for (const kind of ['env', 'stdin', 'argv']) {
          const text = await readFile(join(tmp.dir, `${point}.${kind}`), 'latin1');
          for (const line of text.split(/[\n\0]/)) if (/[0-9a-f]{32,}/i.test(line)) leaks.push(`${point} ${kind}: ${line.slice(0, 200)}`);
        }
      }
      assert.deepEqual(leaks, [], 'long hex strings (a key or secret?) reached a hook');
    });
  });

  describe('rsync.post maps a vanished file (24) to success', { concurrency: 1 }, () => {
    let server: BackupServer;
    let tmp: { dir: string; cleanup: () => Promise<void> };
    let runs = 0;

    before(async () => {
      tmp = await tempDir('srs-e2e-vanish-');
      server = await startBackupServer();
    });
    after(async () => {
      await server?.stop();
      await tmp?.cleanup();
    });

    // A source where z-vanish disappears while a-big is on its way: the rsync.pre hook slows the
    // transfer down and, in a new session, deletes z-vanish once a-big's temp file shows up in DIR.
    async function vanishingRun(mapping: boolean): Promise<{ result: RunResult; seen: string; argv: { leaks: string[]; rsyncSeen: number } }> {
      runs += 1;
      const src = await freshDir(join(tmp.dir, `src${runs}`));
      await writeFile(join(src, 'a-big'), pseudoRandom(300 * 1024, `big${runs}`));
      await writeFile(join(src, 'z-vanish'), 'gone soon\n');
      const vanish = join(src, 'z-vanish');
      const pre = await writeScript(
        tmp.dir,
        `pre${runs}.sh`,
        `printf '%s\\0' --bwlimit=100\n` +
          `setsid sh -c 'i=0; while [ $i -lt 400 ] && ! ls -A "$1" | grep -q "^\\.a-big\\."; do i=$((i+1)); sleep 0.05; done; rm -f "$2"' sh "$2" '${vanish}' </dev/null >/dev/null 2>&1 &\n`,
      );
      const seen = join(tmp.dir, `post${runs}.code`);
      const post = await writeScript(tmp.dir, `post${runs}.sh`, `cat >/dev/null\necho "$4" > '${seen}'\nif [ "$4" = 24 ]; then echo 0; fi\n`);
      const args = ['--name', NAME, '-x', `rsync.pre:${pre}`];
      if (mapping) args.push('-x', `rsync.done:${post}`);
      await server.setRecvArgs(args);
      await rm(join(server.root, NAME), { recursive: true, force: true });
      const stopWatching = watchArgvForSecrets();
      const result = await backup(server, src, ['--json']);
      return { result, seen: mapping ? (await readFile(seen, 'utf8')).trim() : '', argv: stopWatching() };
    }

    test('with the mapping the client exits 0', async () => {
      const { result, seen, argv } = await vanishingRun(true);
      assert.equal(seen, '24', `rsync.done saw exit code ${seen}: z-vanish did not vanish mid-transfer (test set-up)`);
      assertSuccess(result, 'the mapped run');
      assert.equal(json(result).rsyncExitCode, 0);
      // The transfer took seconds: long enough to see every process of both sides.
      assert.ok(argv.rsyncSeen > 0, 'the watch saw no rsync process: it watched the wrong tree');
      assert.deepEqual(argv.leaks, [], 'a key or secret in a command line during the transfer');
    });

    test('without the mapping the client exits 1 and names rsync exit code 24', async () => {
      const { result } = await vanishingRun(false);
      assert.equal(result.code, 1, result.stderr);
      assert.match(result.stderr, /^ssh-r-sync: error: .*\(rsync exit 24\)$/m);
      assert.equal(json(result).rsyncExitCode, 24);
    });
  });

  describe("the client's exit code and message on failure", { concurrency: 1 }, () => {
    let server: BackupServer;
    let tmp: { dir: string; cleanup: () => Promise<void> };
    let src: string;

    before(async () => {
      tmp = await tempDir('srs-e2e-fail-');
      src = await freshDir(join(tmp.dir, 'src'));
      await writeFile(join(src, 'a.txt'), 'alpha\n');
      server = await startBackupServer();
    });
    after(async () => {
      await server?.stop();
      await tmp?.cleanup();
    });

    test('a handshake hook that exits 3 fails the backup: exit 1, the point, script and code named', async () => {
      const script = await writeScript(tmp.dir, 'fail3.sh', 'exit 3\n');
      await server.setRecvArgs(['--name', NAME, '-x', `handshake:${script}`]);
      const result = await backup(server, src);
      assert.equal(result.code, 1, result.stderr);
      assert.ok(
        result.stderr.includes(`ssh-r-sync: error: handshake hook "${script}" failed: exited with code 3`),
        `stderr does not name the hook failure:\n${result.stderr}`,
      );
    });

    test('an rsync.pre hook that exits 75 skips: exit 75, "skipped:"', async () => {
      const script = await writeScript(tmp.dir, 'not-now.sh', 'cat >/dev/null\nexit 75\n');
      await server.setRecvArgs(['--name', NAME, '-x', `rsync.pre:${script}`]);
      const result = await backup(server, src);
      assert.equal(result.code, 75, result.stderr);
      assert.match(result.stderr, /^ssh-r-sync: skipped: /m);
    });

    test('a wrong port: exit 1 and one line saying ssh failed', async () => {
      const result = await backup(server, src, ['-p', String(await closedPort())]);
      assert.equal(result.code, 1, result.stderr);
      const lines = result.stderr.split('\n').filter((line) => line.trim() !== '');
      assert.equal(lines.length, 1, `expected one line on stderr, got:\n${result.stderr}`);
      assert.match(lines[0]!, /^ssh-r-sync: error: ssh failed \(exit 255\)/);
    });

    test('a PATH that does not exist is a usage error: exit 2', async () => {
      const missing = join(tmp.dir, 'no-such-dir');
      const result = await backup(server, missing);
      assert.equal(result.code, 2, result.stderr);
      assert.match(result.stderr, new RegExp(`^ssh-r-sync: error: .*${missing.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}`, 'm'));
    });
  });
});
