// plugin-restic's retention and locks with the real restic: `keep: "rotate"` forgets the copies
// off-site by the host's own rotation policy (plugin-rotate's plan over the copies' times), after a
// backup and by `ssh-r-sync-admin offsite forget`; without plugin-rotate it says what to do; and a
// repository lock left by a restic that died is removed before a second try, a live one never.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { mkdir, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { listSnapshots } from '@ssh-r-sync/core';
import { repoRoot, runNode, runRecv, tempDir } from './helpers/cli.js';

const adminBin = join(repoRoot, 'packages/cli/bin/ssh-r-sync-admin.js');
const admin = (args: string[]) => runNode(adminBin, args, { timeoutMs: 180_000 });
const PASSWORD = `srs-restic-policy-${process.pid}`;
const HOST = 'policy1';
const DAY = 24 * 3600 * 1000;

let tmp: Awaited<ReturnType<typeof tempDir>>;
before(async () => (tmp = await tempDir('srs-restic-policy-')));
after(async () => tmp.cleanup());

let fixtures = 0;
async function fixture(plugins: (repo: Record<string, unknown>) => unknown[], keep: unknown) {
  const base = join(tmp.dir, `f${++fixtures}`);
  const src = join(base, 'src');
  await mkdir(src, { recursive: true });
  await writeFile(join(src, 'a.txt'), 'alpha\n');
  await mkdir(join(base, 'root'), { mode: 0o700 });
  await mkdir(join(base, 'node_modules', '@ssh-r-sync'), { recursive: true });
  for (const plugin of ['core', 'plugin-restic', 'plugin-rotate', 'plugin-link-dest']) await symlink(join(repoRoot, 'packages', plugin), join(base, 'node_modules', '@ssh-r-sync', plugin));
  const passwordFile = join(base, 'restic.pass');
  await writeFile(passwordFile, `${PASSWORD}\n`, { mode: 0o600 });
  const repository = join(base, 'repo');
  const config = join(base, 'ssh-r-sync.config.json');
  await writeFile(config, JSON.stringify({ plugins: plugins({ name: 'offsite', repository, passwordFile, keep }) }));
  const restic = (args: string[], options: { cwd?: string } = {}) => execFileSync('restic', ['-r', repository, '--password-file', passwordFile, ...args], { encoding: 'utf8', env: { ...process.env, TZ: 'UTC' }, stdio: ['ignore', 'pipe', 'pipe'], timeout: 120_000, cwd: options.cwd });
  restic(['init']);
  return {
    base,
    src,
    root: join(base, 'root'),
    config,
    repository,
    restic,
    /** The local ids (id: tags) of the host's copies, oldest first. */
    copies: () =>
      (JSON.parse(restic(['snapshots', '--json', '--host', HOST])) as { time: string; tags: string[] }[])
        .sort((a, b) => Date.parse(a.time) - Date.parse(b.time))
        .map((c) => c.tags.find((t) => t.startsWith('id:'))!.slice(3)),
    /** A copy of an earlier snapshot, as the plugin would have made it then. */
    plant: (date: Date) => {
      const iso = date.toISOString();
      const id = `${iso.slice(0, 10)}T${iso.slice(11, 19).replaceAll(':', '')}Z`;
      const stamp = date.toISOString().replace('T', ' ').slice(0, 19);
      restic(['backup', '--quiet', '--host', HOST, '--time', stamp, '--tag', 'ssh-r-sync', '--tag', `id:${id}`, '.'], { cwd: src });
      return id;
    },
    run: () => runRecv(['--config', config, '--local', src, '--name', HOST, join(base, 'root')], { cwd: base, timeoutMs: 180_000 }),
  };
}

const restic = (repo: Record<string, unknown>) => ['@ssh-r-sync/plugin-restic', { repositories: [repo] }];

