// bench/transport: wall times of ssh-r-sync against plain rsync over ssh, through the same
// throwaway sshd on 127.0.0.1, side by side in one run. See bench/README.md.
//
//   npm run bench [-- --files N --bytes SIZE --runs N --seed N --cache DIR --breakdown]
//
// Cases (each tool --runs times, order alternating): a first backup of a generated tree into an
// empty destination; a no-change incremental backup of it; and the fixed cost per run (a
// no-change backup of a one-file tree). Both tools pull with the receiver's default rsync options,
// the same ssh options and RSYNC_COMPRESS_LIST='zstd none'. A benchmark, not a test: exit 0
// whatever the ratios, 1 when a run failed or the tools did not do the same work.
//
// The parts, in bench/lib/: tree.mts (the generated, cached tree), transport-setup.mts (sshd, keys
// and the two tools), compare.mts (timed, alternating runs), transport-breakdown.mts
// (--breakdown), report.mts (what is printed), teardown.mts (stopping everything at the end).
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { forcedCommand } from '../test/helpers/backup-server.js';
import { compare, debugRun, measure } from './lib/compare.mjs';
import { bytesText, commandLine, firstLine, fsType, loadText, machineText, row, say, seconds, staleBuild } from './lib/report.mjs';
import { installSignalHandlers, median, positiveInt } from './lib/runner.mjs';
import { bytesOption } from './lib/size.mjs';
import { runThenTearDown } from './lib/teardown.mjs';
import { COMPRESS_LIST, timedEnv } from './lib/tools.mjs';
import { breakdown } from './lib/transport-breakdown.mjs';
import { HOST, setUp, type Setup } from './lib/transport-setup.mjs';
import { cachedTree, DEFAULT_CACHE, FILES_PER_DIR, generateTree } from './lib/tree.mjs';
import { warmCache } from './lib/warm-cache.mjs';

const USAGE = `usage: npm run bench -- [--files N] [--bytes SIZE] [--runs N] [--seed N] [--cache DIR] [--work DIR] [--tree-only] [--breakdown] [--keep-node-env]
  --files N      files in the generated tree (default 50000)
  --bytes SIZE   their total size: 1G, 100M, 512K (powers of 1024) or a byte count (default 1G)
  --runs N       timed runs per tool and case, order alternating (default 3)
  --seed N       seed of the tree generator (default 1)
  --cache DIR    where generated trees are kept and reused (default bench/.cache)
  --work DIR     where sshd's files and both destinations go (default: the system temp dir);
                 e.g. /dev/shm takes the disk out of the first-backup comparison
  --tree-only    generate (or find) the cached tree, print its path and exit
  --breakdown    also time the parts of the fixed cost: start-ups, ssh login, and ssh-r-sync's
                 steps from --debug runs of client and receiver
  --keep-node-env  keep NODE_EXTRA_CA_CERTS for the timed commands (by default it is removed:
                 node then reads and parses a CA bundle at every start-up, ~0.1 s here, and
                 ssh-r-sync makes no TLS connection; a receiver run by sshd never has it)`;

const TARGETS = { first: 1.02, incremental: 1.1 };

interface Options {
  files: number;
  bytes: number;
  runs: number;
  seed: number;
  cache: string;
  breakdown: boolean;
  treeOnly: boolean;
  work: string | undefined;
  keepNodeEnv: boolean;
}

