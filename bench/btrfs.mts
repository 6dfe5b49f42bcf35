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
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, lstatSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { mkdir, mkdtemp, statfs, writeFile } from 'node:fs/promises';
import os from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { defaultRsyncArgs, parseStats, removeSnapshot, silentLogger, snapshotPaths, type RsyncCommand, type SnapshotStore } from '@ssh-r-sync/core';
import btrfsPlugin, { IN_PLACE_ARGS } from '@ssh-r-sync/plugin-btrfs';
import { forcedCommand } from '../test/helpers/backup-server.js';
import { mountBtrfs, type BtrfsMount } from '../test/helpers/btrfs.js';
import { clientBin, repoRoot } from '../test/helpers/cli.js';
import { makeKey, startSshd, type Sshd } from '../test/helpers/sshd.js';
import { abort, descendants, installSignalHandlers, lastLine, median, positiveInt, run as runCommand, running, shellWord, type Command, type Run } from './lib/runner.mjs';

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
const RSNAPSHOT = '/usr/bin/rsnapshot';
const BTRFS_DIST = join(repoRoot, 'packages/plugin-btrfs/dist/index.js');
const MANIFEST_DIST = join(repoRoot, 'packages/plugin-manifest/dist/index.js');
const SNAPSHOT_ID = /^\d{4}-\d{2}-\d{2}T\d{6}Z$/;
const TMPFS_MAGIC = 0x01021994;

interface Options {
  files: number;
  bytes: string;
  runs: number;
  deleteFiles: number;
  deleteRuns: number;
  seed: number;
  cache: string | undefined;
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
    bytes: values.bytes ?? '1G',
    runs: positiveInt('runs', values.runs, 5),
    deleteFiles: positiveInt('delete-files', values['delete-files'], 100_000),
    deleteRuns: positiveInt('delete-runs', values['delete-runs'], 3),
    seed: positiveInt('seed', values.seed, 1),
    cache: values.cache,
    work: values.work ?? os.tmpdir(),
  };
}

const { NODE_EXTRA_CA_CERTS: _dropped, ...benchEnv } = process.env;
const run = (command: Command): Promise<Run> => runCommand(command, benchEnv);
const secs = (ms: number) => `${(ms / 1000).toFixed(3)} s`;
const load = () => os.loadavg().map((l) => l.toFixed(2)).join(' ');
const say = (text: string) => process.stdout.write(`${text}\n`);
const problems: string[] = [];

