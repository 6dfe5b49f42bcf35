// What the server says besides the protocol, through a real sshd: a plugin's console.log (the
// channel is the receiver's alone) and a login shell that prints before the receiver starts.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { startBackupServer, type BackupServer } from './helpers/backup-server.js';
import { tempDir, type RunResult } from './helpers/cli.js';

const NAME = 'host1';

let work: string;
let cleanup: () => Promise<void>;
let src: string;

before(async () => {
  ({ dir: work, cleanup } = await tempDir('srs-server-output-'));
  src = join(work, 'src');
  await mkdir(src);
  await writeFile(join(src, 'a.txt'), 'alpha\n');
});
after(() => cleanup());

function assertExit(run: RunResult, code: number, what: string): void {
  assert.equal(run.code, code, `${what}: exit ${run.code}\nstderr: ${run.stderr}\nstdout: ${run.stdout}`);
}

// The client's one "ssh-r-sync: error:" line.
function errorLine(run: RunResult): string {
  const errors = run.stderr.split('\n').filter((line) => line.startsWith('ssh-r-sync: error: '));
  assert.equal(errors.length, 1, `expected one error line:\n${run.stderr}`);
  return errors[0]!;
}

describe('a plugin that prints on stdout', () => {
  let server: BackupServer;
  let plugin: string;
  before(async () => {
    plugin = join(work, 'chatty.mjs');
    await writeFile(
      plugin,
      `console.log('chatty: loaded');
process.stdout.write('chatty: raw write\\n');
export default {
  name: 'chatty',
  apply(hooks) {
    console.log('chatty: apply');
    hooks.connect.tap('chatty', () => { console.log('chatty: connect'); return undefined; });
    hooks.handshake.tap('chatty', () => { console.log('chatty: handshake'); return undefined; });
    hooks.rsyncPre.tap('chatty', () => { process.stdout.write('chatty: rsync.pre, no newline'); return undefined; });
    hooks.rsyncPost.tap('chatty', (result) => { console.log('\\nchatty: rsync.post', result.exitCode); return result; });
    hooks.done.tap('chatty', () => { console.info('chatty: done'); });
  },
};
`,
    );
    server = await startBackupServer({ recvArgs: ['--name', NAME, '--plugin', plugin] });
  });
  after(() => server?.stop());

  test('console.log and process.stdout.write of a plugin do not touch the channel: the backup succeeds, the text shows as server log', async () => {
    const run = await server.backup(src, ['-n', NAME], { timeoutMs: 60_000 });
    assertExit(run, 0, 'the backup');
    assert.equal(await readFile(join(server.root, NAME, 'a.txt'), 'utf8'), 'alpha\n');
    for (const text of ['loaded', 'raw write', 'apply', 'connect', 'handshake', 'rsync.pre, no newline', 'rsync.post 0']) {
      assert.match(run.stderr, new RegExp(`^ssh-r-sync: server: ssh-r-sync-recv\\[stdout\\]: chatty: ${text}$`, 'm'));
    }
    assert.doesNotMatch(run.stderr, /garbage|error/);
  });
});

describe("a server whose login shell prints on stdout before the receiver starts", () => {
  let server: BackupServer;
  before(async () => {
    server = await startBackupServer({ shellStartup: 'echo "Welcome to the backup box"' });
  });
  after(() => server?.stop());

  test('the client names the shell and the fix, in one line', async () => {
    const run = await server.backup(src, ['-n', NAME], { timeoutMs: 60_000 });
    assertExit(run, 1, 'the backup');
    assert.equal(
      errorLine(run),
      `ssh-r-sync: error: the server's shell printed "Welcome to the backup box" before ssh-r-sync-recv started: make non-interactive logins quiet (e.g. ~/.bashrc of the backup user)`,
    );
  });

  test('text without a newline, run into the receiver\'s hello, is quoted alone', async () => {
    const other = await startBackupServer({ shellStartup: 'printf "\\033[1mhi\\033[0m "' });
    try {
      const run = await other.backup(src, ['-n', NAME], { timeoutMs: 60_000 });
      assertExit(run, 1, 'the backup');
      assert.match(errorLine(run), /^ssh-r-sync: error: the server's shell printed "\\x1b\[1mhi\\x1b\[0m " before ssh-r-sync-recv started: /);
    } finally {
      await other.stop();
    }
  });
});
