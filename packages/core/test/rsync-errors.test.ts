// describeRsyncFailure on output captured from real rsync 3.x runs (the failure each test names,
// made for real: a 2 MiB tmpfs, one without inodes, a file removed mid-transfer, unreadable files,
// a stalled peer, SIGTERM and SIGKILL, rrsync and ssh refusing; paths shortened), so that the
// one-line error names the cause in words. The quota and the overlong line follow their format.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { describeRsyncFailure, type RsyncFailure } from '../src/rsync/rsync-errors.js';

const ROOT = '/srv/backups';

function failure(code: number, output: string, changes: Partial<RsyncFailure> = {}): RsyncFailure {
  return { exitCode: code, originalExitCode: code, signal: null, output, ...changes };
}

const STATS = `
Number of files: 3 (reg: 2, dir: 1)
Number of created files: 2 (reg: 2)
Number of deleted files: 0
Number of regular files transferred: 2
Total file size: 1,000,002 bytes
Total transferred file size: 1,000,002 bytes
Literal data: 1,000,000 bytes
Matched data: 0 bytes
File list size: 0
File list generation time: 0.001 seconds
File list transfer time: 0.000 seconds
Total bytes sent: 1,000,388
Total bytes received: 61

sent 1,000,388 bytes  received 61 bytes  285,842.57 bytes/sec
total size is 1,000,002  speedup is 1.00
`;

test('a full disk while writing a file (exit 11): no space left on BACKUP_ROOT, with the file rsync was writing', () => {
  const output =
    'rsync: [receiver] write failed on "/srv/backups/h/big.bin": No space left on device (28)\n' +
    'rsync error: error in file IO (code 11) at receiver.c(657) [receiver=3.5.0]\n' +
    'rsync: [sender] write error: Broken pipe (32)\n';
  assert.equal(
    describeRsyncFailure(failure(11, output), ROOT),
    'no space left on BACKUP_ROOT (/srv/backups): free space there (old snapshots: ssh-r-sync-admin prune) and run the backup again: ' +
      'rsync: [receiver] write failed on "/srv/backups/h/big.bin": No space left on device (28)',
  );
});

test('no inodes left (exit 23, mkstemp fails): still no space left on BACKUP_ROOT', () => {
  const output =
    'rsync: [receiver] mkstemp "/srv/backups/h/d/.f115.dTd7Bw" failed: No space left on device (28)\n' +
    'rsync: [receiver] mkstemp "/srv/backups/h/d/.f116.PEOnZq" failed: No space left on device (28)\n' +
    STATS +
    'rsync error: some files/attrs were not transferred (see previous errors) (code 23) at main.c(1394) [sender=3.5.0]\n';
  assert.match(describeRsyncFailure(failure(23, output), ROOT), /^no space left on BACKUP_ROOT \(\/srv\/backups\): .*: rsync: \[receiver\] mkstemp "\/srv\/backups\/h\/d\/\.f115\.dTd7Bw" failed: No space left on device \(28\)$/);
});

test('a quota (the ENOSPC line with errno 122): disk quota exceeded on BACKUP_ROOT', () => {
  const output = 'rsync: [receiver] write failed on "/srv/backups/h/a": Disk quota exceeded (122)\nrsync error: error in file IO (code 11) at receiver.c(380) [receiver=3.5.0]\n';
  assert.match(describeRsyncFailure(failure(11, output), ROOT), /^disk quota exceeded on BACKUP_ROOT \(\/srv\/backups\): /);
});

test('a vanished file (exit 24) says so, names the file and the rsync.post mapping', () => {
  const output =
    'file has vanished: "/home/me/zz-vanish"\n' +
    'file has vanished: "/home/me/zz-other"\n' +
    STATS +
    'rsync warning: some files vanished before they could be transferred (code 24) at main.c(1394) [sender=3.5.0]\n';
  assert.equal(
    describeRsyncFailure(failure(24, output), ROOT),
    'some files vanished on the client during the transfer (rsync exit 24; an rsync.post hook can map 24 to 0): file has vanished: "/home/me/zz-vanish" (and 1 more)',
  );
});

test('a partial transfer (exit 23) names the first failing file, not the summary', () => {
  const output =
    'rsync: [sender] opendir "/home/me/closed" failed: Permission denied (13)\n' +
    'IO error encountered -- skipping file deletion\n' +
    'rsync: [sender] send_files failed to open "/home/me/secret": Permission denied (13)\n' +
    STATS +
    'rsync error: some files/attrs were not transferred (see previous errors) (code 23) at main.c(1394) [sender=3.5.0]\n';
  assert.equal(
    describeRsyncFailure(failure(23, output), ROOT),
    'some files or attributes were not transferred (rsync exit 23): rsync: [sender] opendir "/home/me/closed" failed: Permission denied (13) (and 1 more)',
  );
});

