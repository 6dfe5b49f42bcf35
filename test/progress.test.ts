// Live progress on the client: the receiver relays rsync's --info=progress2 over the channel (a
// few events a second); the client shows one updating line on a terminal (a real pty, through
// util-linux `script`), nothing in a pipe unless --progress asks, nothing with --no-progress; the
// same events reach a client-side plugin's progress tap. The transfer is slowed with --bwlimit
// (a receiver rsync.pre hook) so that there is progress to see.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseProgressLine } from '@ssh-r-sync/core';
import { startBackupServer, type BackupServer } from './helpers/backup-server.js';
import { clientBin, tempDir, writeScript } from './helpers/cli.js';

let server: BackupServer;
let dir: string;
let cleanup: () => Promise<void>;
let src: string;
let hosts = 0;
let slow: string;
// A new host name, and the forced command that serves it (slowed down).
async function nextHost(): Promise<string> {
  const name = `progress${++hosts}`;
  await server.setRecvArgs(['--name', name, '-x', `rsync.pre:${slow}`]);
  return name;
}

before(async () => {
  server = await startBackupServer();
  ({ dir, cleanup } = await tempDir('srs-progress-'));
  src = join(dir, 'src');
  await mkdir(src);
  // 3 MiB at 1 MiB/s: about three seconds of transfer.
  await writeFile(join(src, 'big.bin'), randomBytes(3 * 1024 * 1024));
  await writeFile(join(src, 'small.txt'), 'small\n');
  slow = await writeScript(dir, 'slow.sh', "printf -- '--bwlimit=1024\\0'");
});
after(async () => {
  await server.stop();
  await cleanup();
});

// Runs the client in a pseudo-terminal (`script`), returns what the terminal showed.
function inPty(args: string[]): { code: number | null; screen: string } {
  const argv = [process.execPath, clientBin, ...server.clientArgs(), ...args, `${process.env.USER ?? 'root'}@127.0.0.1`, src];
  const command = argv.map((word) => `'${word.replace(/'/g, `'\\''`)}'`).join(' ');
  const run = spawnSync('script', ['-qefc', command, '/dev/null'], { encoding: 'utf8', timeout: 120_000, env: { ...process.env, NO_COLOR: '1', COLUMNS: '200' } });
  return { code: run.status, screen: run.stdout };
}

describe('live progress on the client', () => {
  test('on a terminal: one line rewritten in place with bytes, percent, rate and files, erased before the result', async () => {
    const name = await nextHost();
    const { code, screen } = inPty(['-n', name]);
    assert.equal(code, 0, screen);
    const updates = screen.split('\r\x1b[K').filter((part) => part.startsWith(`${name}: `));
    assert.ok(updates.length >= 2, `several updates of the progress line: ${JSON.stringify(screen.slice(0, 2000))}`);
    assert.match(updates.at(-1)!, new RegExp(`^${name}: [\\d.]+ (?:B|KiB|MiB), \\d{1,3}%, [\\d.]+ (?:B|KiB|MiB)/s, .*\\d+s`));
    // The result comes on a line of its own: the progress line was erased first.
    assert.match(screen, /\r\x1b\[Kssh-r-sync: backup of progress\d+ done/);
  });

  test('in a pipe: nothing unless --progress asks; --no-progress on a terminal: nothing', async () => {
    const quiet = await server.backup(src, ['-n', await nextHost()]);
    assert.equal(quiet.code, 0, quiet.stderr);
    assert.doesNotMatch(quiet.stderr, /\d+%/);
    const asked = await server.backup(src, ['-n', await nextHost(), '--progress']);
    assert.equal(asked.code, 0, asked.stderr);
    assert.match(asked.stderr, /^progress\d+: [\d.]+ \S+, \d{1,3}%/m);
    assert.doesNotMatch(asked.stderr, /\r/, 'no carriage returns in a pipe');
    const { code, screen } = inPty(['-n', await nextHost(), '--no-progress']);
    assert.equal(code, 0, screen);
    assert.doesNotMatch(screen, /\d+%/);
  });

  test('a client plugin\'s progress tap gets the same events; the receiver\'s output keeps no progress lines', async () => {
    const log = join(dir, 'events.jsonl');
    const plugin = join(dir, 'progress-plugin.mjs');
    await writeFile(
      plugin,
      `import { appendFileSync } from 'node:fs';
      export default { name: 'watch', apply(hooks) { hooks.progress.tap('watch', (event, ctx) => appendFileSync(${JSON.stringify(log)}, JSON.stringify({ role: ctx.role, ...event }) + '\\n')); } };\n`,
    );
    const run = await server.backup(src, ['-n', await nextHost(), '--plugin', plugin, '--json']);
    assert.equal(run.code, 0, run.stderr);
    const events = (await readFile(log, 'utf8')).trimEnd().split('\n').map((line) => JSON.parse(line) as { role: string; bytes: number; percent: number | null; elapsedMs: number });
    assert.ok(events.length >= 2, `events: ${events.length}`);
    assert.ok(events.every((event) => event.role === 'client'));
    for (let i = 1; i < events.length; i += 1) assert.ok(events[i]!.bytes >= events[i - 1]!.bytes && events[i]!.elapsedMs >= events[i - 1]!.elapsedMs, 'bytes and time only grow');
    assert.equal(events.at(-1)!.percent, 100);
    // The transfer's own figures are unchanged by progress: --stats still counts both files.
    assert.equal(JSON.parse(run.stdout.trim()).files, 2);
  });

  test('rsync\'s progress2 lines, read', () => {
    assert.deepEqual(parseProgressLine('      3,000,000 100%    1.47MB/s    0:00:01 (xfr#1, to-chk=0/2)', 1200), {
      bytes: 3_000_000, percent: 100, bytesPerSecond: Math.round(1.47 * 1024 * 1024), files: 1, toCheck: { remaining: 0, total: 2 }, scanDone: true, elapsedMs: 1200,
    });
    assert.equal(parseProgressLine('        812,345   3%  210.12kB/s    0:01:40 (xfr#12, ir-chk=1004/2060)', 5)!.scanDone, false);
    assert.equal(parseProgressLine('      1,671,168  55%    1.47MB/s    0:00:00  ', 5)!.files, null);
    assert.equal(parseProgressLine('rsync: [sender] send_files failed to open "x": Permission denied (13)', 5), null);
    assert.equal(parseProgressLine('Number of files: 3 (reg: 2, dir: 1)', 5), null);
  });
});
