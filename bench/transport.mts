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
import { spawnSync, execFileSync } from 'node:child_process';
import { createCipheriv, createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { mkdir, mkdtemp, open, readFile, rm, utimes, writeFile } from 'node:fs/promises';
import os from 'node:os';
import { join, relative } from 'node:path';
import { parseArgs } from 'node:util';
import { defaultRsyncArgs, parseStats } from '@ssh-r-sync/core';
import { forcedCommand } from '../test/helpers/backup-server.js';
import { clientBin, recvBin, repoRoot } from '../test/helpers/cli.js';
import { makeKey, startSshd, type Sshd } from '../test/helpers/sshd.js';
import { abort, descendants, installSignalHandlers, lastLine, median, positiveInt, run as runCommand, running, shellWord, type Command, type Run } from './lib/runner.mjs';

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
const HOST = 'host1'; // the big tree's backup name
const TINY = 'tiny'; // the one-file tree's backup name

// ---------------------------------------------------------------------------------------------
// Options

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

function parseSize(text: string): number {
  const match = /^(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?$/i.exec(text.trim());
  if (!match) throw new Error(`invalid size ${JSON.stringify(text)} (e.g. 1G, 100M, 512K, 123456)`);
  const power = ' kmgt'.indexOf((match[2] || ' ').toLowerCase());
  return Math.round(Number(match[1]) * 1024 ** power);
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
  const options = {
    files: positiveInt('files', values.files, 50_000),
    bytes: values.bytes === undefined ? 1024 ** 3 : parseSize(values.bytes),
    runs: positiveInt('runs', values.runs, 3),
    seed: positiveInt('seed', values.seed, 1),
    cache: values.cache ?? join(repoRoot, 'bench', '.cache'),
    breakdown: Boolean(values.breakdown),
    treeOnly: Boolean(values['tree-only']),
    work: values.work,
    keepNodeEnv: Boolean(values['keep-node-env']),
  };
  if (options.bytes < 1) throw new Error('--bytes must be at least 1 byte');
  return options;
}

// ---------------------------------------------------------------------------------------------
// The source tree: deterministic for (files, bytes, seed). Nested directories of 100 files
// (d4/d43/d437/f043712.txt), log-normal sizes (many small files, a long tail of large ones, ~1%
// empty) scaled to sum to exactly `bytes`; half the files are incompressible (an AES-CTR
// keystream), half text-like (random words from a 256-word vocabulary, ~3:1 for zstd). Fixed
// mtimes. Generation is not timed; a tree is cached and reused when its parameters match.

const TREE_VERSION = 1;
const FILES_PER_DIR = 100;
const CHUNK = 4 * 1024 * 1024;
const MTIME_BASE = 1_700_000_000;

interface TreeSpec {
  files: number;
  bytes: number;
  seed: number;
}

interface TreeInfo extends TreeSpec {
  version: number;
  dirs: number;
  levels: number;
  minSize: number;
  medianSize: number;
  maxSize: number;
  emptyFiles: number;
  filesOver1M: number;
  textBytes: number;
  generatedInMs: number;
}

function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function planSizes(spec: TreeSpec, rng: () => number): number[] {
  const raw = new Array<number>(spec.files);
  for (let i = 0; i < spec.files; i++) {
    if (rng() < 0.01) raw[i] = 0;
    else {
      const z = Math.sqrt(-2 * Math.log(rng() || 1e-12)) * Math.cos(2 * Math.PI * rng());
      raw[i] = Math.exp(2 * z); // log-normal, sigma 2: median ≈ mean / 7.4
    }
  }
  let sum = raw.reduce((a, b) => a + b, 0);
  if (sum === 0) (raw[0] = 1), (sum = 1);
  const sizes = raw.map((r) => Math.floor((r * spec.bytes) / sum));
  let largest = 0;
  sizes.forEach((size, i) => size > sizes[largest]! && (largest = i));
  sizes[largest]! += spec.bytes - sizes.reduce((a, b) => a + b, 0);
  return sizes;
}

function vocabulary(rng: () => number): Buffer[] {
  return Array.from({ length: 256 }, (_, i) => {
    const length = 2 + Math.floor(rng() * rng() * 9);
    const word = Array.from({ length }, () => String.fromCharCode(97 + Math.floor(rng() * 26))).join('');
    return Buffer.from(word + (i % 16 === 15 ? '\n' : ' '));
  });
}

function fillText(out: Buffer, keystream: Buffer, words: Buffer[]): void {
  for (let o = 0, k = 0; o < out.length; ) {
    const word = words[keystream[k++]!]!;
    const n = Math.min(word.length, out.length - o);
    for (let j = 0; j < n; j++) out[o + j] = word[j]!;
    o += n;
  }
}

function leafDir(leaf: number, width: number): string {
  const digits = String(leaf).padStart(width, '0');
  return Array.from({ length: width }, (_, level) => `d${digits.slice(0, level + 1)}`).join('/');
}

async function generateTree(dir: string, spec: TreeSpec): Promise<TreeInfo> {
  const started = performance.now();
  const rng = mulberry32(spec.seed);
  const sizes = planSizes(spec, rng);
  const words = vocabulary(rng);
  const leaves = Math.ceil(spec.files / FILES_PER_DIR);
  const width = Math.max(2, String(leaves - 1).length);
  const zeros = Buffer.alloc(CHUNK);
  const dirs = new Set<string>();
  let textBytes = 0;
  await mkdir(dir, { recursive: true });
  for (let i = 0; i < spec.files; i++) {
    const leaf = leafDir(Math.floor(i / FILES_PER_DIR), width);
    if (!dirs.has(leaf)) {
      await mkdir(join(dir, leaf), { recursive: true });
      leaf.split('/').forEach((_, n, parts) => dirs.add(parts.slice(0, n + 1).join('/')));
    }
    const text = rng() < 0.5;
    const size = sizes[i]!;
    const key = createHash('sha256').update(`ssh-r-sync bench ${spec.seed} ${i}`).digest().subarray(0, 16);
    const cipher = createCipheriv('aes-128-ctr', key, Buffer.alloc(16));
    const path = join(dir, leaf, `f${String(i).padStart(6, '0')}.${text ? 'txt' : 'bin'}`);
    const file = await open(path, 'w', 0o644);
    try {
      for (let done = 0; done < size; ) {
        const n = Math.min(CHUNK, size - done);
        let chunk: Buffer;
        if (text) {
          chunk = Buffer.allocUnsafe(n);
          fillText(chunk, cipher.update(zeros.subarray(0, Math.ceil(n / 3) + 16)), words);
        } else {
          chunk = cipher.update(zeros.subarray(0, n));
        }
        await file.write(chunk);
        done += n;
      }
    } finally {
      await file.close();
    }
    if (text) textBytes += size;
    await utimes(path, MTIME_BASE + i, MTIME_BASE + i);
  }
  for (const d of [...dirs].sort().reverse()) await utimes(join(dir, d), MTIME_BASE, MTIME_BASE);
  const sorted = [...sizes].sort((a, b) => a - b);
  return {
    version: TREE_VERSION,
    ...spec,
    dirs: dirs.size,
    levels: width,
    minSize: sorted[0]!,
    medianSize: median(sorted),
    maxSize: sorted[sorted.length - 1]!,
    emptyFiles: sizes.filter((s) => s === 0).length,
    filesOver1M: sizes.filter((s) => s >= 1024 * 1024).length,
    textBytes,
    generatedInMs: Math.round(performance.now() - started),
  };
}

// The cached tree for `spec` (generated when missing or incomplete) and its description.
async function cachedTree(cache: string, spec: TreeSpec): Promise<{ dir: string; info: TreeInfo; reused: boolean }> {
  const id = `tree-v${TREE_VERSION}-f${spec.files}-b${spec.bytes}-s${spec.seed}`;
  const dir = join(cache, id);
  const mark = join(cache, `${id}.json`); // written last: its presence means the tree is complete
  try {
    const info = JSON.parse(await readFile(mark, 'utf8')) as TreeInfo;
    if (info.version === TREE_VERSION && info.files === spec.files && info.bytes === spec.bytes && info.seed === spec.seed && existsSync(dir)) {
      return { dir, info, reused: true };
    }
  } catch {
    // not generated yet
  }
  await rm(mark, { force: true });
  await rm(dir, { recursive: true, force: true });
  say(`generating ${spec.files} files, ${bytesText(spec.bytes)} in ${relative(process.cwd(), dir) || dir} (not timed) …`);
  const info = await generateTree(dir, spec);
  await writeFile(mark, `${JSON.stringify(info, null, 2)}\n`);
  return { dir, info, reused: false };
}

// Reads every file once (untimed), so that no tool pays for a cold page cache.
async function warmCache(dir: string): Promise<void> {
  const buffer = Buffer.allocUnsafe(CHUNK);
  const walk = async (d: string): Promise<void> => {
    for (const entry of readdirSync(d, { withFileTypes: true })) {
      const path = join(d, entry.name);
      if (entry.isDirectory()) await walk(path);
      else if (entry.isFile()) {
        const file = await open(path, 'r');
        try {
          while ((await file.read(buffer, 0, CHUNK, null)).bytesRead > 0);
        } finally {
          await file.close();
        }
      }
    }
  };
  await walk(dir);
}

// ---------------------------------------------------------------------------------------------
// Running and timing commands

// The environment of every timed command: this one, less NODE_EXTRA_CA_CERTS unless
// --keep-node-env (see USAGE); set by main() before anything runs.
let benchEnv: NodeJS.ProcessEnv = process.env;
const run = (command: Command): Promise<Run> => runCommand(command, benchEnv);

// ---------------------------------------------------------------------------------------------
// The two tools

interface Tool {
  label: string;
  command(source: string, target: Target): Command;
  /** Regular files transferred, or a reason why the run failed. */
  outcome(result: Run): { files: number | null } | { error: string };
}

interface Target {
  name: string;
  srsKey: string;
  plainDest: string;
  srsDest: string;
}

interface Setup {
  sshd: Sshd;
  root: string;
  plainKey: string;
  debugKey: string;
  srsTool: Tool;
  plainTool: Tool;
}

function commandLine(command: Command, envVars: Record<string, string> = {}): string {
  const env = Object.entries(envVars).map(([k, v]) => `${k}=${shellWord(v)}`);
  return [...env, ...[command.file, ...command.args].map(shellWord)].join(' ');
}

async function setUp(work: string | undefined): Promise<Setup> {
  let dir: string | undefined;
  if (work) {
    dir = await mkdtemp(join(work, 'ssh-r-sync-bench-'));
    const remove = () => rmSync(dir!, { recursive: true, force: true });
    process.once('exit', remove); // startSshd removes only the directories it made itself
  }
  const sshd = await startSshd({ dir });
  const root = join(sshd.dir, 'backups');
  await mkdir(root, { mode: 0o700 });
  const keys = { big: join(sshd.dir, 'srs_key'), tiny: join(sshd.dir, 'srs_tiny_key'), debug: join(sshd.dir, 'srs_debug_key'), plain: join(sshd.dir, 'plain_key') };
  const pub = {
    big: await makeKey(keys.big, 'bench-ssh-r-sync'),
    tiny: await makeKey(keys.tiny, 'bench-ssh-r-sync-tiny'),
    debug: await makeKey(keys.debug, 'bench-ssh-r-sync-debug'),
    plain: await makeKey(keys.plain, 'bench-plain-rsync'),
  };
  const forced = (args: string[]) => `restrict,port-forwarding,command="${forcedCommand(args, root).replace(/"/g, '\\"')}"`;
  await sshd.setAuthorizedKeys([
    { publicKey: pub.big, options: forced(['--name', HOST]) },
    { publicKey: pub.tiny, options: forced(['--name', TINY]) },
    { publicKey: pub.debug, options: forced(['--name', TINY, '--debug']) },
    { publicKey: pub.plain, options: 'restrict' }, // no forced command: rsync's own remote command runs
  ]);

  // ssh options shared by both: the helper's (pinned host key, BatchMode, curve25519 kex, no
  // multiplexing), as ssh -o values; ssh-r-sync adds its own defaults (keepalives etc.) to them.
  const sshOptions = (key: string) => {
    const raw = sshd.sshOptions(key);
    const out: string[] = [];
    for (let i = 0; i < raw.length; i++) if (raw[i] === '-o' && !raw[i + 1]!.startsWith('LogLevel=')) out.push('-o', raw[++i]!);
    return out;
  };
  const mode = process.getuid?.() === 0 ? 'privileged' : 'fake-super'; // the receiver's default
  const rsyncArgs = defaultRsyncArgs({ mode, oneFileSystem: false, compress: true });
  const sshCommand = ['ssh', '-F', '/dev/null', ...sshd.sshOptions(keys.plain)];

  const srsTool: Tool = {
    label: 'ssh-r-sync',
    command: (source, target) => ({
      file: process.execPath,
      args: [clientBin, '-k', target.srsKey, '-p', String(sshd.port), ...sshOptions(target.srsKey), '-n', target.name, '--json', `${sshd.user}@127.0.0.1`, source],
    }),
    outcome(result) {
      let parsed: { status?: string; files?: number | null; message?: string | null } = {};
      try {
        parsed = JSON.parse(lastLine(result.stdout) || '{}');
      } catch {
        // reported below
      }
      if (result.code !== 0 || parsed.status !== 'success') {
        return { error: `ssh-r-sync exited ${result.code ?? result.signal} (${parsed.status ?? 'no JSON result'}): ${parsed.message ?? lastLine(result.stderr)}` };
      }
      return { files: parsed.files ?? null };
    },
  };
  const plainTool: Tool = {
    label: 'plain rsync',
    command: (source, target) => ({
      file: 'rsync',
      args: [...rsyncArgs, '-e', sshCommand.map(shellWord).join(' '), `${sshd.user}@127.0.0.1:${source}/`, `${target.plainDest}/`],
      env: { ...benchEnv, RSYNC_COMPRESS_LIST: 'zstd none' },
    }),
    outcome(result) {
      if (result.code !== 0) return { error: `rsync exited ${result.code ?? result.signal}: ${lastLine(result.stderr)}` };
      return { files: parseStats(result.stdout).files };
    },
  };
  await mkdir(join(sshd.dir, 'plain'), { mode: 0o700 });
  return { sshd, root, plainKey: keys.plain, debugKey: keys.debug, srsTool, plainTool };
}

// ---------------------------------------------------------------------------------------------
// Measuring

interface Sample {
  tool: string;
  ms: number;
  files: number | null;
}

const problems: string[] = [];

async function measure(tool: Tool, source: string, target: Target, expectFiles: number | undefined): Promise<Sample> {
  execFileSync('sync'); // flush what the previous run wrote, outside the timing
  const result = await run(tool.command(source, target));
  const outcome = tool.outcome(result);
  if ('error' in outcome) throw new Error(outcome.error);
  if (expectFiles !== undefined && outcome.files !== expectFiles) {
    problems.push(`${tool.label} transferred ${outcome.files ?? '?'} files where ${expectFiles} were expected`);
  }
  return { tool: tool.label, ms: result.ms, files: outcome.files };
}

// Runs both tools `runs` times, alternating which goes first; `prepare` runs untimed before each.
async function compare(
  setup: Setup,
  source: string,
  target: Target,
  runs: number,
  expectFiles: number,
  prepare?: (tool: Tool) => Promise<void>,
): Promise<Record<'srs' | 'plain', number[]>> {
  const times = { srs: [] as number[], plain: [] as number[] };
  for (let r = 0; r < runs; r++) {
    const order = r % 2 === 0 ? (['srs', 'plain'] as const) : (['plain', 'srs'] as const);
    for (const which of order) {
      const tool = which === 'srs' ? setup.srsTool : setup.plainTool;
      await prepare?.(tool);
      const sample = await measure(tool, source, target, expectFiles);
      times[which].push(sample.ms);
      say(`  run ${r + 1}/${runs} ${tool.label.padEnd(11)} ${seconds(sample.ms)}  (${sample.files ?? '?'} files transferred)`);
    }
  }
  return times;
}

// ---------------------------------------------------------------------------------------------
// Output helpers

function say(text: string): void {
  process.stdout.write(`${text}\n`);
}

// The filesystem type that holds `path` (from /proc/self/mounts: the longest matching mount point).
function fsType(path: string): string {
  try {
    let best = { point: '', type: '?' };
    for (const line of readFileSync('/proc/self/mounts', 'utf8').split('\n')) {
      const [, point, type] = line.split(' ');
      if (point && type && (path === point || path.startsWith(point.endsWith('/') ? point : `${point}/`)) && point.length > best.point.length) best = { point, type };
    }
    return best.type;
  } catch {
    return '?';
  }
}

function loadText(): string {
  return os.loadavg().map((l) => l.toFixed(2)).join(' ');
}

function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(3)} s`;
}

function bytesText(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) (v /= 1024), i++;
  return i === 0 ? `${n} B` : `${v.toFixed(1)} ${units[i]}`;
}

// The first line a program prints on stdout or stderr (ssh -V uses stderr).
function firstLine(command: string, args: string[]): string {
  const result = spawnSync(command, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  if (result.error) return `${command}: ${result.error.message}`;
  return `${result.stdout}\n${result.stderr}`.trim().split('\n')[0]!.trim();
}

// Warns when a source file of the packages is newer than its compiled output (the bench runs dist).
function staleBuild(): string[] {
  const stale: string[] = [];
  for (const pkg of ['core', 'cli']) {
    const walk = (dir: string): void => {
      for (const entry of readdirSync(dir, { withFileTypes: true })) {
        const path = join(dir, entry.name);
        if (entry.isDirectory()) walk(path);
        else if (entry.name.endsWith('.ts') && !entry.name.endsWith('.d.ts')) {
          const built = path.replace(`${join('packages', pkg, 'src')}`, join('packages', pkg, 'dist')).replace(/\.ts$/, '.js');
          if (!existsSync(built) || statSync(built).mtimeMs < statSync(path).mtimeMs) stale.push(relative(repoRoot, path));
        }
      }
    };
    walk(join(repoRoot, 'packages', pkg, 'src'));
  }
  return stale;
}

function row(cells: string[], widths: number[]): string {
  return cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ').trimEnd();
}

// ---------------------------------------------------------------------------------------------
// Breakdown: where ssh-r-sync's fixed cost goes

async function timeMany(command: Command, n: number, expectCode = 0): Promise<number> {
  const times: number[] = [];
  for (let i = 0; i < n; i++) {
    const result = await run(command);
    if (result.code !== expectCode) throw new Error(`${commandLine(command)} exited ${result.code ?? result.signal}: ${lastLine(result.stderr)}`);
    times.push(result.ms);
  }
  return median(times);
}

// Steps of one ssh-r-sync run, each ending at the first log line that matches (client --debug,
// receiver --debug; the receiver's lines reach the client's stderr through ssh).
const PHASES: [string, RegExp | null][] = [
  ['client start-up: node, imports, daemon config, tunnel listener', /running .*"ssh"/],
  ['ssh login, login shell, receiver start-up and config, hello', /forwarded 127\.0\.0\.1:/],
  ['session message, tunnel check (the proof, in the client process)', /"type":"proven"/],
  ['lock, ready, client hooks, start, rsync.pre; rsync spawned', /ssh-r-sync-recv: running rsync /],
  ['rsync and its --rsh relay start, the command byte arrives', /"command":"rsync"/],
  ['rsync itself (daemon on the client, receiver on the server)', /"type":"served"/],
  ['result, done hooks, bye, ssh and listener teardown, exit', null],
];

function phases(debugRun: Run): { label: string; ms: number }[] {
  const out: { label: string; ms: number }[] = [];
  let previous = 0;
  let from = 0;
  for (const [label, pattern] of PHASES) {
    let at = debugRun.ms;
    if (pattern) {
      const index = debugRun.lines.findIndex((l, i) => i >= from && pattern.test(l.line));
      if (index < 0) return out; // a log line changed: show what was found
      at = debugRun.lines[index]!.ms;
      from = index + 1;
    }
    out.push({ label, ms: at - previous });
    previous = at;
  }
  return out;
}

async function breakdown(setup: Setup, tinySource: string, tinyTarget: Target, runs: number): Promise<void> {
  const n = Math.max(5, runs);
  const ssh = (remote: string): Command => ({ file: 'ssh', args: [...setup.sshd.sshArgs(setup.plainKey), remote] });
  const parts: [string, Command, number][] = [
    ['node -e 0 (bare node start-up)', { file: process.execPath, args: ['-e', '0'] }, 0],
    ...(process.env.NODE_EXTRA_CA_CERTS === undefined
      ? []
      : [['node -e 0 with this machine\'s NODE_EXTRA_CA_CERTS', { file: process.execPath, args: ['-e', '0'], env: process.env }, 0] as [string, Command, number]]),
    ['ssh-r-sync --help (client start-up with its imports)', { file: process.execPath, args: [clientBin, '--help'] }, 0],
    ['ssh-r-sync-recv --help (receiver start-up with its imports)', { file: process.execPath, args: [recvBin, '--help'] }, 0],
    ['ssh login running `true` (kex, auth, login shell)', ssh('true'), 0],
  ];
  if (existsSync(join(os.homedir(), '.bashrc'))) parts.push(['bash -c \'. ~/.bashrc\' (bash run by sshd reads it)', { file: 'bash', args: ['-c', '. ~/.bashrc'] }, 0]);
  say('');
  say(`Breakdown (medians of ${n} runs each; load average ${loadText()}):`);
  for (const [label, command, code] of parts) say(`  ${label.padEnd(62)} ${(await timeMany(command, n, code)).toFixed(0).padStart(5)} ms`);
  const plainTiny = await timeMany(setup.plainTool.command(tinySource, tinyTarget), n);
  const srsTiny = await timeMany(setup.srsTool.command(tinySource, tinyTarget), n);
  say(`  ${'plain rsync, no-change backup of 1 file'.padEnd(62)} ${plainTiny.toFixed(0).padStart(5)} ms`);
  say(`  ${'ssh-r-sync, no-change backup of 1 file'.padEnd(62)} ${srsTiny.toFixed(0).padStart(5)} ms`);

  // The same backup with --debug on both sides, n times: its steps (median of each) and the log of the median run.
  const debugTarget = { ...tinyTarget, srsKey: setup.debugKey };
  const command = setup.srsTool.command(tinySource, debugTarget);
  const debugRuns: Run[] = [];
  for (let i = 0; i < n; i++) {
    const result = await run({ ...command, args: [command.args[0]!, '--debug', ...command.args.slice(1)] });
    const outcome = setup.srsTool.outcome(result);
    if ('error' in outcome) throw new Error(`--debug run: ${outcome.error}`);
    debugRuns.push(result);
  }
  const split = debugRuns.map(phases);
  say('');
  say(`Steps of ssh-r-sync's no-change backup of 1 file (--debug on both sides; medians of ${n} runs, total ${median(debugRuns.map((r) => r.ms)).toFixed(0)} ms):`);
  split[0]!.forEach(({ label }, i) => say(`  ${label.padEnd(62)} ${median(split.map((p) => p[i]?.ms ?? 0)).toFixed(0).padStart(5)} ms`));
  const middle = [...debugRuns].sort((a, b) => a.ms - b.ms)[Math.floor(n / 2)]!;
  say('');
  say(`Log of the median run (ms after the client started; the receiver's lines come through ssh):`);
  for (const { ms, line } of middle.lines) say(`  +${ms.toFixed(0).padStart(5)}  ${line.length > 140 ? `${line.slice(0, 139)}…` : line}`);
  say(`  +${middle.ms.toFixed(0).padStart(5)}  (client exited)`);
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
  installSignalHandlers(say);
  if (!options.keepNodeEnv) {
    const { NODE_EXTRA_CA_CERTS: _dropped, ...rest } = process.env;
    benchEnv = rest;
  }
  const before = new Set(descendants(process.pid)); // e.g. tsx's esbuild service, which stays

  const stale = staleBuild();
  if (stale.length) say(`warning: compiled output older than ${stale.slice(0, 3).join(', ')}${stale.length > 3 ? ` and ${stale.length - 3} more` : ''}: run \`npm run build\` (npm run bench does)`);

  await mkdir(options.cache, { recursive: true });
  const tree = await cachedTree(options.cache, { files: options.files, bytes: options.bytes, seed: options.seed });
  const info = tree.info;
  if (options.treeOnly) {
    say(`${tree.reused ? 'reused' : `generated in ${(info.generatedInMs / 1000).toFixed(1)} s`}: ${tree.dir}`);
    return 0;
  }

  let setup: Setup | undefined;
  try {
    setup = await setUp(options.work);
    const { sshd, root } = setup;
    const plainRoot = join(sshd.dir, 'plain');
    const tinySource = join(sshd.dir, 'tiny-source');
    await generateTree(tinySource, { files: 1, bytes: 1000, seed: options.seed });
    const big: Target = { name: HOST, srsKey: join(sshd.dir, 'srs_key'), srsDest: join(root, HOST), plainDest: join(plainRoot, HOST) };
    const tiny: Target = { name: TINY, srsKey: join(sshd.dir, 'srs_tiny_key'), srsDest: join(root, TINY), plainDest: join(plainRoot, TINY) };

    const rsyncVersion = firstLine('rsync', ['--version']).replace(/\s+/g, ' ');
    const sshVersion = firstLine('ssh', ['-V']);
    const cpus = os.cpus();
    say('ssh-r-sync transport benchmark: ssh-r-sync against plain rsync over ssh, one sshd on 127.0.0.1');
    say(`  node ${process.version}; ${rsyncVersion}; ${sshVersion}`);
    if (process.env.NODE_EXTRA_CA_CERTS !== undefined) {
      say(
        options.keepNodeEnv
          ? '  NODE_EXTRA_CA_CERTS is set and kept (--keep-node-env): every node start-up of the client reads a CA bundle'
          : '  NODE_EXTRA_CA_CERTS is set here and removed for the timed commands (see --keep-node-env)',
      );
    }
    say(`  ${cpus.length} CPUs (${cpus[0]?.model ?? '?'}), ${bytesText(os.totalmem())} RAM, ${os.type()} ${os.release()}; load average at start ${loadText()}`);
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
    say(`  plain rsync: ${commandLine(setup.plainTool.command(tree.dir, big), { RSYNC_COMPRESS_LIST: 'zstd none' })}`);

    // Warm-up, and the receiver's own rsync command line from one --debug run (not timed).
    say('');
    say('Warming up (not timed): reading the tree, one-file backups by both tools …');
    await warmCache(tree.dir);
    await measure(setup.srsTool, tinySource, tiny, 1);
    await measure(setup.plainTool, tinySource, tiny, 1);
    const debugTarget = { ...tiny, srsKey: setup.debugKey };
    const debugCommand = setup.srsTool.command(tinySource, debugTarget);
    const debugRun = await run({ ...debugCommand, args: [debugCommand.args[0]!, '--debug', ...debugCommand.args.slice(1)] });
    const debugOutcome = setup.srsTool.outcome(debugRun);
    if ('error' in debugOutcome) throw new Error(`--debug run: ${debugOutcome.error}`);
    const rsyncLine = debugRun.lines.map((l) => /running (rsync|"rsync") (.*)$/.exec(l.line)).find(Boolean);
    if (rsyncLine) say(`  the receiver ran: RSYNC_COMPRESS_LIST='zstd none' rsync ${rsyncLine[2]!.replace(/"([^"\\ ]*)"/g, '$1')}`);

    say('');
    say(`Fixed cost: no-change backup of a 1-file tree (${tinySource}); load average ${loadText()}`);
    const fixed = await compare(setup, tinySource, tiny, options.runs, 0);
    say(`First backup: ${info.files} files into an empty destination (rm -rf before each run, not timed); load average ${loadText()}`);
    const first = await compare(setup, tree.dir, big, options.runs, info.files, async (tool) => {
      await rm(tool === setup!.srsTool ? big.srsDest : big.plainDest, { recursive: true, force: true });
    });
    say(`No-change incremental backup: the same tree, destination complete; load average ${loadText()}`);
    const incremental = await compare(setup, tree.dir, big, options.runs, 0);

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
  } catch (error) {
    if (!abort.signal.aborted) problems.push(`failed: ${(error as Error).message}`);
    else problems.push((abort.signal.reason as Error).message);
  } finally {
    for (const child of running) child.kill('SIGTERM');
    await setup?.sshd.stop().catch((error: unknown) => problems.push(`stopping sshd: ${(error as Error).message}`));
    const left = descendants(process.pid).filter((pid) => {
      if (before.has(pid)) return false;
      try {
        return !readFileSync(`/proc/${pid}/stat`, 'latin1').includes(') Z ');
      } catch {
        return false;
      }
    });
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
