// bench/snapshots: a no-change snapshot run of ssh-r-sync (real client → sshd → real receiver with
// plugin-link-dest and plugin-manifest, content hashes on) against rsnapshot's run (Debian's
// rsnapshot, link_dest 1, pulling over ssh) of the same tree through the same throwaway sshd on
// 127.0.0.1, side by side in one run. See bench/README.md.
//
//   npm run bench:snapshots [-- --files N --bytes SIZE --runs N --seed N --cache DIR --work DIR]
//
// Also timed, for the parts: ssh-r-sync with plugin-link-dest only (no manifest), and plain
// `rsync --link-dest` over ssh (what both tools run underneath). First backups (once per tool)
// show what hashing costs once. The tree is bench/transport.mts's (bench/lib/tree.mts: the same
// generator and cache). A benchmark, not a test: exit 0 whatever the ratio, 1 when a run failed or a
// tool did not do the expected work (e.g. a no-change run that transferred files or read hashes).
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { forcedCommand } from '../test/helpers/backup-server.js';
import type { Sshd } from '../test/helpers/sshd.js';
import { cpusText, firstLine, loadText as load, say, seconds as secs } from './lib/report.mjs';
import { installSignalHandlers, lastLine, median, positiveInt, run as runCommand, type Command, type Run } from './lib/runner.mjs';
import { bytesOption } from './lib/size.mjs';
import { authorizeKeys, startBenchSshd } from './lib/sshd.mjs';
import { runThenTearDown } from './lib/teardown.mjs';
import { clientCommand, newestSnapshot, plainRsyncCommand, pullCommand, timedBackup, receiverRsyncArgs, rsyncOutcome, timedEnv } from './lib/tools.mjs';
import { cachedTree, DEFAULT_CACHE } from './lib/tree.mjs';
import { warmCache } from './lib/warm-cache.mjs';
import { RSNAPSHOT, setUpRsnapshot } from './lib/rsnapshot.mjs';

const USAGE = `usage: npm run bench:snapshots -- [--files N] [--bytes SIZE] [--runs N] [--seed N] [--cache DIR] [--work DIR] [--breakdown]
  --files N      files in the generated tree (default 50000; bench/transport.mts's generator and cache)
  --bytes SIZE   their total size, e.g. 1G, 100M (default 1G)
  --runs N       timed no-change runs per tool, order rotating (default 5)
  --seed N       seed of the tree generator (default 1)
  --cache DIR    where generated trees are kept (default bench/.cache)
  --work DIR     where sshd's files and every destination go (default: the system temp dir)
  --breakdown    then 5 more no-change runs of ssh-r-sync, link-dest only, with --debug on both
                 sides: the time between their log lines (median) and the log of the median run`;

const TARGET = 1.0;
// By name, as a user's forced command or config gives them (the commands load their bundled copy).
const LINK_DEST_DIST = '@ssh-r-sync/plugin-link-dest';
const MANIFEST_DIST = '@ssh-r-sync/plugin-manifest';
/** Debian's rrsync (package rsync): what a pull-mode client's key runs. */
const RRSYNC = '/usr/bin/rrsync';

interface Options {
  files: number;
  bytes: number;
  runs: number;
  seed: number;
  cache: string;
  work: string | undefined;
  breakdown: boolean;
}

