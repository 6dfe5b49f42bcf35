// A throwaway btrfs file system for tests and benches: a sparse image file made with mkfs.btrfs
// and loop-mounted (as root) in a temporary directory, removed again by cleanup (unmounted, its
// loop device detached, the files removed). In CI (CI=true) a missing btrfs is a failure, not a skip.
import { execFile } from 'node:child_process';
import { chmod, chown, mkdir, mkdtemp, rm, stat, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { TestContext } from 'node:test';
import { which } from './tree.js';

const run = promisify(execFile);

export interface BtrfsMount {
  /** The mounted file system's top directory. */
  mountPoint: string;
  /** The image file behind it. */
  image: string;
  /** Unmounts and removes everything (idempotent). */
  cleanup(): Promise<void>;
}

export interface BtrfsMountOptions {
  /** Image size in MiB (sparse: only what is written takes space). Default 300. */
  sizeMiB?: number;
  /** Mount options besides `loop`; default ['user_subvol_rm_allowed']. */
  options?: string[];
  /** Where the image and mount point go (a real disk, not tmpfs, for benches); default os.tmpdir(). */
  parent?: string;
  /** Mount on this existing empty directory instead (e.g. a test server's BACKUP_ROOT); its
   *  owner and mode are given to the new file system's top. */
  at?: string;
}

// Why btrfs tests cannot run here, or null when they can.
export function btrfsUnavailable(): string | null {
  if (process.getuid?.() !== 0) return 'btrfs tests need root (to loop-mount an image)';
  for (const tool of ['mkfs.btrfs', 'btrfs', 'losetup', 'mount', 'umount']) {
    if (!which(tool) && !['/usr/sbin', '/sbin', '/usr/bin', '/bin'].some((dir) => which(join(dir, tool)))) return `${tool} is missing (apt-get install btrfs-progs)`;
  }
  return null;
}

// True when the test may go on; skips it with the reason when it may not, except in CI, where
// a test that needs btrfs and cannot have it fails.
export function needBtrfs(t: TestContext): boolean {
  const why = btrfsUnavailable();
  if (!why) return true;
  if (process.env.CI) throw new Error(`${why}: in CI the btrfs tests must run (bash scripts/ensure-system.sh installs btrfs-progs; run as root)`);
  t.skip(why);
  return false;
}

// Makes and mounts a fresh btrfs image.
export async function mountBtrfs(options: BtrfsMountOptions = {}): Promise<BtrfsMount> {
  const base = await mkdtemp(join(options.parent ?? tmpdir(), 'srs-btrfs-'));
  const image = join(base, 'image');
  const mountPoint = options.at ?? join(base, 'mnt');
  const keep = options.at ? await stat(options.at) : null;
  let mounted = false;
  const cleanup = async () => {
    if (mounted) {
      // A lazy unmount as the last resort: a process of a failed test may still sit inside.
      await run('umount', [mountPoint]).catch(() => run('umount', ['-l', mountPoint]));
      mounted = false;
    }
    const { stdout } = await run('losetup', ['-j', image]).catch(() => ({ stdout: '' }));
    for (const device of stdout.split('\n').map((line) => line.split(':')[0]).filter(Boolean)) await run('losetup', ['-d', device!]).catch(() => {});
    await rm(base, { recursive: true, force: true });
  };
  try {
    await writeFile(image, '');
    await truncate(image, (options.sizeMiB ?? 300) * 1024 * 1024);
    await run('mkfs.btrfs', ['-q', image]);
    if (!keep) await mkdir(mountPoint);
    await run('mount', ['-o', ['loop', ...(options.options ?? ['user_subvol_rm_allowed'])].join(','), image, mountPoint]);
    mounted = true;
    if (keep) {
      await chown(mountPoint, keep.uid, keep.gid);
      await chmod(mountPoint, keep.mode & 0o7777);
    }
  } catch (error) {
    await cleanup();
    throw error;
  }
  return { mountPoint, image, cleanup };
}

// Runs `btrfs ARGS…` and returns its stdout (tests look at what btrfs itself says).
export async function btrfsSays(...args: string[]): Promise<string> {
  return (await run('btrfs', args, { maxBuffer: 4 * 1024 * 1024 })).stdout;
}

// The bytes `btrfs filesystem du -s` counts for `path`: total, exclusive and shared with others.
export async function extentUsage(path: string): Promise<{ total: number; exclusive: number; shared: number }> {
  await btrfsSays('filesystem', 'sync', path);
  const out = await btrfsSays('filesystem', 'du', '-s', '--raw', path);
  const line = out.trim().split('\n').at(-1)!;
  const [total, exclusive, shared] = line.trim().split(/\s+/).map(Number);
  return { total: total!, exclusive: exclusive!, shared: shared! };
}
