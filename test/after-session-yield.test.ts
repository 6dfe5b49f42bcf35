// A long job after the session (an off-site copy to a repository that hangs, a big rotation) never
// blocks the host's next backup: the newer run asks the holder of the host's lock to stop that
// work, which it does (it is done again by the newer run), and gets the lock instead of being
// refused. A run in its session is never asked: the next one is refused as before.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { listSnapshots, readHostRecord } from '@ssh-r-sync/core';
import { backupCase, repoRoot, runNode, runRecv, tempDir, writeScript } from './helpers/cli.js';

const CORE = join(repoRoot, 'packages/core/dist/index.js');

let tmp: Awaited<ReturnType<typeof tempDir>>;
before(async () => (tmp = await tempDir('srs-yield-')));
after(async () => tmp.cleanup());

let fixtures = 0;
function fixture() {
  return backupCase(join(tmp.dir, `f${++fixtures}`), ['core', 'plugin-restic', 'plugin-link-dest']);
}

async function until(what: string, check: () => boolean): Promise<void> {
  const deadline = Date.now() + 120_000;
  while (!check()) {
    assert.ok(Date.now() < deadline, `never: ${what}`);
    await sleep(50);
  }
}

describe('work after the session yields to the host\'s next run', () => {
  test('an off-site copy that hangs stops for the next backup, which copies both snapshots; nothing is left running', async () => {
    const f = await fixture();
    const passwordFile = join(f.base, 'restic.pass');
    await writeFile(passwordFile, 'yield-secret\n', { mode: 0o600 });
    const repository = join(f.base, 'repo');
    execFileSync('restic', ['-r', repository, '--password-file', passwordFile, 'init'], { stdio: 'pipe', timeout: 120_000 });
    // The repository "hangs" while HANG exists (a network that swallows packets): restic's first
    // call there never answers. Otherwise it is the real restic.
    const hangFlag = join(f.base, 'HANG');
    const hanging = join(f.base, 'hanging');
    const restic = await writeScript(f.base, 'restic', `if [ -e ${hangFlag} ]; then echo $$ > ${hanging}; exec sleep 300; fi\nexec restic "$@"\n`);
    const config = join(f.base, 'ssh-r-sync.config.json');
    await writeFile(config, JSON.stringify({ plugins: ['@ssh-r-sync/plugin-link-dest', ['@ssh-r-sync/plugin-restic', { restic, repositories: [{ name: 'offsite', repository, passwordFile }] }]] }));
    const run = () => runRecv(['--config', config, '--local', f.src, '--name', 'y1', f.root], { cwd: f.base, timeoutMs: 180_000 });

    await writeFile(hangFlag, '');
    const first = run();
    await until('the first run\'s copy hangs', () => existsSync(hanging));
    const hungPid = Number(readFileSync(hanging, 'utf8'));
    await rm(hangFlag);
    await writeFile(join(f.src, 'b.txt'), 'beta\n');
    const second = await run();
    assert.equal(second.code, 0, second.stderr);
    assert.match(second.stderr, /the previous run of y1 \(pid \d+\) is at its work after the session: asked it to stop \(that work catches up at a later run\)/);
    const one = await first;
    assert.equal(one.code, 0, `the first backup stands: ${one.stderr}`);
    assert.match(one.stderr, /off-site copy to offsite stopped: a newer run of y1 asked for its lock; 1 snapshot still to copy/);
    assert.match(one.stderr, /restic stopped after \S+ s: a newer run of y1 asked for its lock \(that run does the work again\)/);
    assert.doesNotMatch(one.stderr, /error/);

    // The second run copied both, oldest first; nothing records the stop as a failure.
    const ids = (await listSnapshots(join(f.root, 'y1'))).map((s) => s.id);
    assert.equal(ids.length, 2);
    const copies = (JSON.parse(execFileSync('restic', ['-r', repository, '--password-file', passwordFile, 'snapshots', '--json'], { encoding: 'utf8', timeout: 120_000 })) as { time: string; tags: string[] }[])
      .sort((a, b) => Date.parse(a.time) - Date.parse(b.time))
      .map((c) => c.tags.find((t) => t.startsWith('id:'))!.slice(3));
    assert.deepEqual(copies, ids);
    const state = JSON.parse(readFileSync(join(f.root, '.ssh-r-sync', 'offsite', 'y1.json'), 'utf8')) as { repositories: { offsite: { lastFailure: unknown; pending: string[] } } };
    assert.equal(state.repositories.offsite.lastFailure, null);
    assert.deepEqual(state.repositories.offsite.pending, []);
    assert.deepEqual((await readHostRecord(f.root, 'y1'))?.afterSession?.tasks.map((t) => [t.name, t.outcome]), [['restic', 'ok']]);
    await until('the hung restic is gone', () => !existsSync(`/proc/${hungPid}`) || readFileSync(`/proc/${hungPid}/stat`, 'utf8').split(') ')[1]![0] === 'Z');
  });

  test('a run still in its session is never asked: the next one is refused as before; a task that yields is recorded as yielded', async () => {
    const f = await fixture();
    const started = join(f.base, 'started');
    // A plugin whose work after the session waits until it is stopped.
    const slow = join(f.base, 'slow.mjs');
    await writeFile(
      slow,
      `import { writeFileSync } from 'node:fs';
      import { scheduleAfterSession } from ${JSON.stringify(CORE)};
      export default { name: 'slow', apply(hooks) { hooks.done.tapPromise('slow', async (outcome, ctx) => {
        scheduleAfterSession(ctx, { name: 'slow', timeoutMs: 120000, run: (signal) => new Promise((resolve, reject) => {
          writeFileSync(${JSON.stringify(started)}, String(process.pid));
          signal.addEventListener('abort', () => reject(signal.reason), { once: true });
        }) });
      }); } };\n`,
    );
    const inSession = join(f.base, 'in-session');
    const hold = await writeScript(f.base, 'hold.sh', `echo $$ > ${inSession}\nwhile [ -e ${inSession} ]; do sleep 0.05; done\n`);
    const run = (...extra: string[]) => runRecv(['--plugin', '@ssh-r-sync/plugin-link-dest', '--plugin', slow, ...extra, '--local', f.src, '--name', 'y2', f.root], { cwd: f.base, timeoutMs: 180_000 });

    // In its session (an rsync.pre hook that waits): the next run is refused, the first untouched.
    const busy = run('-x', `rsync.pre:${hold}`);
    await until('the first run is in its session', () => existsSync(inSession));
    const refused = await run();
    assert.notEqual(refused.code, 0, refused.stderr);
    assert.match(refused.stderr, /another backup of y2 is already running \(pid \d+\); try again later/);
    assert.doesNotMatch(refused.stderr, /asked it to stop/);
    await rm(inSession);
    // Then at its work after the session: the next run gets the lock.
    await until('the first run is at its work after the session', () => existsSync(started));
    const firstPid = readFileSync(started, 'utf8');
    const next = run();
    const one = await busy;
    assert.equal(one.code, 0, one.stderr);
    assert.match(one.stderr, /slow stopped after \S+ s: a newer run of y2 asked for its lock \(that run does the work again\)/);
    // While the newer run does that work: the first run's record says its task yielded, which is no warning.
    await until('the second run is at its work after the session', () => readFileSync(started, 'utf8') !== firstPid);
    assert.deepEqual((await readHostRecord(f.root, 'y2'))?.afterSession?.tasks.map((t) => [t.name, t.outcome]), [['slow', 'yielded']]);
    const status = await runNode(join(repoRoot, 'packages/cli/bin/ssh-r-sync-admin.js'), ['status', f.root, 'y2']);
    assert.equal(status.code, 0, status.stdout + status.stderr);
    assert.doesNotMatch(status.stderr, /slow/);
    // The newer run stopped by its own SIGTERM: its task fails as stopped, the backup stands.
    process.kill(Number(readFileSync(started, 'utf8')), 'SIGTERM');
    const two = await next;
    assert.match(two.stderr, /asked it to stop/);
    assert.equal((await listSnapshots(join(f.root, 'y2'))).filter((s) => s.complete).length, 2);
  });
});
