// The benches' source tree: deterministic for (files, bytes, seed), generated once (not timed) and
// kept in a cache directory for every later run with the same parameters.
//
// Nested directories of 100 files (d4/d43/d437/f043712.txt), log-normal sizes (many small files, a
// long tail of large ones, ~1% empty) scaled to sum to exactly `bytes`; half the files are
// incompressible (an AES-CTR keystream), half text-like (random words from a 256-word vocabulary,
// ~3:1 for zstd). Fixed mtimes, so a second run of any tool over it is a no-change run.
import { createCipheriv, createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, open, readFile, rm, utimes, writeFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { repoRoot } from '../../test/helpers/cli.js';
import { bytesText, say } from './report.mjs';
import { median } from './runner.mjs';

/** Bumped when the generator's output changes, so that older cached trees are not reused. */
const TREE_VERSION = 1;
export const FILES_PER_DIR = 100;
const CHUNK = 4 * 1024 * 1024;
const MTIME_BASE = 1_700_000_000;
/** Where trees are kept unless a bench's --cache says otherwise (ignored by git). */
export const DEFAULT_CACHE = join(repoRoot, 'bench', '.cache');

export interface TreeSpec {
  files: number;
  bytes: number;
  seed: number;
}

export interface TreeInfo extends TreeSpec {
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

// Writes the tree for `spec` into `dir` (uncached: the transport bench's one-file tree uses it too).
export async function generateTree(dir: string, spec: TreeSpec): Promise<TreeInfo> {
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
export async function cachedTree(cache: string, spec: TreeSpec): Promise<{ dir: string; info: TreeInfo; reused: boolean }> {
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