function parseOptions(argv: string[]): Options | undefined {
  const { values } = parseArgs({
    args: argv,
    options: {
      files: { type: 'string' }, bytes: { type: 'string' }, runs: { type: 'string' }, seed: { type: 'string' },
      cache: { type: 'string' }, work: { type: 'string' }, breakdown: { type: 'boolean' }, help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) return undefined;
  return {
    files: positiveInt('files', values.files, 50_000),
    bytes: bytesOption(values.bytes, 1024 ** 3),
    runs: positiveInt('runs', values.runs, 5),
    seed: positiveInt('seed', values.seed, 1),
    cache: values.cache ?? DEFAULT_CACHE,
    work: values.work,
    breakdown: Boolean(values.breakdown),
  };
}

// The environment of the timed commands: this one less NODE_EXTRA_CA_CERTS (see bench/transport.mts --keep-node-env).
const benchEnv = timedEnv(false);
const run = (command: Command): Promise<Run> => runCommand(command, benchEnv);

// ---------------------------------------------------------------------------------------------
// The tools

interface DoneMark {
  durationMs: number;
  files: number | null;
  hooks: { point: string; tap: string; durationMs: number }[];
  extra: { manifest?: { hashes?: { read: number; readBytes: number; reused: number } } };
}

interface Sample {
  ms: number;
  /** Regular files rsync transferred. */
  files: number | null;
  /** ssh-r-sync only: the new snapshot's done mark. */
  done?: DoneMark;
}

interface Tool {
  label: string;
  measure(): Promise<Sample>;
}

interface Setup {
  sshd: Sshd;
  tools: { manifest: Tool; linkOnly: Tool; pullManifest: Tool; pullLinkOnly: Tool; rsnapshot: Tool; rsync: Tool };
  describe: string[];
  /** The link-dest-only client with --debug, through a key whose receiver has --debug too. */
  debugCommand: Command;
  /** The rsync command line rsnapshot ran last (it prints it at verbose 3). */
  rsnapshotCommand(): string;
}

async function setUp(work: string | undefined, tree: string, runs: number): Promise<Setup> {
  const server = await startBenchSshd(work, 'ssh-r-sync-bench-snapshots-');
  const { sshd, root } = server;
  const keys = { manifest: join(sshd.dir, 'srs_manifest_key'), linkOnly: join(sshd.dir, 'srs_link_key'), debug: join(sshd.dir, 'srs_debug_key'), plain: join(sshd.dir, 'plain_key'), pull: join(sshd.dir, 'pull_key') };
  const manifestArgs = ['--name', 'hashed', '--plugin', LINK_DEST_DIST, '--plugin', MANIFEST_DIST];
  const linkArgs = ['--name', 'linked', '--plugin', LINK_DEST_DIST];
  await authorizeKeys(server, [
    { path: keys.manifest, comment: 'bench-srs-manifest', receiver: manifestArgs },
    { path: keys.linkOnly, comment: 'bench-srs-link-dest', receiver: linkArgs },
    { path: keys.debug, comment: 'bench-srs-link-dest-debug', receiver: [...linkArgs, '--debug'] },
    { path: keys.plain, comment: 'bench-plain' },
    // Pull mode: the server's receiver logs in to the client, whose key runs Debian's rrsync -ro.
    { path: keys.pull, comment: 'bench-pull', options: `restrict,command="${RRSYNC} -ro ${tree}"` },
  ]);

  const srs = (label: string, key: string, name: string): Tool => timedRun(label, clientCommand(server, key, name, tree), name);
  // A run of `command` that backs up host `name`: its wall time, files and the new done mark.
  const timedRun = (label: string, command: Command, name: string): Tool => ({
    label,
    async measure() {
      const sample = await timedBackup(run, label, command);
      const meta = join(root, name, `${newestSnapshot(join(root, name))}.meta`);
      return { ...sample, done: JSON.parse(readFileSync(join(meta, 'done.json'), 'utf8')) as DoneMark };
    },
  });
  const pull = (label: string, name: string, receiver: string[]): Tool => timedRun(label, pullCommand(server, keys.pull, name, receiver, benchEnv), name);

  // rsnapshot and plain rsync run the receiver's rsync options (as root: -HaAXS --super
  // --numeric-ids --delete --delete-excluded --zl=1 --stats) over the same ssh options.
  const rsyncArgs = receiverRsyncArgs();
  const rsnap = await setUpRsnapshot(server, keys.plain, tree, join(sshd.dir, 'rsnapshot'), runs, benchEnv);
  const config = rsnap.config;
  const rsnapshot: Tool = { label: 'rsnapshot', measure: () => rsnap.measure() };

  const plainRoot = join(sshd.dir, 'plain');
  await mkdir(plainRoot, { mode: 0o700 });
  let plainRuns = 0;
  const rsync: Tool = {
    label: 'rsync --link-dest',
    async measure() {
      plainRuns += 1;
      const previous = plainRuns > 1 ? [`--link-dest=${join(plainRoot, String(plainRuns - 1))}`] : [];
      const result = await run(plainRsyncCommand(server, keys.plain, tree, join(plainRoot, String(plainRuns)), benchEnv, previous));
      const outcome = rsyncOutcome(result);
      if ('error' in outcome) throw new Error(outcome.error);
      return { ms: result.ms, files: outcome.files };
    },
  };

  const describe = [
    `ssh-r-sync:  node ssh-r-sync.js -k KEY -p ${sshd.port} -o … -n NAME --json ${sshd.user}@127.0.0.1 TREE`,
    `  receiver (forced command): ${forcedCommand(manifestArgs, root)}`,
    `  without the manifest:      ${forcedCommand(linkArgs, root)}`,
    `pull mode:   node ssh-r-sync-recv.js --pull ${sshd.user}@127.0.0.1 -p ${sshd.port} -k KEY -o … --name NAME PLUGINS --json ROOT`,
    `  the key's authorized_keys line: restrict,command="${RRSYNC} -ro TREE"`,
    `rsnapshot:   RSYNC_COMPRESS_LIST='zstd none' rsnapshot -c rsnapshot.conf alpha, with:`,
    ...readFileSync(config, 'utf8').trimEnd().split('\n').map((line) => `    ${line.replace(/\t/g, '  ')}`),
    `rsync:       RSYNC_COMPRESS_LIST='zstd none' rsync ${rsyncArgs.join(' ')} --link-dest=PREVIOUS -e 'ssh …' ${sshd.user}@127.0.0.1:TREE/ NEW/`,
  ];
  const debugCommand = clientCommand(server, keys.debug, 'linked', tree, ['--debug']);
  const tools = {
    manifest: srs('ssh-r-sync + manifest', keys.manifest, 'hashed'),
    linkOnly: srs('ssh-r-sync, link-dest only', keys.linkOnly, 'linked'),
    pullManifest: pull('--pull + manifest', 'pull-hashed', ['--plugin', LINK_DEST_DIST, '--plugin', MANIFEST_DIST]),
    pullLinkOnly: pull('--pull, link-dest only', 'pull-linked', ['--plugin', LINK_DEST_DIST]),
    rsnapshot,
    rsync,
  };
  return { sshd, tools, describe, debugCommand, rsnapshotCommand: () => rsnap.lastCommand() };
}

// ---------------------------------------------------------------------------------------------
// Main

function tapMs(done: DoneMark | undefined, point: string, tap: string): number {
  return done?.hooks.find((hook) => hook.point === point && hook.tap === tap)?.durationMs ?? NaN;
}

// No-change runs of the link-dest-only host with --debug on both sides: the time from each log
// line to the next (median over the runs, matched by position; the lines' words differ only in
// numbers), then the log of the median run.
async function breakdown(command: Command): Promise<void> {
  const runs: Run[] = [];
  for (let i = 0; i < 5; i++) {
    const result = await run(command);
    if (result.code !== 0) throw new Error(`--debug run exited ${result.code ?? result.signal}: ${lastLine(result.stderr)}`);
    runs.push(result);
  }
  const shape = (r: Run) => r.lines.map((l) => l.line.replace(/\d+/g, '#').slice(0, 60)).join('\n');
  const middle = [...runs].sort((a, b) => a.ms - b.ms)[2]!;
  const alike = runs.filter((r) => shape(r) === shape(middle));
  say('');
  say(`Breakdown: ssh-r-sync, link-dest only, no-change runs with --debug on both sides (${runs.length} runs, ${alike.length} with the same log lines; medians ${secs(median(runs.map((r) => r.ms)))}; load average ${load()}):`);
  say('  ms since the previous line (median), then the line of the median run (ms after the client started)');
  let previous = 0;
  middle.lines.forEach(({ ms, line }, i) => {
    const gap = median(alike.map((r) => r.lines[i]!.ms - (i ? r.lines[i - 1]!.ms : 0)));
    say(`  ${gap.toFixed(0).padStart(6)}  +${ms.toFixed(0).padStart(5)}  ${line.length > 150 ? `${line.slice(0, 149)}…` : line}`);
    previous = ms;
  });
  say(`  ${median(alike.map((r) => r.ms - (r.lines.at(-1)?.ms ?? 0))).toFixed(0).padStart(6)}  +${middle.ms.toFixed(0).padStart(5)}  (client exited; ${secs(middle.ms - previous)} after its last line)`);
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
  if (!existsSync(RRSYNC)) {
    process.stderr.write(`bench: ${RRSYNC} is missing (apt-get install rsync)\n`);
    return 1;
  }
  if (!existsSync(RSNAPSHOT)) {
    process.stderr.write('bench: rsnapshot is not installed (as root: bash scripts/ensure-system.sh, or apt-get install rsnapshot)\n');
    return 1;
  }
  await mkdir(options.cache, { recursive: true });
  const tree = await cachedTree(options.cache, { files: options.files, bytes: options.bytes, seed: options.seed });
  const problems: string[] = [];
  let setup: Setup | undefined;
  return runThenTearDown(problems, () => setup?.sshd, async () => {
    setup = await setUp(options.work, tree.dir, options.runs);
    const { manifest, linkOnly, pullManifest, pullLinkOnly, rsnapshot, rsync } = setup.tools;
    const files = tree.info.files;
    say('ssh-r-sync snapshots benchmark: a no-change snapshot run against rsnapshot, one sshd on 127.0.0.1');
    say(`  node ${process.version}; ${firstLine('rsync', ['--version'])}; ${firstLine(RSNAPSHOT, ['-V'])}`);
    say(`  ${cpusText()}, load average at start ${load()}`);
    say(`  tree: ${tree.dir}: ${files} files, ${tree.info.bytes} bytes, ${tree.info.dirs} directories`);
    say(`  ${options.runs} no-change runs per tool, order rotating; \`sync\` before each run, not timed; everything under ${setup.sshd.dir}`);
    for (const line of setup.describe) say(`  ${line}`);

    say('');
    say('Warming up (not timed): reading the tree …');
    await warmCache(tree.dir);

    const all = [manifest, linkOnly, pullManifest, pullLinkOnly, rsnapshot, rsync];
    const hashing = [manifest, pullManifest];
    const measureOne = async (tool: Tool, expectFiles: number) => {
      execFileSync('sync');
      const sample = await tool.measure();
      if (sample.files !== expectFiles) problems.push(`${tool.label} transferred ${sample.files ?? '?'} files where ${expectFiles} were expected`);
      return sample;
    };

    say(`First backups (once per tool, into an empty destination); load average ${load()}`);
    const first = new Map<Tool, Sample>();
    for (const tool of all) {
      const sample = await measureOne(tool, files);
      first.set(tool, sample);
      say(`  ${tool.label.padEnd(28)} ${secs(sample.ms)}`);
    }
    say(`  rsnapshot's last rsync command: ${setup.rsnapshotCommand() || '(not printed)'}`);
    const firstHashes = first.get(manifest)!.done?.extra.manifest?.hashes;
    for (const tool of hashing) {
      const read = first.get(tool)!.done?.extra.manifest?.hashes?.read;
      if (read !== files) problems.push(`${tool.label}: the first manifest read ${read ?? '?'} files, not ${files}`);
    }

    say(`No-change runs: the same tree again; load average ${load()}`);
    const samples = new Map<Tool, Sample[]>(all.map((tool) => [tool, []]));
    for (let r = 0; r < options.runs; r++) {
      const order = all.map((_, i) => all[(i + r) % all.length]!);
      for (const tool of order) {
        const sample = await measureOne(tool, 0);
        samples.get(tool)!.push(sample);
        const hashes = sample.done?.extra.manifest?.hashes;
        if (hashing.includes(tool) && (hashes?.read !== 0 || hashes.reused !== files)) problems.push(`${tool.label}: a no-change run read ${hashes?.read ?? '?'} files for hashes (reused ${hashes?.reused ?? '?'})`);
        say(`  run ${r + 1}/${options.runs} ${tool.label.padEnd(28)} ${secs(sample.ms)}`);
      }
    }

    const ms = (tool: Tool) => samples.get(tool)!.map((s) => s.ms);
    const base = median(ms(rsnapshot));
    say('');
    say(`Results (${files} files; ${options.runs} no-change runs each; load average now ${load()}):`);
    say(`${'tool'.padEnd(30)}${'median'.padStart(10)}${'min'.padStart(10)}${'vs rsnapshot'.padStart(14)}${'first backup'.padStart(14)}`);
    for (const tool of all) {
      say(`${tool.label.padEnd(30)}${secs(median(ms(tool))).padStart(10)}${secs(Math.min(...ms(tool))).padStart(10)}${`${(median(ms(tool)) / base).toFixed(3)}×`.padStart(14)}${secs(first.get(tool)!.ms).padStart(14)}`);
    }
    say(`  rsnapshot's rsync in the no-change runs: ${setup.rsnapshotCommand() || '(not printed)'}`);
    const ratio = median(ms(manifest)) / base;
    say(`ssh-r-sync + manifest (hashes on) / rsnapshot, no-change run: ${ratio.toFixed(3)}× (target ≤ ${TARGET.toFixed(2)}×) ${ratio <= TARGET ? 'PASS' : 'MISS'}`);
    const pullRatio = median(ms(pullManifest)) / base;
    say(`  the same in pull mode (--pull through rrsync -ro, rsnapshot's own shape): ${pullRatio.toFixed(3)}× ${pullRatio <= TARGET ? 'PASS' : 'MISS'}`);
    say(`  all runs (s): ${all.map((tool) => `${tool.label}: ${ms(tool).map((v) => (v / 1000).toFixed(3)).join(' ')}`).join('; ')}`);

    // Where the time goes, from the receiver's done marks (its own clock) and the plain anchors.
    const dones = samples.get(manifest)!.map((s) => s.done);
    const linkDones = samples.get(linkOnly)!.map((s) => s.done);
    const part = (values: number[]) => `${median(values).toFixed(0).padStart(6)} ms`;
    say('');
    say('Parts of the no-change runs (medians):');
    say(`  ssh-r-sync + manifest, client wall time                          ${part(ms(manifest))}`);
    say(`    the receiver's run (done mark durationMs: handshake to commit)  ${part(dones.map((d) => d!.durationMs))}`);
    say(`    manifest before the commit (walk, merge, no file read)       ${part(dones.map((d) => tapMs(d, 'rsync.post', 'manifest')))}`);
    say(`  ssh-r-sync, link-dest only, client wall time                    ${part(ms(linkOnly))}`);
    say(`    the receiver's run                                             ${part(linkDones.map((d) => d!.durationMs))}`);
    const pullDones = samples.get(pullManifest)!.map((s) => s.done);
    say(`  --pull + manifest, wall time (the receiver's own process)       ${part(ms(pullManifest))}`);
    say(`    manifest before the commit                                    ${part(pullDones.map((d) => tapMs(d, 'rsync.post', 'manifest')))}`);
    say(`  --pull, link-dest only, wall time                               ${part(ms(pullLinkOnly))}`);
    say(`  rsnapshot (perl, rotation, then rsync --link-dest)               ${part(ms(rsnapshot))}`);
    say(`  rsync --link-dest over ssh alone                                 ${part(ms(rsync))}`);
    say(`First backup, what hashing costs once:`);
    say(`  manifest at rsync.post, first backup (every file read: ${firstHashes?.read ?? '?'} files, ${((firstHashes?.readBytes ?? 0) / 2 ** 20).toFixed(1)} MiB)  ${tapMs(first.get(manifest)!.done, 'rsync.post', 'manifest').toFixed(0)} ms`);
    say(`  ssh-r-sync first backup with the manifest ${secs(first.get(manifest)!.ms)}, without ${secs(first.get(linkOnly)!.ms)}; rsnapshot ${secs(first.get(rsnapshot)!.ms)}`);
    if (options.breakdown) await breakdown(setup.debugCommand);
  });
}

process.exitCode = await main();
