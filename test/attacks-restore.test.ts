// Attacks on the forced command's restore and listing (issue 9 item 5, in the style of SPEC §4):
// a key holder asks for another host's snapshots, paths out of its own, the receiver's metadata,
// an incomplete snapshot, rsync options that would write or run something on the server, or any
// other command. Each is refused with one line, serves nothing (no rsync byte on stdout), and
// leaves BACKUP_ROOT and the rest of the server as they were. Runs as root (fake-super and
// privileged receivers; the restore as root).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, lstatSync, readFileSync, readdirSync, readlinkSync } from 'node:fs';
import { mkdir, readFile, rm, symlink, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { startBackupServer, type BackupServer } from './helpers/backup-server.js';
import { clientBin, processesMatching, repoRoot, runNode, tempDir } from './helpers/cli.js';
import { treeSnapshot } from './helpers/fake-peer.js';

const HOST = 'atkr-host1';
const OTHER = 'atkr-other';
const PRIV = 'atkr-priv';
const MIRROR = 'atkr-pmirror';
const PLUGINS = ['--plugin', join(repoRoot, 'packages/plugin-manifest/dist/index.js'), '--plugin', join(repoRoot, 'packages/plugin-link-dest/dist/index.js')];
const ROOT_ONLY = process.getuid?.() !== 0 ? 'the fake-super and privileged receivers here run as root' : false;
const LIMIT = { timeout: 120_000 };
/** The server options string our restore client's rsync sends. */
const LETTERS = '-lHogDtpAXrRSe.iLsfxCIvu';

let work: { dir: string; cleanup: () => Promise<void> };
let server: BackupServer;
let hostIds: string[] = [];
let destCount = 0;

const b64 = (path: string) => Buffer.from(path).toString('base64url');
const spec = (snapshot: string, path: string | null) => `ssh-r-sync/${snapshot}/${path === null ? '-' : `p${b64(path)}`}/./`;

// A raw request to the forced command, as any key holder can send one with plain ssh.
function rawSsh(command: string, key = server.key): Promise<{ code: number | null; stdout: Buffer; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn('ssh', [...server.sshd.sshArgs(key), command], { stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => out.push(chunk));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk));
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout: Buffer.concat(out), stderr });
    });
    child.stdin.end();
  });
}

// `ssh-r-sync SUB [this server's options] ARGS… user@127.0.0.1 [DEST]`.
function client(sub: 'restore' | 'snapshots', args: string[], dest: string | null, key = server.key) {
  return runNode(clientBin, [sub, ...server.clientArgs(key), ...args, `${server.sshd.user}@127.0.0.1`, ...(dest === null ? [] : [dest])], { timeoutMs: 90_000 });
}

async function freshDest(): Promise<string> {
  destCount += 1;
  const dest = join(work.dir, `dest-${destCount}`);
  await mkdir(dest);
  return dest;
}

function oneError(stderr: string, prefix: 'ssh-r-sync' | 'ssh-r-sync-recv', pattern: RegExp): void {
  assert.doesNotMatch(stderr, /^\s{4}at /m, `stack trace:\n${stderr}`);
  const errors = stderr.split('\n').filter((line) => line.startsWith(`${prefix}: error: `));
  assert.equal(errors.length, 1, `expected one "${prefix}: error:" line:\n${stderr}`);
  assert.match(errors[0]!, pattern);
}

// A refused raw request: exit 2, one line, not one byte served, nothing changed under ROOT.
async function assertRefused(command: string, pattern: RegExp, key = server.key): Promise<void> {
  const before = treeSnapshot(server.root);
  const r = await rawSsh(command, key);
  assert.equal(r.code, 2, `${command.slice(0, 120)}: ${r.stderr}`);
  assert.equal(r.stdout.length, 0, `nothing served for ${command.slice(0, 120)}`);
  oneError(r.stderr, 'ssh-r-sync-recv', pattern);
  assert.deepEqual(treeSnapshot(server.root), before, 'BACKUP_ROOT unchanged');
}

