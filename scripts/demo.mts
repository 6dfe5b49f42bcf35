// The README's first command: a complete backup through a private sshd on 127.0.0.1, from the
// real client into the real receiver, then a second, incremental run. Usage:
//   npm run demo [-- DIRECTORY]      (backs up a sample tree, or DIRECTORY)
import { mkdir, readFile, readdir, symlink, writeFile, link } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { startBackupServer } from '../test/helpers/backup-server.js';
import { repoRoot } from '../test/helpers/cli.js';

const say = (text: string) => process.stdout.write(`\n\u001b[1m== ${text}\u001b[0m\n`.replace(/\u001b\[[0-9;]*m/g, process.stdout.isTTY && !process.env.NO_COLOR ? '$&' : ''));

const hooks = join(repoRoot, 'hooks');
const server = await startBackupServer({
  recvArgs: ['--name', 'demo-host', '-x', `rsync.post:${hooks}/rsync-post-ignore-vanished`, '-x', `done:${hooks}/done-log`],
});
try {
  let source = process.argv[2] ? resolve(process.argv[2]) : '';
  if (!source) {
    source = join(server.sshd.dir, 'sample');
    await mkdir(join(source, 'docs', 'drafts'), { recursive: true });
    await writeFile(join(source, 'docs', 'report.txt'), 'quarterly numbers\n'.repeat(100));
    await writeFile(join(source, 'docs', 'drafts', 'name with spaces.md'), '# draft\n');
    await writeFile(join(source, 'secret.key'), 'not really\n', { mode: 0o600 });
    await symlink('docs/report.txt', join(source, 'latest-report'));
    await link(join(source, 'docs', 'report.txt'), join(source, 'report-hardlink.txt'));
  }
  say(`A private sshd listens on 127.0.0.1:${server.sshd.port}; its authorized_keys line for the client key:`);
  const line = (await readFile(join(server.sshd.dir, 'authorized_keys'), 'utf8')).split('\n')[0]!;
  process.stdout.write(`${line.slice(0, line.lastIndexOf(' ssh-ed25519'))} ssh-ed25519 …\n`);
  say(`First backup of ${source}: ssh-r-sync -n demo-host … root@127.0.0.1 ${source}`);
  const first = await server.backup(source, ['-n', 'demo-host', '--json']);
  process.stdout.write(first.stderr + first.stdout);
  say('Second backup (only changes travel)');
  const second = await server.backup(source, ['-n', 'demo-host', '--json']);
  process.stdout.write(second.stderr + second.stdout);
  say(`What the server has in ${server.root}/demo-host:`);
  const walk = async (dir: string, prefix = ''): Promise<string[]> =>
    (await readdir(dir, { withFileTypes: true })).flatMap((entry) => [`${prefix}${entry.name}${entry.isDirectory() ? '/' : entry.isSymbolicLink() ? ' (symlink)' : ''}`]);
  process.stdout.write(`${(await walk(join(server.root, 'demo-host'))).map((name) => `  ${name}`).join('\n')}\n`);
  say('The done hook wrote the run log:');
  process.stdout.write(await readFile(join(server.root, '.ssh-r-sync', 'runs.log'), 'utf8'));
  process.exitCode = first.code || second.code || 0;
} finally {
  await server.stop();
}
