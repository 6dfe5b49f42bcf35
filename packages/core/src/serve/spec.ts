// The one argument shape a restore names what it wants in: `ssh-r-sync/<latest|ID>/<-|p…>/./`.
// The path travels base64url-encoded, so that rsync's remote-shell escaping never touches it and
// the server reads exactly the bytes the client meant; the trailing `/./` tells the client's
// rsync (-R) that every name the server sends is below what it asked for.
import { UsageError } from '../errors.js';
import { SNAPSHOT_ID } from '../storage/snapshots.js';
import { normalizeRestorePath } from '../restore/restore-paths.js';

export const SPEC_PREFIX = 'ssh-r-sync';
const SPEC = /^ssh-r-sync\/(latest|\d{4}-\d{2}-\d{2}T\d{6}Z)\/(-|p[A-Za-z0-9_-]{1,5500})\/\.\/$/;

/** What one spec names: a snapshot, and a path in it (bytes as a latin1 string) or the whole tree. */
export interface RestoreSpec {
  snapshot: string;
  path: string | null;
}

// A snapshot token as the user gives it: "latest" or an id; throws a usage error otherwise.
export function checkSnapshotToken(token: string): string {
  if (token === 'latest' || SNAPSHOT_ID.test(token)) return token;
  throw new UsageError(`--snapshot ${JSON.stringify(token.slice(0, 80))}: give a snapshot id like 2026-11-22T024512Z (\`ssh-r-sync snapshots\` lists them), or latest`);
}

// The argument the client's rsync asks for; `path` is bytes as a latin1 string, already normalized.
export function encodeSpec(snapshot: string, path: string | null): string {
  const encoded = path === null ? '-' : `p${Buffer.from(path, 'latin1').toString('base64url')}`;
  return `${SPEC_PREFIX}/${snapshot}/${encoded}/./`;
}

// Reads one argument of a restore request; throws a usage error naming what is wrong.
export function decodeSpec(arg: string): RestoreSpec {
  const match = SPEC.exec(arg);
  if (!match) throw new UsageError(`refused restore argument ${JSON.stringify(arg.slice(0, 80))}: not one that ssh-r-sync restore sends (ssh-r-sync/<latest|ID>/<path>/./)`);
  const snapshot = match[1]!;
  if (match[2] === '-') return { snapshot, path: null };
  const bytes = Buffer.from(match[2]!.slice(1), 'base64url');
  return { snapshot, path: normalizeRestorePath(bytes.toString('latin1')) };
}
