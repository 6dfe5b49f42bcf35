// `ssh-r-sync-admin authorize` and `ssh-r-sync-admin systemd`, the real binary: the exact shape of
// the printed authorized_keys lines (reverse and pull), refusals (exit 2, one line), --json, the
// systemd units and --install/--dry-run; and one end-to-end check: the printed line, put into a
// throwaway sshd, lets the real client back up with the printed --tunnel-port, and refuses another.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { clientBin, recvBin, repoRoot, runNode, tempDir } from './helpers/cli.js';
import { startSshd, type Sshd } from './helpers/sshd.js';

const adminBin = join(repoRoot, 'packages/cli/bin/ssh-r-sync-admin.js');
const admin = (args: string[]) => runNode(adminBin, args);

let dir: string;
let cleanup: () => Promise<void>;
let key: string; // private key path; `${key}.pub` is the public one
let publicKey: string;
before(async () => {
  ({ dir, cleanup } = await tempDir('srs-admin-setup-'));
  key = join(dir, 'client_key');
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'client@test', '-f', key]);
  publicKey = readFileSync(`${key}.pub`, 'utf8').trim();
});
after(() => cleanup());

function assertUsageError(r: { code: number | null; stdout: string; stderr: string }, pattern: RegExp): void {
  assert.equal(r.code, 2, r.stderr);
  assert.equal(r.stdout, '');
  assert.equal(r.stderr.trimEnd().split('\n').length, 1, `not one line: ${r.stderr}`);
  assert.match(r.stderr, pattern);
}