// An ssh for the attacker's rsync that passes the server's first MiB (the file list and the start
// of the first file), then holds the rest back until SIGUSR1; `held` gets its pid, then.
async function writeGate(tag: string): Promise<{ held: string; gate: string }> {
  const held = join(work.dir, `gate-${tag}.held`);
  const gate = join(work.dir, `gate-${tag}.mjs`);
  await writeFile(gate, [
    "import { spawn } from 'node:child_process';",
    "import { writeFileSync } from 'node:fs';",
    'const [held, ...args] = process.argv.slice(2);',
    "const ssh = spawn('ssh', args, { stdio: ['inherit', 'pipe', 'inherit'] });",
    'let passed = 0;',
    'let once = false;',
    "const pass = (chunk) => { process.stdout.write(chunk); passed += chunk.length; if (passed > 1048576 && !once) { once = true; ssh.stdout.pause(); writeFileSync(held, `${process.pid} ${ssh.pid}`); } };",
    "ssh.stdout.on('data', pass);",
    "process.on('SIGUSR1', () => ssh.stdout.resume());",
    "ssh.on('close', (code) => { process.exitCode = code ?? 1; });",
  ].join('\n'));
  return { held, gate };
}

before(async () => {
  if (ROOT_ONLY) return;
  work = await tempDir('srs-atkr-');
  server = await startBackupServer({
    recvArgs: ['--name', HOST, '--mode', 'fake-super', ...PLUGINS],
    extraKeys: {
      other: ['--name', OTHER, '--mode', 'fake-super', ...PLUGINS],
      priv: ['--name', PRIV, '--mode', 'privileged', ...PLUGINS],
      none: ['--name', 'atkr-none', '--mode', 'fake-super', ...PLUGINS],
      // No snapshot plugins: a mirror, rewritten in place by each backup; privileged: real symlinks.
      pmirror: ['--name', MIRROR, '--mode', 'privileged'],
    },
  });
  const src = join(work.dir, 'src');
  await mkdir(join(src, 'dir'), { recursive: true });
  await writeFile(join(src, 'secret.txt'), 'host1 secret\n');
  await writeFile(join(src, 'dir', 'f'), 'f\n');
  await symlink('/etc', join(src, 'etc'));
  await symlink('../../..', join(src, 'up'));
  const otherSrc = join(work.dir, 'other-src');
  await mkdir(otherSrc);
  await writeFile(join(otherSrc, 'other.txt'), 'other host\n');
  for (const [path, name, key] of [[src, HOST, server.key], [src, PRIV, server.keys.priv!], [otherSrc, OTHER, server.keys.other!]] as const) {
    const backup = await server.backup(path, ['-n', name], { timeoutMs: 90_000, key });
    assert.equal(backup.code, 0, `backup of ${name}: ${backup.stderr}`);
  }
  hostIds = readdirSync(join(server.root, HOST)).filter((name) => /^\d{4}-\d\d-\d\dT\d{6}Z$/.test(name));
  assert.equal(hostIds.length, 1);
});

after(async () => {
  await server?.stop();
  await work?.cleanup();
});

