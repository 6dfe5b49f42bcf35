// `ssh-r-sync-admin verify` on real backups (ssh-r-sync-recv --local with the link-dest and
// manifest plugins), in privileged and fake-super mode: a clean backup verifies and `status`
// shows it; what changed on disk since (one byte with size and mtime kept, a removed or extra
// file, a mode, a retargeted symlink, a fake-super %stat) is found and named on one line each,
// hostile names included; a planted fifo does not hang --data; the result is kept in verify.json.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { closeSync, openSync, readFileSync, readlinkSync, writeSync } from 'node:fs';
import { chmod, chown, mkdir, readFile, rm, symlink, unlink, writeFile } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { repoRoot, runNode, runRecv, tempDir, type RunResult } from './helpers/cli.js';

const adminBin = join(repoRoot, 'packages/cli/bin/ssh-r-sync-admin.js');
const admin = (args: string[]) => runNode(adminBin, args);
const LINK_DEST = '@ssh-r-sync/plugin-link-dest';
const MANIFEST = '@ssh-r-sync/plugin-manifest';
const NON_UTF8 = Buffer.from([0x66, 0xff, 0x6f]); // "f\xffo"
const MODES = ['privileged', 'fake-super'] as const;
type Mode = (typeof MODES)[number];

let tmp: { dir: string; cleanup: () => Promise<void> };
let count = 0;
before(async () => {
  tmp = await tempDir('srs-verify-');
});
after(() => tmp?.cleanup());

interface Fixture {
  src: string;
  root: string;
  host: string;
  mode: Mode;
}

// A source with the shapes a verify must get right: other owners, setuid, a symlink, a fifo,
// names with a newline and with a byte that is not UTF-8, a nested directory.
async function fixture(mode: Mode): Promise<Fixture> {
  count += 1;
  const base = join(tmp.dir, `f${count}`);
  const src = join(base, 'src');
  const root = join(base, 'root');
  await mkdir(join(src, 'sub', 'deeper'), { recursive: true });
  await mkdir(root, { mode: 0o700 }); // a privileged receiver refuses a ROOT others can read
  await writeFile(join(src, 'a.txt'), 'the quick brown fox\n');
  await writeFile(join(src, 'sub', 'deeper', 'nested.txt'), 'nested\n');
  await writeFile(join(src, 'line\nbreak'), 'newline in the name\n');
  await writeFile(Buffer.concat([Buffer.from(`${src}/`), NON_UTF8]), 'not utf-8\n');
  await writeFile(join(src, 'setuid'), '#!/bin/sh\n', { mode: 0o4755 });
  await writeFile(join(src, 'owned'), 'someone else\n');
  await chown(join(src, 'owned'), 1234, 5678);
  await symlink('a.txt', join(src, 'link'));
  execFileSync('mkfifo', ['-m', '640', join(src, 'fifo')]);
  return { src, root, host: `vfy${String(count).padStart(3, '0')}`, mode };
}

// One backup of the fixture; returns the new snapshot's tree.
async function backup(f: Fixture): Promise<string> {
  const run = await runRecv(['--local', f.src, '--name', f.host, '--mode', f.mode, '--plugin', LINK_DEST, '--plugin', MANIFEST, f.root], { cwd: repoRoot });
  assert.equal(run.code, 0, `the backup failed: ${run.stderr}`);
  return join(f.root, f.host, readlinkSync(join(f.root, f.host, 'latest')));
}

function verifyRecord(tree: string): { ok: boolean; problems: number; data: boolean; sample: number | null; checked: number; read: { files: number; bytes: number }; first: string[] } {
  return JSON.parse(readFileSync(`${tree}.meta/verify.json`, 'utf8'));
}

// The problem lines of a text run (everything on stdout but the summary lines).
function problemLines(run: RunResult): string[] {
  return run.stdout.split('\n').filter((line) => line && !/^\S+ \S+: (ok|\d+ problems?): \d+ entries checked/.test(line));
}

