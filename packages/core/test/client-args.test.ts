// The client's destination and name handling: IPv6, port conflicts, names from files.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { clientName, parseDestination } from '../src/internal.js';

test('destinations: user@host, host:port, [v6]:port, and -p', () => {
  assert.deepEqual(parseDestination('backup@server.example'), { target: 'backup@server.example', port: null });
  assert.deepEqual(parseDestination('server:2222'), { target: 'server', port: 2222 });
  assert.deepEqual(parseDestination('bk@[2001:db8::1]:2222'), { target: 'bk@2001:db8::1', port: 2222 });
  assert.deepEqual(parseDestination('2001:db8::1'), { target: '2001:db8::1', port: null });
  assert.deepEqual(parseDestination('server', 2200), { target: 'server', port: 2200 });
  assert.deepEqual(parseDestination('server:2200', 2200), { target: 'server', port: 2200 });
});

test('bad destinations are usage errors', () => {
  assert.throws(() => parseDestination('server:22', 2222), /conflicting ports: 22 in the destination, 2222 from -p/);
  assert.throws(() => parseDestination('-oProxyCommand=x'), /invalid destination/);
  assert.throws(() => parseDestination('me@-oProxyCommand=x'), /invalid host/);
  assert.throws(() => parseDestination('server:http'), /invalid port/);
});

test('names: -n is checked, --name-file is sanitized, --name-rpi reads the serial', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'srs-names-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  assert.equal(clientName({ name: 'laptop-1.home' }), 'laptop-1.home');
  assert.throws(() => clientName({ name: '../etc' }), /invalid name "\.\.\/etc"/);
  writeFileSync(join(dir, 'serial'), '  ..Board/Serial: 12 34 \n');
  assert.equal(clientName({ nameFile: join(dir, 'serial') }), 'Board_Serial_12_34');
  writeFileSync(join(dir, 'cpuinfo'), 'processor\t: 0\nSerial\t\t: 00000000deadbeef\n');
  assert.equal(clientName({ nameRpi: true, cpuinfo: join(dir, 'cpuinfo') }), '00000000deadbeef');
  writeFileSync(join(dir, 'no-serial'), 'processor\t: 0\n');
  assert.throws(() => clientName({ nameRpi: true, cpuinfo: join(dir, 'no-serial') }), /no "Serial" line/);
  assert.throws(() => clientName({ nameFile: join(dir, 'missing') }), /cannot read .*missing: ENOENT/);
});

test('-x: mount points below PATH become daemon exclusions, with escapes decoded and wildcards escaped', async () => {
  const { mountExclusions } = await import('../src/client/rsyncd-conf.js');
  const mountinfo = [
    '22 1 253:0 / / rw - ext4 /dev/vda rw',
    '30 22 0:40 / /data rw - ext4 /dev/vdb rw',
    '31 30 0:41 / /data/mnt\\040space rw - tmpfs none rw',
    '32 30 0:42 / /data/odd*[name] rw - tmpfs none rw',
    '33 22 0:43 / /database rw - tmpfs none rw',
  ].join('\n');
  assert.deepEqual(mountExclusions('/data', mountinfo), ['- /mnt space/*', '- /odd\\*\\[name]/*']);
});

test('-t 0 is refused with a reason instead of being silently ignored (original weak spot 9)', async () => {
  const { spawnSync } = await import('node:child_process');
  const bin = new URL('../../cli/bin/ssh-r-sync.js', import.meta.url).pathname;
  const result = spawnSync(process.execPath, [bin, '-t', '0', 'backup@server', '/tmp'], { encoding: 'utf8' });
  assert.equal(result.status, 2);
  assert.match(result.stderr, /argument '0' is invalid\. expected a duration above 0/);
});
