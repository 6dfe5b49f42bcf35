// Every host under ROOT, recomputed from the receiver's own records each time the file is
// written (so the file is consistent and never loses a host): its health from core's hostStatus
// (as `ssh-r-sync-admin status` sees it), its last run from the run log (or the host record), its
// lock from the lock file.
import { readdir } from 'node:fs/promises';
import { NAME_PATTERN, hostStatus, readHostRecord, type HostStatus } from '@ssh-r-sync/core';
// The run log is the one record with a run's start, duration and rsync's counts; core keeps its
// reader with the commands' API for now (see the README).
import { readRunLog } from '@ssh-r-sync/core';
import type { HostMetrics } from './exposition.js';
import { lockHeld } from './lock-state.js';

export interface CollectOptions {
  now: Date;
  /** Per host, a max age (seconds) to judge staleness by. */
  maxAges: Map<string, number>;
  /** Hosts whose health the caller has already (the status timer's report). */
  known?: Map<string, HostStatus>;
}

// The host directories under ROOT, as `ssh-r-sync-admin status` lists them.
export async function hostNames(root: string): Promise<string[]> {
  const entries = await readdir(root, { withFileTypes: true });
  return entries.filter((entry) => entry.isDirectory() && NAME_PATTERN.test(entry.name)).map((entry) => entry.name).sort();
}

// The metrics of every host under `root`.
export async function collect(root: string, options: CollectOptions): Promise<HostMetrics[]> {
  const names = new Set(await hostNames(root));
  for (const name of options.known?.keys() ?? []) names.add(name);
  const hosts: HostMetrics[] = [];
  for (const name of [...names].sort()) hosts.push(await hostMetrics(root, name, options));
  return hosts;
}

async function hostMetrics(root: string, name: string, options: CollectOptions): Promise<HostMetrics> {
  const maxAge = options.maxAges.get(name);
  const status = options.known?.get(name) ?? (await hostStatus(root, name, { now: options.now, maxAgeMs: maxAge === undefined ? undefined : maxAge * 1000 }));
  const lastRun = await recordedRun(root, name);
  return {
    host: name,
    kind: status.kind,
    store: status.store,
    lastRun,
    lastSuccess: status.lastSuccess,
    complete: status.complete,
    incomplete: status.incomplete,
    newestComplete: status.newestComplete?.startedAt ?? null,
    lastVerify: status.lastVerify && { at: status.lastVerify.at, ok: status.lastVerify.ok, problems: status.lastVerify.problems },
    lockHeld: await lockHeld(root, name),
    stale: status.stale,
    maxAgeSeconds: maxAge ?? null,
    ...(status.facts ? { facts: status.facts } : {}),
  };
}

// The host's last run: the run log's last entry, or (a log lost or not kept) the host record's.
async function recordedRun(root: string, name: string): Promise<HostMetrics['lastRun']> {
  const record = (await readHostRecord(root, name))?.lastRun;
  const logged = readRunLog(root, name).at(-1);
  // The record is written after the log: a log entry older than it belongs to an earlier run.
  if (logged && (!record || Date.parse(logged.at) >= Date.parse(record.at) - 60_000)) {
    return {
      startedAt: logged.startedAt,
      at: logged.at,
      status: logged.status,
      exitCode: logged.exitCode,
      rsyncExitCode: logged.rsync?.exitCode ?? null,
      files: logged.rsync?.files ?? null,
      bytes: logged.rsync?.bytes ?? null,
      durationMs: logged.durationMs,
    };
  }
  if (!record) return null;
  return { startedAt: null, at: record.at, status: record.status, exitCode: null, rsyncExitCode: null, files: null, bytes: null, durationMs: null };
}
