// bench/manifest: time and peak memory of plugin-manifest's writer against GNU find printing the
// same fields, over the same cached tree, side by side in one run. See bench/README.md.
//
//   node --import tsx bench/manifest.mts [--files N] [--runs N] [--cache DIR] [--tree-only]
//
// Each tool runs in a child process of its own (the writer in `node`, find as it is), under GNU
// time for the peak RSS; the order alternates, the page and dentry caches are warm. Since format
// v3 the writer hashes regular files: one untimed-against-find first run hashes them all (shown
// apart), and the timed runs are what every later backup of an unchanged tree costs, the hashes
// taken from that first manifest (the walk plus the merge with the previous manifest). A
// benchmark, not a test: exit 0 whatever the figures, 1 when a tool failed, the two listed
// different counts or a hash was not reused.
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, open, rm, symlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { repoRoot } from '../test/helpers/cli.js';
import { positiveInt } from './lib/runner.mjs';

const USAGE = `usage: node --import tsx bench/manifest.mts [--files N] [--runs N] [--cache DIR] [--tree-only]
  --files N     regular files in the generated tree (default 200000); 1 in 100 more are symlinks
  --runs N      timed runs per tool, order alternating (default 3)
  --cache DIR   where the generated tree is kept and reused (default bench/.cache)
  --tree-only   generate (or find) the cached tree, print its path and exit`;

const TREE_VERSION = 1;
const FILES_PER_DIR = 100;
const FIND_FORMAT = '%P\\t%y\\t%m\\t%U:%G\\t%s\\t%T@\\t%l\\n';
const GNU_TIME = '/usr/bin/time';

interface Options {
  files: number;
  runs: number;
  cache: string;
  treeOnly: boolean;
}

