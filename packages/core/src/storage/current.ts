// The store and snapshot of the run in progress, shared with plugins through ctx.data: the
// pipeline sets them once the store has prepared the snapshot (after every rsync.pre tap).
import type { RunContext } from '../pipeline/context.js';
import { mirrorPaths, type SnapshotPaths } from './snapshots.js';
import type { PreparedSnapshot, SnapshotStore } from './store.js';

const CURRENT = 'ssh-r-sync:snapshot';

interface Current {
  store: SnapshotStore;
  prepared: PreparedSnapshot;
}

// Records the run's store and the snapshot it prepared (the pipeline does, after rsync.pre).
export function setPreparedSnapshot(ctx: RunContext, store: SnapshotStore, prepared: PreparedSnapshot): void {
  ctx.data.set(CURRENT, { store, prepared } satisfies Current);
  ctx.snapshot = prepared.id || null;
}

// The snapshot this run writes, from after rsync.pre on; undefined before (or in a skipped run).
export function preparedSnapshot(ctx: RunContext): PreparedSnapshot | undefined {
  return (ctx.data.get(CURRENT) as Current | undefined)?.prepared;
}

// The store this run writes to, from after rsync.pre on.
export function runStore(ctx: RunContext): SnapshotStore | undefined {
  return (ctx.data.get(CURRENT) as Current | undefined)?.store;
}

// Where this run's backup is: its prepared snapshot's paths, else the mirror's metadata paths.
export function currentSnapshot(ctx: RunContext): SnapshotPaths {
  return preparedSnapshot(ctx)?.paths ?? mirrorPaths(ctx.root, ctx.name, ctx.dir);
}
