// bench/btrfs: plugin-btrfs against its limit and against rsnapshot, side by side in one run
// through one throwaway sshd on 127.0.0.1, and what deleting a snapshot costs. See bench/README.md.
//
//   npm run bench:btrfs [-- --files N --bytes SIZE --runs N --delete-files N --delete-runs N --seed N --cache DIR --work DIR]
//
// No-change snapshot runs of bench/transport.mts's tree (50k files by default):
//   ssh-r-sync + btrfs           real client → sshd → receiver with plugin-btrfs, ROOT on btrfs
//   ssh-r-sync + btrfs + manifest  the same with plugin-manifest (content hashes on)
//   rsync + snapshot -r (limit)  plain rsync over ssh in place into a subvolume, then
//                                `btrfs subvolume snapshot -r` (what the store does underneath)
//   rsnapshot (ext4)             Debian's rsnapshot, link_dest 1, on the disk the image is on
// Then deleting a snapshot of --delete-files files (100k by default) the way rotation does, one
// older snapshot at a time with a newer one sharing its data: plugin-btrfs's store.remove
// (`btrfs subvolume delete`; also until btrfs's cleaner has freed it) against `rm -rf` of a
// hard-link snapshot on ext4 and core's removeSnapshot (plugin-link-dest's parallel rm -rf).
// The btrfs image is a sparse file on the --work disk (never tmpfs), loop-mounted. Needs root.
// A benchmark, not a test: exit 0 whatever the ratios, 1 when a run failed or did not do the
// expected work (a no-change run that transferred files, no read-only snapshot made).
import { execFileSync } from 'node:child_process';
import { existsSync, lstatSync, rmSync } from 'node:fs';
import { mkdir, mkdtemp, statfs } from 'node:fs/promises';
import os from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { defaultRsyncArgs, removeSnapshot, silentLogger, snapshotPaths, type DoneMark, type RsyncCommand, type SnapshotStore } from '@ssh-r-sync/core';
import btrfsPlugin, { IN_PLACE_ARGS } from '@ssh-r-sync/plugin-btrfs';
import { forcedCommand } from '../test/helpers/backup-server.js';
import { mountBtrfs, type BtrfsMount } from '../test/helpers/btrfs.js';
import { cpusText, firstLine, fsType, loadText as load, say, seconds as secs } from './lib/report.mjs';
import { RSNAPSHOT, setUpRsnapshot } from './lib/rsnapshot.mjs';
import { abort, installSignalHandlers, lastLine, median, positiveInt, run as runCommand, type Command, type Run } from './lib/runner.mjs';
import { bytesOption } from './lib/size.mjs';
import { authorizeKeys, startBenchSshd, type BenchSshd } from './lib/sshd.mjs';
import { runThenTearDown } from './lib/teardown.mjs';
import { clientCommand, newestSnapshot, plainRsyncCommand, rsyncOutcome, timedBackup, timedEnv } from './lib/tools.mjs';
import { cachedTree, DEFAULT_CACHE, type TreeInfo } from './lib/tree.mjs';
import { warmCache } from './lib/warm-cache.mjs';

const USAGE = `usage: npm run bench:btrfs -- [--files N] [--bytes SIZE] [--runs N] [--delete-files N] [--delete-runs N] [--seed N] [--cache DIR] [--work DIR]
  --files N          files in the no-change runs' tree (default 50000; bench/transport.mts's generator and cache)
  --bytes SIZE       their total size, e.g. 1G, 100M (default 1G)
  --runs N           timed no-change runs per tool, order rotating (default 5)
  --delete-files N   files in the deleted snapshots (default 100000)
  --delete-runs N    deletions timed per way (default 3)
  --seed N           seed of the tree generator (default 1)
  --cache DIR        where generated trees are kept (default bench/.cache)
  --work DIR         where the btrfs image, sshd's files and rsnapshot's snapshots go (default: the system temp dir; a real disk, not tmpfs)`;

/** Targets of issue 11: at most 1.15× the limit, at least 2.5× faster than rsnapshot. */
const LIMIT_TARGET = 1.15;
const RSNAPSHOT_TARGET = 2.5;
// By name, as a user's forced command or config gives them (the commands load their bundled copy).
const BTRFS_DIST = '@ssh-r-sync/plugin-btrfs';
const MANIFEST_DIST = '@ssh-r-sync/plugin-manifest';
const TMPFS_MAGIC = 0x01021994;