function parseOptions(argv: string[]): Options | undefined {
  const { values } = parseArgs({
    args: argv,
    options: {
      files: { type: 'string' },
      runs: { type: 'string' },
      cache: { type: 'string' },
      'tree-only': { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) return undefined;
  return {
    files: positiveInt('files', values.files, 200_000),
    runs: positiveInt('runs', values.runs, 3),
    cache: values.cache ?? join(repoRoot, 'bench', '.cache'),
    treeOnly: Boolean(values['tree-only']),
  };
}

// ---------------------------------------------------------------------------------------------
// The tree: d0/d01/f000123 … nested directories of 100 files; sizes from 0 to 64 KiB made with
// ftruncate (sparse: the bench measures the walk, not the disk), one symlink per 100 files.
// Generated once per --files and reused; a marker beside it says it is complete.

interface TreeInfo {
  version: number;
  files: number;
  symlinks: number;
  dirs: number;
}

async function ensureTree(options: Options): Promise<{ tree: string; info: TreeInfo }> {
  const base = join(options.cache, `manifest-${options.files}`);
  const tree = join(base, 'tree');
  const marker = join(base, 'tree.json');
  if (existsSync(marker)) {
    const info = JSON.parse(readFileSync(marker, 'utf8')) as TreeInfo;
    if (info.version === TREE_VERSION && info.files === options.files) return { tree, info };
  }
  await rm(base, { recursive: true, force: true });
  process.stderr.write(`generating ${options.files} files in ${tree} …\n`);
  const started = performance.now();
  const leaves = Math.ceil(options.files / FILES_PER_DIR);
  const width = Math.max(2, String(leaves - 1).length);
  const dirs = new Set<string>();
  let symlinks = 0;
  for (let i = 0; i < options.files; i += 1) {
    const digits = String(Math.floor(i / FILES_PER_DIR)).padStart(width, '0');
    const leaf = Array.from({ length: width }, (_, level) => `d${digits.slice(0, level + 1)}`).join('/');
    if (!dirs.has(leaf)) {
      await mkdir(join(tree, leaf), { recursive: true });
      leaf.split('/').forEach((_, n, parts) => dirs.add(parts.slice(0, n + 1).join('/')));
    }
    const name = `f${String(i).padStart(7, '0')}`;
    const handle = await open(join(tree, leaf, name), 'w');
    await handle.truncate((i * 2654435761) % 65536);
    await handle.close();
    if (i % 100 === 99) {
      await symlink(name, join(tree, leaf, `${name}.link`));
      symlinks += 1;
    }
  }
  const info: TreeInfo = { version: TREE_VERSION, files: options.files, symlinks, dirs: dirs.size };
  await writeFile(marker, `${JSON.stringify(info)}\n`);
  process.stderr.write(`generated in ${((performance.now() - started) / 1000).toFixed(1)} s\n`);
  return { tree, info };
}

// ---------------------------------------------------------------------------------------------
// One timed run of a command: wall time from spawn to exit, peak RSS from GNU time (-f %M, KiB).

interface Measured {
  ms: number;
  maxRssKiB: number | null;
  stdout: string;
}

function measure(argv: string[], stdoutFile: string | null): Promise<Measured> {
  return new Promise((resolve, reject) => {
    const timeFile = join(os.tmpdir(), `srs-bench-time-${process.pid}`);
    const useTime = existsSync(GNU_TIME);
    const command = useTime ? [GNU_TIME, '-f', '%M', '-o', timeFile, ...argv] : argv;
    void (async () => {
      const out = stdoutFile ? await open(stdoutFile, 'w') : null;
      const started = performance.now();
      const child = spawn(command[0]!, command.slice(1), { cwd: repoRoot, stdio: ['ignore', out ? out.fd : 'pipe', 'inherit'] });
      let stdout = '';
      child.stdout?.on('data', (chunk) => (stdout += chunk));
      child.once('error', reject);
      child.once('close', async (code, signal) => {
        const ms = performance.now() - started;
        await out?.close();
        if (code !== 0) return reject(new Error(`${argv.join(' ')} exited with ${signal ?? code}`));
        const maxRssKiB = useTime ? Number(readFileSync(timeFile, 'utf8').trim().split('\n').at(-1)) : null;
        await rm(timeFile, { force: true });
        resolve({ ms, maxRssKiB, stdout });
      });
    })().catch(reject);
  });
}

// The writer in a node of its own; it prints its summary and its own view of its peak RSS. It is
// imported from its built file: the package's entry also loads @ssh-r-sync/core, which the
// receiver has loaded anyway and which would be counted here otherwise.
// With a previous manifest (its file, size and SHA-256 as a done mark records them), unchanged
// files take their hashes from it, as in the plugin; given when that run began, too, every
// entry untouched since is taken over whole (the plugin's carry-entry.ts: no xattrs read).
const WRITER = `
import { writeManifest } from ${JSON.stringify(join(repoRoot, 'packages/plugin-manifest/dist/write-manifest.js'))};
const [tree, file, previous, bytes, sha256, startedAt] = process.argv.slice(1); // node -e: argv[0] is node, then the arguments after --
const started = performance.now();
const since = startedAt ? { startedAt: new Date(Number(startedAt)) } : {};
const summary = await writeManifest(tree, file, previous ? { previous: { file: previous, bytes: Number(bytes), sha256, id: 'previous', ...since } } : {});
console.log(JSON.stringify({ ...summary, ms: performance.now() - started, maxRssKiB: process.resourceUsage().maxRSS }));
`;

interface Row {
  label: string;
  ms: number[];
  rss: number[];
}

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor((values.length - 1) / 2)]!;
const mib = (kib: number) => `${(kib / 1024).toFixed(1)} MiB`;
const secs = (ms: number) => `${(ms / 1000).toFixed(3)} s`;

async function main(): Promise<number> {
  const options = parseOptions(process.argv.slice(2));
  if (!options) {
    console.log(USAGE);
    return 0;
  }
  const { tree, info } = await ensureTree(options);
  if (options.treeOnly) {
    console.log(tree);
    return 0;
  }
  const work = join(os.tmpdir(), `srs-bench-manifest-${process.pid}`);
  await mkdir(work, { recursive: true });
  try {
    const manifestFile = join(work, 'manifest.tsv');
    const firstFile = join(work, 'first.tsv');
    const findFile = join(work, 'find.tsv');
    const writerOf = (...args: string[]) => [process.execPath, '--input-type=module', '-e', WRITER, '--', tree, ...args];
    const find = ['find', tree, '-printf', FIND_FORMAT];
    console.log(`node ${process.version}, ${os.cpus().length} CPUs (${os.cpus()[0]?.model ?? '?'}), load average ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}`);
    console.log(`tree: ${tree}: ${info.files} files, ${info.symlinks} symlinks, ${info.dirs} directories`);
    console.log(`plugin-manifest: node -e 'writeManifest(TREE, FILE, { previous })' (the plugin's writer, as its rsync.post tap calls it), the hashes`);
    console.log(`                 of every file taken from a first manifest of the same tree (a no-change backup: the walk and the merge)`);
    console.log(`find:            find TREE -printf '${FIND_FORMAT}' > FILE`);
    console.log(`peak RSS: ${existsSync(GNU_TIME) ? 'GNU time -f %M' : 'GNU time not installed: the writer reports its own'}; ${options.runs} runs each, order alternating, warm cache\n`);

    await measure(['find', tree, '-printf', ''], null); // warm the dentry and inode caches
    const baseline = await measure([process.execPath, '-e', '0'], null);
    // The first manifest reads every file for its hash (here: sparse files, so zeros from holes).
    // The tree is older than this "previous run", so every entry is untouched since it began.
    const firstStarted = Date.now();
    const firstRun = await measure(writerOf(firstFile), null);
    const first = JSON.parse(firstRun.stdout) as { entries: number; bytes: number; sha256: string; hashes: { read: number; readBytes: number; reused: number } };
    const writer = writerOf(manifestFile, firstFile, String(first.bytes), first.sha256, String(firstStarted));
    const hashesOnly = writerOf(`${manifestFile}.hashes`, firstFile, String(first.bytes), first.sha256);
    let notReused = 0;
    let carried = 0;
    const rows: Row[] = [
      { label: 'plugin-manifest', ms: [], rss: [] },
      { label: 'find -printf', ms: [], rss: [] },
      { label: '  hashes only', ms: [], rss: [] },
    ];
    let entries = 0;
    let findLines = 0;
    for (let run = 0; run < options.runs; run += 1) {
      const order = run % 2 === 0 ? [0, 1, 2] : [2, 1, 0];
      for (const which of order) {
        if (which !== 1) {
          const result = await measure(which === 0 ? writer : hashesOnly, null);
          const summary = JSON.parse(result.stdout) as { entries: number; ms: number; maxRssKiB: number; bytes: number; hashes: { read: number; reused: number }; carried: number };
          entries = summary.entries;
          notReused = Math.max(notReused, summary.hashes.read);
          if (which === 0) carried = summary.carried;
          rows[which]!.ms.push(result.ms);
          rows[which]!.rss.push(result.maxRssKiB ?? summary.maxRssKiB);
        } else {
          const result = await measure(find, findFile);
          findLines = readFileSync(findFile).toString('latin1').split('\n').length - 1;
          rows[1]!.ms.push(result.ms);
          if (result.maxRssKiB !== null) rows[1]!.rss.push(result.maxRssKiB);
        }
      }
    }

    console.log(`${'tool'.padEnd(20)}${'median'.padStart(12)}${'min'.padStart(12)}${'peak RSS (max)'.padStart(18)}${'output'.padStart(14)}`);
    const sizes = [readFileSync(manifestFile).length, readFileSync(findFile).length, readFileSync(`${manifestFile}.hashes`).length];
    if (!readFileSync(manifestFile).equals(readFileSync(`${manifestFile}.hashes`))) {
      console.error('the manifest with entries taken over differs from the one read afresh');
      return 1;
    }
    rows.forEach((row, i) => {
      const rss = row.rss.length ? mib(Math.max(...row.rss)) : 'n/a';
      console.log(`${row.label.padEnd(20)}${secs(median(row.ms)).padStart(12)}${secs(Math.min(...row.ms)).padStart(12)}${rss.padStart(18)}${mib(sizes[i]! / 1024).padStart(14)}`);
    });
    console.log(`${'node -e 0'.padEnd(20)}${secs(baseline.ms).padStart(12)}${''.padStart(12)}${(baseline.maxRssKiB === null ? 'n/a' : mib(baseline.maxRssKiB)).padStart(18)}   (node's own start-up and memory, included above)`);
    console.log(`ratio plugin-manifest / find: ${(median(rows[0]!.ms) / median(rows[1]!.ms)).toFixed(2)}× time (median)`);
    console.log(`plugin-manifest took ${carried} of ${entries} entries over whole from the previous manifest; "hashes only" (the previous run's start not given) lists every entry's xattrs`);
    console.log(`first manifest (no previous one: ${first.hashes.read} files read, ${mib(first.hashes.readBytes / 1024)} hashed): ${secs(firstRun.ms)}${firstRun.maxRssKiB === null ? '' : `, peak RSS ${mib(firstRun.maxRssKiB)}`}`);
    const all = (row: Row) => row.ms.map((ms) => (ms / 1000).toFixed(3)).join(' ');
    console.log(`all runs (s): plugin-manifest ${all(rows[0]!)}; find ${all(rows[1]!)}; hashes only ${all(rows[2]!)}`);
    // The live set stays small: the writer still finishes when V8's old generation may not pass 16 MiB.
    const capped = await measure([process.execPath, '--max-old-space-size=16', ...writer.slice(1)], null);
    console.log(`plugin-manifest under --max-old-space-size=16: finished in ${secs(capped.ms)}${capped.maxRssKiB === null ? '' : `, peak RSS ${mib(capped.maxRssKiB)}`}`);
    console.log(`load average now ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}`);
    // Both list the top directory too (find with an empty %P, the manifest as ".").
    if (entries !== findLines) {
      console.error(`the two listed different counts: manifest ${entries} entries, find ${findLines} lines`);
      return 1;
    }
    if (notReused > 0) {
      console.error(`a run with the previous manifest read ${notReused} files instead of reusing their hashes`);
      return 1;
    }
    return 0;
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

process.exitCode = await main();