// Writes `bytes` into `file` at `offset` without changing its size, then restores its mtime
// to the nanosecond (touch -r keeps it exactly; utimes from JS numbers would not).
function patchInPlace(file: string, offset: number, bytes: Buffer): void {
  const reference = join(tmp.dir, `mtime-ref-${++count}`); // outside the tree: its directory's mtime stays
  execFileSync('touch', ['-r', file, reference]);
  const fd = openSync(file, 'r+');
  try {
    writeSync(fd, bytes, 0, bytes.length, offset);
  } finally {
    closeSync(fd);
  }
  execFileSync('touch', ['-m', '-r', reference, file]);
  execFileSync('rm', [reference]);
}

// Runs `change` inside `dir` and puts the directory's mtime back (to the nanosecond), so that a
// test sees only the problem it made, not also "the directory's mtime changed".
async function keepingMtime(dir: string, change: () => Promise<void> | void): Promise<void> {
  const reference = join(tmp.dir, `mtime-ref-${++count}`);
  execFileSync('touch', ['-r', dir, reference]);
  await change();
  execFileSync('touch', ['-m', '-r', reference, dir]);
  await rm(reference);
}

for (const mode of MODES) {
  describe(`verify, ${mode} mode`, { concurrency: 1 }, () => {
    test('a clean backup verifies (exit 0), verify.json says so, and status shows it', async () => {
      const f = await fixture(mode);
      const tree = await backup(f);
      const id = tree.slice(tree.lastIndexOf('/') + 1);
      const plain = await admin(['verify', f.root]);
      assert.equal(plain.code, 0, plain.stdout + plain.stderr);
      assert.match(plain.stdout, new RegExp(`^${f.host} ${id}: ok: \\d+ entries checked, metadata only\\n$`));
      assert.equal(plain.stderr, '');
      const record = verifyRecord(tree);
      assert.deepEqual({ ok: record.ok, problems: record.problems, data: record.data, sample: record.sample, first: record.first }, { ok: true, problems: 0, data: false, sample: null, first: [] });
      assert.equal(record.checked, 11, 'the top, sub, sub/deeper and eight entries');

      const data = await admin(['verify', '--data', f.root, f.host]);
      assert.equal(data.code, 0, data.stdout + data.stderr);
      assert.match(data.stdout, /: ok: 11 entries checked, 6 of 6 regular files reread \(\d+ bytes\)\n$/);
      assert.equal(verifyRecord(tree).data, true);

      const status = await admin(['status', f.root, f.host]);
      assert.equal(status.code, 0, status.stderr);
      assert.match(status.stdout, /LAST VERIFY\n/);
      assert.match(status.stdout, new RegExp(`^${f.host} .* \\d{4}-\\d{2}-\\d{2}T\\d{2}:\\d{2}:\\d{2}Z data ok\\n`, 'm'));
      const json = JSON.parse((await admin(['status', '--json', f.root, f.host])).stdout) as { hosts: { lastVerify: { ok: boolean; data: boolean; problems: number } | null }[] };
      assert.deepEqual({ ...json.hosts[0]!.lastVerify, at: undefined, checked: undefined }, { at: undefined, checked: undefined, ok: true, data: true, sample: null, problems: 0 });
    });

    test('one byte changed with size and mtime kept: found and named by --data (exit 1), not by plain verify', async () => {
      const f = await fixture(mode);
      const tree = await backup(f);
      patchInPlace(join(tree, 'sub', 'deeper', 'nested.txt'), 0, Buffer.from('N'));
      const plain = await admin(['verify', f.root, f.host]);
      assert.equal(plain.code, 0, `metadata alone cannot see it: ${plain.stdout}`);
      const data = await admin(['verify', '--data', f.root, f.host]);
      assert.equal(data.code, 1, data.stdout + data.stderr);
      const expected = createHash('sha256').update('Nested\n').digest('hex').slice(0, 16);
      assert.deepEqual(problemLines(data), [`${f.host} ${tree.slice(-18)}: sub/deeper/nested.txt: content differs (sha256 ${expected}…, manifest ${createHash('sha256').update('nested\n').digest('hex').slice(0, 16)}…)`]);
      assert.match(data.stdout, /: 1 problem: 11 entries checked, 6 of 6 regular files reread/);
      const record = verifyRecord(tree);
      assert.equal(record.ok, false);
      assert.equal(record.problems, 1);
      assert.deepEqual(record.first, problemLines(data));
      const status = await admin(['status', f.root, f.host]);
      assert.match(status.stdout, / data 1 problem\n/);
      assert.match(status.stderr, /warning: the last verify of .* found 1 problem:/);
    });

    test('a removed file, a changed mode, an extra file and a retargeted symlink are each found and named', async () => {
      const f = await fixture(mode);
      const tree = await backup(f);
      const id = tree.slice(-18);
      await keepingMtime(tree, () => unlink(join(tree, 'a.txt')));
      const removed = await admin(['verify', f.root, f.host]);
      assert.equal(removed.code, 1);
      assert.deepEqual(problemLines(removed), [`${f.host} ${id}: a.txt: missing: the manifest lists a regular file`]);

      await chmod(join(tree, 'sub', 'deeper', 'nested.txt'), 0o600);
      await writeFile(join(tree, 'sub', 'planted'), 'not from the client\n');
      await keepingMtime(tree, async () => {
        if (mode === 'fake-super') {
          // rsync keeps a symlink as a regular file holding its target: rewriting it retargets the link.
          execFileSync('sh', ['-c', 'printf %s "$1" > "$2"', 'sh', 'elsewhere', join(tree, 'link')]);
        } else {
          await unlink(join(tree, 'link'));
          await symlink('elsewhere', join(tree, 'link'));
        }
      });
      const changed = await admin(['verify', f.root, f.host]);
      assert.equal(changed.code, 1);
      const lines = problemLines(changed);
      assert.equal(lines.length, 5, lines.join('\n'));
      assert.equal(lines[0], `${f.host} ${id}: a.txt: missing: the manifest lists a regular file`);
      assert.match(lines[1]!, new RegExp(`^${f.host} ${id}: link: .*link target elsewhere \\(manifest a\\.txt\\)`));
      assert.match(lines[2]!, new RegExp(`^${f.host} ${id}: sub: mtime `), 'the directory that got a new entry');
      assert.equal(lines[3], `${f.host} ${id}: sub/deeper/nested.txt: mode 600 (manifest 644)`);
      assert.equal(lines[4], `${f.host} ${id}: sub/planted: extra: a regular file the manifest does not list`);
      assert.match(changed.stdout, /: 5 problems: 12 entries checked, metadata only\n$/);
    });

    test('hostile names (a newline, a byte that is not UTF-8) print escaped, one line each', async () => {
      const f = await fixture(mode);
      const tree = await backup(f);
      await keepingMtime(tree, async () => {
        await unlink(join(tree, 'line\nbreak'));
        await unlink(Buffer.concat([Buffer.from(`${tree}/`), NON_UTF8]));
      });
      const run = await admin(['verify', f.root, f.host]);
      assert.equal(run.code, 1);
      assert.deepEqual(problemLines(run), [
        `${f.host} ${tree.slice(-18)}: f\\xffo: missing: the manifest lists a regular file`,
        `${f.host} ${tree.slice(-18)}: line\\nbreak: missing: the manifest lists a regular file`,
      ]);
      assert.equal(run.stdout.split('\n').length, 4, 'two problems, a summary, the final newline');
    });

    test('a fifo planted where the manifest has a regular file: --data names it and does not hang', async () => {
      const f = await fixture(mode);
      const tree = await backup(f);
      await keepingMtime(tree, async () => {
        await unlink(join(tree, 'a.txt'));
        execFileSync('mkfifo', [join(tree, 'a.txt')]);
      });
      const run = await runNode(adminBin, ['verify', '--data', f.root, f.host], { timeoutMs: 30_000 });
      assert.equal(run.signal, null, 'verify --data hung on the fifo');
      assert.equal(run.code, 1, run.stdout + run.stderr);
      assert.match(problemLines(run)[0]!, /: a\.txt: a fifo on disk, the manifest lists a regular file/);
    });

    test('--sample 100 rereads every file; --sample and --data refuse bad values (exit 2, one line)', async () => {
      const f = await fixture(mode);
      const tree = await backup(f);
      const run = await admin(['verify', '--sample', '100', '--json', f.root, f.host]);
      assert.equal(run.code, 0, run.stdout + run.stderr);
      const doc = JSON.parse(run.stdout) as { ok: boolean; sample: number; snapshots: { regularFiles: number; read: { files: number; bytes: number } }[] };
      assert.equal(doc.ok, true);
      assert.equal(doc.sample, 100);
      assert.equal(doc.snapshots[0]!.regularFiles, 6);
      assert.equal(doc.snapshots[0]!.read.files, 6);
      assert.ok(doc.snapshots[0]!.read.bytes > 0);
      assert.equal(verifyRecord(tree).sample, 100);
      const text = await admin(['verify', '--sample', '100', f.root, f.host]);
      assert.match(text.stdout, /: ok: 11 entries checked, sample 100%: 6 of 6 regular files reread \(\d+ bytes\)\n$/);
      for (const args of [['--sample', '0'], ['--sample', '101'], ['--sample', 'lots'], ['--sample', '-5'], ['--data', '--sample', '5'], ['--snapshot', '2026-01-01T000000Z']]) {
        const bad = await admin(['verify', ...args, f.root]);
        assert.equal(bad.code, 2, `${args.join(' ')}: ${bad.stderr}`);
        assert.equal(bad.stdout, '');
        assert.equal(bad.stderr.trimEnd().split('\n').length, 1, bad.stderr);
        assert.match(bad.stderr, /^ssh-r-sync-admin: error: /);
      }
    });
  });
}