test('a stall (exit 30) says no data moved for the timeout, in seconds', () => {
  const output = '[Receiver] io timeout after 600 seconds -- exiting\nrsync error: timeout in data send/receive (code 30) at io.c(248) [Receiver=3.5.0]\n';
  assert.equal(describeRsyncFailure(failure(30, output), ROOT), 'no data moved for 600 seconds (--io-timeout): the client stalled or the connection hung (rsync exit 30)');
  assert.equal(describeRsyncFailure(failure(35, ''), ROOT), 'no data moved for --io-timeout seconds (--io-timeout): the client stalled or the connection hung (rsync exit 35)');
});

test('a signal is named; the echo of the dead process on the other side is not the cause', () => {
  const output = 'rsync: connection unexpectedly closed (67 bytes received so far) [generator]\nrsync error: error in rsync protocol data stream (code 12) at io.c(285) [generator=3.5.0]\n';
  assert.equal(describeRsyncFailure(failure(128, output, { signal: 'SIGKILL' }), ROOT), 'rsync was killed by SIGKILL');
  const stopped = 'rsync error: received SIGINT, SIGTERM, or SIGHUP (code 20) at rsync.c(874) [sender=3.5.0]\nrsync error: received SIGUSR1 (code 19) at main.c(1660) [generator=3.5.0]\n';
  assert.equal(describeRsyncFailure(failure(20, stopped), ROOT), 'rsync was stopped by SIGINT, SIGTERM or SIGHUP (rsync exit 20)');
});

test("other codes keep rsync's exit code and add its most telling line: rrsync's refusal, ssh's complaint", () => {
  const rrsync =
    '/usr/bin/rrsync error: option --remove-source-files has been disabled on this server.\n' +
    'rsync: connection unexpectedly closed (0 bytes received so far) [Receiver]\n' +
    'rsync error: error in rsync protocol data stream (code 12) at io.c(285) [Receiver=3.5.0]\n';
  assert.equal(describeRsyncFailure(failure(12, rrsync), ROOT), 'rsync exited with code 12: /usr/bin/rrsync error: option --remove-source-files has been disabled on this server.');
  const ssh =
    'root@127.0.0.1: Permission denied (publickey).\r\n' +
    'rsync: connection unexpectedly closed (0 bytes received so far) [Receiver]\n' +
    'rsync error: unexplained error (code 255) at io.c(285) [Receiver=3.5.0]\n';
  assert.equal(describeRsyncFailure(failure(255, ssh), ROOT), 'rsync exited with code 255: root@127.0.0.1: Permission denied (publickey).');
  const echoOnly = 'rsync: connection unexpectedly closed (0 bytes received so far) [Receiver]\nrsync error: error in rsync protocol data stream (code 12) at io.c(285) [Receiver=3.5.0]\n';
  assert.equal(describeRsyncFailure(failure(12, echoOnly), ROOT), 'rsync exited with code 12: rsync: connection unexpectedly closed (0 bytes received so far) [Receiver]');
  assert.equal(describeRsyncFailure(failure(127, 'cannot run rsync: not found (is rsync installed?)'), ROOT), 'rsync exited with code 127: cannot run rsync: not found (is rsync installed?)');
  assert.equal(describeRsyncFailure(failure(1, ''), ROOT), 'rsync exited with code 1');
});

test('an rsync.post mapping is shown; a mapped code keeps the cause of the original one', () => {
  assert.equal(describeRsyncFailure(failure(5, STATS, { originalExitCode: 0 }), ROOT), 'rsync exited with code 5 (rsync.post changed 0 to 5)');
  const vanished = 'file has vanished: "/home/me/x"\n';
  assert.equal(
    describeRsyncFailure(failure(1, vanished, { originalExitCode: 24 }), ROOT),
    'some files vanished on the client during the transfer (rsync exit 24; an rsync.post hook can map 24 to 0) (rsync.post changed 24 to 1): file has vanished: "/home/me/x"',
  );
});

test('a very long line is cut; file names and --progress updates (\\r) between the errors are passed over', () => {
  const long = `rsync: [receiver] write failed on "/srv/backups/h/${'x'.repeat(1000)}": Input/output error (5)\n`;
  const message = describeRsyncFailure(failure(11, long), ROOT);
  assert.ok(message.length < 400, `${message.length} characters`);
  assert.ok(message.endsWith('…'));
  const progress =
    'sending incremental file list\n' +
    'rsync: [sender] opendir "/home/me/closed" failed: Permission denied (13)\n' +
    'ok\n' +
    '\r         32,768  10%    0.00kB/s    0:00:00  \r        262,144  87%  206.45kB/s    0:00:00  \r        300,000 100%  209.61kB/s    0:00:01 (xfr#1, to-chk=2/4)\n' +
    'rsync: [sender] send_files failed to open "/home/me/secret": Permission denied (13)\n' +
    'closed/\n' +
    'rsync error: some files/attrs were not transferred (see previous errors) (code 23) at main.c(1394) [sender=3.5.0]\n';
  assert.equal(
    describeRsyncFailure(failure(23, progress), ROOT),
    'some files or attributes were not transferred (rsync exit 23): rsync: [sender] opendir "/home/me/closed" failed: Permission denied (13) (and 1 more)',
  );
});
