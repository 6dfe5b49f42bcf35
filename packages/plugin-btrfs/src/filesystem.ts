// Which file system a path is on (statfs), and the mount it belongs to (/proc/self/mountinfo),
// so that a refusal can name the file system and the exact mount option that is missing.
import { constants } from 'node:fs';
import { open, statfs } from 'node:fs/promises';

/** statfs f_type of btrfs (linux/magic.h). */
export const BTRFS_MAGIC = 0x9123683e;

/** Names of the file systems a ROOT is likely to be on, for the refusal. */
const NAMES: Record<number, string> = {
  0xef53: 'ext4',
  0x01021994: 'tmpfs',
  0x58465342: 'xfs',
  0x2fc12fc1: 'zfs',
  0x794c7630: 'overlayfs',
  0x6969: 'nfs',
  0xff534d42: 'cifs',
  0x65735546: 'fuse',
  0x4d44: 'vfat',
  0x5346544e: 'ntfs',
  0xf2f52010: 'f2fs',
  0x858458f6: 'ramfs',
  [BTRFS_MAGIC]: 'btrfs',
};

// The file system type's name of `path` ("ext4", or its magic number in hex when unknown).
export async function filesystemType(path: string): Promise<{ btrfs: boolean; name: string }> {
  const { type } = await statfs(path);
  const magic = type >>> 0;
  return { btrfs: magic === BTRFS_MAGIC, name: NAMES[magic] ?? `a file system of type 0x${magic.toString(16)}` };
}

export interface MountInfo {
  /** Where it is mounted. */
  point: string;
  /** What is mounted there (a device, e.g. /dev/sdb1). */
  source: string;
  type: string;
  /** The per-mount and per-superblock options together. */
  options: string[];
}

/** mountinfo is a line per mount: a few hundred KiB even with thousands of mounts. */
const MAX_MOUNTINFO_BYTES = 4 * 1024 * 1024;

// The mount that `realPath` (no symlinks in it) is on; null when it cannot be told.
export async function mountOf(realPath: string): Promise<MountInfo | null> {
  let text: string;
  try {
    const handle = await open('/proc/self/mountinfo', constants.O_RDONLY);
    try {
      const buffer = Buffer.alloc(MAX_MOUNTINFO_BYTES);
      let length = 0;
      for (;;) {
        const { bytesRead } = await handle.read(buffer, length, buffer.length - length, null);
        if (bytesRead === 0 || (length += bytesRead) >= buffer.length) break;
      }
      text = buffer.subarray(0, length).toString('utf8');
    } finally {
      await handle.close();
    }
  } catch {
    return null;
  }
  let best: MountInfo | null = null;
  for (const line of text.split('\n')) {
    // ID PARENT MAJ:MIN ROOT POINT OPTIONS [OPTIONAL…] - TYPE SOURCE SUPER_OPTIONS
    const [before, after] = line.split(' - ');
    if (!before || !after) continue;
    const fields = before.split(' ');
    const [type, source, superOptions] = after.split(' ');
    const point = unescape(fields[4] ?? '');
    if (!point || !type || !within(realPath, point)) continue;
    // The longest match is the mount the path is on; of equal ones the later (mounted over).
    if (best && point.length < best.point.length) continue;
    best = { point, source: unescape(source ?? ''), type, options: [...(fields[5] ?? '').split(','), ...(superOptions ?? '').split(',')] };
  }
  return best;
}

function within(path: string, point: string): boolean {
  return point === '/' || path === point || path.startsWith(`${point}/`);
}

// mountinfo writes space, tab, newline and backslash as \ooo.
function unescape(field: string): string {
  return field.replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(parseInt(octal, 8)));
}