interface Options {
  files: number;
  bytes: number;
  runs: number;
  deleteFiles: number;
  deleteRuns: number;
  seed: number;
  cache: string;
  work: string;
}

function parseOptions(argv: string[]): Options | undefined {
  const { values } = parseArgs({
    args: argv,
    options: {
      files: { type: 'string' }, bytes: { type: 'string' }, runs: { type: 'string' }, 'delete-files': { type: 'string' }, 'delete-runs': { type: 'string' },
      seed: { type: 'string' }, cache: { type: 'string' }, work: { type: 'string' }, help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) return undefined;
  return {
    files: positiveInt('files', values.files, 50_000),
    bytes: bytesOption(values.bytes, 1024 ** 3),
    runs: positiveInt('runs', values.runs, 5),
    deleteFiles: positiveInt('delete-files', values['delete-files'], 100_000),
    deleteRuns: positiveInt('delete-runs', values['delete-runs'], 3),
    seed: positiveInt('seed', values.seed, 1),
    cache: values.cache ?? DEFAULT_CACHE,
    work: values.work ?? os.tmpdir(),
  };
}

/** The deleted snapshots' tree: small files, what makes a hard-link farm slow to delete. */
const DELETE_TREE_BYTES = 100 * 1024 ** 2;

// The environment of the timed commands: this one less NODE_EXTRA_CA_CERTS (see bench/transport.mts --keep-node-env).
const benchEnv = timedEnv(false);
const run = (command: Command): Promise<Run> => runCommand(command, benchEnv);

// Runs a command that must succeed; returns its run.
async function must(command: Command, what: string): Promise<Run> {
  const result = await run(command);
  if (result.code !== 0) throw new Error(`${what} exited ${result.code ?? result.signal}: ${lastLine(result.stderr || result.stdout)}`);
  return result;
}

// Whether `path` is a read-only btrfs subvolume (a subvolume's top directory is inode 256).
function isReadOnlySubvolume(path: string): boolean {
  if (lstatSync(path).ino !== 256) return false;
  return /ro=true/.test(execFileSync('btrfs', ['property', 'get', '-ts', path, 'ro'], { encoding: 'utf8' }));
}

// A done mark for a commit made by the bench itself (the store's steps, the deleted snapshots).
function benchMark(name: string, id: string): DoneMark {
  const at = new Date().toISOString();
  return { version: 1, host: name, snapshot: id, completedAt: at, startedAt: at, rsyncExitCode: 0, originalExitCode: 0, files: 0, bytes: 0, durationMs: 0, mode: 'privileged', hooks: [], extra: {} };
}

interface Sample {
  ms: number;
  files: number | null;
}

interface Tool {
  label: string;
  measure(): Promise<Sample>;
}

// ---------------------------------------------------------------------------------------------
// The no-change runs

// The four tools; the receiver's ROOT (server.root) is the mounted btrfs.
async function noChangeTools(server: BenchSshd, tree: string, runs: number): Promise<{ tools: Tool[]; describe: string[] }> {
  const { sshd, root } = server;
  const keys = { btrfs: join(sshd.dir, 'srs_btrfs_key'), manifest: join(sshd.dir, 'srs_manifest_key'), plain: join(sshd.dir, 'plain_key') };
  const btrfsArgs = ['--name', 'btr', '--plugin', BTRFS_DIST];
  const manifestArgs = ['--name', 'btrm', '--plugin', BTRFS_DIST, '--plugin', MANIFEST_DIST];
  await authorizeKeys(server, [
    { path: keys.btrfs, comment: 'bench-srs-btrfs', receiver: btrfsArgs },
    { path: keys.manifest, comment: 'bench-srs-btrfs-manifest', receiver: manifestArgs },
    { path: keys.plain, comment: 'bench-plain' },
  ]);
  const srs = (label: string, key: string, name: string): Tool => {
    const command = clientCommand(server, key, name, tree);
    return {
      label,
      async measure() {
        const sample = await timedBackup(run, label, command);
        const host = join(root, name);
        const newest = newestSnapshot(host);
        if (!newest || !isReadOnlySubvolume(join(host, newest))) {
          throw new Error(`${label} made no read-only btrfs snapshot in ${host} (does the receiver's pipeline drive plugin-btrfs's store?)`);
        }
        return sample;
      },
    };
  };

  // The limit: plain rsync in place into a subvolume on the same btrfs (a dot: no host's name),
  // then a read-only snapshot of it, timed together.
  const limitRoot = join(root, '.limit');
  const limitWork = join(limitRoot, 'work');
  execFileSync('btrfs', ['subvolume', 'create', limitRoot], { stdio: 'ignore' });
  execFileSync('btrfs', ['subvolume', 'create', limitWork], { stdio: 'ignore' });
  let limitRuns = 0;
  const limitCommand = plainRsyncCommand(server, keys.plain, tree, limitWork, benchEnv, IN_PLACE_ARGS);
  const limit: Tool = {
    label: 'rsync + snapshot -r (limit)',
    async measure() {
      limitRuns += 1;
      const rsync = await run(limitCommand);
      const outcome = rsyncOutcome(rsync);
      if ('error' in outcome) throw new Error(outcome.error);
      const snapshot = await must({ file: 'btrfs', args: ['subvolume', 'snapshot', '-r', limitWork, join(limitRoot, String(limitRuns))] }, 'btrfs subvolume snapshot');
      return { ms: rsync.ms + snapshot.ms, files: outcome.files };
    },
  };

  // rsnapshot's snapshots on the disk the image file is on (sshd's directory is beside it).
  const rsnapshotRun = await setUpRsnapshot(server, keys.plain, tree, join(sshd.dir, 'rsnapshot'), runs, benchEnv);
  const rsnapshot: Tool = { label: 'rsnapshot (ext4)', measure: () => rsnapshotRun.measure() };

  const describe = [
    `ssh-r-sync:  node ssh-r-sync.js -k KEY -p ${sshd.port} -o … -n NAME --json ${sshd.user}@127.0.0.1 TREE`,
    `  receiver (forced command): ${forcedCommand(btrfsArgs, root)}`,
    `  with the manifest:         ${forcedCommand(manifestArgs, root)}`,
    `limit:       RSYNC_COMPRESS_LIST='zstd none' ${limitCommand.file} ${limitCommand.args.slice(0, -4).join(' ')} -e 'ssh …' ${sshd.user}@127.0.0.1:TREE/ ${limitWork}/`,
    `             && btrfs subvolume snapshot -r ${limitWork} ${limitRoot}/N`,
    `rsnapshot:   RSYNC_COMPRESS_LIST='zstd none' rsnapshot -c ${rsnapshotRun.config} alpha (link_dest 1, the receiver's rsync options)`,
  ];
  return { tools: [srs('ssh-r-sync + btrfs', keys.btrfs, 'btr'), srs('ssh-r-sync + btrfs + manifest', keys.manifest, 'btrm'), limit, rsnapshot], describe };
}

// The store's own share of a no-change run: prepare and commit of the host `name` that the
// runs above made, with nothing changed in between (what the receiver does around rsync).
async function storeSteps(root: string, name: string, runs: number): Promise<void> {
  const store = btrfsPlugin().store!.open({ root, name, dir: join(root, name) });
  const prepareMs: number[] = [];
  const commitMs: number[] = [];
  for (let i = 0; i < runs; i++) {
    const command: RsyncCommand = { program: 'rsync', args: [], source: '', destination: '', transportArgs: [], env: {} };
    execFileSync('sync');
    let started = performance.now();
    const prepared = await store.prepare({ command, now: new Date(), mode: 'privileged', logger: silentLogger, signal: abort.signal });
    prepareMs.push(performance.now() - started);
    started = performance.now();
    await store.commit(prepared, benchMark(name, prepared.id), abort.signal);
    commitMs.push(performance.now() - started);
  }
  say(`  the store's own steps in a no-change run (host ${name}, ${runs} times, medians): prepare ${median(prepareMs).toFixed(0)} ms, commit ${median(commitMs).toFixed(0)} ms (sync -f, snapshot -r, done mark, latest)`);
}

// ---------------------------------------------------------------------------------------------
// Deleting a snapshot

// One backup into a btrfs store, locally (rsync with the receiver's options, then the commit).
async function storeBackup(store: SnapshotStore, source: string): Promise<void> {
  const command: RsyncCommand = { program: 'rsync', args: defaultRsyncArgs({ mode: 'privileged', oneFileSystem: false, compress: false }), source: `${source}/`, destination: '', transportArgs: [], env: {} };
  const prepared = await store.prepare({ command, now: new Date(), mode: 'privileged', logger: silentLogger, signal: abort.signal });
  await must({ file: 'rsync', args: [...command.args, command.source, command.destination] }, 'rsync into the store');
  await store.commit(prepared, benchMark(store.location.name, prepared.id), abort.signal);
}

interface DeleteResults {
  btrfsRemove: number[];
  btrfsCleaned: number[];
  rmRf: number[];
  removeSnapshot: number[];
}

// Each round: a new snapshot beside the older one (sharing all its data), then the older deleted,
// in a btrfs store (on `btrfsDir`) and as hard links on ext4 (in `work`).
async function deleteBench(btrfsDir: string, work: string, tree: string, runs: number): Promise<DeleteResults> {
  const results: DeleteResults = { btrfsRemove: [], btrfsCleaned: [], rmRf: [], removeSnapshot: [] };
  await mkdir(btrfsDir, { mode: 0o700 });
  const store = btrfsPlugin().store!.open({ root: btrfsDir, name: 'del', dir: join(btrfsDir, 'del') });
  await storeBackup(store, tree);
  const linkRoot = await mkdtemp(join(work, 'srs-bench-links-'));
  process.once('exit', () => rmSync(linkRoot, { recursive: true, force: true }));
  const linkArgs = defaultRsyncArgs({ mode: 'privileged', oneFileSystem: false, compress: false });
  let links = 0;
  const linkSnapshot = async () => {
    links += 1;
    const previous = links > 1 ? [`--link-dest=${join(linkRoot, String(links - 1))}`] : [];
    await must({ file: 'rsync', args: [...linkArgs, ...previous, `${tree}/`, `${join(linkRoot, String(links))}/`] }, 'rsync --link-dest');
  };
  await linkSnapshot();
  for (let round = 0; round < runs; round++) {
    await storeBackup(store, tree);
    const [oldest] = await store.list();
    execFileSync('sync');
    let started = performance.now();
    await store.remove(oldest!);
    results.btrfsRemove.push(performance.now() - started);
    // The cleaner frees the deleted subvolume's extents in the background, after the next
    // transaction commit (every 30 s by default): commit now, then wait for the cleaner.
    await must({ file: 'btrfs', args: ['filesystem', 'sync', btrfsDir] }, 'btrfs filesystem sync');
    await must({ file: 'btrfs', args: ['subvolume', 'sync', btrfsDir] }, 'btrfs subvolume sync');
    results.btrfsCleaned.push(performance.now() - started);
    say(`  round ${round + 1}/${runs} btrfs store.remove ${secs(results.btrfsRemove.at(-1)!)}, until cleaned ${secs(results.btrfsCleaned.at(-1)!)}`);

    // rm -rf of the older hard-link snapshot, the newer one sharing every inode with it; then
    // the same with core's removeSnapshot (plugin-link-dest's: parallel rm -rf) on the next pair.
    for (const way of ['rm -rf', 'removeSnapshot'] as const) {
      await linkSnapshot();
      const older = join(linkRoot, String(links - 1));
      execFileSync('sync');
      started = performance.now();
      if (way === 'rm -rf') await must({ file: 'rm', args: ['-rf', older] }, 'rm -rf');
      else await removeSnapshot({ ...snapshotPaths(linkRoot, String(links - 1)), tree: older }, { signal: abort.signal });
      const ms = performance.now() - started;
      (way === 'rm -rf' ? results.rmRf : results.removeSnapshot).push(ms);
      say(`  round ${round + 1}/${runs} hard links ${way.padEnd(14)} ${secs(ms)}`);
    }
  }
  return results;
}

// ---------------------------------------------------------------------------------------------
// Main

// The image's size: the tree three times (two hosts and the limit), the deleted snapshots' tree
// twice, and their metadata (btrfs keeps two copies of it: ~0.5 GiB per 50 000 files), plus room.
function imageMiB(tree: TreeInfo, deleteTree: TreeInfo): number {
  const data = 3 * tree.bytes + 2 * deleteTree.bytes;
  return Math.ceil(data / 2 ** 20) + Math.ceil((3 * tree.files + 2 * deleteTree.files) / 50_000) * 512 + 2048;
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
  if (process.getuid?.() !== 0) {
    process.stderr.write('bench: bench:btrfs loop-mounts a btrfs image: run it as root\n');
    return 1;
  }
  if (!existsSync(RSNAPSHOT)) {
    process.stderr.write('bench: rsnapshot is not installed (as root: bash scripts/ensure-system.sh, or apt-get install rsnapshot)\n');
    return 1;
  }
  if (((await statfs(options.work)).type >>> 0) === TMPFS_MAGIC) {
    process.stderr.write(`bench: ${options.work} is a tmpfs: give --work a directory on a real disk (the btrfs image and rsnapshot's snapshots go there)\n`);
    return 2;
  }
  installSignalHandlers(say);
  await mkdir(options.cache, { recursive: true });
  const tree = await cachedTree(options.cache, { files: options.files, bytes: options.bytes, seed: options.seed });
  const deleteTree = await cachedTree(options.cache, { files: options.deleteFiles, bytes: DELETE_TREE_BYTES, seed: options.seed });
  // core's removeSnapshot starts core's process-group watchdog (a /bin/sh that lives as long as
  // this process): started here, before the teardown lists our processes, it is not a leftover.
  const warm = await mkdtemp(join(options.work, 'srs-bench-watchdog-'));
  await removeSnapshot({ ...snapshotPaths(warm, 'x'), tree: warm });
  const problems: string[] = [];
  let server: BenchSshd | undefined;
  return runThenTearDown(problems, () => server?.sshd, async () => {
    server = await startBenchSshd(options.work, 'ssh-r-sync-bench-btrfs-');
    const sizeMiB = imageMiB(tree.info, deleteTree.info);
    // ROOT is the btrfs: the image beside sshd's directory, mounted on the receiver's ROOT.
    const fs: BtrfsMount = await mountBtrfs({ parent: server.sshd.dir, at: server.root, sizeMiB });
    try {
      await body(options, server, fs, sizeMiB, tree, deleteTree, problems);
    } finally {
      await fs.cleanup().catch((error: unknown) => problems.push(`removing the btrfs image: ${(error as Error).message}`));
    }
  });
}

async function body(options: Options, server: BenchSshd, fs: BtrfsMount, sizeMiB: number, tree: { dir: string; info: TreeInfo }, deleteTree: { dir: string; info: TreeInfo }, problems: string[]): Promise<void> {
  const { tools, describe } = await noChangeTools(server, tree.dir, options.runs);
  const files = tree.info.files;
  say('ssh-r-sync btrfs benchmark: a no-change snapshot run on btrfs against its limit and rsnapshot, one sshd on 127.0.0.1; then deleting a snapshot');
  say(`  node ${process.version}; ${firstLine('rsync', ['--version'])}; ${firstLine('btrfs', ['--version'])}; ${firstLine(RSNAPSHOT, ['-V'])}; Linux ${os.release()}`);
  say(`  ${cpusText()}, load average at start ${load()}`);
  say(`  tree: ${tree.dir}: ${files} files, ${tree.info.bytes} bytes, ${tree.info.dirs} directories`);
  say(`  btrfs: a ${sizeMiB} MiB sparse image ${fs.image} (on ${fsType(fs.image)}), loop-mounted as the receiver's ROOT ${server.root}; rsnapshot's snapshots in ${server.sshd.dir} (${fsType(server.sshd.dir)})`);
  say(`  ${options.runs} no-change runs per tool, order rotating; \`sync\` before each run, not timed`);
  for (const line of describe) say(`  ${line}`);
  say('');
  say('Warming up (not timed): reading the tree …');
  await warmCache(tree.dir);

  const measureOne = async (tool: Tool, expectFiles: number) => {
    execFileSync('sync');
    const sample = await tool.measure();
    if (sample.files !== expectFiles) problems.push(`${tool.label} transferred ${sample.files ?? '?'} files where ${expectFiles} were expected`);
    return sample;
  };
  say(`First backups (once per tool, into an empty destination); load average ${load()}`);
  const first = new Map<Tool, Sample>();
  // A tool whose first backup fails is reported and left out; the others are still measured.
  for (const tool of tools) {
    try {
      first.set(tool, await measureOne(tool, files));
      say(`  ${tool.label.padEnd(32)} ${secs(first.get(tool)!.ms)}`);
    } catch (error) {
      if (abort.signal.aborted) throw error;
      problems.push(`${tool.label} left out: ${(error as Error).message}`);
      say(`  ${tool.label.padEnd(32)} FAILED: ${(error as Error).message}`);
    }
  }
  const active = tools.filter((tool) => first.has(tool));
  say(`No-change runs: the same tree again; load average ${load()}`);
  const samples = new Map<Tool, number[]>(tools.map((tool) => [tool, []]));
  for (let r = 0; r < options.runs; r++) {
    for (const tool of active.map((_, i) => active[(i + r) % active.length]!)) {
      const sample = await measureOne(tool, 0);
      samples.get(tool)!.push(sample.ms);
      say(`  run ${r + 1}/${options.runs} ${tool.label.padEnd(32)} ${secs(sample.ms)}`);
    }
  }
  const [srs, srsManifest, limit, rsnapshot] = tools as [Tool, Tool, Tool, Tool];
  const med = (tool: Tool) => median(samples.get(tool)!);
  say('');
  say(`Results (${files} files; ${options.runs} no-change runs each; load average now ${load()}):`);
  say(`${'tool'.padEnd(34)}${'median'.padStart(10)}${'min'.padStart(10)}${'vs limit'.padStart(11)}${'rsnapshot /'.padStart(13)}${'first backup'.padStart(14)}`);
  for (const tool of active) {
    say(`${tool.label.padEnd(34)}${secs(med(tool)).padStart(10)}${secs(Math.min(...samples.get(tool)!)).padStart(10)}${`${(med(tool) / med(limit)).toFixed(3)}×`.padStart(11)}${`${(med(rsnapshot) / med(tool)).toFixed(2)}×`.padStart(13)}${secs(first.get(tool)!.ms).padStart(14)}`);
  }
  const vsLimit = med(srs) / med(limit);
  const vsRsnapshot = med(rsnapshot) / med(srs);
  say(`ssh-r-sync + btrfs / limit, no-change run: ${vsLimit.toFixed(3)}× (target ≤ ${LIMIT_TARGET.toFixed(2)}×) ${vsLimit <= LIMIT_TARGET ? 'PASS' : 'MISS'}`);
  say(`rsnapshot / ssh-r-sync + btrfs, no-change run: ${vsRsnapshot.toFixed(2)}× faster (target ≥ ${RSNAPSHOT_TARGET.toFixed(1)}×) ${vsRsnapshot >= RSNAPSHOT_TARGET ? 'PASS' : 'MISS'}`);
  say(`  with the manifest: ${(med(srsManifest) / med(limit)).toFixed(3)}× the limit, ${(med(rsnapshot) / med(srsManifest)).toFixed(2)}× faster than rsnapshot`);
  say(`  all runs (s): ${tools.map((tool) => `${tool.label}: ${samples.get(tool)!.map((v) => (v / 1000).toFixed(3)).join(' ')}`).join('; ')}`);
  if (first.has(srs)) await storeSteps(server.root, 'btr', options.runs);

  say('');
  say(`Deleting a snapshot of ${deleteTree.info.files} files (${deleteTree.dir}), a newer one sharing its data; load average ${load()}`);
  const deleted = await deleteBench(join(server.root, '.delete'), server.sshd.dir, deleteTree.dir, options.deleteRuns);
  say(`Results (median of ${options.deleteRuns}; load average now ${load()}):`);
  say(`  plugin-btrfs store.remove (btrfs subvolume delete)        ${secs(median(deleted.btrfsRemove)).padStart(10)}`);
  say(`    … until btrfs's cleaner has freed it (commit, sync)      ${secs(median(deleted.btrfsCleaned)).padStart(10)}`);
  say(`  rm -rf of a hard-link snapshot (ext4)                     ${secs(median(deleted.rmRf)).padStart(10)}   ${(median(deleted.rmRf) / median(deleted.btrfsRemove)).toFixed(0)}× store.remove`);
  say(`  core's removeSnapshot (plugin-link-dest's, parallel rm)   ${secs(median(deleted.removeSnapshot)).padStart(10)}   ${(median(deleted.removeSnapshot) / median(deleted.btrfsRemove)).toFixed(0)}× store.remove`);
}

process.exitCode = await main();
