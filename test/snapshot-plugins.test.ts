// The snapshot plugins through real runs: @ssh-r-sync/plugin-link-dest (hard-linked snapshots,
// resumed after an interruption, `latest`) and @ssh-r-sync/plugin-manifest (the file list and the
// done mark), with real rsync from a local source and through the real sshd. Trees and manifests
// are checked against GNU find, which shares no code with the plugins.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, lstatSync, readFileSync, readdirSync, readlinkSync, statSync } from 'node:fs';
import { chown, mkdir, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { startBackupServer, type BackupServer } from './helpers/backup-server.js';
import { clientBin, processesMatching, recvBin, repoRoot, runRecv, tempDir, writeScript, type RunResult } from './helpers/cli.js';

const NAME = 'host1';
const LINK_DEST = '@ssh-r-sync/plugin-link-dest';
const MANIFEST = '@ssh-r-sync/plugin-manifest';
/** The forced command runs in root's home: plugins are named by their built files there. */
const LINK_DEST_DIST = join(repoRoot, 'packages/plugin-link-dest/dist/index.js');
const MANIFEST_DIST = join(repoRoot, 'packages/plugin-manifest/dist/index.js');
const SNAPSHOT_ID = /^\d{4}-\d{2}-\d{2}T\d{6}Z$/;
const NON_UTF8 = Buffer.from([0x66, 0xff, 0x6f]); // "f\xffo"
/** Every source entry gets an mtime in the past: rsync leaves the time of a directory, symlink or
 *  fifo as it was created when the source's is in the same second (it compares whole seconds). */
const PAST = '@1600000000.5';

let tmp: { dir: string; cleanup: () => Promise<void> };
let fixtures = 0;
before(async () => {
  tmp = await tempDir('srs-snapshots-');
});
after(() => tmp?.cleanup());

interface Fixture {
  base: string;
  src: string;
  root: string;
  host: string;
}

// A source with what a manifest must get right: a newline, a tab, a backslash and a non-UTF-8
// byte in names, a symlink (with an odd target), a fifo, another owner, a setuid mode, nanosecond mtimes.
async function fixture(): Promise<Fixture> {
  fixtures += 1;
  const base = join(tmp.dir, `f${fixtures}`);
  const src = join(base, 'src');
  const root = join(base, 'root');
  await mkdir(join(src, 'sub', 'deeper'), { recursive: true });
  await mkdir(root, { mode: 0o700 }); // a privileged receiver refuses a ROOT others can read
  await writeFile(join(src, 'changed.txt'), 'version 1\n');
  await writeFile(join(src, 'unchanged.txt'), 'the same in every run\n');
  await writeFile(join(src, 'sub', 'deeper', 'nested.txt'), 'nested\n');
  await writeFile(join(src, 'line\nbreak'), 'newline in the name\n');
  await writeFile(join(src, 'tab\tand\\backslash'), 'tab and backslash\n');
  await writeFile(Buffer.concat([Buffer.from(`${src}/`), NON_UTF8]), 'not utf-8\n');
  await writeFile(join(src, 'setuid'), '#!/bin/sh\n', { mode: 0o4755 });
  await writeFile(join(src, 'owned'), 'someone else\n');
  await chown(join(src, 'owned'), 1234, 5678);
  await symlink('sub/deeper/nested.txt', join(src, 'link'));
  await symlink(Buffer.concat([Buffer.from('dangling\t'), NON_UTF8]), join(src, 'odd-link'));
  execFileSync('mkfifo', [join(src, 'fifo')]);
  execFileSync('find', [src, '-exec', 'touch', '-h', '-d', PAST, '{}', '+']);
  execFileSync('touch', ['-h', '-d', '@1577934245.123456789', join(src, 'unchanged.txt'), join(src, 'link')]);
  return { base, src, root, host: join(root, NAME) };
}

// Writes a source file with its own mtime; the source's top directory keeps its time in the past.
async function change(f: Fixture, name: string, content: string | Buffer, mtime: string): Promise<void> {
  await writeFile(join(f.src, name), content);
  execFileSync('touch', ['-d', mtime, join(f.src, name)]);
  execFileSync('touch', ['-d', PAST, f.src]);
}

// ssh-r-sync-recv --local with both plugins (by npm name: the cwd is the repository).
function recv(f: Fixture, extra: string[] = [], plugins = [LINK_DEST, MANIFEST]): Promise<RunResult> {
  return runRecv(['--local', f.src, '--name', NAME, ...plugins.flatMap((plugin) => ['--plugin', plugin]), ...extra, f.root], { cwd: repoRoot });
}

function assertExit(result: RunResult, code: number, what = 'the run'): void {
  assert.equal(result.code, code, `${what} exited ${result.code}, not ${code}:\n${result.stderr}${result.stdout}`);
}

// The snapshot ids in a host's folder, oldest first.
function snapshotIds(host: string): string[] {
  return existsSync(host) ? readdirSync(host).filter((entry) => SNAPSHOT_ID.test(entry)).sort() : [];
}

const meta = (host: string, id: string, file = '') => join(host, `${id}.meta`, file);
const literal = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

interface FoundEntry {
  type: string;
  mode: number;
  owner: string;
  size: string;
  mtimeNs: bigint;
  target: string;
}

// Every entry under `root` as GNU find sees it, keyed by the path's bytes (latin1); the top is ".".
function findEntries(root: string): Map<string, FoundEntry> {
  const out = execFileSync('find', [root, '-printf', '%P\\0%y\\0%m\\0%U:%G\\0%s\\0%T@\\0%l\\0'], { maxBuffer: 1 << 28 });
  const fields = out.toString('latin1').split('\0');
  fields.pop();
  const entries = new Map<string, FoundEntry>();
  for (let i = 0; i < fields.length; i += 7) {
    const [path, type, mode, owner, size, mtime, target] = fields.slice(i, i + 7) as [string, string, string, string, string, string, string];
    entries.set(path || '.', { type, mode: parseInt(mode, 8), owner, size, mtimeNs: nanoseconds(mtime), target });
  }
  return entries;
}

// "1577934245.1234567890" (find) or "1577934245.123456789" (manifest) as nanoseconds.
function nanoseconds(text: string): bigint {
  const match = /^(-?)(\d+)\.(\d+)$/.exec(text);
  assert.ok(match, `not a time in seconds: ${JSON.stringify(text)}`);
  const ns = BigInt(match[2]!) * 1_000_000_000n + BigInt(match[3]!.slice(0, 9).padEnd(9, '0'));
  return match[1] ? -ns : ns;
}

// The client's files in a backup: every attribute (a directory's size aside) and every file's
// content; the top directory's mode and owner are the receiver's (0700, root: test/privacy.test.ts).
function assertSameFiles(src: string, copy: string, what: string): void {
  const describe = (root: string) =>
    [...findEntries(root)].map(([path, entry]) => {
      const content = entry.type === 'f' ? createHash('sha256').update(readFileSync(Buffer.from(join(root, path), 'latin1'))).digest('hex') : '';
      const [mode, owner] = path === '.' ? ['top', 'top'] : [entry.mode, entry.owner];
      return JSON.stringify([path, entry.type, mode, owner, entry.type === 'd' ? '' : entry.size, String(entry.mtimeNs), entry.target, content]);
    }).sort();
  assert.deepEqual(describe(copy), describe(src), `${what} does not hold exactly the source's files`);
}

// Decodes a manifest field: \\, \t, \n and \xHH, back to bytes (latin1).
function unescapeField(field: string): string {
  return field.replace(/\\(\\|t|n|x([0-9a-f]{2}))/g, (_, what: string, code?: string) => (code ? String.fromCharCode(parseInt(code, 16)) : what === 't' ? '\t' : what === 'n' ? '\n' : '\\'));
}

// A manifest's entries, in file order, checked line by line for shape.
function readManifest(file: string): { header: string; order: string[]; entries: Map<string, FoundEntry>; hashes: Map<string, string> } {
  const lines = readFileSync(file).toString('latin1').split('\n');
  assert.equal(lines.pop(), '', 'the manifest ends with a newline');
  const header = lines.shift() ?? '';
  const entries = new Map<string, FoundEntry>();
  const order: string[] = [];
  const hashes = new Map<string, string>();
  for (const line of lines) {
    const fields = line.split('\t');
    assert.equal(fields.length, 11, `a manifest line has 11 fields: ${JSON.stringify(line)}`);
    const [path, type, mode, owner, size, mtime, target] = fields as [string, string, string, string, string, string, string];
    hashes.set(unescapeField(path), fields[9]!);
    assert.match(mode, /^[0-7]+$/);
    const name = unescapeField(path);
    order.push(name);
    entries.set(name, { type, mode: parseInt(mode, 8), owner, size, mtimeNs: nanoseconds(mtime), target: unescapeField(target) });
  }
  return { header, order, entries, hashes };
}

function ino(path: string): number {
  return lstatSync(path).ino;
}

describe('plugin-link-dest and plugin-manifest, local source', { concurrency: 1 }, () => {
  test('each run writes a new snapshot: unchanged files share an inode, a changed one does not; latest is the newest; nothing but the client\'s files inside', async () => {
    const f = await fixture();
    assertExit(await recv(f), 0, 'the first run');
    const [first] = snapshotIds(f.host);
    assert.ok(first, 'the first run made a snapshot');
    assertSameFiles(f.src, join(f.host, first), 'the first snapshot');

    await change(f, 'changed.txt', 'version 2, longer\n', '@1700000000');
    await change(f, 'new.txt', 'new\n', '@1700000000');
    const second = await recv(f, ['--debug']);
    assertExit(second, 0, 'the second run');
    const ids = snapshotIds(f.host);
    assert.equal(ids.length, 2, `two snapshots: ${ids.join(' ')}`);
    assert.equal(ids[0], first);
    const newest = ids[1]!;
    assert.match(second.stderr, new RegExp(literal(`"--link-dest=${join(f.host, first)}"`)), 'linked against the first snapshot, by absolute path');
    assert.match(second.stderr, new RegExp(`${literal(`"${join(f.host, newest)}/"`)}$`, 'm'), 'rsync wrote into the new snapshot');

    for (const same of ['unchanged.txt', 'sub/deeper/nested.txt', 'owned', 'setuid']) {
      const old: string = join(f.host, first, same);
      const now: string = join(f.host, newest, same);
      assert.equal(ino(old), ino(now), `${same} is one inode in both snapshots`);
      assert.ok(lstatSync(now).nlink >= 2, `${same} has ${lstatSync(now).nlink} links`);
    }
    assert.notEqual(ino(join(f.host, first, 'changed.txt')), ino(join(f.host, newest, 'changed.txt')), 'changed.txt was copied anew');
    assert.equal(readFileSync(join(f.host, first, 'changed.txt'), 'utf8'), 'version 1\n', 'the old snapshot keeps the old version');
    assert.equal(readlinkSync(join(f.host, 'latest')), newest);
    assertSameFiles(f.src, join(f.host, readlinkSync(join(f.host, 'latest'))), 'latest');

    for (const id of ids) {
      assert.ok(existsSync(meta(f.host, id, 'done.json')), `${id} is complete`);
      assert.ok(!existsSync(meta(f.host, id, 'in-progress')), `${id} is no longer in progress`);
    }
    const done = JSON.parse(readFileSync(meta(f.host, newest, 'done.json'), 'utf8'));
    assert.equal(done.snapshot, newest);
    assert.equal(done.host, NAME);
    assert.equal(done.rsyncExitCode, 0);
    assert.equal(done.files, 2, 'changed.txt and new.txt were transferred');
    // plugin-link-dest is a store, not a tap: the done mark records the taps that ran.
    assert.ok(done.hooks.some((tap: { point: string; tap: string; outcome: string }) => tap.point === 'rsync.post' && tap.tap === 'manifest' && tap.outcome === 'ok'));
  });

  test('the manifest lists the snapshot exactly as find sees it, every field, odd names included; the done mark holds its hash', async () => {
    const f = await fixture();
    assertExit(await recv(f), 0);
    const [id] = snapshotIds(f.host);
    const file = meta(f.host, id!, 'manifest.tsv');
    const manifest = readManifest(file);
    assert.equal(manifest.header, '#ssh-r-sync-manifest/4\tpath\ttype\tmode\tuid:gid\tsize\tmtime\ttarget\trdev\tflags\tsha256\tdev:ino');
    const found = findEntries(join(f.host, id!));
    assert.deepEqual([...manifest.entries.keys()].sort(), [...found.keys()].sort(), 'the same paths');
    assert.deepEqual(new Map([...manifest.entries].sort()), new Map([...found].sort()), 'the same type, mode, owner, size, mtime and link target');
    for (const [path, entry] of found) {
      const want = entry.type === 'f' ? createHash('sha256').update(readFileSync(Buffer.from(join(f.host, id!, path), 'latin1'))).digest('hex') : '-';
      assert.equal(manifest.hashes.get(path), want, `the sha256 of ${JSON.stringify(path)}`);
    }

    // The odd ones, spelled out.
    const text = readFileSync(file).toString('latin1');
    assert.match(text, /^line\\nbreak\tf\t644\t0:0\t20\t/m);
    assert.match(text, /^tab\\tand\\\\backslash\tf\t/m);
    assert.match(text, /^f\\xffo\tf\t644\t0:0\t10\t/m);
    assert.match(text, /^odd-link\tl\t777\t0:0\t12\t\d+\.\d{9}\tdangling\\tf\\xffo\t-\t-\t-\t\d+:\d+$/m);
    assert.match(text, /^fifo\tp\t/m);
    assert.match(text, /^setuid\tf\t4755\t/m);
    assert.match(text, /^owned\tf\t644\t1234:5678\t/m);
    assert.match(text, /^unchanged\.txt\tf\t644\t0:0\t22\t1577934245\.123456789\t\t-\t-\t[0-9a-f]{64}\t\d+:\d+$/m);

    // Depth first, each directory's entries sorted by their bytes, a directory before its contents.
    assert.equal(manifest.order[0], '.');
    const seen = new Set<string>(['.']);
    const lastChild = new Map<string, string>();
    for (const path of manifest.order.slice(1)) {
      const slash = path.lastIndexOf('/');
      const [parent, name] = slash < 0 ? ['.', path] : [path.slice(0, slash), path.slice(slash + 1)];
      assert.ok(seen.has(parent), `${JSON.stringify(path)} comes after its directory`);
      const previous = lastChild.get(parent);
      assert.ok(previous === undefined || Buffer.compare(Buffer.from(previous, 'latin1'), Buffer.from(name, 'latin1')) < 0, `${JSON.stringify(path)} sorted after ${JSON.stringify(previous)}`);
      lastChild.set(parent, name);
      seen.add(path);
    }

    const done = JSON.parse(readFileSync(meta(f.host, id!, 'done.json'), 'utf8'));
    const bytes = readFileSync(file);
    const files = [...found.values()].filter((e) => e.type === 'f');
    assert.deepEqual(done.extra.manifest, {
      file: 'manifest.tsv',
      entries: found.size,
      bytes: bytes.length,
      sha256: createHash('sha256').update(bytes).digest('hex'),
      // A first snapshot has no previous one to take hashes from: every regular file was read.
      hashes: { read: files.length, readBytes: files.reduce((sum, e) => sum + Number(e.size), 0), reused: 0 },
    });
    assert.ok(!existsSync(`${file}.part`));
  });

  test('a failed run leaves its snapshot incomplete, without a done mark; the next run links against it, then removes it', async () => {
    const f = await fixture();
    assertExit(await recv(f), 0, 'the first run');
    const [first] = snapshotIds(f.host);
    await change(f, 'changed.txt', 'version 2, longer\n', '@1700000000');
    const failing = await writeScript(f.base, 'fail.sh', 'exit 3');
    const failed = await recv(f, ['-x', `rsync.post:${failing}`]);
    assertExit(failed, 1, 'the run whose rsync.post hook fails');
    const [, broken] = snapshotIds(f.host);
    assert.ok(broken, 'the failed run left its snapshot');
    assert.ok(existsSync(meta(f.host, broken, 'in-progress')), 'marked in progress');
    assert.ok(!existsSync(meta(f.host, broken, 'done.json')), 'no done mark after a failure');
    assert.ok(!existsSync(meta(f.host, broken, 'manifest.tsv')), 'no manifest after a failure');
    assert.equal(readlinkSync(join(f.host, 'latest')), first, 'latest still points at the complete one');
    const transferred = ino(join(f.host, broken, 'changed.txt'));

    const resumed = await recv(f, ['--debug']);
    assertExit(resumed, 0, 'the run after the failure');
    assert.match(resumed.stderr, new RegExp(literal(`"--link-dest=${join(f.host, first!)}" "--link-dest=${join(f.host, broken)}"`)), 'both snapshots are link-dest sources');
    const ids = snapshotIds(f.host);
    assert.equal(ids.length, 2, `the failed snapshot was removed: ${ids.join(' ')}`);
    assert.equal(ids[0], first);
    assert.ok(!existsSync(meta(f.host, broken)), 'its metadata went too');
    const newest = ids[1]!;
    assert.equal(ino(join(f.host, newest, 'changed.txt')), transferred, 'the file the failed run transferred was linked, not copied again');
    assert.equal(readlinkSync(join(f.host, 'latest')), newest);
    assertSameFiles(f.src, join(f.host, newest), 'the resumed snapshot');
  });

  test('a run killed mid-transfer (receiver and rsync gone at once) is resumed by the next run, then removed', async () => {
    const f = await fixture();
    await change(f, 'zz-big.bin', Buffer.alloc(8 * 1024 * 1024, 7), PAST);
    const slow = await writeScript(f.base, 'slow.sh', "printf -- '--bwlimit=256\\0'");
    const args = ['--local', f.src, '--name', NAME, '--plugin', LINK_DEST, '--plugin', MANIFEST, '-x', `rsync.pre:${slow}`, f.root];
    const child = spawn(process.execPath, [recvBin, ...args], { cwd: repoRoot, detached: true, stdio: 'ignore' });
    const exited = new Promise((resolve) => child.once('exit', resolve));
    let id: string | undefined;
    try {
      const deadline = Date.now() + 30_000;
      while (!(id = snapshotIds(f.host)[0]) || !existsSync(join(f.host, id, 'changed.txt'))) {
        assert.ok(Date.now() < deadline, 'rsync did not start writing within 30 s');
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    } finally {
      process.kill(-child.pid!, 'SIGKILL');
    }
    await exited;
    // rsync has a process group of its own: a crash of the receiver would leave it running.
    for (const line of await processesMatching(join(f.host, id))) process.kill(Number(line.split(':')[0]), 'SIGKILL');
    assert.ok(existsSync(meta(f.host, id, 'in-progress')), 'the killed run is marked in progress');
    assert.ok(!existsSync(meta(f.host, id, 'done.json')), 'and has no done mark');
    assert.ok(!existsSync(join(f.host, 'latest')), 'no complete snapshot: no latest');
    const transferred = ino(join(f.host, id, 'changed.txt'));

    const next = await recv(f, ['--debug']);
    assertExit(next, 0, 'the run after the kill');
    assert.match(next.stderr, new RegExp(literal(`"--link-dest=${join(f.host, id)}"`)), 'the killed snapshot is a link-dest source');
    const ids = snapshotIds(f.host);
    assert.equal(ids.length, 1, `only the complete snapshot is left: ${ids.join(' ')}`);
    assert.notEqual(ids[0], id);
    assert.ok(!existsSync(meta(f.host, id)));
    assert.equal(ino(join(f.host, ids[0]!, 'changed.txt')), transferred, 'what the killed run transferred was reused');
    assert.equal(readlinkSync(join(f.host, 'latest')), ids[0]);
    assertSameFiles(f.src, join(f.host, ids[0]!), 'the snapshot after the kill');
  });

  test('a skipped run leaves nothing behind; a run that fails before rsync writes removes its empty snapshot', async () => {
    const f = await fixture();
    const notNow = await writeScript(f.base, 'not-now.sh', 'exit 75');
    assertExit(await recv(f, ['-x', `rsync.pre:${notNow}`]), 75, 'the skipped run');
    assert.deepEqual(snapshotIds(f.host), []);
    assert.deepEqual(readdirSync(f.host), [], 'no metadata either');

    await writeFile(join(f.base, 'no-runner.mjs'), `export default { name: 'no-runner', apply(hooks) { hooks.rsync.tapPromise('no-runner', async () => { throw new Error('cannot start'); }); } };`);
    const failed = await recv(f, ['--plugin', join(f.base, 'no-runner.mjs')]);
    assertExit(failed, 1, 'the run whose runner fails');
    assert.match(failed.stderr, /rsync hook "no-runner" failed: cannot start/);
    assert.deepEqual(readdirSync(f.host), [], 'the empty snapshot was removed');
  });

  test('plugin-manifest alone on a plain mirror: manifest and done mark beside it; a failing run takes the done mark away', async () => {
    const f = await fixture();
    const metaDir = join(f.root, '.ssh-r-sync', 'mirror', NAME);
    assertExit(await recv(f, [], [MANIFEST]), 0);
    assertSameFiles(f.src, f.host, 'the mirror');
    const manifest = readManifest(join(metaDir, 'manifest.tsv'));
    assert.deepEqual(new Map([...manifest.entries].sort()), new Map([...findEntries(f.host)].sort()));
    const done = JSON.parse(readFileSync(join(metaDir, 'done.json'), 'utf8'));
    assert.equal(done.snapshot, null);
    assert.equal(done.extra.manifest.entries, manifest.entries.size);
    assert.ok(!existsSync(join(metaDir, 'in-progress')));

    const failing = await writeScript(f.base, 'fail.sh', 'exit 3');
    assertExit(await recv(f, ['-x', `rsync.post:${failing}`], [MANIFEST]), 1);
    assert.ok(!existsSync(join(metaDir, 'done.json')), 'a mirror that was being rewritten is not complete');
    assert.ok(existsSync(join(metaDir, 'in-progress')));
    assertExit(await recv(f, [], [MANIFEST]), 0);
    assert.ok(existsSync(join(metaDir, 'done.json')));
    assert.ok(!existsSync(join(metaDir, 'in-progress')));
  });

  test('the README config line loads both plugins by npm name; a done script of the config sees the complete snapshot; bad options are one-line configuration errors', async () => {
    const f = await fixture();
    // Names resolve from the config file's folder: give it the workspace's node_modules.
    await symlink(join(repoRoot, 'node_modules'), join(f.base, 'node_modules'));
    // Config scripts are tapped before plugins; the snapshot plugins' done taps still run first.
    const seen = join(f.base, 'seen');
    const doneScript = await writeScript(f.base, 'done.sh', `ls "$SSH_R_SYNC_DIR/$(readlink "$SSH_R_SYNC_DIR/latest").meta" > ${seen}`);
    await writeFile(join(f.base, 'ssh-r-sync.config.json'), JSON.stringify({ hooks: { done: [doneScript] }, plugins: [LINK_DEST, [MANIFEST, {}]] }));
    const list = await runRecv(['--hook-list'], { cwd: f.base });
    assertExit(list, 0, '--hook-list');
    assert.match(list.stdout, /^Snapshot store: plugin link-dest \(snapshots\)/m);
    assert.match(list.stdout, /^ {2}rsync\.post {2}1\. plugin manifest$/m);
    assert.match(list.stdout, /^ {2}done {8}1\. script .*\/done\.sh$/m);
    assertExit(await runRecv(['--local', f.src, '--name', NAME, f.root], { cwd: f.base }), 0, 'the run with the config');
    assert.equal(readFileSync(seen, 'utf8'), 'done.json\nmanifest.tsv\n', 'the done script saw latest on a complete snapshot');

    await writeFile(join(f.base, 'bad.json'), JSON.stringify({ plugins: [[LINK_DEST, { maxResume: 30 }]] }));
    const bad = await runRecv(['--local', f.src, '--name', NAME, '--config', join(f.base, 'bad.json'), f.root], { cwd: f.base });
    assertExit(bad, 2, 'a bad maxResume');
    assert.match(bad.stderr, /^ssh-r-sync-recv: error: cannot load plugin "@ssh-r-sync\/plugin-link-dest" .*: link-dest: maxResume must be an integer from 0 to 19, got 30$/m);
    await writeFile(join(f.base, 'typo.json'), JSON.stringify({ plugins: [[MANIFEST, { fromat: 'csv' }]] }));
    const typo = await runRecv(['--local', f.src, '--name', NAME, '--config', join(f.base, 'typo.json'), f.root], { cwd: f.base });
    assertExit(typo, 2, 'an unknown manifest option');
    assert.match(typo.stderr, /manifest takes no options, got "fromat"/);
  });
});

describe('plugin-link-dest and plugin-manifest through sshd', { concurrency: 1 }, () => {
  let server: BackupServer;
  let f: Fixture;
  let host: string;

  before(async () => {
    f = await fixture();
    server = await startBackupServer({ recvArgs: ['--name', NAME, '--plugin', LINK_DEST_DIST, '--plugin', MANIFEST_DIST] });
    host = join(server.root, NAME);
  });
  after(() => server?.stop());

  // The client's --json result (its last stdout line), after checking it succeeded.
  function result(run: RunResult): { status: string; snapshot: string | null } {
    assertExit(run, 0, 'the backup');
    return JSON.parse(run.stdout.trim().split('\n').at(-1)!);
  }

  test('two backups: two snapshots, shared inodes, latest, and the snapshot id in the client\'s result', async () => {
    const first = result(await server.backup(f.src, ['-n', NAME, '--json'], { timeoutMs: 60_000 }));
    await change(f, 'changed.txt', 'version 2 over ssh\n', '@1700000000');
    const second = result(await server.backup(f.src, ['-n', NAME, '--json'], { timeoutMs: 60_000 }));
    assert.deepEqual(snapshotIds(host), [first.snapshot, second.snapshot], 'the client was told each snapshot id');
    const [a, b] = [first.snapshot!, second.snapshot!];
    assert.equal(ino(join(host, a, 'unchanged.txt')), ino(join(host, b, 'unchanged.txt')));
    assert.ok(lstatSync(join(host, b, 'unchanged.txt')).nlink >= 2);
    assert.notEqual(ino(join(host, a, 'changed.txt')), ino(join(host, b, 'changed.txt')));
    assert.equal(readlinkSync(join(host, 'latest')), b);
    assertSameFiles(f.src, join(host, b), 'the snapshot made through sshd');
    const manifest = readManifest(meta(host, b, 'manifest.tsv'));
    assert.deepEqual(new Map([...manifest.entries].sort()), new Map([...findEntries(join(host, b))].sort()));
    assert.ok(statSync(meta(host, b, 'done.json')).isFile());
  });

  test('a client that dies mid-transfer leaves an incomplete snapshot; the next backup resumes from it', async () => {
    const slow = await writeScript(f.base, 'slow.sh', "printf -- '--bwlimit=256\\0'");
    await server.setRecvArgs(['--name', NAME, '--plugin', LINK_DEST_DIST, '--plugin', MANIFEST_DIST, '-x', `rsync.pre:${slow}`]);
    // Incompressible: the receiver's rsync compresses (--zl=1), and 8 MiB of one byte would cross
    // the --bwlimit in a few milliseconds, finishing the run before the client can be killed.
    await change(f, 'zz-big.bin', randomBytes(8 * 1024 * 1024), PAST);
    await change(f, 'changed.txt', 'version 3, sent before the client dies\n', '@1700000100');
    const before = snapshotIds(host);
    const client = spawn(process.execPath, [clientBin, ...server.clientArgs(), '-n', NAME, `${server.sshd.user}@127.0.0.1`, f.src], { detached: true, stdio: 'ignore' });
    const exited = new Promise((resolve) => client.once('exit', resolve));
    let id: string | undefined;
    try {
      const deadline = Date.now() + 30_000;
      while (!(id = snapshotIds(host).find((x) => !before.includes(x))) || !existsSync(join(host, id, 'changed.txt'))) {
        assert.ok(Date.now() < deadline, 'the receiver did not start writing within 30 s');
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    } finally {
      process.kill(-client.pid!, 'SIGKILL');
    }
    await exited;
    // The receiver notices the dead peer, stops rsync and runs its done taps (as a failure).
    const deadline = Date.now() + 30_000;
    while ((await processesMatching(server.root)).length > 0) {
      assert.ok(Date.now() < deadline, `the receiver is still running:\n${(await processesMatching(server.root)).join('\n')}`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    assert.ok(existsSync(meta(host, id, 'in-progress')), 'the interrupted snapshot is marked in progress');
    assert.ok(!existsSync(meta(host, id, 'done.json')), 'and has no done mark');
    const transferred = ino(join(host, id, 'changed.txt'));

    await server.setRecvArgs(['--name', NAME, '--plugin', LINK_DEST_DIST, '--plugin', MANIFEST_DIST]);
    const resumed = result(await server.backup(f.src, ['-n', NAME, '--json'], { timeoutMs: 60_000 }));
    assert.deepEqual(snapshotIds(host), [...before, resumed.snapshot], 'the interrupted snapshot was removed');
    assert.equal(ino(join(host, resumed.snapshot!, 'changed.txt')), transferred, 'what the interrupted run transferred was reused');
    assert.equal(readlinkSync(join(host, 'latest')), resumed.snapshot);
    assertSameFiles(f.src, join(host, resumed.snapshot!), 'the resumed snapshot');
  });
});
