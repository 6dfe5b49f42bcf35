// bench/prune: how long deleting an expired snapshot takes, against `rm -rf` of an identical
// one, side by side in one run. See bench/README.md.
//
//   node --import tsx bench/prune.mts [--files N] [--runs N] [--jobs N] [--work DIR] [--drop-caches]
//
// One source tree of N small files is generated (nested directories of 100 files; kept in
// bench/.cache and reused) and, per run, hard-linked (`cp -al`, not timed) into identical
// snapshots under WORK/host1/, each with its .meta/done.json, as plugin-link-dest leaves them. Then, each on its own copy, order rotating:
// `rm -rf` of the tree and its .meta (as an administrator would type it), plugin-rotate's
// deleteSnapshot (core's removeSnapshot; parallel and with one job), and node's recursive fs.rm (the
// old way, for reference). A benchmark, not a test: exit 0 whatever the ratios, 1 when a delete left
// something behind or touched the source.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { lstat, mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { repoRoot } from '../test/helpers/cli.js';
import { snapshotId, snapshotPaths, writeAtomic, type SnapshotPaths } from '@ssh-r-sync/core';
import { defaultJobs, deleteSnapshot } from '@ssh-r-sync/plugin-rotate';

const USAGE = `usage: node --import tsx bench/prune.mts [--files N] [--runs N] [--jobs N] [--work DIR] [--drop-caches]
  --files N       files in the snapshot (default 200000)
  --runs N        timed deletes per method, order rotating (default 3)
  --jobs N        parallel rm processes of plugin-rotate's delete (default: CPUs, at most 4: ${defaultJobs()} here)
  --work DIR      where the trees go, one filesystem (default bench/.cache); the generated
                  source tree is kept there and reused by later runs with the same --files
  --drop-caches   drop the page, dentry and inode caches before every timed delete (root only),
                  so each one starts cold, as a nightly rotation of an old snapshot would`;

const FILES_PER_DIR = 100;
const DIRS_PER_DIR = 100;

interface Method {
  label: string;
  remove: (paths: SnapshotPaths) => Promise<void>;
}

function positiveInt(name: string, text: string | undefined, fallback: number): number {
  if (text === undefined) return fallback;
  const value = Number(text);
  if (!Number.isInteger(value) || value < 1) throw new Error(`--${name} wants a positive integer, got ${JSON.stringify(text)}`);
  return value;
}

const say = (line = '') => process.stdout.write(`${line}\n`);
const seconds = (ms: number) => `${(ms / 1000).toFixed(3)} s`;
const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
};

// Nested directories: d07/d0712/f071234 — 100 files per leaf, 100 leaves per parent.
async function generate(dir: string, files: number): Promise<{ dirs: number }> {
  const leaves = Math.ceil(files / FILES_PER_DIR);
  for (let leaf = 0; leaf < leaves; leaf++) {
    const parent = Math.floor(leaf / DIRS_PER_DIR);
    const leafDir = join(dir, `d${parent}`, `d${parent}-${leaf}`);
    await mkdir(leafDir, { recursive: true });
    const first = leaf * FILES_PER_DIR;
    const names = Array.from({ length: Math.min(FILES_PER_DIR, files - first) }, (_, j) => first + j);
    await Promise.all(names.map((i) => writeFile(join(leafDir, `f${i}`), `file ${i}\n`.repeat(1 + (i % 7)))));
  }
  return { dirs: leaves + Math.ceil(leaves / DIRS_PER_DIR) };
}

// A complete snapshot of `source` under hostDir, hard-linked to it, with its done mark.
async function makeSnapshot(source: string, hostDir: string, date: Date): Promise<SnapshotPaths> {
  const paths = snapshotPaths(hostDir, snapshotId(date));
  execFileSync('cp', ['-al', source, paths.tree]);
  await mkdir(paths.meta, { recursive: true });
  await writeAtomic(paths.doneMark, `${JSON.stringify({ version: 1, host: 'host1', snapshot: paths.id })}\n`);
  return paths;
}

function settle(dropCaches: boolean): void {
  spawnSync('sync');
  if (dropCaches) execFileSync('sh', ['-c', 'echo 3 > /proc/sys/vm/drop_caches']);
}

