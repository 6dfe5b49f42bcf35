// A host's retention policy as a plugin brings it (plugin-rotate), for others to apply where the
// snapshots are not local: plugin-restic's `keep: "rotate"` forgets copies off-site by the same
// rules that rotate the host's snapshots on the server. The pipeline records the one of the run
// beside its context (like the run's store), never in ctx.data, where any tap could replace it.
import type { RunContext } from '../pipeline/context.js';

/** A retention policy: which of a host's complete snapshots it keeps at a given time. */
export interface Retention {
  /** The policy in one line, for logs: '14d 4w 6m 2y, keep-last 3'. */
  readonly summary: string;
  /** The policy is being tried (plugin-rotate's dryRun): whoever applies it only says what would go. */
  readonly dryRun?: boolean;
  /**
   * Which of `snapshots` (complete ones, any order; ids unique) the policy keeps at `now`, and
   * which it lets go. Every id is in exactly one of the two lists. No per-run deletion cap
   * applies here: that bounds local deletion time, not what the policy keeps.
   */
  plan(snapshots: readonly { id: string; date: Date }[], now: Date): { keep: string[]; delete: string[] };
}

const RETENTION = Symbol.for('ssh-r-sync.run-retention');
const retentions = ((globalThis as Record<symbol, unknown>)[RETENTION] ??= new WeakMap<RunContext, Retention>()) as WeakMap<RunContext, Retention>;

// Records the run's retention policy (the pipeline does, when the run starts).
export function setRunRetention(ctx: RunContext, retention: Retention): void {
  retentions.set(ctx, retention);
}

// The retention policy a plugin of this run brought (plugin-rotate's); undefined: none loaded.
export function runRetention(ctx: RunContext): Retention | undefined {
  return retentions.get(ctx);
}
