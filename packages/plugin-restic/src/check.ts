// The two read-side calls of a repository: `restic check` (with a data sample) for
// `ssh-r-sync-admin verify --offsite`, and `restic restore` of one copy into a staging directory
// for `ssh-r-sync-admin restore --from-offsite` (which then restores from there as from a local
// snapshot: a fake-super copy carries the client's owners in its xattrs).
import { oneLine } from '@ssh-r-sync/core';
import type { ParsedOptions, Repository } from './options.js';
import { resticCommand, resticError, runRestic } from './restic.js';
import { listCopies, type RemoteCopy } from './sync.js';

// Checks `repo`'s structure and rereads `samplePercent` of its data (0: structure only); throws on a problem.
export async function checkRepository(options: ParsedOptions, repo: Repository, samplePercent: number, signal?: AbortSignal): Promise<string> {
  const args = ['check', ...(samplePercent > 0 ? [`--read-data-subset=${Math.min(100, samplePercent)}%`] : [])];
  const run = await runRestic(resticCommand(options, repo, args), { signal, maxStdout: 4 * 1024 * 1024 });
  if (run.code !== 0) throw resticError(repo, 'check', run);
  return oneLine(run.stdout.trim().split('\n').at(-1) ?? 'no errors were found');
}

// Restores the copy of snapshot `id` ('latest': the newest; or a copy's own restic id) of host
// `name` into `target` (which must exist and be empty), never one of the restic ids in `exclude`
// (partial copies); returns which copy it was.
export async function restoreCopy(options: ParsedOptions, repo: Repository, name: string, id: string, target: string, signal?: AbortSignal, exclude: readonly string[] = []): Promise<RemoteCopy> {
  const copies = (await listCopies(options, repo, name, signal)).filter((c) => !exclude.some((e) => c.resticId.startsWith(e))).sort((a, b) => Date.parse(a.time) - Date.parse(b.time));
  const copy = id === 'latest' ? copies.at(-1) : (copies.find((c) => c.resticId === id) ?? copies.findLast((c) => c.id === id));
  if (!copy) {
    const ids = copies.map((c) => c.id);
    throw new Error(`${repo.name} has no copy of ${name} ${id} (${ids.length ? `copies: ${ids.slice(-5).join(', ')}${ids.length > 5 ? ', …' : ''}` : 'it has none'})`);
  }
  const run = await runRestic(resticCommand(options, repo, ['restore', copy.resticId, '--target', target]), { signal, maxStdout: 4 * 1024 * 1024 });
  if (run.code !== 0) throw resticError(repo, `restore of ${copy.id}`, run);
  return copy;
}
