// Which committed manifest lends its hashes to this run: the one of the complete backup the
// run's store says it continues from (PreparedSnapshot.previous: for snapshots the newest
// complete one; for a mirror its manifest as committed, kept aside by the store before rsync
// rewrites the tree), as its done mark recorded it.
import type { DoneMark, SnapshotPaths } from '@ssh-r-sync/core';
import type { CommittedManifest } from './previous-hashes.js';

// The manifest summary a done mark records (extra.manifest), when it has the expected shape.
function summaryOf(done: DoneMark | null): { file: string; bytes: number; sha256: string } | null {
  const value = done?.extra?.manifest as { file?: unknown; bytes?: unknown; sha256?: unknown } | undefined;
  if (!value || value.file !== 'manifest.tsv' || !Number.isSafeInteger(value.bytes) || typeof value.sha256 !== 'string' || !/^[0-9a-f]{64}$/.test(value.sha256)) return null;
  return { file: value.file, bytes: value.bytes as number, sha256: value.sha256 };
}

// When the backup's run began, for comparing ctimes with (carry-entry.ts); nothing when its done
// mark does not say, or when the clock now reads earlier than its commit (set back since: a ctime
// stamped now could then look older than that run).
function startedAtOf(done: DoneMark | null): { startedAt?: Date } {
  const started = Date.parse(done?.startedAt ?? '');
  const completed = Date.parse(done?.completedAt ?? '');
  if (!Number.isFinite(started) || !Number.isFinite(completed) || completed > Date.now()) return {};
  return { startedAt: new Date(started) };
}

// The manifest of the committed backup at `paths` with done mark `done`; null when the done mark
// records no manifest summary.
export function committedManifest(paths: SnapshotPaths, done: DoneMark): CommittedManifest | null {
  const summary = summaryOf(done);
  if (!summary) return null;
  return { file: paths.manifest, bytes: summary.bytes, sha256: summary.sha256, id: paths.id, ...startedAtOf(done) };
}