// A tree of bench/transport.mts, generated (or found in its cache) by its own --tree-only.
function transportTree(files: number, bytes: string, options: Options): { dir: string; info: Record<string, number> } {
  const args = ['--import', 'tsx', join(repoRoot, 'bench/transport.mts'), '--tree-only', '--files', String(files), '--bytes', bytes, '--seed', String(options.seed), ...(options.cache ? ['--cache', options.cache] : [])];
  const result = spawnSync(process.execPath, args, { cwd: repoRoot, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
  const dir = /: (\/\S+)\s*$/.exec(result.stdout ?? '')?.[1];
  if (result.status !== 0 || !dir) throw new Error(`bench/transport.mts --tree-only failed: ${lastLine(result.stdout ?? '')}`);
  return { dir, info: JSON.parse(readFileSync(`${dir}.json`, 'utf8')) as Record<string, number> };
}

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

// core's process-group watchdog (a /bin/sh that core's removeSnapshot started, which ends with us).
function isWatchdog(pid: number): boolean {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('while read -r line');
  } catch {
    return false;
  }
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

async function noChangeTools(sshd: Sshd, fs: BtrfsMount, tree: string, runs: number): Promise<{ tools: Tool[]; describe: string[]; root: string }> {
  const root = join(fs.mountPoint, 'backups');
  await mkdir(root, { mode: 0o700 });
  const keys = { btrfs: join(sshd.dir, 'srs_btrfs_key'), manifest: join(sshd.dir, 'srs_manifest_key'), plain: join(sshd.dir, 'plain_key') };
  const forced = (args: string[]) => `restrict,port-forwarding,command="${forcedCommand(args, root).replace(/"/g, '\\"')}"`;
  const btrfsArgs = ['--name', 'btr', '--plugin', BTRFS_DIST];
  const manifestArgs = ['--name', 'btrm', '--plugin', BTRFS_DIST, '--plugin', MANIFEST_DIST];
  await sshd.setAuthorizedKeys([
    { publicKey: await makeKey(keys.btrfs, 'bench-srs-btrfs'), options: forced(btrfsArgs) },
    { publicKey: await makeKey(keys.manifest, 'bench-srs-btrfs-manifest'), options: forced(manifestArgs) },
    { publicKey: await makeKey(keys.plain, 'bench-plain'), options: 'restrict' },
  ]);
  const sshOptions = (key: string) => {
    const raw = sshd.sshOptions(key);
    const out: string[] = [];
    for (let i = 0; i < raw.length; i++) if (raw[i] === '-o' && !raw[i + 1]!.startsWith('LogLevel=')) out.push('-o', raw[++i]!);
    return out;
  };
  const srs = (label: string, key: string, name: string): Tool => ({
    label,
    async measure() {
      const args = [clientBin, '-k', key, '-p', String(sshd.port), ...sshOptions(key), '-n', name, '--json', `${sshd.user}@127.0.0.1`, tree];
      const result = await run({ file: process.execPath, args });
      let parsed: { status?: string; files?: number | null; message?: string | null } = {};
      try {
        parsed = JSON.parse(lastLine(result.stdout) || '{}');
      } catch {
        // reported below
      }
      if (result.code !== 0 || parsed.status !== 'success') throw new Error(`${label} exited ${result.code ?? result.signal}: ${parsed.message ?? lastLine(result.stderr)}`);
      const host = join(root, name);
      const newest = readdirSync(host).filter((entry) => SNAPSHOT_ID.test(entry)).sort().at(-1);
      if (!newest || !isReadOnlySubvolume(join(host, newest))) {
        throw new Error(`${label} made no read-only btrfs snapshot in ${host} (does the receiver's pipeline drive plugin-btrfs's store?)`);
      }
      return { ms: result.ms, files: parsed.files ?? null };
    },
  });

  // The limit and rsnapshot run the receiver's rsync options (as root: -HaAXS --super
  // --numeric-ids --delete --delete-excluded --zl=1 --stats) over the same ssh options.
  const mode = process.getuid?.() === 0 ? 'privileged' : 'fake-super';
  const rsyncArgs = defaultRsyncArgs({ mode, oneFileSystem: false, compress: true });
  const sshArgs = ['-F', '/dev/null', ...sshd.sshOptions(keys.plain)];
  const compressEnv = { ...benchEnv, RSYNC_COMPRESS_LIST: 'zstd none' };

  const limitRoot = join(fs.mountPoint, 'limit');
  const limitWork = join(limitRoot, 'work');
  execFileSync('btrfs', ['subvolume', 'create', limitRoot], { stdio: 'ignore' });
  execFileSync('btrfs', ['subvolume', 'create', limitWork], { stdio: 'ignore' });
  let limitRuns = 0;
  const limit: Tool = {
    label: 'rsync + snapshot -r (limit)',
    async measure() {
      limitRuns += 1;
      const rsync = await must(
        { file: 'rsync', args: [...rsyncArgs, ...IN_PLACE_ARGS, '-e', ['ssh', ...sshArgs].map(shellWord).join(' '), `${sshd.user}@127.0.0.1:${tree}/`, `${limitWork}/`], env: compressEnv },
        'rsync',
      );
      const snapshot = await must({ file: 'btrfs', args: ['subvolume', 'snapshot', '-r', limitWork, join(limitRoot, String(limitRuns))] }, 'btrfs subvolume snapshot');
      return { ms: rsync.ms + snapshot.ms, files: parseStats(rsync.stdout).files };
    },
  };

  const short = rsyncArgs.filter((arg) => /^-[A-Za-z]+$/.test(arg));
  const long = rsyncArgs.filter((arg) => arg.startsWith('--'));
  const rsnapRoot = join(sshd.dir, 'rsnapshot');
  const config = join(sshd.dir, 'rsnapshot.conf');
  // rsnapshot wants tabs between fields; retain more than the bench makes, so no run deletes one.
  await writeFile(config, [
    ['config_version', '1.2'],
    ['snapshot_root', `${rsnapRoot}/`],
    ['cmd_rsync', '/usr/bin/rsync'],
    ['cmd_ssh', '/usr/bin/ssh'],
    ['cmd_cp', '/bin/cp'],
    ['cmd_rm', '/bin/rm'],
    ['ssh_args', sshArgs.join(' ')],
    ['retain', 'alpha', String(runs + 3)],
    ['verbose', '3'],
    ['loglevel', '2'],
    ['lockfile', join(sshd.dir, 'rsnapshot.pid')],
    ['rsync_short_args', short.join(' ')],
    ['rsync_long_args', long.join(' ')],
    ['link_dest', '1'],
    ['backup', `${sshd.user}@127.0.0.1:${tree}/`, 'host/'],
  ].map((fields) => fields.join('\t')).join('\n') + '\n');
  const check = spawnSync(RSNAPSHOT, ['-c', config, 'configtest'], { encoding: 'utf8' });
  if (check.status !== 0) throw new Error(`rsnapshot configtest: ${lastLine(check.stdout + check.stderr)}`);
  const rsnapshot: Tool = {
    label: 'rsnapshot (ext4)',
    async measure() {
      const result = await must({ file: RSNAPSHOT, args: ['-c', config, 'alpha'], env: compressEnv }, 'rsnapshot');
      return { ms: result.ms, files: parseStats(result.stdout).files };
    },
  };

  const describe = [
    `ssh-r-sync:  node ssh-r-sync.js -k KEY -p ${sshd.port} -o … -n NAME --json ${sshd.user}@127.0.0.1 TREE`,
    `  receiver (forced command): ${forcedCommand(btrfsArgs, root)}`,
    `  with the manifest:         ${forcedCommand(manifestArgs, root)}`,
    `limit:       RSYNC_COMPRESS_LIST='zstd none' rsync ${[...rsyncArgs, ...IN_PLACE_ARGS].join(' ')} -e 'ssh …' ${sshd.user}@127.0.0.1:TREE/ ${limitWork}/`,
    `             && btrfs subvolume snapshot -r ${limitWork} ${limitRoot}/N`,
    `rsnapshot:   RSYNC_COMPRESS_LIST='zstd none' rsnapshot -c rsnapshot.conf alpha (link_dest 1, snapshot_root ${rsnapRoot}, the receiver's rsync options)`,
  ];
  return { tools: [srs('ssh-r-sync + btrfs', keys.btrfs, 'btr'), srs('ssh-r-sync + btrfs + manifest', keys.manifest, 'btrm'), limit, rsnapshot], describe, root };
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
    const at = new Date().toISOString();
    started = performance.now();
    await store.commit(prepared, { version: 1, host: name, snapshot: prepared.id, completedAt: at, startedAt: at, rsyncExitCode: 0, originalExitCode: 0, files: 0, bytes: 0, durationMs: 0, mode: 'privileged', hooks: [], extra: {} }, abort.signal);
    commitMs.push(performance.now() - started);
  }
  say(`  the store's own steps in a no-change run (host ${name}, ${runs} times, medians): prepare ${median(prepareMs).toFixed(0)} ms, commit ${median(commitMs).toFixed(0)} ms (sync -f, snapshot -r, done mark, latest)`);
}

// ---------------------------------------------------------------------------------------------
// Deleting a snapshot

// One backup into a btrfs store, locally (rsync with the receiver's options, then the commit).
async function storeBackup(store: SnapshotStore, source: string): Promise<void> {
  const command: RsyncCommand = { program: 'rsync', args: defaultRsyncArgs({ mode: 'privileged', oneFileSystem: false, compress: false }), source: `${source}/`, destination: '', transportArgs: [], env: {} };
  const signal = abort.signal;
  const prepared = await store.prepare({ command, now: new Date(), mode: 'privileged', logger: silentLogger, signal });
  await must({ file: 'rsync', args: [...command.args, command.source, command.destination] }, 'rsync into the store');
  const at = new Date().toISOString();
  await store.commit(prepared, { version: 1, host: store.location.name, snapshot: prepared.id, completedAt: at, startedAt: at, rsyncExitCode: 0, originalExitCode: 0, files: null, bytes: null, durationMs: 0, mode: 'privileged', hooks: [], extra: {} }, signal);
}

interface DeleteResults {
  btrfsRemove: number[];
  btrfsCleaned: number[];
  rmRf: number[];
  removeSnapshot: number[];
}

async function deleteBench(fs: BtrfsMount, work: string, tree: string, runs: number): Promise<DeleteResults> {
  const results: DeleteResults = { btrfsRemove: [], btrfsCleaned: [], rmRf: [], removeSnapshot: [] };
  // btrfs: a store with a first backup; each round adds a backup and removes the oldest.
  const root = join(fs.mountPoint, 'delete');
  await mkdir(root, { mode: 0o700 });
  const plugin = btrfsPlugin();
  const store = plugin.store!.open({ root, name: 'del', dir: join(root, 'del') });
  await storeBackup(store, tree);
  // Hard links on ext4: the same, with rsync --link-dest against the previous snapshot.
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
    await must({ file: 'btrfs', args: ['filesystem', 'sync', root] }, 'btrfs filesystem sync');
    await must({ file: 'btrfs', args: ['subvolume', 'sync', root] }, 'btrfs subvolume sync');
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
  const before = new Set(descendants(process.pid));
  let sshd: Sshd | undefined;
  let fs: BtrfsMount | undefined;
  let work: string | undefined;
  try {
    const tree = transportTree(options.files, options.bytes, options);
    const files = tree.info.files!;
    const deleteTree = transportTree(options.deleteFiles, '100M', options);
    work = await mkdtemp(join(options.work, 'ssh-r-sync-bench-btrfs-'));
    // Room for the tree three times (two hosts and the limit), the deleted snapshots, and their
    // metadata (btrfs keeps two copies of it: 50k files take ~0.5 GiB).
    const sizeMiB = Math.ceil((3 * tree.info.bytes! + 2 * deleteTree.info.bytes!) / 2 ** 20) + Math.ceil(((3 * files) + 2 * deleteTree.info.files!) / 50_000) * 512 + 2048;
    fs = await mountBtrfs({ parent: work, sizeMiB });
    sshd = await startSshd({ dir: join(work, 'sshd') });
    const { tools, describe, root } = await noChangeTools(sshd, fs, tree.dir, options.runs);
    say('ssh-r-sync btrfs benchmark: a no-change snapshot run on btrfs against its limit and rsnapshot, one sshd on 127.0.0.1; then deleting a snapshot');
    say(`  node ${process.version}; ${spawnSync('rsync', ['--version'], { encoding: 'utf8' }).stdout.split('\n')[0]}; ${spawnSync('btrfs', ['--version'], { encoding: 'utf8' }).stdout.trim()}; ${spawnSync(RSNAPSHOT, ['-V'], { encoding: 'utf8' }).stdout.trim().split('\n')[0]}; Linux ${os.release()}`);
    say(`  ${os.cpus().length} CPUs (${os.cpus()[0]?.model ?? '?'}), load average at start ${load()}`);
    say(`  tree: ${tree.dir}: ${files} files, ${tree.info.bytes} bytes, ${tree.info.dirs} directories`);
    say(`  btrfs: a ${sizeMiB} MiB sparse image ${fs.image}, loop-mounted at ${fs.mountPoint}; rsnapshot and sshd under ${work} (${spawnSync('findmnt', ['-n', '-o', 'FSTYPE,SOURCE', '-T', work], { encoding: 'utf8' }).stdout.trim()})`);
    say(`  ${options.runs} no-change runs per tool, order rotating; \`sync\` before each run, not timed`);
    for (const line of describe) say(`  ${line}`);
    say('');
    say('Warming up (not timed): reading the tree …');
    execFileSync('sh', ['-c', 'find "$1" -type f -print0 | xargs -0 cat > /dev/null', 'sh', tree.dir]);

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

    await storeSteps(root, 'btr', options.runs);

    say('');
    say(`Deleting a snapshot of ${deleteTree.info.files} files (${deleteTree.dir}), a newer one sharing its data; load average ${load()}`);
    const deleted = await deleteBench(fs, work, deleteTree.dir, options.deleteRuns);
    say(`Results (median of ${options.deleteRuns}; load average now ${load()}):`);
    say(`  plugin-btrfs store.remove (btrfs subvolume delete)        ${secs(median(deleted.btrfsRemove)).padStart(10)}`);
    say(`    … until btrfs's cleaner has freed it (commit, sync)      ${secs(median(deleted.btrfsCleaned)).padStart(10)}`);
    say(`  rm -rf of a hard-link snapshot (ext4)                     ${secs(median(deleted.rmRf)).padStart(10)}   ${(median(deleted.rmRf) / median(deleted.btrfsRemove)).toFixed(0)}× store.remove`);
    say(`  core's removeSnapshot (plugin-link-dest's, parallel rm)   ${secs(median(deleted.removeSnapshot)).padStart(10)}   ${(median(deleted.removeSnapshot) / median(deleted.btrfsRemove)).toFixed(0)}× store.remove`);
  } catch (error) {
    problems.push(abort.signal.aborted ? (abort.signal.reason as Error).message : `failed: ${(error as Error).message}`);
  } finally {
    for (const child of running) child.kill('SIGTERM');
    await sshd?.stop().catch((error: unknown) => problems.push(`stopping sshd: ${(error as Error).message}`));
    await fs?.cleanup().catch((error: unknown) => problems.push(`removing the btrfs image: ${(error as Error).message}`));
    if (work) rmSync(work, { recursive: true, force: true });
    const left = descendants(process.pid).filter((pid) => !before.has(pid) && !isWatchdog(pid));
    if (left.length) {
      problems.push(`processes left running: ${left.join(', ')} (killed now)`);
      left.forEach((pid) => { try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ } });
    }
  }
  for (const problem of problems) process.stderr.write(`bench: ${problem}\n`);
  if (abort.signal.aborted) return 130;
  return problems.length ? 1 : 0;
}

process.exitCode = await main();
