// --nice [PRIO][:CLASS[.LEVEL]]: every class and negative values work (the original's only worked
// for idle), and every child inherits them — checked from inside a hook.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { runRecv, tempDir, writeScript } from './helpers/cli.js';
import { startBackupServer, type BackupServer } from './helpers/backup-server.js';

let dir: string;
let cleanup: () => Promise<void>;
let src: string;
let probe: string;
let out: string;

before(async () => {
  ({ dir, cleanup } = await tempDir('srs-nice-'));
  src = join(dir, 'src');
  await mkdir(src);
  await mkdir(join(dir, 'root'), { mode: 0o700 }); // a privileged receiver refuses a ROOT others can read
  await writeFile(join(src, 'a'), 'a');
  out = join(dir, 'probe.out');
  probe = await writeScript(dir, 'probe.sh', `echo "$(nice) $(ionice -p $$)" > ${out}`);
});
after(() => cleanup());

const cases: [string, string][] = [
  ['-5:be.2', '-5 best-effort: prio 2'],
  ['10:idle', '10 idle'],
  ['rt.3', '0 realtime: prio 3'],
  ['-3', '-3 none: prio 0'],
  ['be.7', '0 best-effort: prio 7'],
  [':idle', '0 idle'],
];

describe('receiver --nice', () => {
  for (const [spec, expected] of cases) {
    test(`--nice ${spec} reaches the hooks as "${expected}"`, async () => {
      const result = await runRecv(['--local', src, '--name', 'h', `--nice=${spec}`, '-x', `connect:${probe}`, join(dir, 'root')]);
      assert.equal(result.code, 0, result.stderr);
      assert.equal((await readFile(out, 'utf8')).trim(), expected);
    });
  }

  test('a value given as a separate argument, even when negative', async () => {
    const result = await runRecv(['--local', src, '--name', 'h', '--nice', '-4:be.1', '-x', `connect:${probe}`, join(dir, 'root')]);
    assert.equal(result.code, 0, result.stderr);
    assert.equal((await readFile(out, 'utf8')).trim(), '-4 best-effort: prio 1');
  });

  for (const [spec, why] of [
    ['rt.9', 'the I/O level must be in 0..7'],
    ['20', 'the priority must be in -20..19'],
    ['fast', 'the I/O class must be rt, be or idle'],
    ['idle.3', 'the idle class has no level'],
  ] as const) {
    test(`--nice ${spec} is a usage error: ${why}`, async () => {
      const result = await runRecv(['--local', src, '--name', 'h', `--nice=${spec}`, join(dir, 'root')]);
      assert.equal(result.code, 2);
      assert.match(result.stderr, new RegExp(`error: invalid --nice "${spec.replace('.', '\\.')}": ${why.replace(/\./g, '\\.')}`));
    });
  }
});

describe('client --nice', () => {
  let server: BackupServer;
  before(async () => {
    server = await startBackupServer();
  });
  after(() => server.stop());

  test('applies to the client and its children (a client hook sees it)', async () => {
    const result = await server.backup(src, ['-n', 'host1', '--nice=-2:be.5', '--hook', `handshake:${probe}`]);
    assert.equal(result.code, 0, result.stderr);
    assert.equal((await readFile(out, 'utf8')).trim(), '-2 best-effort: prio 5');
  });
});
