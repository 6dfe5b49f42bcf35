// Session directories: private, removed on exit, and those of a process that died without
// cleaning up (SIGKILL) are removed by the next session of the same kind.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createSessionDir } from '../src/session/session-dir.js';

// A pid that is certainly not running any more: a process that has exited and been reaped.
function deadPid(): number {
  const child = spawnSync('sh', ['-c', 'echo $$']);
  return Number(String(child.stdout).trim());
}

test("a new session removes dead sessions' directories of its kind, and nothing else", (t) => {
  const base = mkdtempSync(join(tmpdir(), 'srs-session-dir-'));
  const saved = process.env.TMPDIR;
  process.env.TMPDIR = base;
  const sleeper = spawn('sleep', ['30']);
  t.after(() => {
    sleeper.kill('SIGKILL');
    process.env.TMPDIR = saved;
    if (saved === undefined) delete process.env.TMPDIR;
    rmSync(base, { recursive: true, force: true });
  });
  const dead = deadPid();
  const make = (name: string, mode = 0o700): string => {
    const path = join(base, name);
    mkdirSync(path, { mode });
    return path;
  };
  const stale = make(`ssh-r-sync-${dead}-AbC123`);
  const staleRecv = make(`ssh-r-sync-recv-${dead}-AbC123`);
  const living = make(`ssh-r-sync-${sleeper.pid}-XyZ789`);
  const open = make(`ssh-r-sync-${dead}-Open12`, 0o755);
  const other = make(`ssh-r-sync-notapid-AbC123`);
  symlinkSync('/', join(base, `ssh-r-sync-${dead}-Link12`));

  const session = createSessionDir('ssh-r-sync');
  assert.ok(statSync(session.path).isDirectory());
  assert.equal(statSync(session.path).mode & 0o777, 0o700);
  assert.match(session.path, new RegExp(`/ssh-r-sync-${process.pid}-[A-Za-z0-9]{6}$`));
  assert.equal(existsSync(stale), false, "a dead client's session dir is removed");
  assert.equal(existsSync(staleRecv), true, "a receiver's is not the client's to remove");
  assert.equal(existsSync(living), true, 'a running process keeps its dir');
  assert.equal(existsSync(open), true, 'a dir that is not 0700 is not ours: left alone');
  assert.equal(existsSync(other), true);
  assert.ok(existsSync('/etc'), 'a symlink is never followed');
  assert.deepEqual(readdirSync(base).filter((n) => n.includes('Link12')), [`ssh-r-sync-${dead}-Link12`], 'the symlink itself stays');

  createSessionDir('ssh-r-sync-recv').remove();
  assert.equal(existsSync(staleRecv), false, "the next receiver session removes the dead receiver's dir");
  session.remove();
  assert.equal(existsSync(session.path), false);
});
