// The typed hook points of the pipeline. Each hook's class says what a tap's return value
// means: a bail hook stops at the first defined value, a waterfall passes it on, a plain
// series hook ignores it.
import { AsyncSeriesBailHook, AsyncSeriesHook, AsyncSeriesWaterfallHook, SyncHook } from 'tapable';
import type { Outcome, RsyncCommand, RsyncResult, RunContext, Skip } from './context.js';
import type { HookKey } from './points.js';
import type { RsyncProgress } from '../rsync/progress.js';

export interface PipelineHooks {
  /** `connect`: a client is connected, before any handshake byte. Return `skip()` for "not now". */
  readonly connect: AsyncSeriesBailHook<[RunContext], Skip | undefined>;
  /** `handshake`: the peer is proven and the host is known (`ctx.name`, `ctx.dir`). Return `skip()` for "not now". */
  readonly handshake: AsyncSeriesBailHook<[RunContext], Skip | undefined>;
  /** `rsync.pre`: right before rsync starts; edit `command` in place. Return `skip()` for "not now". */
  readonly rsyncPre: AsyncSeriesBailHook<[RsyncCommand, RunContext], Skip | undefined>;
  /** `rsync`: runs rsync. The first tap that returns a result replaces the built-in runner. */
  readonly rsync: AsyncSeriesBailHook<[RsyncCommand, RunContext], RsyncResult | undefined>;
  /** `rsync.post`: rsync exited, whatever its code. Return a changed result (e.g. exit 24 → 0) or nothing. */
  readonly rsyncPost: AsyncSeriesWaterfallHook<[RsyncResult, RunContext]>;
  /** `done`: always last, with the outcome: success, failure or skipped. Return values are ignored. */
  readonly done: AsyncSeriesHook<[Outcome, RunContext]>;
  /**
   * Part of `rsync.post` for TS plugins that vouch for the data (the manifest): runs once rsync
   * succeeded and every `rsync.post` tap has given its final exit code, right before the commit
   * point; the run's snapshot is `preparedSnapshot(ctx)`. A tap that throws fails the run and
   * nothing is committed. Timeouts and records as for `rsync.post`.
   */
  readonly beforeCommit: AsyncSeriesHook<[RsyncResult, RunContext]>;
  /**
   * Part of `rsync`: rsync's progress while it runs (bytes, percent, rate, files), a few times a
   * second, on the receiver and (relayed) on the client. Synchronous taps only, for display and
   * counting: not timed, not recorded, and a tap that throws is logged once and dropped.
   */
  readonly progress: SyncHook<[RsyncProgress, RunContext]>;
}

/** Hooks that are part of a point rather than points of their own, with that point. */
export const PART_OF_POINT = { beforeCommit: 'rsync.post' } as const satisfies Partial<Record<keyof PipelineHooks, string>>;
/** Hooks outside the guard (no timeouts, no records): they fire many times a run. */
export const UNGUARDED = { progress: 'rsync' } as const satisfies Partial<Record<keyof PipelineHooks, string>>;

// Every point has a hook and every hook a point: a compile error otherwise.
type Exact<A, B> = [A] extends [B] ? ([B] extends [A] ? true : never) : never;
const everyPointHasAHook: Exact<Exclude<keyof PipelineHooks, keyof typeof PART_OF_POINT | keyof typeof UNGUARDED>, HookKey> = true;
void everyPointHasAHook;

// Creates a fresh, frozen set of hooks: plugins may tap them but never replace them.
export function createHooks(): PipelineHooks {
  return Object.freeze({
    connect: new AsyncSeriesBailHook<[RunContext], Skip | undefined>(['ctx'], 'connect'),
    handshake: new AsyncSeriesBailHook<[RunContext], Skip | undefined>(['ctx'], 'handshake'),
    rsyncPre: new AsyncSeriesBailHook<[RsyncCommand, RunContext], Skip | undefined>(['command', 'ctx'], 'rsync.pre'),
    rsync: new AsyncSeriesBailHook<[RsyncCommand, RunContext], RsyncResult | undefined>(['command', 'ctx'], 'rsync'),
    rsyncPost: new AsyncSeriesWaterfallHook<[RsyncResult, RunContext]>(['result', 'ctx'], 'rsync.post'),
    done: new AsyncSeriesHook<[Outcome, RunContext]>(['outcome', 'ctx'], 'done'),
    beforeCommit: new AsyncSeriesHook<[RsyncResult, RunContext]>(['result', 'ctx'], 'rsync.post (before the commit)'),
    progress: new SyncHook<[RsyncProgress, RunContext]>(['progress', 'ctx'], 'rsync (progress)'),
  });
}