describe('verify, fake-super mode: the client\'s metadata lives in user.rsync.%stat', () => {
  test('a %stat changed with setfattr (mode and owner) or not rsync\'s is found and named', async () => {
    const f = await fixture('fake-super');
    const tree = await backup(f);
    const stat = execFileSync('getfattr', ['--only-values', '-n', 'user.rsync.%stat', join(tree, 'owned')], { encoding: 'latin1' });
    assert.match(stat, /^100644 0,0 1234:5678$/, 'rsync recorded the client\'s owner');
    execFileSync('setfattr', ['-n', 'user.rsync.%stat', '-v', '100600 0,0 0:0', join(tree, 'owned')]);
    // A %stat that is not rsync's, on a file whose name holds a newline: named, on one line.
    execFileSync('setfattr', ['-n', 'user.rsync.%stat', '-v', 'bogus\u2028', join(tree, 'line\nbreak')]);
    const run = await admin(['verify', f.root, f.host]);
    assert.equal(run.code, 1, run.stdout);
    assert.deepEqual(problemLines(run), [
      `${f.host} ${tree.slice(-18)}: line\\nbreak: cannot read it on disk: corrupt user.rsync.%stat "bogus\\u2028"`,
      `${f.host} ${tree.slice(-18)}: owned: mode 600 (manifest 644); owner 0:0 (manifest 1234:5678)`,
    ]);
  });
});

