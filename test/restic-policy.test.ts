// plugin-restic's retention and locks with the real restic: `keep: "rotate"` forgets the copies
// off-site by the host's own rotation policy (plugin-rotate's plan over the copies' times), after a
// backup and by `ssh-r-sync-admin offsite forget`; without plugin-rotate it says what to do; and
// repository locks are left to the admin, with a refusal that names the holder.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { listSnapshots } from '@ssh-r-sync/core';
import { backupCase, repoRoot, runNode, runRecv, tempDir } from './helpers/cli.js';

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
  const { base, src } = await backupCase(join(tmp.dir, `f${++fixtures}`), ['core', 'plugin-restic', 'plugin-rotate', 'plugin-link-dest']);
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

  test('plugin-rotate trying its policy (dryRun) forgets nothing off-site either: it says what would go', async () => {
    const f = await fixture((repo) => ['@ssh-r-sync/plugin-link-dest', ['@ssh-r-sync/plugin-rotate', { keep: '3d', dryRun: true }], restic(repo)], 'rotate');
    const now = Date.now();
    for (const days of [10, 9, 3, 2]) f.plant(new Date(now - days * DAY));
    const r = await f.run();
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /\[restic\]: policy1: offsite: would forget 2 copies \(the host's policy: 3d; plugin-rotate's dryRun\)/);
    assert.equal(f.copies().length, 5, "every copy is still there");
    const forget = await admin(['offsite', 'forget', '--config', f.config, f.root]);
    assert.equal(forget.code, 0, forget.stderr);
    assert.equal(forget.stdout, `${HOST}: offsite: would forget 2 (plugin-rotate's dryRun: nothing is forgotten)\n`);
    assert.equal(f.copies().length, 5);
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

// The repository's lock files (restic writes each under a -tmp- name first, then renames it).
const locksOf = (repository: string) => readdirSync(join(repository, 'locks')).filter((name) => !name.includes('-tmp-'));

describe('plugin-restic and repository locks', () => {
  // `restic backup --stdin` holds the repository's (shared) lock until its stdin closes.
  function holdLock(f: Awaited<ReturnType<typeof fixture>>) {
    const child = spawn('restic', ['-r', f.repository, '--password-file', join(f.base, 'restic.pass'), 'backup', '--stdin', '--host', 'elsewhere'], { stdio: ['pipe', 'ignore', 'ignore'] });
    return child;
  }
  async function lockFiles(f: Awaited<ReturnType<typeof fixture>>, count: number): Promise<string[]> {
    for (let i = 0; i < 300; i++) {
      const locks = locksOf(f.repository);
      if (locks.length === count) return locks;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    throw new Error(`the repository never had ${count} lock(s)`);
  }

  test('a lock is never removed by the plugin: a dead restic\'s lock or a live one, the refusal names its holder and says what to do', async () => {
    const f = await fixture((repo) => ['@ssh-r-sync/plugin-link-dest', restic(repo)], '1d');
    assert.equal((await f.run()).code, 0);
    assert.equal(f.copies().length, 1);

    // A restic that died holding its lock (the server crashed during a copy). restic's unlock
    // tests such a lock by sending SIGHUP to its PID, which may be another process's by now: only
    // the admin, who can check, runs it.
    const dead = holdLock(f);
    const [stale] = await lockFiles(f, 1);
    const pid = dead.pid;
    dead.kill('SIGKILL');
    await new Promise((resolve) => dead.once('close', resolve));
    const refused = await admin(['offsite', 'forget', '--config', f.config, f.root]);
    assert.equal(refused.code, 1, refused.stderr);
    assert.match(refused.stdout, new RegExp(`^policy1: offsite: forget failed: offsite \\(.*\\): restic forget exited with code 1: .*already locked by PID ${pid} on \\S+.*: another restic holds its lock \\(the next run tries again\\); if that restic is no longer running \\(PID ${pid} on \\S+\\), remove the lock with \`restic -r .* unlock\`, never while it runs\\n$`));
    assert.deepEqual(locksOf(f.repository), [stale], 'the lock is still there');
    // The admin's unlock, as the message says: then forget works.
    f.restic(['unlock']);
    const forget = await admin(['offsite', 'forget', '--config', f.config, f.root]);
    assert.equal(forget.code, 0, forget.stderr);
    assert.equal(forget.stdout, `${HOST}: offsite: forgot 0\n`);

    // A restic still at work: the same refusal; its lock and its restic are untouched.
    const live = holdLock(f);
    try {
      const [held] = await lockFiles(f, 1);
      const busy = await admin(['offsite', 'forget', '--config', f.config, f.root]);
      assert.equal(busy.code, 1, busy.stderr);
      assert.match(busy.stdout, /already locked by PID \d+ .*: another restic holds its lock/);
      assert.deepEqual(locksOf(f.repository), [held]);
      assert.equal(live.exitCode, null, 'its restic still runs');
    } finally {
      live.stdin.end();
      await new Promise((resolve) => live.once('close', resolve));
    }
    assert.equal(f.copies().length, 1);
  });
});
