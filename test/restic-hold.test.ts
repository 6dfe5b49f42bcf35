// Core's holds as rotation's plan reads them: a held snapshot is kept with the hold's reason, the
// rules still decide the rest, and pruneHost honours a hold file unless told to ignore it.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { readHolds, setHolds, snapshotId } from '@ssh-r-sync/core';
import { plan, pruneHost, type SnapshotState } from '@ssh-r-sync/plugin-rotate';
import { tempDir } from './helpers/cli.js';

let tmp: Awaited<ReturnType<typeof tempDir>>;
before(async () => (tmp = await tempDir('srs-hold-')));
after(async () => tmp.cleanup());

const hourly = (n: number): SnapshotState[] => Array.from({ length: n }, (_, i) => {
  const date = new Date(Date.UTC(2026, 10, 22, i));
  return { id: snapshotId(date), date, complete: true };
});

describe('holds', () => {
  test('the plan keeps a held snapshot with the hold\'s reason and deletes the other expired ones', () => {
    const history = hourly(5);
    const held = history.map((s, i) => (i === 1 ? { ...s, held: ['held: not yet copied off-site to offsite (plugin-restic)'] } : s));
    const p = plan(held, { keep: '1d', maxDeletes: Infinity }, new Date('2026-11-22T06:00:00Z'));
    assert.deepEqual(p.keep.map((k) => [k.id, k.reasons]), [
      [history[1]!.id, ['held: not yet copied off-site to offsite (plugin-restic)']],
      [history[4]!.id, ['newest complete', 'daily 1/1 (2026-11-22)']],
    ]);
    assert.deepEqual(p.delete.map((d) => d.id), [history[0]!.id, history[2]!.id, history[3]!.id]);
  });

  test('setHolds/readHolds round trip; pruneHost keeps what is held, or deletes it with ignoreHolds', async () => {
    const root = join(tmp.dir, 'root');
    const host = join(root, 'h1');
    const history = hourly(3);
    // A hard-link store's host as plugin-link-dest leaves it: snapshots with done marks, and the host's record.
    for (const s of history) {
      await mkdir(join(host, s.id), { recursive: true });
      await mkdir(join(host, `${s.id}.meta`), { recursive: true });
      await writeFile(join(host, `${s.id}.meta`, 'done.json'), JSON.stringify({ version: 1, host: 'h1', snapshot: s.id, completedAt: s.date.toISOString(), startedAt: s.date.toISOString(), rsyncExitCode: 0, originalExitCode: 0, files: 0, bytes: 0, durationMs: 1, hooks: [], extra: {} }));
    }
    await mkdir(join(root, '.ssh-r-sync', 'hosts'), { recursive: true });
    await writeFile(join(root, '.ssh-r-sync', 'hosts', 'h1.json'), JSON.stringify({ version: 1, kind: 'snapshots', store: '@ssh-r-sync/plugin-link-dest' }));
    await setHolds(root, 'h1', 'restic', [history[0]!.id], 'not yet copied off-site to offsite (plugin-restic)');
    assert.deepEqual([...(await readHolds(root, 'h1')).entries()], [[history[0]!.id, ['held: not yet copied off-site to offsite (plugin-restic)']]]);
    const now = new Date('2026-11-22T06:00:00Z');
    const dry = await pruneHost(host, { policy: { keep: '1d' }, now, dryRun: true });
    assert.deepEqual(dry.plan.delete.map((d) => d.id), [history[1]!.id]);
    const ignoring = await pruneHost(host, { policy: { keep: '1d' }, now, dryRun: true, ignoreHolds: true });
    assert.deepEqual(ignoring.plan.delete.map((d) => d.id), [history[0]!.id, history[1]!.id]);
    await setHolds(root, 'h1', 'restic', [], 'nothing');
    assert.equal((await readHolds(root, 'h1')).size, 0);
    await writeFile(join(root, '.ssh-r-sync', 'holds', 'h1', 'broken.json'), '{');
    const problems: string[] = [];
    assert.equal((await readHolds(root, 'h1', problems)).size, 0);
    assert.match(problems[0] ?? '', /broken\.json: /);
  });
});