function parseOptions(argv: string[]): Options | undefined {
  const { values } = parseArgs({
    args: argv,
    options: {
      files: { type: 'string' },
      bytes: { type: 'string' },
      runs: { type: 'string' },
      seed: { type: 'string' },
      cache: { type: 'string' },
      breakdown: { type: 'boolean' },
      'tree-only': { type: 'boolean' },
      'keep-node-env': { type: 'boolean' },
      work: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) return undefined;
  return {
    files: positiveInt('files', values.files, 50_000),
    bytes: bytesOption(values.bytes, 1024 ** 3),
    runs: positiveInt('runs', values.runs, 3),
    seed: positiveInt('seed', values.seed, 1),
    cache: values.cache ?? DEFAULT_CACHE,
    breakdown: Boolean(values.breakdown),
    treeOnly: Boolean(values['tree-only']),
    work: values.work,
    keepNodeEnv: Boolean(values['keep-node-env']),
  };
}

async function main(): Promise<number> {
  let options: Options | undefined;
  try {
    options = parseOptions(process.argv.slice(2));
  } catch (error) {
    process.stderr.write(`bench: ${(error as Error).message}\n${USAGE}\n`);
    return 2;
  }
  if (!options) {
    say(USAGE);
    return 0;
  }
  installSignalHandlers(say);
  const env = timedEnv(options.keepNodeEnv);

  const stale = staleBuild();
  if (stale.length) say(`warning: compiled output older than ${stale.slice(0, 3).join(', ')}${stale.length > 3 ? ` and ${stale.length - 3} more` : ''}: run \`npm run build\` (npm run bench does)`);

  await mkdir(options.cache, { recursive: true });
  const tree = await cachedTree(options.cache, { files: options.files, bytes: options.bytes, seed: options.seed });
  const info = tree.info;
  if (options.treeOnly) {
    say(`${tree.reused ? 'reused' : `generated in ${(info.generatedInMs / 1000).toFixed(1)} s`}: ${tree.dir}`);
    return 0;
  }

  const problems: string[] = [];
  let setup: Setup | undefined;
  return runThenTearDown(problems, () => setup?.sshd, async () => {
    setup = await setUp(options.work, env);
    const { sshd, root, big, tiny } = setup;
    const tinySource = join(sshd.dir, 'tiny-source');
    await generateTree(tinySource, { files: 1, bytes: 1000, seed: options.seed });

    const rsyncVersion = firstLine('rsync', ['--version']).replace(/\s+/g, ' ');
    const sshVersion = firstLine('ssh', ['-V']);
    say('ssh-r-sync transport benchmark: ssh-r-sync against plain rsync over ssh, one sshd on 127.0.0.1');
    say(`  node ${process.version}; ${rsyncVersion}; ${sshVersion}`);
    if (process.env.NODE_EXTRA_CA_CERTS !== undefined) {
      say(
        options.keepNodeEnv
          ? '  NODE_EXTRA_CA_CERTS is set and kept (--keep-node-env): every node start-up of the client reads a CA bundle'
          : '  NODE_EXTRA_CA_CERTS is set here and removed for the timed commands (see --keep-node-env)',
      );
    }
    say(`  ${machineText()}; load average at start ${loadText()}`);
    say(
      `  tree: ${info.files} files, ${bytesText(info.bytes)} (${info.bytes} bytes), seed ${info.seed}, in ${info.dirs} dirs over ${info.levels} levels (${FILES_PER_DIR} files per leaf);` +
        ` sizes ${bytesText(info.minSize)} … ${bytesText(info.maxSize)}, median ${bytesText(info.medianSize)}, ${info.emptyFiles} empty, ${info.filesOver1M} ≥ 1 MiB;` +
        ` ${Math.round((100 * info.textBytes) / Math.max(1, info.bytes))}% of the bytes text-like, the rest incompressible`,
    );
    say(`  ${tree.reused ? 'reused' : `generated in ${(info.generatedInMs / 1000).toFixed(1)} s`}: ${tree.dir}`);
    say(`  ${options.runs} timed runs per tool and case, order alternating; \`sync\` before each run, not timed; destinations under ${sshd.dir} (${fsType(sshd.dir)})`);
    say('');
    say('Command lines (SRC = the tree; the receiver pulls into BACKUP_ROOT/NAME, plain rsync into a sibling dir):');
    say(`  ssh-r-sync:  ${commandLine(setup.srsTool.command(tree.dir, big))}`);
    say(`    receiver (forced command of that key): ${forcedCommand(['--name', HOST], root)}`);
    say(`  plain rsync: ${commandLine(setup.plainTool.command(tree.dir, big), COMPRESS_LIST)}`);

    // Warm-up, and the receiver's own rsync command line from one --debug run (not timed).
    say('');
    say('Warming up (not timed): reading the tree, one-file backups by both tools …');
    await warmCache(tree.dir);
    await measure(setup, setup.srsTool, problems, tinySource, tiny, 1);
    await measure(setup, setup.plainTool, problems, tinySource, tiny, 1);
    const rsyncLine = (await debugRun(setup, tinySource)).lines.map((l) => /running (rsync|"rsync") (.*)$/.exec(l.line)).find(Boolean);
    if (rsyncLine) say(`  the receiver ran: RSYNC_COMPRESS_LIST='zstd none' rsync ${rsyncLine[2]!.replace(/"([^"\\ ]*)"/g, '$1')}`);

    say('');
    say(`Fixed cost: no-change backup of a 1-file tree (${tinySource}); load average ${loadText()}`);
    const fixed = await compare(setup, problems, { source: tinySource, target: tiny, runs: options.runs, expectFiles: 0 });
    say(`First backup: ${info.files} files into an empty destination (rm -rf before each run, not timed); load average ${loadText()}`);
    const first = await compare(setup, problems, {
      source: tree.dir,
      target: big,
      runs: options.runs,
      expectFiles: info.files,
      prepare: async (tool) => rm(tool === setup!.srsTool ? big.srsDest : big.plainDest, { recursive: true, force: true }),
    });
    say(`No-change incremental backup: the same tree, destination complete; load average ${loadText()}`);
    const incremental = await compare(setup, problems, { source: tree.dir, target: big, runs: options.runs, expectFiles: 0 });

    say('');
    say(`Results (${info.files} files, ${bytesText(info.bytes)}; ${options.runs} runs each; load average now ${loadText()}):`);
    const widths = [30, 10, 10, 12, 10, 8, 8, 5];
    say(row(['', 'ssh-r-sync', '', 'plain rsync', '', '', '', ''], widths));
    say(row(['case', 'median', 'min', 'median', 'min', 'ratio', 'target', ''], widths));
    const line = (label: string, t: Record<'srs' | 'plain', number[]>, target: number) => {
      const ratio = median(t.srs) / median(t.plain);
      say(row([label, seconds(median(t.srs)), seconds(Math.min(...t.srs)), seconds(median(t.plain)), seconds(Math.min(...t.plain)), `${ratio.toFixed(3)}×`, `≤ ${target.toFixed(2)}×`, ratio <= target ? 'PASS' : 'MISS'], widths));
    };
    line('first backup', first, TARGETS.first);
    line('no-change incremental', incremental, TARGETS.incremental);
    const fixedDiff = median(fixed.srs) - median(fixed.plain);
    say(
      row(['fixed cost (1 file, no change)', seconds(median(fixed.srs)), seconds(Math.min(...fixed.srs)), seconds(median(fixed.plain)), seconds(Math.min(...fixed.plain)), `${(median(fixed.srs) / median(fixed.plain)).toFixed(3)}×`], widths) +
        `   difference ${fixedDiff >= 0 ? '+' : ''}${fixedDiff.toFixed(0)} ms per run`,
    );
    say(`  first backup:  ssh-r-sync − plain = ${(median(first.srs) - median(first.plain)).toFixed(0)} ms (median); incremental: ${(median(incremental.srs) - median(incremental.plain)).toFixed(0)} ms`);
    const raw = (t: Record<'srs' | 'plain', number[]>) => `ssh-r-sync ${t.srs.map((ms) => (ms / 1000).toFixed(3)).join(' ')}; plain ${t.plain.map((ms) => (ms / 1000).toFixed(3)).join(' ')}`;
    say(`  all runs (s): first: ${raw(first)}`);
    say(`                incremental: ${raw(incremental)}`);
    say(`                fixed cost: ${raw(fixed)}`);

    if (options.breakdown) await breakdown(setup, tinySource, tiny, options.runs);
  });
}

process.exitCode = await main();
