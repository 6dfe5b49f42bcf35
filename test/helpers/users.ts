// A throwaway local user for tests that need another account (as root): no home, no login
// shell, a random name; removed when the test ends.
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import type { TestContext } from 'node:test';

// Creates the user; `t.after` removes it.
export function throwawayUser(t: TestContext): { user: string; uid: number } {
  const user = `srs-${randomBytes(3).toString('hex')}`;
  execFileSync('useradd', ['--no-create-home', '--shell', '/usr/sbin/nologin', user]);
  t.after(() => execFileSync('userdel', [user], { stdio: 'ignore' }));
  return { user, uid: Number(execFileSync('id', ['-u', user], { encoding: 'utf8' }).trim()) };
}
