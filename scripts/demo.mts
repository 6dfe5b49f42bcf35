// The README's first command: a complete backup through a private sshd on 127.0.0.1, from the
// real client into the real receiver, then a second, incremental run. Usage:
//   npm run demo [-- DIRECTORY]      (backs up a sample tree, or DIRECTORY)
import { link, mkdir, mkdtemp, readFile, readdir, readlink, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { startBackupServer } from '../test/helpers/backup-server.js';
import { clientBin, repoRoot, runNode } from '../test/helpers/cli.js';

const say = (text: string) => process.stdout.write(`\n\u001b[1m== ${text}\u001b[0m\n`.replace(/\u001b\[[0-9;]*m/g, process.stdout.isTTY && !process.env.NO_COLOR ? '$&' : ''));

const hooks = join(repoRoot, 'hooks');
const plugin = (name: string) => join(repoRoot, 'packages', `plugin-${name}`, 'dist', 'index.js');
// The receiver's config: the three snapshot plugins, as an administrator would write it.
const configDir = await mkdtemp(join(tmpdir(), 'ssh-r-sync-demo-'));
const config = join(configDir, 'ssh-r-sync.config.json');
await writeFile(
  config,
  JSON.stringify({ plugins: [plugin('link-dest'), plugin('manifest'), [plugin('rotate'), { keep: '14d 4w 6m 2y', keepLast: 3 }]] }, null, 2),
);
const server = await startBackupServer({
  recvArgs: ['--name', 'demo-host', '--config', config, '-x', `rsync.post:${hooks}/rsync-post-ignore-vanished`, '-x', `done:${hooks}/done-log`],
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
  await new Promise((resolve) => setTimeout(resolve, 1100)); // a new second, so a new snapshot id
  if (!process.argv[2]) await writeFile(join(source, 'docs', 'drafts', 'new idea.md'), '# one more file\n');
  say('Second backup: only changes travel, into a new snapshot');
  const second = await server.backup(source, ['-n', 'demo-host', '--json']);
  process.stdout.write(second.stderr + second.stdout);
  const host = join(server.root, 'demo-host');
  say(`What the server has in ${host}:`);
  for (const entry of await readdir(host, { withFileTypes: true })) {
    const link = entry.isSymbolicLink() ? ` -> ${await readlink(join(host, entry.name))}` : entry.isDirectory() ? '/' : '';
    process.stdout.write(`  ${entry.name}${link}\n`);
  }
  const snapshots = (await readdir(host)).filter((name) => /^\d{4}-\d\d-\d\dT\d{6}Z$/.test(name)).sort();
  if (snapshots.length >= 2 && !process.argv[2]) {
    const [older, newer] = snapshots.slice(-2) as [string, string];
    const file = join('docs', 'report.txt');
    const [a, b] = [await stat(join(host, older, file)), await stat(join(host, newer, file))];
    say(`Unchanged files share an inode across snapshots (${file}):`);
    process.stdout.write(`  ${older}: inode ${a.ino}, ${a.nlink} links\n  ${newer}: inode ${b.ino}, ${b.nlink} links\n`);
    const manifest = (await readFile(join(host, `${newer}.meta`, 'manifest.tsv'), 'utf8')).split('\n');
    say(`The manifest of ${newer} (first lines of ${manifest.length - 1}):`);
    process.stdout.write(`${manifest.slice(0, 6).map((line) => `  ${line}`).join('\n')}\n`);
  }
  say('The done hook wrote the run log:');
  process.stdout.write(await readFile(join(server.root, '.ssh-r-sync', 'runs.log'), 'utf8'));
  const admin = (args: string[]) => runNode(join(repoRoot, 'packages/cli/bin/ssh-r-sync-admin.js'), args);
  say(`ssh-r-sync-admin verify --data ${server.root}: every stored byte against its manifest`);
  const verify = await admin(['verify', '--data', server.root]);
  process.stdout.write(verify.stdout + verify.stderr);
  say(`ssh-r-sync-admin diff ${server.root} demo-host previous latest:`);
  const diff = await admin(['diff', server.root, 'demo-host', 'previous', 'latest']);
  process.stdout.write(diff.stdout + diff.stderr);
  say(`ssh-r-sync snapshots and ssh-r-sync restore, from the client through its own key:`);
  const list = await runNode(clientBin, ['snapshots', ...server.clientArgs(), `${server.sshd.user}@127.0.0.1`]);
  process.stdout.write(list.stdout + list.stderr);
  const back = join(server.sshd.dir, 'restored');
  const restored = await runNode(clientBin, ['restore', ...server.clientArgs(), `${server.sshd.user}@127.0.0.1`, back]);
  process.stdout.write(restored.stdout + restored.stderr);
  process.stdout.write(`  ${back}: ${(await readdir(back)).sort().join('  ')}\n`);
  say(`ssh-r-sync-admin status ${server.root}:`);
  const status = await admin(['status', server.root]);
  process.stdout.write(status.stdout + status.stderr);
  process.exitCode = first.code || second.code || verify.code || diff.code || list.code || restored.code || status.code || 0;
} finally {
  await server.stop();
  await rm(configDir, { recursive: true, force: true });
}
