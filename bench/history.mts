// bench/history: time and peak memory of `ssh-r-sync-admin versions` (one path across every
// snapshot: one streamed pass per manifest) and `diff` (two manifests merged), on a synthetic host
// of --snapshots snapshots whose manifests hold --entries files each. See bench/README.md.
//
//   node --import tsx bench/history.mts [--snapshots N] [--entries N] [--cache DIR]
//
// The host is generated once (manifests and done marks only: versions and diff never look at the
// trees) and reused. In snapshot s, 1 % of the files change (content and mtime); the path asked
// for is the manifest's last, so every manifest is read to its end. Page cache warm. A benchmark,
// not a test: exit 0 whatever the figures, 1 when a command failed.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, open, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { HEADER, entryLine, type Entry } from '@ssh-r-sync/plugin-manifest';
import { snapshotId } from '@ssh-r-sync/core';
import { repoRoot } from '../test/helpers/cli.js';

const NAME = 'bench-host';
const FILES_PER_DIR = 1000;
const ADMIN = join(repoRoot, 'packages/cli/bin/ssh-r-sync-admin.js');
const GNU_TIME = '/usr/bin/time';

const { values } = parseArgs({ options: { snapshots: { type: 'string' }, entries: { type: 'string' }, cache: { type: 'string' } } });
const snapshots = Number(values.snapshots ?? 100);
const entries = Number(values.entries ?? 200_000);
if (!Number.isInteger(snapshots) || snapshots < 2 || !Number.isInteger(entries) || entries < 1) {
  console.error('usage: node --import tsx bench/history.mts [--snapshots N>=2] [--entries N] [--cache DIR]');
  process.exit(2);
}
const base = join(values.cache ?? join(repoRoot, 'bench', '.cache'), `history-${snapshots}x${entries}`);
const root = join(base, 'root');

// Snapshot s of file i: version 1 once s has passed the file's turn (1 % of the files per snapshot).
function fileEntry(i: number, s: number): Entry {
  const version = (i % 100) + s >= 100 ? 1 : 0;
  return {
    type: 'f', mode: 0o644, uid: 1000, gid: 1000, size: BigInt(i % 65536), mtimeNs: BigInt(1_600_000_000 + version) * 1_000_000_000n,
    target: '', rdev: null, flags: '-', sha256: `${i.toString(16).padStart(8, '0')}${version}`.padEnd(64, '0'),
  };
}

const dirEntry: Entry = { type: 'd', mode: 0o755, uid: 1000, gid: 1000, size: 4096n, mtimeNs: 1_600_000_000_000_000_000n, target: '', rdev: null, flags: '-', sha256: null };

async function generate(): Promise<string[]> {
  const marker = join(base, 'ready.json');
  if (existsSync(marker)) return JSON.parse(readFileSync(marker, 'utf8')) as string[];
  await rm(base, { recursive: true, force: true });
  process.stderr.write(`generating ${snapshots} manifests of ${entries} files in ${root} …\n`);
  const ids: string[] = [];
  const dirs = Math.ceil(entries / FILES_PER_DIR);
  const width = String(dirs - 1).length;
  for (let s = 0; s < snapshots; s += 1) {
    const id = snapshotId(new Date(Date.UTC(2026, 0, 1) + s * 86_400_000));
    ids.push(id);
    const meta = join(root, NAME, `${id}.meta`);
    await mkdir(join(root, NAME, id), { recursive: true });
    await mkdir(meta, { recursive: true });
    const handle = await open(join(meta, 'manifest.tsv'), 'w');
    let chunk = HEADER + entryLine('.', dirEntry);
    for (let d = 0; d < dirs; d += 1) {
      const dir = `d${String(d).padStart(width, '0')}`;
      chunk += entryLine(dir, dirEntry);
      for (let i = d * FILES_PER_DIR; i < Math.min(entries, (d + 1) * FILES_PER_DIR); i += 1) chunk += entryLine(`${dir}/f${String(i).padStart(7, '0')}`, fileEntry(i, s));
      await handle.write(chunk);
      chunk = '';
    }
    await handle.close();
    const done = { version: 1, host: NAME, snapshot: id, completedAt: new Date(Date.UTC(2026, 0, 1) + s * 86_400_000 + 60_000).toISOString(), startedAt: new Date(Date.UTC(2026, 0, 1) + s * 86_400_000).toISOString(), rsyncExitCode: 0, originalExitCode: 0, files: 0, bytes: 0, durationMs: 60_000, mode: 'privileged', hooks: [], extra: {} };
    await writeFile(join(meta, 'done.json'), `${JSON.stringify(done)}\n`);
  }
  await writeFile(marker, `${JSON.stringify(ids)}\n`);
  return ids;
}

// One run of ssh-r-sync-admin under GNU time: wall seconds, peak RSS in MiB, and lines printed.
function measure(args: string[]): { seconds: number; rssMiB: number; lines: number } {
  const run = spawnSync(GNU_TIME, ['-f', '%e %M', process.execPath, ADMIN, ...args], { encoding: 'utf8', maxBuffer: 1 << 30 });
  if (run.status !== 0) throw new Error(`ssh-r-sync-admin ${args.join(' ')} exited ${run.status}: ${run.stderr.trim().split('\n').slice(-2).join(' ')}`);
  const [wall, kib] = run.stderr.trim().split('\n').at(-1)!.split(' ').map(Number) as [number, number];
  return { seconds: wall, rssMiB: kib / 1024, lines: run.stdout.split('\n').length - 1 };
}

const ids = await generate();
const last = `d${String(Math.ceil(entries / FILES_PER_DIR) - 1).padStart(String(Math.ceil(entries / FILES_PER_DIR) - 1).length, '0')}/f${String(entries - 1).padStart(7, '0')}`;
console.log(`${snapshots} snapshots × ${entries} files (+${Math.ceil(entries / FILES_PER_DIR)} dirs), node ${process.version}, ${(await import('node:os')).cpus().length} CPUs, load ${(await import('node:os')).loadavg()[0]!.toFixed(2)}`);
const cases: [string, string[]][] = [
  [`versions of the last path (${last})`, ['versions', root, NAME, last]],
  ['versions of the first file (d…/f0000000: each read stops early)', ['versions', root, NAME, `${last.split('/')[0]!.replace(/\d/g, '0')}/f0000000`]],
  ['diff previous latest (1 % changed)', ['diff', root, NAME, 'previous', 'latest']],
  ['diff first latest (99 % changed)', ['diff', root, NAME, ids[0]!, 'latest']],
  ['diff first latest --json', ['diff', root, NAME, ids[0]!, 'latest', '--json']],
];
try {
  for (const [what, args] of cases) {
    const m = measure(args);
    console.log(`${what.padEnd(70)} ${m.seconds.toFixed(2).padStart(6)} s  ${m.rssMiB.toFixed(0).padStart(4)} MiB peak RSS  ${m.lines} lines`);
  }
} catch (error) {
  console.error((error as Error).message);
  process.exit(1);
}