describe('ssh-r-sync-admin authorize', () => {
  test('reverse mode: the authorized_keys line, the Match block and the client command', async () => {
    const r = await admin(['authorize', '--name', 'laptop', '--key', `${key}.pub`, '--recv', '/opt/srs/node_modules/.bin/ssh-r-sync-recv', '/srv/backup']);
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.split('\n');
    const line = lines.find((l) => l.startsWith('restrict,'));
    const port = Number(/tunnel port (\d+)/.exec(r.stdout)?.[1]);
    assert.ok(port >= 22000 && port <= 22999, r.stdout);
    assert.equal(
      line,
      `restrict,port-forwarding,permitlisten="127.0.0.1:${port}",command="/opt/srs/node_modules/.bin/ssh-r-sync-recv --name laptop --tunnel-port ${port} /srv/backup" ${publicKey}`,
    );
    const match = lines.slice(lines.indexOf('Match User ssh-r-sync'), lines.indexOf('Match User ssh-r-sync') + 9);
    assert.deepEqual(match.map((l) => l.trim()), [
      'Match User ssh-r-sync',
      'AllowTcpForwarding remote',
      'AllowStreamLocalForwarding no',
      'PermitOpen none',
      'X11Forwarding no',
      'AllowAgentForwarding no',
      'PermitTunnel no',
      'PermitTTY no',
      'PermitUserRC no',
    ]);
    assert.ok(lines.includes(`ssh-r-sync -k /root/.ssh/ssh-r-sync --tunnel-port ${port} -n laptop ssh-r-sync@SERVER PATH`), r.stdout);
    // Stable: the same name gives the same port.
    const again = await admin(['authorize', '--name', 'laptop', '--key', `${key}.pub`, '--json', '/srv/backup']);
    assert.equal(JSON.parse(again.stdout).port, port);
  });

  test('--json, --port, --option, --user, a multi-word --recv and the default --recv', async () => {
    const r = await admin([
      'authorize', '--name', 'nas.1', '--key', `${key}.pub`, '--port', '22777', '--user', 'bk', '--option', 'from="192.0.2.0/24"',
      '--server', 'backup.example.org', '--path', '/home', '--recv', `/usr/bin/node '/opt/my srs/ssh-r-sync-recv.js'`, '--json', '/srv/my backups',
    ]);
    assert.equal(r.code, 0, r.stderr);
    const json = JSON.parse(r.stdout) as Record<string, unknown>;
    assert.deepEqual(Object.keys(json).sort(), ['authorizedKeys', 'checkedFile', 'clientCommand', 'mode', 'port', 'portsInUse', 'schema', 'sshdMatch']);
    assert.equal(json.schema, 1);
    assert.equal(json.port, 22777);
    assert.equal(
      json.authorizedKeys,
      `restrict,port-forwarding,permitlisten="127.0.0.1:22777",from="192.0.2.0/24",command="/usr/bin/node '/opt/my srs/ssh-r-sync-recv.js' --name nas.1 --tunnel-port 22777 '/srv/my backups'" ${publicKey}`,
    );
    assert.match(json.sshdMatch as string, /^Match User bk\n {4}AllowTcpForwarding remote\n/);
    assert.equal(json.clientCommand, 'ssh-r-sync -k /root/.ssh/ssh-r-sync --tunnel-port 22777 -n nas.1 bk@backup.example.org /home');
    const installed = JSON.parse((await admin(['authorize', '--name', 'x', '--key', `${key}.pub`, '--json', '/srv'])).stdout) as { authorizedKeys: string };
    const recv = /command="(\S+)/.exec(installed.authorizedKeys)?.[1] ?? '';
    assert.ok(recv.startsWith('/') && /ssh-r-sync-recv(\.js)?$/.test(recv) && existsSync(recv), recv);
  });

  test('the existing authorized_keys: a derived port another key holds moves on, a --port it holds is refused', async () => {
    const other = join(dir, 'other_key');
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'other@test', '-f', other]);
    const otherKey = readFileSync(`${other}.pub`, 'utf8').trim();
    const derived = (JSON.parse((await admin(['authorize', '--name', 'laptop', '--key', `${key}.pub`, '--authorized-keys', 'none', '--json', '/srv/backup'])).stdout) as { port: number }).port;
    const next = derived === 22999 ? 22000 : derived + 1;
    const file = join(dir, 'authorized_keys');
    // Another key holds the derived port through permitlisten, a third the next one only through the receiver's --tunnel-port.
    await writeFile(file, [
      '# backups',
      `restrict,port-forwarding,permitlisten="127.0.0.1:${derived}",command="/usr/bin/ssh-r-sync-recv --name desk --tunnel-port ${derived} /srv/backup" ${otherKey}`,
      `restrict,port-forwarding,command="/usr/bin/ssh-r-sync-recv --name=nas --tunnel-port=${next} /srv/backup" ${otherKey.replace('other@test', 'nas')}`,
      '',
    ].join('\n'));
    const moved = await admin(['authorize', '--name', 'laptop', '--key', `${key}.pub`, '--authorized-keys', file, '/srv/backup']);
    assert.equal(moved.code, 0, moved.stderr);
    const port = Number(/tunnel port (\d+)/.exec(moved.stdout)?.[1]);
    assert.ok(port !== derived && port !== next && port >= 22000 && port <= 22999, moved.stdout);
    assert.match(moved.stdout, new RegExp(`${derived}, derived from the name "laptop", is used by line 2 \\(--name desk\\)`));
    assert.ok(moved.stdout.includes(`permitlisten="127.0.0.1:${port}"`) && moved.stdout.includes(`-k /root/.ssh/ssh-r-sync --tunnel-port ${port} -n laptop`), moved.stdout);
    const json = JSON.parse((await admin(['authorize', '--name', 'laptop', '--key', `${key}.pub`, '--authorized-keys', file, '--json', '/srv/backup'])).stdout) as Record<string, unknown>;
    assert.deepEqual([json.port, json.portsInUse, json.checkedFile], [port, [derived, next].sort((a, b) => a - b), file]);

    assertUsageError(
      await admin(['authorize', '--name', 'laptop', '--key', `${key}.pub`, '--authorized-keys', file, '--port', String(next), '/srv/backup']),
      new RegExp(`--port ${next} is already used by another key in .*authorized_keys \\(line 3, --name nas\\): choose another --port`),
    );
    // The key being authorized again keeps its own port: its old line is not "another key".
    const same = JSON.parse((await admin(['authorize', '--name', 'desk', '--key', `${other}.pub`, '--authorized-keys', file, '--port', String(derived), '--json', '/srv/backup'])).stdout) as { port: number };
    assert.equal(same.port, derived);
    assertUsageError(await admin(['authorize', '--name', 'laptop', '--key', `${key}.pub`, '--authorized-keys', join(dir, 'missing'), '/srv/backup']), /cannot read authorized_keys .*missing \(ENOENT\)/);
  });

  test("without --authorized-keys: the backup account's own ~/.ssh/authorized_keys is read", async () => {
    const user = `srs-${process.pid % 100000}`;
    const home = join(dir, 'home-' + user);
    execFileSync('useradd', ['--home-dir', home, '--create-home', '--shell', '/bin/sh', user]);
    try {
      const derived = (JSON.parse((await admin(['authorize', '--name', 'laptop', '--key', `${key}.pub`, '--user', user, '--json', '/srv/backup'])).stdout) as { port: number; checkedFile: string | null });
      assert.equal(derived.checkedFile, null, 'no authorized_keys yet: nothing to check');
      await mkdir(join(home, '.ssh'));
      await writeFile(join(home, '.ssh', 'authorized_keys'), `permitlisten="${derived.port}",restrict ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOtherOtherOtherOtherOtherOtherOtherOth other\n`);
      const r = JSON.parse((await admin(['authorize', '--name', 'laptop', '--key', `${key}.pub`, '--user', user, '--json', '/srv/backup'])).stdout) as { port: number; checkedFile: string };
      assert.equal(r.checkedFile, join(home, '.ssh', 'authorized_keys'));
      assert.notEqual(r.port, derived.port);
    } finally {
      execFileSync('userdel', ['-r', user], { stdio: 'ignore' });
    }
  });

  test('pull mode: the rrsync line for the client and the receiver command', async () => {
    const r = await admin(['authorize', '--pull', '--name', 'web1', '--key', `${key}.pub`, '--client', 'web1.example.org', '--root', '/srv/backup', '/var/www']);
    assert.equal(r.code, 0, r.stderr);
    assert.ok(r.stdout.split('\n').includes(`restrict,command="/usr/bin/rrsync -ro /var/www" ${publicKey}`), r.stdout);
    assert.match(r.stdout, /^# ssh-r-sync-recv --pull ssh-r-sync@web1\.example\.org --name web1 \/srv\/backup$/m);
    const json = JSON.parse((await admin(['authorize', '--pull', '--name', 'web1', '--key', `${key}.pub`, '--rrsync', '/usr/local/bin/rrsync', '--json', '/var/www'])).stdout);
    assert.equal(json.authorizedKeys, `restrict,command="/usr/local/bin/rrsync -ro /var/www" ${publicKey}`);
    assert.equal(json.mode, 'pull');
  });

  test('refusals: a private key, a bad name, a relative ROOT, a quote in a word, not a key (exit 2, one line)', async () => {
    assertUsageError(await admin(['authorize', '--name', 'laptop', '--key', key, '/srv/backup']), /is a private key: give the public key/);
    assertUsageError(await admin(['authorize', '--name', '-bad', '--key', `${key}.pub`, '/srv/backup']), /./);
    assertUsageError(await admin(['authorize', '--name', 'bad/name', '--key', `${key}.pub`, '/srv/backup']), /invalid --name "bad\/name"/);
    assertUsageError(await admin(['authorize', '--name', 'laptop', '--key', `${key}.pub`, 'srv/backup']), /ROOT must be an absolute path/);
    assertUsageError(await admin(['authorize', '--pull', '--name', 'laptop', '--key', `${key}.pub`, 'www']), /DIR must be an absolute path/);
    assertUsageError(await admin(['authorize', '--name', 'laptop', '--key', `${key}.pub`, '/srv/back"up']), /cannot put .* into a forced command/);
    assertUsageError(await admin(['authorize', '--name', 'laptop', '--key', `${key}.pub`, '/srv/back\nup']), /cannot put .* into a forced command/);
    const junk = join(dir, 'junk.pub');
    await writeFile(junk, 'ssh-ed25519 not-base64!\n');
    assertUsageError(await admin(['authorize', '--name', 'laptop', '--key', junk, '/srv/backup']), /not base64/);
    await writeFile(junk, `${publicKey}\n${publicKey}\n`);
    assertUsageError(await admin(['authorize', '--name', 'laptop', '--key', junk, '/srv/backup']), /exactly one public key line/);
    await writeFile(junk, 'ssh-dss AAAAB3NzaC1kc3MAAACBAP\n');
    assertUsageError(await admin(['authorize', '--name', 'laptop', '--key', junk, '/srv/backup']), /unknown key type/);
  });
});