describe('plugin-restic forgets copies with the host\'s rotation policy (keep: "rotate")', () => {
  test('after a backup, the copies off-site are thinned by plugin-rotate\'s rules: 3d keeps the newest of the last three days that have one', async () => {
    const f = await fixture((repo) => ['@ssh-r-sync/plugin-link-dest', ['@ssh-r-sync/plugin-rotate', { keep: '3d' }], restic(repo)], 'rotate');
    const now = Date.now();
    // Copies of earlier snapshots (rotated away locally long ago): ten, nine, three and two days old.
    const planted = [10, 9, 3, 2].map((days) => f.plant(new Date(now - days * DAY)));
    const r = await f.run();
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /\[restic\]: policy1: offsite: forgot 2 copies \(the host's policy: 3d\)/);
    const [local] = (await listSnapshots(join(f.root, HOST))).map((s) => s.id);
    // The days with a copy, newest first: today, 2 and 3 days ago are kept; 9 and 10 days ago go.
    assert.deepEqual(f.copies(), [planted[2], planted[3], local]);

    // By hand, the same policy from the same config: nothing more to forget, and --dry-run says so.
    const dry = await admin(['offsite', 'forget', '--dry-run', '--config', f.config, f.root]);
    assert.equal(dry.code, 0, dry.stderr);
    assert.equal(dry.stdout, `${HOST}: offsite: would forget 0\n`);
    const older = f.plant(new Date(now - 20 * DAY));
    const dry2 = await admin(['offsite', 'forget', '--dry-run', '--config', f.config, f.root]);
    assert.equal(dry2.stdout, `${HOST}: offsite: would forget 1\n`);
    assert.match(dry2.stderr, new RegExp(`would forget the copy of ${older}`));
    assert.equal(f.copies().length, 4, 'a dry run forgets nothing');
    const real = await admin(['offsite', 'forget', '--config', f.config, f.root]);
    assert.equal(real.code, 0, real.stderr);
    assert.equal(real.stdout, `${HOST}: offsite: forgot 1\n`);
    assert.deepEqual(f.copies(), [planted[2], planted[3], local]);
  });

  test('keep "rotate" without plugin-rotate in the config: the backup stands, the log and offsite forget say what to load; with keepLast it is refused at load', async () => {
    const f = await fixture((repo) => ['@ssh-r-sync/plugin-link-dest', restic(repo)], 'rotate');
    const r = await f.run();
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /has keep "rotate", but no @ssh-r-sync\/plugin-rotate is in the receiver's config: load it, or give the repository its own keep/);
    assert.equal(f.copies().length, 1, 'the copy itself was made');
    const forget = await admin(['offsite', 'forget', '--config', f.config, f.root]);
    assert.equal(forget.code, 1);
    assert.match(forget.stdout, /^policy1: offsite: forget failed: repository "offsite" has keep "rotate", but no @ssh-r-sync\/plugin-rotate/);

    const g = await fixture((repo) => ['@ssh-r-sync/plugin-link-dest', restic({ ...repo, keepLast: 2 })], 'rotate');
    const refused = await g.run();
    assert.equal(refused.code, 2, refused.stderr);
    assert.match(refused.stderr, /keepLast does not go with keep "rotate": the host's policy \(plugin-rotate's keepLast\) applies/);
  });

  test('two plugins that bring a retention policy are refused at load: which one would rule is not guessed', async () => {
    const f = await fixture((repo) => ['@ssh-r-sync/plugin-link-dest', ['@ssh-r-sync/plugin-rotate', { keep: '3d' }], restic(repo)], 'rotate');
    const other = join(f.base, 'other-retention.mjs');
    await writeFile(other, `export default { name: 'other-retention', apply() {}, retention: { summary: 'all', plan: (s) => ({ keep: s.map((x) => x.id), delete: [] }) } };\n`);
    const r = await runRecv(['--config', f.config, '--plugin', other, '--local', f.src, '--name', HOST, f.root], { cwd: f.base, timeoutMs: 120_000 });
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /plugins "rotate" and "other-retention" both bring a retention policy: load only one of them/);
    assert.deepEqual(await listSnapshots(join(f.root, HOST)), []);
  });
});

describe('plugin-restic and repository locks', () => {
  // `restic backup --stdin` holds the repository's (shared) lock until its stdin closes.
  function holdLock(f: Awaited<ReturnType<typeof fixture>>) {
    const child = spawn('restic', ['-r', f.repository, '--password-file', join(f.base, 'restic.pass'), 'backup', '--stdin', '--host', 'elsewhere'], { stdio: ['pipe', 'ignore', 'ignore'] });
    return child;
  }
  async function lockFiles(f: Awaited<ReturnType<typeof fixture>>, count: number): Promise<string[]> {
    for (let i = 0; i < 300; i++) {
      const locks = readdirSync(join(f.repository, 'locks'));
      if (locks.length === count) return locks;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    throw new Error(`the repository never had ${count} lock(s)`);
  }

  test('a lock left by a restic killed with SIGKILL is removed before a second try; a live restic\'s lock stays and the refusal says so', async () => {
    const f = await fixture((repo) => ['@ssh-r-sync/plugin-link-dest', restic(repo)], '1d');
    assert.equal((await f.run()).code, 0);
    assert.equal(f.copies().length, 1);

    // A restic that died holding its lock (the server crashed during a copy).
    const dead = holdLock(f);
    const [stale] = await lockFiles(f, 1);
    dead.kill('SIGKILL');
    await new Promise((resolve) => dead.once('close', resolve));
    assert.deepEqual(readdirSync(join(f.repository, 'locks')), [stale], 'SIGKILL leaves the lock behind');
    const forget = await admin(['offsite', 'forget', '--config', f.config, f.root]);
    assert.equal(forget.code, 0, forget.stderr);
    assert.equal(forget.stdout, `${HOST}: offsite: forgot 0\n`);
    assert.match(forget.stderr, /offsite: removed a lock that a restic which is no longer running left in the repository \(restic unlock: .*\), then tried again/);
    assert.deepEqual(readdirSync(join(f.repository, 'locks')), []);

    // A restic still at work: its lock is not touched, forget fails and says why.
    const live = holdLock(f);
    try {
      const [held] = await lockFiles(f, 1);
      const refused = await admin(['offsite', 'forget', '--config', f.config, f.root]);
      assert.equal(refused.code, 1, refused.stderr);
      assert.match(refused.stdout, /^policy1: offsite: forget failed: offsite \(.*\): restic forget exited with code 1: .*already locked.*: another restic is using it \(the next run tries again\)/);
      assert.deepEqual(readdirSync(join(f.repository, 'locks')), [held], 'the live lock is still there');
      assert.equal(live.exitCode, null, 'and its restic still runs');
    } finally {
      live.stdin.end();
      await new Promise((resolve) => live.once('close', resolve));
    }
    assert.equal(f.copies().length, 1);
  });
});
