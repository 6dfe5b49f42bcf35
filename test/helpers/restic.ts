// A real restic repository for a test: a password file (0600) and `restic init` in `base`.
import { execFileSync } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';

// Creates BASE/repo with the password `secret` in BASE/restic.pass.
export async function initRepository(base: string, secret: string): Promise<{ passwordFile: string; repository: string }> {
  const passwordFile = join(base, 'restic.pass');
  await writeFile(passwordFile, `${secret}\n`, { mode: 0o600 });
  const repository = join(base, 'repo');
  execFileSync('restic', ['-r', repository, '--password-file', passwordFile, 'init'], { stdio: 'pipe', timeout: 120_000 });
  return { passwordFile, repository };
}
