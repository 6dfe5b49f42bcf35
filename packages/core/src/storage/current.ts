// The store and snapshot of the run in progress: the pipeline sets them once the store has
// prepared the snapshot (after every rsync.pre tap); plugins read them. Kept beside the run's
// context, not in ctx.data, where any tap could replace them and redirect the commit. Global:
// plugins bring their own copy of core.
import type { RunContext } from '../pipeline/context.js';
import { mirrorPaths, type SnapshotPaths } from './snapshots.js';
import type { PreparedSnapshot, SnapshotStore } from './store.js';

const CURRENT = Symbol.for('ssh-r-sync.current-snapshot');
const current = ((globalThis as Record<symbol, unknown>)[CURRENT] ??= new WeakMap<RunContext, Current>()) as WeakMap<RunContext, Current>;

interface Current {
  store: SnapshotStore;
  prepared: PreparedSnapshot;
}

// Records the run's store and the snapshot it prepared (the pipeline does, after rsync.pre).
export function setPreparedSnapshot(ctx: RunContext, store: SnapshotStore, prepared: PreparedSnapshot): void {
  if (current.has(ctx)) throw new Error('the run\'s snapshot was prepared already');
  current.set(ctx, { store, prepared });
  ctx.snapshot = prepared.id || null;
}

// The snapshot this run writes, from after rsync.pre on; undefined before (or in a skipped run).
export function preparedSnapshot(ctx: RunContext): PreparedSnapshot | undefined {
  return current.get(ctx)?.prepared;
}

// The store this run writes to, from after rsync.pre on.
export function runStore(ctx: RunContext): SnapshotStore | undefined {
  return current.get(ctx)?.store;
}

// Where this run's backup is: its prepared snapshot's paths, else the mirror's metadata paths.
export function currentSnapshot(ctx: RunContext): SnapshotPaths {
  return preparedSnapshot(ctx)?.paths ?? mirrorPaths(ctx.root, ctx.name, ctx.dir);
}
