// The units `ssh-r-sync-admin systemd --install` writes pass `systemd-analyze verify` (issue 5),
// and so do those of `--verify` (issue 9), where systemd is installed; elsewhere test/admin-setup.test.ts
// checks their content.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot, runNode, tempDir } from './helpers/cli.js';

const analyze = '/usr/bin/systemd-analyze';
const admin = join(repoRoot, 'packages/cli/bin/ssh-r-sync-admin.js');

for (const [mode, args] of [
  ['reverse (client side)', ['--name', 'laptop', '--calendar', 'daily', '--delay', '1h', '--nice', '10:idle', '--', join(repoRoot, 'packages/cli/bin/ssh-r-sync.js'), '--tunnel-port', '22324', '-n', 'laptop', 'backup@server.example', '/home']],
  ['pull (server side)', ['--name', 'web1', '--pull', '--calendar', '*-*-* 02:00', '--', join(repoRoot, 'packages/cli/bin/ssh-r-sync-recv.js'), '--pull', 'root@web1.example', '--name', 'web1', '/srv/backups']],
  ['a weekly sampled verify (server side)', ['--name', 'web1', '--verify', '/srv/backups', '--sample', '5', '--']],
] as const) {
  test(`systemd units for ${mode} pass systemd-analyze verify`, { skip: existsSync(analyze) ? false : 'systemd-analyze is not installed' }, async () => {
    const { dir, cleanup } = await tempDir('srs-systemd-');
    try {
      const written = await runNode(admin, ['systemd', ...args.slice(0, args.indexOf('--')), '--install', '--dir', dir, ...args.slice(args.indexOf('--'))]);
      assert.equal(written.code, 0, written.stderr);
      const name = (args as readonly string[]).includes('--verify') ? `verify-${args[1]}` : args[1];
      const units = [join(dir, `ssh-r-sync-${name}.service`), join(dir, `ssh-r-sync-${name}.timer`)];
      for (const unit of units) assert.ok(existsSync(unit), `${unit} was written`);
      const verify = spawnSync(analyze, ['verify', ...units], { encoding: 'utf8', timeout: 30_000 });
      assert.equal(verify.status, 0, `systemd-analyze verify:\n${verify.stdout}${verify.stderr}`);
      assert.equal(verify.stderr.trim(), '', 'no warnings either');
    } finally {
      await cleanup();
    }
  });
}