describe('ssh-r-sync-admin systemd', () => {
  const command = ['--', '/opt/srs/node_modules/.bin/ssh-r-sync', '-k', '/root/.ssh/backup key', '--tunnel-port', '22101', '-n', 'laptop', 'backup@server', '/'];

  test('prints a oneshot service and a timer', async () => {
    const r = await admin(['systemd', '--name', 'laptop', '--json', '--calendar', '*-*-* 02:00', '--delay', '30min', '--nice', '5:be.7', ...command]);
    assert.equal(r.code, 0, r.stderr);
    const units = JSON.parse(r.stdout) as { service: string; timer: string; serviceName: string; timerName: string; enable: string };
    assert.equal(units.serviceName, 'ssh-r-sync-laptop.service');
    assert.equal(units.timerName, 'ssh-r-sync-laptop.timer');
    const service = units.service.split('\n');
    for (const line of [
      'Type=oneshot',
      'ExecStart=/opt/srs/node_modules/.bin/ssh-r-sync -k "/root/.ssh/backup key" --tunnel-port 22101 -n laptop backup@server /',
      'Nice=5',
      'IOSchedulingClass=best-effort',
      'IOSchedulingPriority=7',
      'ProtectSystem=full',
    ]) assert.ok(service.includes(line), `${line} missing:\n${units.service}`);
    assert.ok(!service.some((l) => /^(ProtectHome|PrivateTmp|User|ReadWritePaths)=/.test(l)), units.service);
    const timer = units.timer.split('\n');
    for (const line of ['OnCalendar=*-*-* 02:00', 'RandomizedDelaySec=30min', 'Persistent=true', 'WantedBy=timers.target']) assert.ok(timer.includes(line), `${line} missing:\n${units.timer}`);
    assert.equal(units.enable, 'systemctl daemon-reload && systemctl enable --now ssh-r-sync-laptop.timer');

    const text = await admin(['systemd', '--name', 'laptop', ...command]);
    assert.equal(text.code, 0, text.stderr);
    assert.match(text.stdout, /^Nice=10\nIOSchedulingClass=idle$/m);
    assert.match(text.stdout, /^OnCalendar=daily\nRandomizedDelaySec=1h\nPersistent=true$/m);
    assert.match(text.stdout, /systemctl daemon-reload && systemctl enable --now ssh-r-sync-laptop\.timer/);
  });

  test('SuccessExitStatus=75 (a skipped run is no failure), an OnFailure= example; --calendar is checked', async () => {
    const r = await admin(['systemd', '--name', 'laptop', '--json', ...command]);
    assert.equal(r.code, 0, r.stderr);
    const units = JSON.parse(r.stdout) as { schema: number; service: string; onFailureExample: string };
    assert.equal(units.schema, 1);
    const service = units.service.split('\n');
    assert.ok(service.includes('SuccessExitStatus=75'), units.service);
    assert.ok(service.includes('#OnFailure=ssh-r-sync-failed@%n.service'), units.service);
    assert.match(units.onFailureExample, /^ExecStart=\/bin\/sh -c 'journalctl -u "\$\$1"/m);
    const text = await admin(['systemd', '--name', 'laptop', ...command]);
    assert.match(text.stdout, /^# optional, for OnFailure=: \/etc\/systemd\/system\/ssh-r-sync-failed@\.service$/m);
    const help = await admin(['systemd', '--help']);
    assert.match(help.stdout, /SuccessExitStatus=75/);
    assert.match(help.stdout, /ssh-r-sync-failed@\.service/);
    const verify = JSON.parse((await admin(['systemd', '--verify', '/srv/backup', '--json'])).stdout) as { service: string };
    assert.ok(!verify.service.includes('SuccessExitStatus'), 'a verify never skips');
    // The dead-man's switch: an hourly status --report; a stale host fails the unit.
    const statusUnits = JSON.parse((await admin(['systemd', '--status-timer', '/srv/backup', '--max-age', '36h', '--json'])).stdout) as { service: string; timer: string; serviceName: string };
    assert.equal(statusUnits.serviceName, 'ssh-r-sync-status.service');
    assert.match(statusUnits.service, /^ExecStart=\S+ssh-r-sync-admin\S* status --report --max-age 36h \/srv\/backup$/m);
    assert.ok(!statusUnits.service.includes('SuccessExitStatus'), 'a stale host is a failed unit');
    assert.match(statusUnits.timer, /^OnCalendar=hourly$/m);
    assertUsageError(await admin(['systemd', '--status-timer', 'srv/backup']), /--status-timer BACKUP_ROOT must be absolute/);
    assertUsageError(await admin(['systemd', '--status-timer', '/srv/backup', '--max-age', 'soon']), /cannot read duration "soon"/);
    assertUsageError(await admin(['systemd', '--status-timer', '/srv/backup', '--', '/bin/true']), /--status-timer runs ssh-r-sync-admin status itself: give no COMMAND/);

    for (const calendar of ['Mon..Fri 02:00', '*-*-* 03:30:00', 'weekly', 'Sat,Sun 10:00 UTC']) {
      const ok = await admin(['systemd', '--name', 'laptop', '--calendar', calendar, '--json', ...command]);
      assert.equal(ok.code, 0, `${calendar}: ${ok.stderr}`);
    }
    // With systemd-analyze (where installed) and without it (PATH without it: the own check).
    const noAnalyze = join(dir, 'no-systemd-bin');
    await mkdir(noAnalyze, { recursive: true });
    for (const env of [{}, { PATH: noAnalyze }]) {
      for (const calendar of ['dayly', 'Mon 25:00:99 bogus', '02:00 tomorrow']) {
        assertUsageError(await runNode(adminBin, ['systemd', '--name', 'laptop', '--calendar', calendar, ...command], { env }), new RegExp(`invalid --calendar "${calendar.replace(/[.*]/g, '\\$&')}"`));
      }
      const ok = await runNode(adminBin, ['systemd', '--name', 'laptop', '--calendar', 'Mon..Fri 02:00', '--json', ...command], { env });
      assert.equal(ok.code, 0, ok.stderr);
    }
  });

  test('--pull: ProtectSystem=strict with ReadWritePaths=BACKUP_ROOT, User=', async () => {
    const r = await admin(['systemd', '--name', 'web1', '--pull', '--user', 'backup', '--json', '--', '/opt/srs/node_modules/.bin/ssh-r-sync-recv', '--pull', 'backup@web1', '--name', 'web1', '/srv/backup']);
    assert.equal(r.code, 0, r.stderr);
    const service = (JSON.parse(r.stdout) as { service: string }).service.split('\n');
    for (const line of ['User=backup', 'ProtectSystem=strict', 'ReadWritePaths=/srv/backup', 'PrivateTmp=yes']) assert.ok(service.includes(line), `${line} missing:\n${service.join('\n')}`);
  });

  test('--pull --offsite: a third unit copies off-site after each pull (OnSuccess=), the pull defers its copy; --config is passed on', async () => {
    const recv = '/opt/srs/node_modules/.bin/ssh-r-sync-recv';
    const pull = ['--pull', 'backup@web1', '--name', 'web1', '/srv/backup'];
    const r = await admin(['systemd', '--name', 'web1', '--pull', '--offsite', '--user', 'backup', '--json', '--', recv, '--config', '/etc/srs/recv.json', ...pull]);
    assert.equal(r.code, 0, r.stderr);
    const units = JSON.parse(r.stdout) as { service: string; serviceName: string; offsiteService: string; offsiteServiceName: string };
    assert.equal(units.offsiteServiceName, 'ssh-r-sync-web1-offsite.service');
    const service = units.service.split('\n');
    for (const line of ['OnSuccess=ssh-r-sync-web1-offsite.service', `ExecStart=${recv} --config /etc/srs/recv.json ${pull.slice(0, -1).join(' ')} --defer-unlocked /srv/backup`]) {
      assert.ok(service.includes(line), `${line} missing:\n${units.service}`);
    }
    assert.ok(service.indexOf('OnSuccess=ssh-r-sync-web1-offsite.service') < service.indexOf('[Service]'), 'OnSuccess= is in [Unit]');
    const offsite = units.offsiteService.split('\n');
    for (const line of [
      'Type=oneshot',
      `ExecStart=${adminBin} offsite sync --lock-wait 60 --config /etc/srs/recv.json /srv/backup web1`,
      'SuccessExitStatus=75',
      'User=backup',
      'Nice=10',
      'IOSchedulingClass=idle',
      'NoNewPrivileges=yes',
      'ProtectSystem=strict',
      'ReadWritePaths=/srv/backup',
      'ProtectHome=read-only',
      'PrivateTmp=yes',
      'CacheDirectory=ssh-r-sync-offsite',
      'Environment=XDG_CACHE_HOME=%C/ssh-r-sync-offsite',
    ]) assert.ok(offsite.includes(line), `${line} missing:\n${units.offsiteService}`);
    assert.ok(!offsite.some((l) => l.startsWith('OnSuccess=')), units.offsiteService);

    // --config=FILE is passed on too; a command that has --defer-unlocked keeps it once; no --config: the fixed places.
    const eq = JSON.parse((await admin(['systemd', '--name', 'web1', '--pull', '--offsite', '--json', '--', recv, '--defer-unlocked', '--config=/etc/srs/recv.json', ...pull])).stdout) as { service: string; offsiteService: string };
    assert.match(eq.service, new RegExp(`^ExecStart=${recv} --defer-unlocked --config=/etc/srs/recv\\.json --pull `, 'm'));
    assert.match(eq.offsiteService, new RegExp(`^ExecStart=${adminBin} offsite sync --lock-wait 60 --config /etc/srs/recv\\.json /srv/backup web1$`, 'm'));
    const bare = JSON.parse((await admin(['systemd', '--name', 'web1', '--pull', '--offsite', '--json', '--', recv, ...pull])).stdout) as { offsiteService: string };
    assert.match(bare.offsiteService, new RegExp(`^ExecStart=${adminBin} offsite sync --lock-wait 60 /srv/backup web1$`, 'm'));
    // A command run by node: the flag goes to the receiver, not to node.
    const viaNode = JSON.parse((await admin(['systemd', '--name', 'web1', '--pull', '--offsite', '--json', '--', process.execPath, recvBin, ...pull])).stdout) as { service: string };
    assert.match(viaNode.service, new RegExp(`^ExecStart=\\S+ \\S+ssh-r-sync-recv\\.js --pull backup@web1 --name web1 --defer-unlocked /srv/backup$`, 'm'));
    // BACKUP_ROOT not last (--root names it) or after `--`: the flag still goes before it, where the receiver reads options.
    const rootNotLast = JSON.parse((await admin(['systemd', '--name', 'web1', '--pull', '--offsite', '--root', '/srv/backup', '--json', '--', recv, '--pull', 'backup@web1', '/srv/backup', '--name', 'web1'])).stdout) as { service: string };
    assert.match(rootNotLast.service, new RegExp(`^ExecStart=${recv} --pull backup@web1 --defer-unlocked /srv/backup --name web1$`, 'm'));
    const dashes = JSON.parse((await admin(['systemd', '--name', 'web1', '--pull', '--offsite', '--json', '--', recv, '--pull', 'backup@web1', '--name', 'web1', '--', '/srv/backup'])).stdout) as { service: string };
    assert.match(dashes.service, new RegExp(`^ExecStart=${recv} --pull backup@web1 --name web1 --defer-unlocked -- /srv/backup$`, 'm'));
    // Without --offsite nothing changes.
    const plain = JSON.parse((await admin(['systemd', '--name', 'web1', '--pull', '--json', '--', recv, ...pull])).stdout) as { service: string; offsiteService?: string };
    assert.equal(plain.offsiteService, undefined);
    assert.doesNotMatch(plain.service, /OnSuccess=|--defer-unlocked/);

    // The printed text and --install show and write the three units.
    const text = await admin(['systemd', '--name', 'web1', '--pull', '--offsite', '--', recv, ...pull]);
    assert.equal(text.code, 0, text.stderr);
    assert.match(text.stdout, /^# \/etc\/systemd\/system\/ssh-r-sync-web1-offsite\.service\n\[Unit\]$/m);
    const dir3 = join(dir, 'units-offsite');
    const dry = await admin(['systemd', '--name', 'web1', '--pull', '--offsite', '--install', '--dry-run', '--dir', dir3, '--', recvBin, ...pull]);
    assert.equal(dry.code, 0, dry.stderr);
    assert.match(dry.stdout, new RegExp(`^# would write ${dir3}/ssh-r-sync-web1-offsite\\.service:$`, 'm'));
    assert.ok(!existsSync(dir3), 'the dry run created the directory');
    const real = await admin(['systemd', '--name', 'web1', '--pull', '--offsite', '--install', '--dir', dir3, '--', recvBin, ...pull]);
    assert.equal(real.code, 0, real.stderr);
    const files = ['ssh-r-sync-web1-offsite.service', 'ssh-r-sync-web1.service', 'ssh-r-sync-web1.timer'];
    assert.deepEqual((await readdir(dir3)).sort(), files);
    // systemd itself reads them (where installed): no error, no warning.
    if (existsSync('/usr/bin/systemd-analyze')) {
      const verify = spawnSync('/usr/bin/systemd-analyze', ['verify', ...files.map((f) => join(dir3, f))], { encoding: 'utf8', timeout: 60_000 });
      assert.equal(verify.status, 0, `systemd-analyze verify:\n${verify.stdout}${verify.stderr}`);
      assert.equal(verify.stderr.trim(), '', 'no warnings either');
    }

    assertUsageError(await admin(['systemd', '--name', 'laptop', '--offsite', ...command]), /^ssh-r-sync-admin: error: --offsite goes with --pull: in reverse mode the off-site copy .* never holds up the client$/m);
    assertUsageError(await admin(['systemd', '--verify', '/srv/backup', '--offsite']), /--offsite goes with --pull/);
    const help = await admin(['systemd', '--help']);
    assert.match(help.stdout, /--offsite/);
    assert.match(help.stdout, /CacheDirectory=ssh-r-sync-offsite/);
  });

  test('--install --dir writes both units; --dry-run writes nothing', async () => {
    const units = join(dir, 'units');
    const dry = await admin(['systemd', '--name', 'laptop', '--install', '--dry-run', '--dir', units, ...command]);
    assert.equal(dry.code, 0, dry.stderr);
    assert.ok(!existsSync(units), 'the dry run created the directory');
    assert.match(dry.stdout, new RegExp(`^# would write ${units}/ssh-r-sync-laptop\\.service:$`, 'm'));
    assert.match(dry.stdout, new RegExp(`^# would write ${units}/ssh-r-sync-laptop\\.timer:$`, 'm'));
    const real = await admin(['systemd', '--name', 'laptop', '--install', '--dir', units, ...command]);
    assert.equal(real.code, 0, real.stderr);
    assert.deepEqual((await readdir(units)).sort(), ['ssh-r-sync-laptop.service', 'ssh-r-sync-laptop.timer']);
    assert.match(readFileSync(join(units, 'ssh-r-sync-laptop.service'), 'utf8'), /^Type=oneshot$/m);
    assert.match(readFileSync(join(units, 'ssh-r-sync-laptop.timer'), 'utf8'), /^Persistent=true$/m);
    assert.match(real.stdout, /systemctl daemon-reload && systemctl enable --now ssh-r-sync-laptop\.timer/);
  });

  test('refusals: newlines, bad names, a missing command (exit 2, one line)', async () => {
    assertUsageError(await admin(['systemd', '--name', 'lap top', ...command]), /invalid --name/);
    assertUsageError(await admin(['systemd', '--name', 'laptop', '--calendar', 'daily\nExecStartPre=/bin/sh', ...command]), /invalid --calendar/);
    assertUsageError(await admin(['systemd', '--name', 'laptop', '--', '/bin/echo', 'a\nb']), /newline/);
    assertUsageError(await admin(['systemd', '--name', 'laptop', '--', 'no-such-program-srs']), /not in PATH/);
    assertUsageError(await admin(['systemd', '--name', 'laptop', '--nice', 'fast', ...command]), /invalid --nice/);
  });

  test('--verify: a weekly sampled verify of BACKUP_ROOT that may write only there and needs no network', async () => {
    const r = await admin(['systemd', '--verify', '/srv/backup', '--json']);
    assert.equal(r.code, 0, r.stderr);
    const units = JSON.parse(r.stdout) as { service: string; timer: string; serviceName: string; timerName: string; enable: string };
    assert.equal(units.serviceName, 'ssh-r-sync-verify.service');
    const service = units.service.split('\n');
    for (const line of [`ExecStart=${adminBin} verify --sample 5 /srv/backup`, 'Type=oneshot', 'ProtectSystem=strict', 'ReadWritePaths=/srv/backup', 'PrivateNetwork=yes', 'IOSchedulingClass=idle']) {
      assert.ok(service.includes(line), `${line} missing:\n${units.service}`);
    }
    assert.ok(!service.some((l) => /^(Wants|After)=network/.test(l)), units.service);
    assert.ok(units.timer.split('\n').includes('OnCalendar=weekly'), units.timer);
    assert.equal(units.enable, 'systemctl daemon-reload && systemctl enable --now ssh-r-sync-verify.timer');

    const one = JSON.parse((await admin(['systemd', '--verify', '/srv/backup', '--name', 'laptop', '--sample', 'data', '--calendar', 'Sun 04:00', '--json'])).stdout) as { service: string; timer: string; serviceName: string };
    assert.equal(one.serviceName, 'ssh-r-sync-verify-laptop.service');
    assert.ok(one.service.split('\n').includes(`ExecStart=${adminBin} verify --data /srv/backup laptop`), one.service);
    assert.ok(one.timer.split('\n').includes('OnCalendar=Sun 04:00'), one.timer);

    assertUsageError(await admin(['systemd', '--verify', '/srv/backup', '--sample', '0']), /invalid --sample "0"/);
    assertUsageError(await admin(['systemd', '--verify', 'srv/backup']), /must be absolute/);
    assertUsageError(await admin(['systemd', '--verify', '/srv/backup', '--', '/bin/true']), /give no COMMAND/);
    assertUsageError(await admin(['systemd', '--', '/bin/true']), /missing --name/);
  });
});

describe('authorize end to end: the printed line in a real sshd', () => {
  let sshd: Sshd;
  before(async () => (sshd = await startSshd()));
  after(() => sshd?.stop());

  test('the client with the printed --tunnel-port backs up; another port is refused', async () => {
    const root = join(dir, 'backups');
    const source = join(dir, 'source');
    await mkdir(root, { mode: 0o700 });
    await mkdir(join(source, 'sub'), { recursive: true });
    await writeFile(join(source, 'sub', 'file.txt'), 'hello\n');
    const printed = await admin(['authorize', '--name', 'e2e-host', '--key', `${key}.pub`, '--recv', `${process.execPath} ${recvBin}`, '--json', root]);
    assert.equal(printed.code, 0, printed.stderr);
    const { authorizedKeys, clientCommand, port } = JSON.parse(printed.stdout) as { authorizedKeys: string; clientCommand: string; port: number };
    const [options, ...keyParts] = splitKeyLine(authorizedKeys);
    await sshd.setAuthorizedKeys([{ options, publicKey: keyParts.join(' ') }]);
    const tunnelPort = Number(/--tunnel-port (\d+)/.exec(clientCommand)?.[1]);
    assert.equal(tunnelPort, port);

    const sshOptions = sshd.sshOptions(key);
    const oArgs: string[] = [];
    for (let i = 0; i < sshOptions.length; i += 1) if (sshOptions[i] === '-o' && !sshOptions[i + 1]!.startsWith('LogLevel=')) oArgs.push('-o', sshOptions[i + 1]!);
    const run = (p: number) => runNode(clientBin, ['--tunnel-port', String(p), '-n', 'e2e-host', '-k', key, '-p', String(sshd.port), ...oArgs, `${sshd.user}@127.0.0.1`, source]);

    const ok = await run(tunnelPort);
    assert.equal(ok.code, 0, `backup failed (exit ${ok.code}):\n${ok.stderr}\nsshd log:\n${sshd.log()}`);
    assert.equal(readFileSync(join(root, 'e2e-host', 'sub', 'file.txt'), 'utf8'), 'hello\n');

    const other = tunnelPort === 22999 ? 22998 : tunnelPort + 1;
    const refused = await run(other);
    assert.notEqual(refused.code, 0, `a client on port ${other} was let in:\n${refused.stderr}`);
    assert.match(refused.stderr, /forward/i, refused.stderr);
  });
});

// Splits an authorized_keys line into its options (which hold quoted spaces) and the key.
function splitKeyLine(line: string): string[] {
  let quoted = false;
  for (let i = 0; i < line.length; i += 1) {
    if (line[i] === '"') quoted = !quoted;
    else if (line[i] === ' ' && !quoted) return [line.slice(0, i), ...line.slice(i + 1).split(' ')];
  }
  return [line];
}
