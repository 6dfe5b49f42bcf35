// What every command does before any backup: --version, a --help whose reader goes away early,
// and the start-up path (a CommonJS bundle compiled with V8's code cache, see
// packages/cli/bin/load-bundle.js), including a cache that does not fit.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { repoRoot, runNode } from './helpers/cli.js';

const cli = join(repoRoot, 'packages/cli');
const commands = [
  { bin: 'ssh-r-sync.js', bundle: 'client' },
  { bin: 'ssh-r-sync-recv.js', bundle: 'recv' },
  { bin: 'ssh-r-sync-admin.js', bundle: 'admin' },
];
const version = (JSON.parse(readFileSync(join(cli, 'package.json'), 'utf8')) as { version: string }).version;

for (const { bin, bundle } of commands) {
  test(`${bin} --version and -V print the package's version; the code cache is used`, async () => {
    for (const flag of ['--version', '-V']) {
      const result = await runNode(join(cli, 'bin', bin), [flag], { env: { SSH_R_SYNC_DEBUG: '1' } });
      assert.equal(result.code, 0, result.stderr);
      assert.equal(result.stdout, `${version}\n`);
      assert.match(result.stderr, new RegExp(`^ssh-r-sync: code cache of ${bundle}\\.cjs: used$`, 'm'));
    }
  });

  test(`${bin} --help into a pipe that is already closed: exit 0, no stack trace`, async () => {
    const child = spawn(process.execPath, [join(cli, 'bin', bin), '--help'], { stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout.destroy(); // as `| head -0` would: every write gets EPIPE
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk));
    const [code] = (await once(child, 'close')) as [number | null];
    assert.equal(code, 0, stderr);
    assert.equal(stderr, '');
  });
}

test('a code cache made for another build is ignored, one that V8 refuses is compiled around; the command works either way', async (t) => {
  // A copy of bin/ and the bundle inside packages/cli, so that node_modules resolve as for the real one.
  const copy = mkdtempSync(join(cli, '.cache-test-'));
  t.after(() => rmSync(copy, { recursive: true, force: true }));
  cpSync(join(cli, 'bin'), join(copy, 'bin'), { recursive: true });
  cpSync(join(cli, 'dist/bundle/recv.cjs'), join(copy, 'dist/bundle/recv.cjs'));
  const cacheFile = join(copy, 'dist/bundle/recv.cjs.cache');
  const realCache = readFileSync(join(cli, 'dist/bundle/recv.cjs.cache'));
  const run = () => runNode(join(copy, 'bin/ssh-r-sync-recv.js'), ['--version'], { env: { SSH_R_SYNC_DEBUG: '1' } });

  const missing = await run();
  assert.equal(missing.stdout, `${version}\n`, missing.stderr);
  assert.match(missing.stderr, /code cache of recv\.cjs: missing$/m);

  writeFileSync(cacheFile, Buffer.concat([Buffer.from(`${'0'.repeat(64)}\n`), realCache.subarray(65)]));
  const other = await run();
  assert.equal(other.code, 0, other.stderr);
  assert.equal(other.stdout, `${version}\n`);
  assert.match(other.stderr, /code cache of recv\.cjs: made for another build of the bundle: ignored$/m);

  const hash = createHash('sha256').update(readFileSync(join(copy, 'dist/bundle/recv.cjs'))).digest('hex');
  writeFileSync(cacheFile, Buffer.concat([Buffer.from(`${hash}\n`), Buffer.from('not a V8 code cache at all'.repeat(100))]));
  const garbage = await run();
  assert.equal(garbage.code, 0, garbage.stderr);
  assert.equal(garbage.stdout, `${version}\n`);
  assert.match(garbage.stderr, /code cache of recv\.cjs: rejected by V8 \(another node version\?\): compiled as usual$/m);
});
