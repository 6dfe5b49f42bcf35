// Extended attributes of one on-disk entry, never following a symlink. Node has no xattr API:
// @napi-rs/xattr is a maintained N-API addon shipped prebuilt (no compiler at `npm ci`) that calls
// llistxattr/lgetxattr. It takes paths as UTF-8 strings, so a path that is not valid UTF-8 goes
// through getfattr(1) on an inherited O_PATH descriptor instead (rare: one process per such name).
import { spawnSync } from 'node:child_process';
import { closeSync, constants, openSync } from 'node:fs';
import { getAttributeSync, listAttributesSync } from '@napi-rs/xattr';

/** Linux O_PATH: a descriptor naming the inode without opening its content (fs.constants lacks it). */
const O_PATH = 0o10000000;
/** rsync's %stat value is at most 255 bytes (xattrs.c reads it into a 256-byte buffer). */
const STAT_MAX = 255;
const GETFATTR_TIMEOUT_MS = 10_000;
const GETFATTR_MAX_OUTPUT = 1 << 20;

/** The attribute names of an entry and a reader of one value. */
export interface Xattrs {
  names: string[];
  get(name: string): Buffer | null;
}

// The xattrs of `path` (a latin1 string of its bytes); no names where the filesystem has none.
export function readXattrs(path: string): Xattrs {
  const bytes = Buffer.from(path, 'latin1');
  const text = bytes.toString('utf8');
  if (Buffer.from(text, 'utf8').equals(bytes)) {
    const names = listOrNone(text);
    return { names, get: (name) => (names.includes(name) ? bounded(getAttributeSync(text, name), name) : null) };
  }
  const values = viaGetfattr(bytes);
  return { names: [...values.keys()], get: (name) => values.get(name) ?? null };
}

function listOrNone(path: string): string[] {
  try {
    return listAttributesSync(path);
  } catch (error) {
    if (/not supported|ENOTSUP|EOPNOTSUPP/i.test(String((error as Error).message))) return [];
    throw error;
  }
}

function bounded(value: Buffer | null, name: string): Buffer | null {
  if (value && name === 'user.rsync.%stat' && value.length > STAT_MAX) throw new Error(`${name} is longer than rsync writes`);
  return value;
}

// `getfattr -d -m - -e hex /proc/self/fd/3` on a descriptor of the entry: the path's bytes never
// pass through argv (Node encodes arguments as UTF-8).
function viaGetfattr(path: Buffer): Map<string, Buffer> {
  const fd = openSync(path, O_PATH | constants.O_NOFOLLOW);
  try {
    const run = spawnSync('getfattr', ['--absolute-names', '-d', '-m', '-', '-e', 'hex', '/proc/self/fd/3'], {
      stdio: ['ignore', 'pipe', 'pipe', fd],
      timeout: GETFATTR_TIMEOUT_MS,
      maxBuffer: GETFATTR_MAX_OUTPUT,
      killSignal: 'SIGKILL',
    });
    if (run.error) throw new Error(`getfattr failed (install the attr package): ${run.error.message}`, { cause: run.error });
    if (run.status !== 0) throw new Error(`getfattr failed: ${run.stderr.toString().trim().split('\n')[0]}`);
    const values = new Map<string, Buffer>();
    for (const line of run.stdout.toString('latin1').split('\n')) {
      const match = /^([^#=][^=]*)=0x([0-9a-f]*)$/.exec(line);
      if (match) values.set(match[1]!, Buffer.from(match[2]!, 'hex'));
      else if (/^[^#=][^=]*$/.test(line)) values.set(line, Buffer.alloc(0));
    }
    return values;
  } finally {
    closeSync(fd);
  }
}
