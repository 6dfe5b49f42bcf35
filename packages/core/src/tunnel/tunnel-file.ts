// The small JSON file that tells connect-prog (run by rsync) where the tunnel is and the key:
// {"port": N, "key": "<64 hex>", "timeoutMs": N}. The key travels in a 0600 file, never in argv
// or the environment; SSH_R_SYNC_TUNNEL_FILE holds only its path.
import { closeSync, constants, fstatSync, openSync, readSync, writeFileSync } from 'node:fs';
import { SshRSyncError } from '../errors.js';
import { KEY_BYTES } from './proof.js';

export const TUNNEL_FILE_ENV = 'SSH_R_SYNC_TUNNEL_FILE';
const MAX_FILE_BYTES = 4096;

export interface TunnelFile {
  port: number;
  key: Buffer;
  timeoutMs: number;
}

function refuse(path: string, why: string): SshRSyncError {
  return new SshRSyncError('ETUNNEL', `tunnel file ${path} ${why}`);
}

// Writes a new tunnel file, readable by its owner only; an existing file is an error.
export function writeTunnelFile(path: string, tunnel: TunnelFile): void {
  const data = { port: tunnel.port, key: tunnel.key.toString('hex'), timeoutMs: tunnel.timeoutMs };
  writeFileSync(path, `${JSON.stringify(data)}\n`, { mode: 0o600, flag: 'wx' });
}

// Reads a tunnel file, refusing one that is not a regular file of ours with mode 0600 (or stricter).
export function readTunnelFile(path: string): TunnelFile {
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (error) {
    throw refuse(path, `cannot be opened (${(error as NodeJS.ErrnoException).code ?? 'error'})`);
  }
  try {
    const stat = fstatSync(fd);
    if (!stat.isFile()) throw refuse(path, 'is not a regular file');
    if (stat.uid !== process.getuid?.()) throw refuse(path, `is owned by uid ${stat.uid}, not by uid ${process.getuid?.()}`);
    if ((stat.mode & 0o077) !== 0) throw refuse(path, `has mode 0${(stat.mode & 0o777).toString(8)}; it must be 0600`);
    const buffer = Buffer.alloc(MAX_FILE_BYTES + 1);
    const size = readSync(fd, buffer, 0, buffer.length, 0);
    if (size > MAX_FILE_BYTES) throw refuse(path, `is larger than ${MAX_FILE_BYTES} bytes`);
    return parse(path, buffer.subarray(0, size).toString('utf8'));
  } finally {
    closeSync(fd);
  }
}

function parse(path: string, text: string): TunnelFile {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw refuse(path, 'is not valid JSON'); // JSON.parse quotes the text, which holds the key
  }
  // Checked by hand, not with zod: connect-prog starts for every pull, and zod's import costs
  // more than the rest of its start-up. Three fields, each with one rule.
  const data = (typeof json === 'object' && json !== null ? json : {}) as Record<string, unknown>;
  const extra = Object.keys(data).find((key) => !['port', 'key', 'timeoutMs'].includes(key));
  if (extra) throw refuse(path, `is not valid: unknown key "${extra.slice(0, 40)}"`);
  const { port, key, timeoutMs } = data;
  if (!Number.isInteger(port) || (port as number) < 1 || (port as number) > 65535) throw refuse(path, 'is not valid: port: must be an integer in 1..65535');
  if (typeof key !== 'string' || !/^[0-9a-f]+$/.test(key) || key.length !== KEY_BYTES * 2) {
    throw refuse(path, `is not valid: key: must be ${KEY_BYTES * 2} lowercase hex characters`);
  }
  if (!Number.isInteger(timeoutMs) || (timeoutMs as number) <= 0) throw refuse(path, 'is not valid: timeoutMs: must be a positive integer');
  return { port: port as number, key: Buffer.from(key, 'hex'), timeoutMs: timeoutMs as number };
}