describe('verify across snapshots, hosts and manifest versions', () => {
  test('--snapshot all covers every complete snapshot, --snapshot ID one; without NAME every host', async () => {
    const f = await fixture('privileged');
    const first = await backup(f);
    await writeFile(join(f.src, 'a.txt'), 'version 2\n');
    const second = await backup(f);
    const other = { ...(await fixture('privileged')), root: f.root };
    await backup(other);
    await keepingMtime(first, () => unlink(join(first, 'setuid')));

    const latest = await admin(['verify', f.root]);
    assert.equal(latest.code, 0, 'the newest snapshot of each host is intact');
    assert.deepEqual(latest.stdout.split('\n').filter(Boolean).map((line) => line.split(':')[0]), [`${f.host} ${second.slice(-18)}`, `${other.host} ${readlinkSync(join(f.root, other.host, 'latest'))}`]);

    const all = await admin(['verify', '--snapshot', 'all', f.root, f.host]);
    assert.equal(all.code, 1);
    assert.deepEqual(problemLines(all), [`${f.host} ${first.slice(-18)}: setuid: missing: the manifest lists a regular file`]);
    assert.match(all.stdout, new RegExp(`^${f.host} ${first.slice(-18)}: 1 problem: `, 'm'));
    assert.match(all.stdout, new RegExp(`^${f.host} ${second.slice(-18)}: ok: `, 'm'));
    assert.equal(verifyRecord(first).ok, false);
    assert.equal(verifyRecord(second).ok, true);

    const one = await admin(['verify', '--snapshot', second.slice(-18), f.root, f.host]);
    assert.equal(one.code, 0, one.stdout);
    const none = await admin(['verify', '--snapshot', '2020-01-01T000000Z', f.root, f.host]);
    assert.equal(none.code, 2);
    assert.match(none.stderr, /has no complete snapshot 2020-01-01T000000Z \(complete ones: /);
  });

  test('a mirror host (no link-dest) is verified too; its record is in ROOT/.ssh-r-sync/mirror/NAME', async () => {
    const f = await fixture('privileged');
    const run = await runRecv(['--local', f.src, '--name', f.host, '--plugin', MANIFEST, f.root], { cwd: repoRoot });
    assert.equal(run.code, 0, run.stderr);
    const clean = await admin(['verify', '--data', f.root, f.host]);
    assert.equal(clean.code, 0, clean.stdout + clean.stderr);
    assert.match(clean.stdout, new RegExp(`^${f.host} mirror: ok: 11 entries checked, 6 of 6 regular files reread`));
    const record = JSON.parse(readFileSync(join(f.root, '.ssh-r-sync', 'mirror', f.host, 'verify.json'), 'utf8')) as { ok: boolean };
    assert.equal(record.ok, true);
    await keepingMtime(join(f.root, f.host), () => rm(join(f.root, f.host, 'sub'), { recursive: true }));
    const broken = await admin(['verify', f.root, f.host]);
    assert.equal(broken.code, 1);
    assert.deepEqual(problemLines(broken), [`${f.host} mirror: sub: missing: the manifest lists a directory with 2 entries in it`]);
  });

  test('a missing or torn manifest is one problem (exit 1); an old manifest without hashes is metadata only, said once', async () => {
    const f = await fixture('privileged');
    const tree = await backup(f);
    const manifest = `${tree}.meta/manifest.tsv`;
    const original = await readFile(manifest, 'latin1');

    // Version 2: the same lines without the sha256 and dev:ino columns, and a done mark that records that file.
    const v2 = original.split('\n').map((line, i) => (i === 0 ? line.replace('manifest/4', 'manifest/2').replace(/\tsha256\tdev:ino$/, '') : line.replace(/\t[^\t]*\t[^\t]*$/, ''))).join('\n');
    await writeFile(manifest, v2, 'latin1');
    const doneFile = `${tree}.meta/done.json`;
    const done = JSON.parse(await readFile(doneFile, 'utf8')) as { extra: { manifest: { sha256: string } } };
    const originalDone = JSON.stringify(done);
    done.extra.manifest.sha256 = createHash('sha256').update(Buffer.from(v2, 'latin1')).digest('hex');
    await writeFile(doneFile, JSON.stringify(done));
    const old = await admin(['verify', '--data', f.root, f.host]);
    assert.equal(old.code, 0, old.stdout + old.stderr);
    assert.equal(old.stderr, `ssh-r-sync-admin: ${f.host} ${tree.slice(-18)}: no content hashes in this manifest (version 2): metadata only\n`);
    assert.match(old.stdout, /: ok: 11 entries checked, metadata only \(manifest version 2\)\n$/);
    await writeFile(doneFile, originalDone);

    await writeFile(manifest, original.slice(0, -1), 'latin1'); // torn: no final newline
    done.extra.manifest.sha256 = createHash('sha256').update(Buffer.from(original.slice(0, -1), 'latin1')).digest('hex');
    await writeFile(doneFile, JSON.stringify(done));
    const torn = await admin(['verify', f.root, f.host]);
    assert.equal(torn.code, 1);
    assert.deepEqual(problemLines(torn).map((line) => line.replace(/ \(.*/, '')), [`${f.host} ${tree.slice(-18)}: the manifest cannot be read to its end: ${manifest}, line 12: the manifest does not end with a newline`]);

    await rm(manifest);
    const missing = await admin(['verify', f.root, f.host]);
    assert.equal(missing.code, 1);
    assert.deepEqual(problemLines(missing), [`${f.host} ${tree.slice(-18)}: no manifest (${manifest}): it was made without @ssh-r-sync/plugin-manifest, or removed; nothing to compare with`]);
    assert.equal(verifyRecord(tree).ok, false);
  });

  test('a manifest changed after the backup (its hash is not the done mark\'s) is a problem', async () => {
    const f = await fixture('privileged');
    const tree = await backup(f);
    await keepingMtime(tree, () => unlink(join(tree, 'setuid')));
    const manifest = `${tree}.meta/manifest.tsv`;
    const text = await readFile(manifest, 'latin1');
    await writeFile(manifest, text.split('\n').filter((line) => !line.startsWith('setuid\t')).join('\n'), 'latin1');
    const run = await admin(['verify', f.root, f.host]);
    assert.equal(run.code, 1);
    assert.deepEqual(problemLines(run).map((line) => line.replace(/ \(sha256.*/, '')), [`${f.host} ${tree.slice(-18)}: the manifest ${manifest} is not the one its done mark recorded`]);
  });

  test('SIGINT stops a verify --data mid-file (exit 130); its partial result is not recorded, the earlier one stands', async () => {
    const f = await fixture('privileged');
    const tree = await backup(f);
    assert.equal((await admin(['verify', f.root, f.host])).code, 0);
    const earlier = await readFile(`${tree}.meta/verify.json`, 'utf8');
    // A huge sparse file whose manifest line says so (the manifest then differs from the done
    // mark's hash: the first line verify prints, before it starts reading).
    const big = join(tree, 'a.txt');
    const size = 16 * 1024 ** 3;
    const reference = join(tmp.dir, `mtime-ref-${++count}`);
    execFileSync('touch', ['-r', big, reference]);
    await keepingMtime(tree, () => void execFileSync('truncate', ['-s', String(size), big]));
    execFileSync('touch', ['-m', '-r', reference, big]);
    const manifest = `${tree}.meta/manifest.tsv`;
    const lines = (await readFile(manifest, 'latin1')).split('\n');
    const at = lines.findIndex((line) => line.startsWith('a.txt\t'));
    const fields = lines[at]!.split('\t');
    fields[4] = String(size);
    lines[at] = fields.join('\t');
    await writeFile(manifest, lines.join('\n'), 'latin1');

    const child = spawn(process.execPath, [adminBin, 'verify', '--data', f.root, f.host], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stderr.on('data', (chunk) => (stderr += chunk));
    const exited = new Promise<[number | null, NodeJS.Signals | null]>((resolve) => child.on('close', (code, signal) => resolve([code, signal])));
    const killer = setTimeout(() => child.kill('SIGKILL'), 120_000);
    await new Promise<void>((resolve) => {
      child.stdout.on('data', (chunk) => {
        stdout += chunk;
        if (stdout.includes('is not the one its done mark recorded')) resolve();
      });
      child.on('close', () => resolve());
    });
    child.kill('SIGINT');
    const [code, signal] = await exited;
    clearTimeout(killer);
    assert.equal(signal, null, `killed: ${stderr}`);
    assert.equal(code, 130, stdout + stderr);
    assert.match(stderr, new RegExp(`^ssh-r-sync-admin: verify stopped by SIGINT: ${f.host} ${tree.slice(-18)} was not recorded \\(an earlier verify.json, if any, stands\\)\n$`));
    assert.doesNotMatch(stdout, /: ok: /);
    assert.equal(await readFile(`${tree}.meta/verify.json`, 'utf8'), earlier, 'the earlier record stands');
  });
});
