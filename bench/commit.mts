// bench/commit: what the commit point costs (flushing the backup filesystem with `sync -f`, the
// fsynced done mark, `latest`), side by side with plain `rsync --link-dest` in one run, for one
// run at a time and for several hosts at once. See bench/README.md.
//
//   node --import tsx bench/commit.mts [--files N] [--runs N] [--hosts N] [--change PCT] [--work DIR]
//
// A source tree of N files of 4 KiB (kept in WORK and reused) is backed up once per host; then,
// per timed run, PCT% of the files get new contents and each method writes a new snapshot linked
// against the previous one: plain `rsync -a --link-dest` (the anchor), the same followed by
// `sync -f` (the flush alone, what the commit adds to rsync's own work), and `ssh-r-sync-recv
// --local` with plugin-link-dest (the whole run: two node start-ups, the pipeline and the commit).
// With --hosts K, K of each run at once, on K hosts. A benchmark, not a test: exit 0 whatever the
// figures, 1 when a run failed.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { recvBin, repoRoot } from '../test/helpers/cli.js';

const USAGE = `usage: node --import tsx bench/commit.mts [--files N] [--runs N] [--hosts N] [--change PCT] [--work DIR]
  --files N     files in the source tree (default 50000)
  --runs N      timed runs per method, order rotating (default 3)
  --hosts N     hosts backed up at once (default 1; try 4 to see flushes contend)
  --change PCT  share of the files rewritten before each run (default 1)
  --work DIR    where trees go (default bench/.cache/commit)`;

const { values } = parseArgs({
  options: { files: { type: 'string' }, runs: { type: 'string' }, hosts: { type: 'string' }, change: { type: 'string' }, work: { type: 'string' }, help: { type: 'boolean' } },
});
if (values.help) {
  process.stdout.write(`${USAGE}\n`);
  process.exit(0);
}
const files = Number(values.files ?? 50000);
const runs = Number(values.runs ?? 3);
const hosts = Number(values.hosts ?? 1);
const changePct = Number(values.change ?? 1);
const work = values.work ?? join(repoRoot, 'bench/.cache/commit');
for (const [name, value] of [['files', files], ['runs', runs], ['hosts', hosts]] as const) {
  if (!Number.isInteger(value) || value < 1) throw new Error(`--${name} wants a positive integer`);
}
const LINK_DEST = join(repoRoot, 'packages/plugin-link-dest/dist/index.js');
const say = (line = '') => process.stdout.write(`${line}\n`);
const median = (list: number[]) => [...list].sort((a, b) => a - b)[Math.floor(list.length / 2)]!;

// Runs a command to its end; resolves to its wall time in ms, rejects on failure.
function timed(file: string, args: string[]): Promise<number> {
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, NODE_EXTRA_CA_CERTS: '' } });
    let stderr = '';
    child.stderr.on('data', (chunk) => (stderr += chunk));
    child.once('error', reject);
    child.once('close', (code) => (code === 0 ? resolve(performance.now() - started) : reject(new Error(`${file} exited ${code}: ${stderr.slice(-500)}`))));
  });
}

async function generate(src: string): Promise<void> {
  if (existsSync(join(src, '.complete'))) return;
  await rm(src, { recursive: true, force: true });
  for (let i = 0; i < files; i++) {
    const dir = join(src, `d${Math.floor(i / 1000)}`);
    if (i % 1000 === 0) await mkdir(dir, { recursive: true });
    await writeFile(join(dir, `f${i}`), Buffer.alloc(4096, i % 251));
  }
  await writeFile(join(src, '.complete'), '');
}

let generation = 0;
async function changeSome(src: string): Promise<void> {
  generation += 1;
  const count = Math.max(1, Math.round((files * changePct) / 100));
  for (let n = 0; n < count; n++) {
    const i = (n * 7919 + generation * 104729) % files;
    await writeFile(join(src, `d${Math.floor(i / 1000)}`, `f${i}`), Buffer.alloc(4096, (i + generation) % 251));
  }
}

// Plain rsync: a new dated directory per run, linked against the previous one.
const plain = (flush: boolean) => async (src: string, hostDir: string, run: number) => {
  const target = join(hostDir, `plain-${flush ? 'f' : 'n'}-${run}`);
  const previous = join(hostDir, 'base');
  let ms = await timed('rsync', ['-a', '--delete', `--link-dest=${previous}`, `${src}/`, `${target}/`]);
  if (flush) ms += await timed('sync', ['-f', target]);
  return ms;
};

const receiver = async (src: string, hostDir: string): Promise<number> =>
  timed(process.execPath, [recvBin, '--local', src, '--name', 'ssr', '--plugin', LINK_DEST, '--mode', 'plain', hostDir]);

const methods: { label: string; run: (src: string, hostDir: string, run: number) => Promise<number> }[] = [
  { label: 'rsync --link-dest (anchor)', run: plain(false) },
  { label: 'rsync --link-dest + sync -f', run: plain(true) },
  { label: 'ssh-r-sync-recv --local (commit point on)', run: (src, hostDir) => receiver(src, hostDir) },
];

const src = join(work, `src-${files}`);
await mkdir(work, { recursive: true });
say(`bench/commit: ${files} files of 4 KiB, ${changePct}% changed per run, ${hosts} host(s) at once, ${runs} runs per method`);
await generate(src);
const hostDirs = Array.from({ length: hosts }, (_, i) => join(work, `root-${i}`));
for (const dir of hostDirs) {
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true });
  await timed('rsync', ['-a', `${src}/`, `${join(dir, 'base')}/`]);
  await timed(process.execPath, [recvBin, '--local', src, '--name', 'ssr', '--plugin', LINK_DEST, '--mode', 'plain', dir]);
}
await timed('sync', []);
const times = new Map(methods.map((m) => [m.label, [] as number[]]));
for (let run = 0; run < runs; run++) {
  for (let k = 0; k < methods.length; k++) {
    const method = methods[(run + k) % methods.length]!;
    await changeSome(src);
    await timed('sync', []);
    const started = performance.now();
    await Promise.all(hostDirs.map((dir) => method.run(src, dir, run)));
    times.get(method.label)!.push(performance.now() - started);
  }
}
const anchor = median(times.get(methods[0]!.label)!);
say();
for (const method of methods) {
  const m = median(times.get(method.label)!);
  say(`${method.label.padEnd(44)} median ${(m / 1000).toFixed(3)} s   ${(m / anchor).toFixed(2)}x   runs: ${times.get(method.label)!.map((t) => (t / 1000).toFixed(2)).join(' ')}`);
}
for (const dir of hostDirs) await rm(dir, { recursive: true, force: true });