describe('the forced command serves only the key\'s own complete snapshots, read-only', { skip: ROOT_ONLY, concurrency: 1 }, () => {
  test('another key cannot read this host\'s snapshot: its restore and listing are its own host\'s', LIMIT, async () => {
    const other = server.keys.other!;
    const dest = await freshDest();
    const named = await client('restore', ['--snapshot', hostIds[0]!], dest, other);
    assert.equal(named.code, 1, named.stderr);
    oneError(named.stderr, 'ssh-r-sync', new RegExp(`refused the restore: host "${OTHER}" has no complete snapshot ${hostIds[0]}`));
    assert.deepEqual(readdirSync(dest), []);

    const latest = await client('restore', [], dest, other);
    assert.equal(latest.code, 0, latest.stderr);
    assert.deepEqual(readdirSync(dest), ['other.txt'], 'its own files, none of host1\'s');

    const listing = await client('snapshots', ['--json'], null, other);
    assert.equal(listing.code, 0, listing.stderr);
    const parsed = JSON.parse(listing.stdout) as { host: string; snapshots: Array<{ id: string }> };
    assert.equal(parsed.host, OTHER);
    assert.equal(parsed.snapshots.length, 1);
    assert.ok(readdirSync(join(server.root, OTHER)).includes(parsed.snapshots[0]!.id), 'the other host\'s own snapshot');
  });

  test('a key whose host never completed a backup gets an empty list and a refusal, not a path of the server', LIMIT, async () => {
    const listing = await client('snapshots', [], null, server.keys.none);
    assert.equal(listing.code, 0, listing.stderr);
    assert.match(listing.stderr, /atkr-none has no complete backup on this server yet/);
    const dest = await freshDest();
    const r = await client('restore', [], dest, server.keys.none);
    assert.equal(r.code, 1, r.stderr);
    oneError(r.stderr, 'ssh-r-sync', /the backup server refused the restore: host "atkr-none" has no complete backup yet$/);
    assert.doesNotMatch(r.stderr + listing.stderr, new RegExp(server.root.replace(/[/.]/g, '\\$&')));
    assert.deepEqual(readdirSync(dest), []);
  });

  test('a path with "..", an absolute path, and the metadata next to the snapshot are refused by the server', LIMIT, async () => {
    const id = hostIds[0]!;
    for (const [path, pattern] of [
      [`../../${OTHER}`, /refused --path .*"\.\." is not allowed/],
      ['dir/../../' + `${id}.meta/done.json`, /refused --path .*"\.\." is not allowed/],
      ['/etc/passwd', /refused --path "\/etc\/passwd": give it relative/],
      ['//etc', /refused --path .*give it relative/],
    ] as const) {
      await assertRefused(`rsync --server --sender ${LETTERS} --numeric-ids . ${spec('latest', path)}`, pattern);
    }
    for (const arg of [`ssh-r-sync/${id}.meta/-/./`, `ssh-r-sync/../-/./`, `ssh-r-sync/latest/-/`, '/etc/', `../${OTHER}/${id}/`]) {
      await assertRefused(`rsync --server --sender ${LETTERS} . ${arg}`, /refused restore argument/);
    }
    // The client refuses them itself too.
    const dest = await freshDest();
    const r = await client('restore', ['--path', '../x'], dest);
    assert.equal(r.code, 2, r.stderr);
    const meta = await client('restore', ['--snapshot', `${id}.meta`], dest);
    assert.equal(meta.code, 2, meta.stderr);
    assert.deepEqual(readdirSync(dest), []);
  });

  test('an incomplete snapshot is never served, by id or as latest', LIMIT, async () => {
    const planted = hostIds[0]!.replace(/(\d\d)Z$/, (_, s: string) => `${String((Number(s) + 7) % 60).padStart(2, '0')}Z`);
    assert.notEqual(planted, hostIds[0]);
    const hostDir = join(server.root, HOST);
    await mkdir(join(hostDir, planted), { mode: 0o700 });
    await writeFile(join(hostDir, planted, 'unfinished'), 'half a backup\n');
    await mkdir(join(hostDir, `${planted}.meta`), { mode: 0o700 });
    await writeFile(join(hostDir, `${planted}.meta`, 'in-progress'), '{}\n');
    await assertRefused(`rsync --server --sender ${LETTERS} . ${spec(planted, null)}`, new RegExp(`has no complete snapshot ${planted}`));
    const dest = await freshDest();
    const latest = await client('restore', [], dest);
    assert.equal(latest.code, 0, latest.stderr);
    assert.ok(!existsSync(join(dest, 'unfinished')), 'latest is the complete one');
    assert.ok(existsSync(join(dest, 'secret.txt')));
  });

  test('a symlink in the snapshot comes back as a symlink, never followed; a --path through one is refused', LIMIT, async () => {
    const dest = await freshDest();
    const r = await client('restore', [], dest);
    assert.equal(r.code, 0, r.stderr);
    assert.ok(lstatSync(join(dest, 'etc')).isSymbolicLink());
    assert.equal(readlinkSync(join(dest, 'etc')), '/etc');
    assert.equal(readlinkSync(join(dest, 'up')), '../../..');
    assert.deepEqual(readdirSync(dest).sort(), ['dir', 'etc', 'secret.txt', 'up']);

    // Fake-super storage keeps a symlink as a file; privileged storage as a real symlink.
    await assertRefused(`rsync --server --sender ${LETTERS} . ${spec('latest', 'etc/passwd')}`, /refused --path "etc\/passwd": "etc" is not a directory/);
    await assertRefused(`rsync --server --sender ${LETTERS} . ${spec('latest', 'up/etc/passwd')}`, /"up" is not a directory/);
    await assertRefused(`rsync --server --sender ${LETTERS} . ${spec('latest', 'etc/passwd')}`, /refused --path "etc\/passwd": "etc" is a symlink in the snapshot/, server.keys.priv);
    const priv = await freshDest();
    const link = await client('restore', ['--path', 'etc'], priv, server.keys.priv);
    assert.equal(link.code, 0, link.stderr);
    assert.equal(readlinkSync(join(priv, 'etc')), '/etc', 'the link itself, from privileged storage');
    assert.deepEqual(readdirSync(priv), ['etc']);
    const through = await client('restore', ['--path', 'etc/passwd'], await freshDest(), server.keys.priv);
    assert.equal(through.code, 1);
    oneError(through.stderr, 'ssh-r-sync', /the backup server refused the restore: refused --path "etc\/passwd": "etc" is a symlink/);
  });

  test('rsync requests that would write or run something on the server are refused', LIMIT, async () => {
    const marker = join(work.dir, 'marker');
    const arg = spec('latest', null);
    for (const [command, pattern] of [
      [`rsync --server . ${marker}`, /only restores are served/],
      [`rsync --server -lr . ${marker}`, /only restores are served/],
      [`rsync --server --sender --remove-source-files ${LETTERS} . ${arg}`, /option "--remove-source-files" is not allowed/],
      [`rsync --server --sender ${LETTERS} --remove-source-files . ${arg}`, /option "--remove-source-files" is not allowed/],
      [`rsync --server --sender --numeric-ids . ${arg}`, /no short options/],
      [`rsync --server --sender ${LETTERS} --rsync-path=/bin/sh . ${arg}`, /option "--rsync-path=\/bin\/sh" is not allowed/],
      [`rsync --server --sender -e sh ${LETTERS} . ${arg}`, /option -e \(a remote shell\) is not allowed/],
      [`rsync --server --sender ${LETTERS} --log-file=${marker} . ${arg}`, /option "--log-file=/],
      [`rsync --server --sender ${LETTERS} --write-batch=${marker} . ${arg}`, /option "--write-batch=/],
      [`rsync --server --sender ${LETTERS} --only-write-batch=${marker} . ${arg}`, /option "--only-write-batch=/],
      [`rsync --server --sender ${LETTERS} --backup-dir=${marker} . ${arg}`, /option "--backup-dir=/],
      [`rsync --server --sender ${LETTERS} --temp-dir=${marker} . ${arg}`, /option "--temp-dir=/],
      [`rsync --server --sender ${LETTERS} --files-from=/etc/passwd . ${arg}`, /option "--files-from=/],
      [`rsync --server --sender ${LETTERS} -M--log-file=${marker} . ${arg}`, /option "-M--log-file=/],
      [`rsync --server --sender ${LETTERS} --remote-option=--log-file=${marker} . ${arg}`, /option "--remote-option=/],
      [`rsync --server --sender ${LETTERS} --daemon . ${arg}`, /option "--daemon" is not allowed/],
      [`rsync --server --sender ${LETTERS} --config=${marker} . ${arg}`, /option "--config=/],
      [`rsync --server --sender -lHogDtpAXrRSLe.iLsfxCIvu . ${arg}`, /option -L is not allowed/],
      [`rsync --server --sender -lrk . ${arg}`, /option -k is not allowed/],
      [`rsync --server --sender -slr . ${arg}`, /option -s is not allowed/],
      [`rsync --server --sender ${LETTERS} --copy-unsafe-links . ${arg}`, /option "--copy-unsafe-links" is not allowed/],
      [`rsync --server --sender ${LETTERS} ${arg}`, /not the rsync command line/],
      [`/usr/bin/rsync --server --sender ${LETTERS} . ${arg}`, /not "\/usr\/bin\/rsync"/],
      [`rsync  --server --sender ${LETTERS} . ${arg}`, /not an rsync server command/],
    ] as const) {
      await assertRefused(command, pattern);
    }
    assert.ok(!existsSync(marker), 'no file was written');
  });

  test('any other command is refused, and so is an overlong one', LIMIT, async () => {
    const marker = join(work.dir, 'shell-marker');
    for (const command of [`sh -c 'touch ${marker}'`, `touch ${marker}`, `ssh-r-sync snapshots --json; touch ${marker}`, 'ssh-r-sync-recv --name other /tmp', `rsync --version`]) {
      await assertRefused(command, /refused: /);
    }
    assert.ok(!existsSync(marker));
    const long = `rsync --server --sender ${LETTERS} . ${Array.from({ length: 3000 }, () => spec('latest', 'dir/f')).join(' ')}`;
    await assertRefused(long, /longer than 65536 bytes/);
    const many = `rsync --server --sender ${LETTERS} . ${Array.from({ length: 300 }, () => spec('latest', 'd')).join(' ')}`;
    await assertRefused(many, /at most 256 paths/);
    assert.deepEqual(await processesMatching(server.root), [], 'no serving rsync left');
  });

  test('a mirror is not rewritten under a restore: a backup racing it cannot turn a served directory into a symlink out', LIMIT, async () => {
    // The attack: start a restore of the mirror, hold it (read nothing) once the server's rsync
    // has sent its file list, run a backup that turns z/sub into a symlink to a directory of the
    // server, then read on: the server's rsync opens z/sub/f by its path and would follow it.
    const outside = join(work.dir, 'server-secrets');
    await mkdir(outside, { recursive: true });
    await writeFile(join(outside, 'f'), 'SERVER SECRET\n');
    const src = join(work.dir, 'mirror-src');
    await mkdir(join(src, 'a'), { recursive: true });
    await mkdir(join(src, 'z', 'sub'), { recursive: true });
    await writeFile(join(src, 'a', 'big'), '');
    await truncate(join(src, 'a', 'big'), 256 * 1024 * 1024); // sparse: cheap to keep, slow enough to send
    await writeFile(join(src, 'z', 'sub', 'f'), 'the client\'s own f\n');
    const first = await server.backup(src, ['-n', MIRROR], { timeoutMs: 90_000, key: server.keys.pmirror });
    assert.equal(first.code, 0, first.stderr);
    assert.ok(lstatSync(join(server.root, MIRROR, 'z', 'sub')).isDirectory());

    // The attacker's own rsync, through an ssh that passes the server's first MiB (the file list and
    // the start of a/big), then holds the rest back until SIGUSR1.
    const { held, gate } = await writeGate('mirror');
    const dest = await freshDest();
    const login = `${server.sshd.user}@127.0.0.1`;
    const rsh = [process.execPath, gate, held, '-F', '/dev/null', ...server.sshd.sshOptions(server.keys.pmirror!)].join(' ');
    const restore = spawn('rsync', ['-aHAXS', '--numeric-ids', '-R', '-e', rsh, `${login}:${spec('latest', 'a/big')}`, `${login}:${spec('latest', 'z/sub/f')}`, `${dest}/`], { stdio: ['ignore', 'pipe', 'pipe'] });
    let restoreErr = '';
    restore.stderr.on('data', (chunk: Buffer) => (restoreErr += chunk));
    restore.stdout.resume();
    let ended = false;
    const restored = new Promise<number | null>((resolve) => restore.on('close', (code) => { ended = true; resolve(code); }));
    try {
      // Held: the served rsync has sent its file list (z/sub a directory then) and is in a/big.
      while (!existsSync(held) && !ended) await new Promise((resolve) => setTimeout(resolve, 50));
      assert.ok(!ended, `the restore was held: ${restoreErr}`);
      await rm(join(src, 'z', 'sub'), { recursive: true });
      await symlink(outside, join(src, 'z', 'sub'));
      const racing = await server.backup(src, ['-n', MIRROR], { timeoutMs: 90_000, key: server.keys.pmirror });
      process.kill(Number(readFileSync(held, 'utf8').split(' ')[0]), 'SIGUSR1');
      await restored;
      assert.notEqual(readFileSync(join(dest, 'z', 'sub', 'f'), 'utf8').trim(), 'SERVER SECRET', 'a file of the server left through the restore');
      assert.equal(readFileSync(join(dest, 'z', 'sub', 'f'), 'utf8'), 'the client\'s own f\n', restoreErr);
      assert.notEqual(racing.code, 0, 'the backup did not rewrite the mirror under the restore');
      assert.match(racing.stderr, new RegExp(`another (?:backup|run) of ${MIRROR} is (?:already )?running`));
      assert.ok(lstatSync(join(server.root, MIRROR, 'z', 'sub')).isDirectory(), 'the mirror as it was');
    } finally {
      restore.kill('SIGKILL');
      await restored;
    }
  });

  test('a client that vanishes in the middle of a restore (its rsync and ssh SIGKILLed) leaves nothing running on the server', LIMIT, async () => {
    const { held, gate } = await writeGate('vanish');
    const dest = await freshDest();
    const login = `${server.sshd.user}@127.0.0.1`;
    const rsh = [process.execPath, gate, held, '-F', '/dev/null', ...server.sshd.sshOptions(server.keys.pmirror!)].join(' ');
    const restore = spawn('rsync', ['-aHAXS', '--numeric-ids', '-R', '-e', rsh, `${login}:${spec('latest', 'a/big')}`, `${dest}/`], { stdio: ['ignore', 'ignore', 'pipe'] });
    let restoreErr = '';
    restore.stderr.on('data', (chunk: Buffer) => (restoreErr += chunk));
    let ended = false;
    const restored = new Promise<number | null>((resolve) => restore.on('close', (code) => { ended = true; resolve(code); }));
    while (!existsSync(held) && !ended) await new Promise((resolve) => setTimeout(resolve, 50));
    assert.ok(!ended, `the restore was held: ${restoreErr}`);
    const [gatePid, sshPid] = readFileSync(held, 'utf8').split(' ').map(Number) as [number, number];
    assert.ok((await processesMatching('--files-from=')).some((line) => line.includes(join(server.root, MIRROR))), 'the served rsync runs');
    for (const pid of [sshPid, gatePid, restore.pid!]) process.kill(pid, 'SIGKILL');
    await restored;
    // The server notices the closed connection on its own (well before its 600 s --io-timeout).
    const deadline = Date.now() + 60_000;
    let left = await processesMatching(join(server.root, MIRROR));
    while (left.length && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 200));
      left = await processesMatching(join(server.root, MIRROR));
    }
    assert.deepEqual(left, [], 'no serving rsync left');
    // And the host's lock is free again: the next backup runs.
    const next = await server.backup(join(work.dir, 'mirror-src'), ['-n', MIRROR], { timeoutMs: 90_000, key: server.keys.pmirror });
    assert.equal(next.code, 0, next.stderr);
  });
});
