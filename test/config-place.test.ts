// The receiver's config place (issue 10, item 3): --config FILE, else the system place
// (SSH_R_SYNC_CONFIG_DIR standing in for /etc/ssh-r-sync), else the account's ~/.config/ssh-r-sync/,
// else the working directory; `--check-config` says which file it loaded and what is wrong with
// it (exit 2, one line per problem), and `--debug` names the file a run used.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, rm, writeFile, chmod } from 'node:fs/promises';
import { existsSync, readFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { recvBin, repoRoot, runNode, runRecv, tempDir, writeScript } from './helpers/cli.js';

const LINK_DEST = join(repoRoot, 'packages/plugin-link-dest/dist/index.js');
const adminBin = join(repoRoot, 'packages/cli/bin/ssh-r-sync-admin.js');
const analyze = '/usr/bin/systemd-analyze';

let dir: string;
let cleanup: () => Promise<void>;
let n = 0;

before(async () => {
  ({ dir, cleanup } = await tempDir('srs-config-place-'));
});
after(() => cleanup());

// A system place, a home with its ~/.config/ssh-r-sync, a working directory, a source and a ROOT.
async function fixture() {
  n += 1;
  const base = join(dir, `f${n}`);
  const f = { base, system: join(base, 'etc-ssh-r-sync'), home: join(base, 'home'), cwd: join(base, 'cwd'), src: join(base, 'src'), root: join(base, 'root') };
  for (const each of [f.system, join(f.home, '.config', 'ssh-r-sync'), f.cwd, f.src]) await mkdir(each, { recursive: true });
  await mkdir(f.root, { mode: 0o700 });
  await writeFile(join(f.src, 'a.txt'), 'alpha\n');
  const env = { SSH_R_SYNC_CONFIG_DIR: f.system, HOME: f.home, XDG_CONFIG_HOME: '' };
  return { ...f, user: join(f.home, '.config', 'ssh-r-sync'), env, recv: (args: string[]) => runRecv(args, { cwd: f.cwd, env }) };
}

describe('where the receiver finds its config', () => {
  test('the system place, then the account place, then the working directory, then none; --config wins over all', async () => {
    const f = await fixture();
    const systemFile = join(f.system, 'config.json');
    const userFile = join(f.user, 'config.ts');
    const cwdFile = join(f.cwd, 'ssh-r-sync.config.json');
    await writeFile(systemFile, JSON.stringify({ lockWait: 1 }));
    await writeFile(userFile, 'export default { lockWait: 2 };\n');
    await writeFile(cwdFile, JSON.stringify({ lockWait: 3 }));
    const given = join(f.base, 'given.json');
    await writeFile(given, JSON.stringify({ lockWait: 4 }));

    const expectations: [string, string, RegExp][] = [
      [systemFile, '1', /\(the system place\)/],
      [userFile, '2', /\(the account's place\)/],
      [cwdFile, '3', /\(found in the working directory\)/],
    ];
    for (const [file, lockWait, how] of expectations) {
      const checked = await f.recv(['--check-config']);
      assert.equal(checked.code, 0, checked.stderr);
      assert.match(checked.stdout, new RegExp(`^config: ${file} `, 'm'));
      assert.match(checked.stdout, how);
      assert.match(checked.stdout, new RegExp(`^lockWait: ${lockWait}$`, 'm'));
      assert.match(checked.stdout, /^config ok$/m);
      // A real run names the same file with --debug.
      const ran = await f.recv(['--local', f.src, '--name', 'h', '--debug', f.root]);
      assert.equal(ran.code, 0, ran.stderr);
      assert.match(ran.stderr, new RegExp(`^ssh-r-sync-recv: config: ${file}$`, 'm'));
      // --config FILE wins over every place.
      const chosen = await f.recv(['--check-config', '--config', given]);
      assert.match(chosen.stdout, new RegExp(`^config: ${given} \\(given with --config\\)`, 'm'));
      assert.match(chosen.stdout, /^lockWait: 4$/m);
      await rm(file);
    }
    const none = await f.recv(['--check-config']);
    assert.equal(none.code, 0, none.stderr);
    assert.match(none.stdout, new RegExp(`^config: none found in ${f.system}/, ${f.user}/ or ${f.cwd}: the defaults apply$`, 'm'));
    const ran = await f.recv(['--local', f.src, '--name', 'h', '--debug', f.root]);
    assert.match(ran.stderr, /^ssh-r-sync-recv: config: none found, the defaults apply$/m);
  });

  test('a config file that an earlier place shadows is named as not read', async () => {
    const f = await fixture();
    await writeFile(join(f.system, 'config.yaml'), 'lockWait: 1\n');
    await writeFile(join(f.user, 'config.json'), '{}');
    const checked = await f.recv(['--check-config']);
    assert.equal(checked.code, 0, checked.stderr);
    assert.match(checked.stdout, new RegExp(`^config: ${join(f.system, 'config.yaml')} `, 'm'));
    assert.match(checked.stdout, new RegExp(`^  not read: ${join(f.user, 'config.json')} \\(the file above wins\\)$`, 'm'));
  });
});

describe('--check-config', () => {
  test('a good config: the file, its plugins with their options, its hooks with their points; exit 0', async () => {
    const f = await fixture();
    const pre = await writeScript(f.system, 'pre.sh', 'exit 0\n');
    await writeFile(join(f.system, 'config.json'), JSON.stringify({ mode: 'plain', plugins: [[LINK_DEST, {}]], hooks: { 'rsync.pre': './pre.sh', done: ['true'] } }));
    const checked = await f.recv(['--check-config', '--plugin', LINK_DEST, '-x', `rsync.post:${pre}`, f.root]);
    assert.equal(checked.code, 0, checked.stderr);
    assert.equal(checked.stderr, '');
    const lines = checked.stdout.trimEnd().split('\n');
    assert.deepEqual(lines, [
      `config: ${join(f.system, 'config.json')} (the system place)`,
      'mode: plain',
      `plugin ${LINK_DEST} (config): loaded, named "link-dest" options {}`,
      `hook rsync.pre: ${pre} (config)`,
      'hook done: true (config)',
      `plugin ${LINK_DEST} (command line): loaded, named "link-dest"`,
      `hook rsync.post: ${pre} (command line)`,
      `BACKUP_ROOT: ${f.root} (run log: ${join(f.root, '.ssh-r-sync', 'log', 'NAME.log')})`,
      'config ok',
    ]);
  });

  test('every problem is one line on stderr and the exit code is 2', async () => {
    const f = await fixture();
    const notExecutable = join(f.system, 'plain.sh');
    await writeFile(notExecutable, '#!/bin/sh\n');
    await chmod(notExecutable, 0o644);
    await writeFile(
      join(f.system, 'config.json'),
      JSON.stringify({ plugins: ['@ssh-r-sync/no-such-plugin'], hooks: { 'rsync.pre': './missing.sh', done: './plain.sh', bogus: './plain.sh' } }),
    );
    const checked = await f.recv(['--check-config', join(f.base, 'no-root')]);
    assert.equal(checked.code, 2, checked.stdout + checked.stderr);
    const problems = checked.stderr.trimEnd().split('\n');
    assert.equal(problems.length, 5, checked.stderr);
    assert.match(problems[0]!, /^ssh-r-sync-recv: cannot load plugin "@ssh-r-sync\/no-such-plugin" .*not installed/);
    assert.equal(problems[1], `ssh-r-sync-recv: hook rsync.pre: ${join(f.system, 'missing.sh')} does not exist`);
    assert.equal(problems[2], `ssh-r-sync-recv: hook done: ${notExecutable} is not executable: chmod +x ${notExecutable}`);
    assert.match(problems[3]!, /^ssh-r-sync-recv: unknown hook point "bogus": valid points are /);
    assert.match(problems[4]!, /^ssh-r-sync-recv: BACKUP_ROOT .*no-root is not a directory: create it/);
    assert.match(checked.stdout, /^5 problems$/m);
    assert.ok(!existsSync(join(f.base, 'no-root')), 'the check created nothing');
  });

  test('a schema error and an unreadable file: one line, exit 2', async () => {
    const f = await fixture();
    await writeFile(join(f.system, 'config.json'), JSON.stringify({ mode: 'root-please' }));
    const invalid = await f.recv(['--check-config']);
    assert.equal(invalid.code, 2);
    assert.match(invalid.stderr, new RegExp(`^ssh-r-sync-recv: invalid config ${join(f.system, 'config.json')}: mode: .*\\n$`));
    await rm(join(f.system, 'config.json'));
    await mkdir(join(f.system, 'config.json')); // as root every file is readable: a directory is not
    const unreadable = await f.recv(['--check-config']);
    assert.equal(unreadable.code, 2);
    assert.match(unreadable.stderr, new RegExp(`^ssh-r-sync-recv: cannot load ${join(f.system, 'config.json')}: .*\\n$`));
    // A run refuses the same config with exit 2 too, before any backup.
    const ran = await f.recv(['--local', f.src, '--name', 'h', f.root]);
    assert.equal(ran.code, 2);
    assert.ok(!existsSync(join(f.root, 'h')));
  });
});

describe('generated systemd units work from any working directory', () => {
  test('relative paths become absolute, WorkingDirectory=/, and the unit runs the same from /', async () => {
    const f = await fixture();
    await writeFile(join(f.cwd, 'recv.json'), JSON.stringify({ lockWait: 5 }));
    await writeScript(f.cwd, 'pre.sh', 'exit 0\n');
    const units = join(f.base, 'units');
    const written = await runNode(
      adminBin,
      ['systemd', '--name', 'web1', '--pull', '--install', '--dir', units, '--', recvBin, '--check-config', '--config', './recv.json', '-x', 'rsync.pre:./pre.sh', f.root],
      { cwd: f.cwd },
    );
    assert.equal(written.code, 0, written.stderr);
    const service = join(units, 'ssh-r-sync-web1.service');
    const text = readFileSync(service, 'utf8');
    assert.match(text, /^WorkingDirectory=\/$/m);
    const execStart = /^ExecStart=(.*)$/m.exec(text)![1]!;
    assert.equal(execStart, [recvBin, '--check-config', '--config', join(f.cwd, 'recv.json'), '-x', `rsync.pre:${join(f.cwd, 'pre.sh')}`, f.root].join(' '));
    if (existsSync(analyze)) {
      const verify = spawnSync(analyze, ['verify', service, join(units, 'ssh-r-sync-web1.timer')], { encoding: 'utf8', timeout: 30_000 });
      assert.equal(verify.status, 0, `systemd-analyze verify:\n${verify.stdout}${verify.stderr}`);
    }
    // What systemd would run, from its working directory: the same config and hook are found.
    const [program, ...args] = execStart.split(' ');
    const ran = await runNode(program!, args, { cwd: '/', env: f.env });
    assert.equal(ran.code, 0, ran.stdout + ran.stderr);
    assert.match(ran.stdout, new RegExp(`^config: ${join(f.cwd, 'recv.json')} \\(given with --config\\)$`, 'm'));
    assert.match(ran.stdout, new RegExp(`^hook rsync.pre: ${join(f.cwd, 'pre.sh')} \\(command line\\)$`, 'm'));
  });
});