async function countFiles(dir: string): Promise<number> {
  let count = 0;
  for (const entry of await readdir(dir, { withFileTypes: true, recursive: true })) if (entry.isFile()) count++;
  return count;
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    args: process.argv.slice(2),
    options: {
      files: { type: 'string' },
      runs: { type: 'string' },
      jobs: { type: 'string' },
      work: { type: 'string' },
      'drop-caches': { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    say(USAGE);
    return 0;
  }
  const files = positiveInt('files', values.files, 200_000);
  const runs = positiveInt('runs', values.runs, 3);
  const jobs = positiveInt('jobs', values.jobs, defaultJobs());
  const dropCaches = Boolean(values['drop-caches']);
  if (dropCaches && process.getuid?.() !== 0) throw new Error('--drop-caches needs root');
  const workDir = values.work ?? join(repoRoot, 'bench', '.cache');
  await mkdir(workDir, { recursive: true });
  const work = await mkdtemp(join(workDir, 'prune-run-'));
  const methods: Method[] = [
    { label: 'rm -rf (tree and .meta)', remove: async (paths) => void execFileSync('rm', ['-rf', '--', paths.tree, paths.meta]) },
    { label: `plugin-rotate deleteSnapshot, ${jobs} jobs`, remove: (paths) => deleteSnapshot(paths, { jobs }) },
    ...(jobs > 1 ? [{ label: 'plugin-rotate deleteSnapshot, 1 job', remove: (paths: SnapshotPaths) => deleteSnapshot(paths, { jobs: 1 }) }] : []),
    {
      label: "node's recursive fs.rm",
      remove: async (paths) => {
        await rm(paths.tree, { recursive: true, force: true });
        await rm(paths.meta, { recursive: true, force: true });
      },
    },
  ];
  try {
    say(`bench/prune: deleting a snapshot of ${files} hard-linked files, ${runs} runs per method`);
    say(`node ${process.version}, ${os.cpus().length} CPUs (${os.cpus()[0]?.model ?? '?'}), ${execFileSync('uname', ['-sr'], { encoding: 'utf8' }).trim()}`);
    say(`load average ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}; work dir ${work} on ${execFileSync('df', ['--output=fstype,source', work], { encoding: 'utf8' }).split('\n')[1]?.trim() ?? '?'}; caches ${dropCaches ? 'dropped before each delete' : 'warm (the copy was just made)'}`);
    const source = join(workDir, `prune-source-${files}`);
    let started = performance.now();
    if (existsSync(join(workDir, `prune-source-${files}.done`))) say(`reused the generated tree of ${files} files: ${source}`);
    else {
      await rm(source, { recursive: true, force: true });
      const { dirs } = await generate(source, files);
      await writeFile(join(workDir, `prune-source-${files}.done`), `${dirs}\n`);
      say(`generated ${files} files in ${dirs} directories in ${seconds(performance.now() - started)} (kept for later runs): ${source}`);
    }
    const hostDir = join(work, 'host1');
    await mkdir(hostDir);

    const times = new Map<string, number[]>(methods.map((m) => [m.label, []]));
    let failures = 0;
    let date = Date.UTC(2026, 0, 1);
    for (let run = 0; run < runs; run++) {
      // Rotate the order so no method always goes first (or last) after the copies.
      const order = methods.map((_, i) => methods[(i + run) % methods.length]!);
      started = performance.now();
      const snapshots = [];
      for (const _ of order) snapshots.push(await makeSnapshot(source, hostDir, new Date((date += 86_400_000))));
      say(`run ${run + 1}/${runs}: ${order.length} hard-linked snapshots made in ${seconds(performance.now() - started)} (not timed)`);
      for (const [i, method] of order.entries()) {
        const paths = snapshots[i]!;
        settle(dropCaches);
        const t0 = performance.now();
        await method.remove(paths);
        const ms = performance.now() - t0;
        times.get(method.label)!.push(ms);
        const left = existsSync(paths.tree) || existsSync(paths.meta);
        if (left) failures++;
        say(`  ${method.label.padEnd(44)} ${seconds(ms)}${left ? '  LEFT SOMETHING BEHIND' : ''}`);
      }
    }
    const sourceFiles = await countFiles(source);
    const sourceNlink = (await lstat(join(source, 'd0', 'd0-0', 'f0'))).nlink;
    if (sourceFiles !== files || sourceNlink !== 1) {
      failures++;
      say(`the source changed: ${sourceFiles} files, link count ${sourceNlink} (expected ${files} and 1)`);
    }

    const base = median(times.get(methods[0]!.label)!);
    say();
    say(`Results (${files} files; ${runs} runs each; medians; load average now ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}):`);
    // Paired: each method against the rm -rf of the same run, which saw about the same load.
    say(`${'method'.padEnd(44)} ${'median'.padStart(9)} ${'min'.padStart(9)} ${'vs rm -rf'.padStart(10)} ${'paired'.padStart(8)}`);
    const rmTimes = times.get(methods[0]!.label)!;
    for (const method of methods) {
      const samples = times.get(method.label)!;
      const paired = median(samples.map((ms, run) => ms / rmTimes[run]!));
      say(
        `${method.label.padEnd(44)} ${seconds(median(samples)).padStart(9)} ${seconds(Math.min(...samples)).padStart(9)} ` +
          `${`${(median(samples) / base).toFixed(2)}×`.padStart(10)} ${`${paired.toFixed(2)}×`.padStart(8)}`,
      );
    }
    say('  vs rm -rf: ratio of the medians; paired: median over runs of the ratio to that run\'s rm -rf');
    say(`  all runs (s): ${methods.map((m) => `${m.label.split(' (')[0]}: ${times.get(m.label)!.map((ms) => (ms / 1000).toFixed(3)).join(' ')}`).join('; ')}`);
    return failures ? 1 : 0;
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

main().then(
  (code) => process.exit(code),
  (error: Error) => {
    process.stderr.write(`bench/prune: ${error.message}\n`);
    process.exit(1);
  },
);
