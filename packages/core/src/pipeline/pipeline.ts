// The pipeline: connect → handshake → rsync.pre → rsync → rsync.post → done, as one run.
import { realpath } from 'node:fs/promises';
import type { Mode, Outcome, RsyncCommand, RsyncResult, Role, RunContext, Skip } from './context.js';
import { SshRSyncError, isSshRSyncError, oneLine } from '../errors.js';
import type { PipelineHooks } from './hooks.js';
import { hostDirectory, keepPrivate } from '../storage/host-dir.js';
import { silentLogger, type Logger } from '../logger.js';
import type { Plugin } from '../plugins/plugin.js';
import { StageDriver } from './stage-driver.js';
import { commitRun } from './commit.js';
import { claimHostKind, recordLastRun } from '../storage/host-record.js';
import { runAfterSession, runUnlockedAfterSession, scheduleAfterSession } from './after-session.js';
import { preparedSnapshot, runStore, setPreparedSnapshot } from '../storage/current.js';
import { setRunRetention } from '../storage/retention.js';
import { mirrorStoreProvider } from '../storage/mirror-store.js';
import { defaultRsyncArgs, runRsync } from '../rsync/rsync.js';
import { describeRsyncFailure } from '../rsync/rsync-errors.js';
import { timerLimit } from './timer-limit.js';
import type { Transport } from '../transport/transport.js';

/** How long done taps may still run once --max-run-time has passed, at most. */
const DONE_GRACE_MS = 60_000;

export interface PipelineOptions {
  role?: Role;
  /** BACKUP_ROOT; must exist. */
  root: string;
  /** The receiver's choice; a client's fake-super wish may lower it. */
  mode: Mode;
  rsyncProgram?: string;
  /** Per-tap limit in milliseconds (scripts and plugins alike); 0 = none. */
  hookTimeoutMs?: number;
  logger?: Logger;
  /** Called once the host is known; returns a release function. Refuses or waits for a busy host. */
  lock?: (ctx: RunContext) => Promise<() => Promise<void>>;
  /** The whole run's limit in milliseconds (a run that never ends is stopped); 0 = none. */
  maxRunTimeMs?: number;
  /** --defer-unlocked: the unlocked after-session tasks are not run by this process (recorded as
   *  deferred), so that it ends with its run (a pull unit under systemd; another unit copies). */
  deferUnlocked?: boolean;
}

export class Pipeline {
  /** The hook points, driven the same way as the client's (stage-driver.ts). */
  readonly driver: StageDriver;

  constructor(private readonly options: PipelineOptions) {
    this.driver = new StageDriver({ role: options.role ?? 'receiver', hookTimeoutMs: options.hookTimeoutMs ?? 0 });
  }

  get hooks(): PipelineHooks {
    return this.driver.hooks;
  }

  get plugins(): readonly Plugin[] {
    return this.driver.plugins;
  }

  // Applies a plugin; a plugin that throws while tapping is a configuration error.
  use(plugin: Plugin): this {
    this.driver.use(plugin);
    return this;
  }

  /** The snapshot store a plugin brought, for the hook list; null: a plain mirror. */
  get storeInfo(): { plugin: string; kind: string } | null {
    const store = this.driver.store;
    return store ? { plugin: store.plugin, kind: store.provider.kind } : null;
  }

  /** Stops the stages (rsync and running hooks are killed); `done` hooks still run. */
  stop(reason: string): void {
    this.driver.stop(new SshRSyncError('EINTERNAL', reason));
  }

  /** Stops everything, `done` hooks included. */
  kill(reason: string): void {
    this.driver.kill(new SshRSyncError('EINTERNAL', reason));
  }

  // Runs every stage through the transport and returns how it ended; never throws.
  async run(transport: Transport): Promise<Outcome> {
    const started = performance.now();
    const ctx: RunContext = {
      role: this.options.role ?? 'receiver',
      root: await realpath(this.options.root).catch(() => this.options.root),
      name: '',
      dir: '',
      mode: this.options.mode,
      oneFileSystem: false,
      signal: this.driver.signal,
      logger: this.options.logger ?? silentLogger,
      startedAt: new Date(),
      snapshot: null,
      data: new Map(),
      taps: this.driver.taps,
    };
    if (this.driver.retention) setRunRetention(ctx, this.driver.retention);
    const elapsed = () => Math.round(performance.now() - started);
    const maxRunTimeMs = timerLimit(this.options.maxRunTimeMs ?? 0);
    // At the limit the stages stop and `done` still runs, but not for ever: done taps get as
    // long again (at most DONE_GRACE_MS), then they are killed too.
    let grace: NodeJS.Timeout | undefined;
    const overLimit = () => {
      const reason = `the run took longer than its limit of ${maxRunTimeMs / 1000} s (--max-run-time)`;
      this.stop(reason);
      grace = setTimeout(() => this.kill(reason), Math.min(maxRunTimeMs, DONE_GRACE_MS));
      grace.unref();
    };
    const limit = maxRunTimeMs > 0 ? setTimeout(overLimit, maxRunTimeMs) : undefined;
    limit?.unref();
    let release: (() => Promise<void>) | undefined;
    let outcome: Outcome;
    try {
      outcome = await this.stages(ctx, transport, (fn) => (release = fn), elapsed);
    } catch (error) {
      outcome = failure(ctx.signal.aborted ? stopped(ctx.signal.reason, error) : error, null, elapsed());
    }
    // The commit point: complete only from here on, and only then is the peer told "success".
    if (outcome.status === 'success') {
      try {
        ctx.signal.throwIfAborted();
        await commitRun(ctx, outcome);
        outcome.committed = true;
      } catch (error) {
        outcome = failure(ctx.signal.aborted ? ctx.signal.reason : error, outcome.rsync, elapsed());
      }
    }
    outcome.snapshot = ctx.snapshot;
    try {
      await transport.report(outcome, ctx);
    } catch (error) {
      ctx.logger.warn(`could not report the outcome: ${oneLine(error)}`);
      if (outcome.status === 'success') outcome = { ...failure(error, outcome.rsync, elapsed()), snapshot: outcome.snapshot, committed: true };
    }
    await this.settleSnapshot(outcome, ctx);
    const doneFailed = await this.driver.done(outcome, ctx);
    if (doneFailed) {
      outcome = { ...failure(doneFailed.error, outcome.rsync, elapsed()), snapshot: outcome.snapshot, committed: outcome.committed === true, doneErrors: doneFailed.errors };
    }
    try {
      await transport.finish(outcome, ctx);
    } catch (error) {
      ctx.logger.warn(oneLine(error));
    }
    clearTimeout(limit);
    // Only a run that holds the host's lock writes its record (a refused one would overwrite the
    // account of the run that holds it, and race with its writes).
    const locked = release !== undefined || !this.options.lock;
    let lastRunAt: string | null = null;
    if (ctx.name && locked) {
      const lastRun = { at: new Date().toISOString(), status: outcome.status, committed: outcome.committed === true, snapshot: outcome.snapshot ?? null, message: outcome.message };
      lastRunAt = lastRun.at;
      await recordLastRun(ctx.root, ctx.name, lastRun).catch((error: unknown) => ctx.logger.warn(`could not record the run in the host's record: ${oneLine(error)}`));
    }
    clearTimeout(grace);
    // After the session: the client has its answer; pruning and the like cannot delay or fail it.
    // After the session: bounded by the receiver's stop, or, when the run was already stopped
    // (the client went away, --max-run-time), by the kill only: a failure's notification still goes.
    const afterSignal = this.driver.signal.aborted ? this.driver.killSignal : this.driver.signal;
    const base = ctx.name ? await runAfterSession(ctx, ctx.logger, afterSignal, outcome.committed === true, locked) : null;
    try {
      await release?.();
    } catch (error) {
      ctx.logger.warn(oneLine(error));
    }
    // Long work that guards itself runs without the host's lock: the host's next backup goes ahead.
    if (ctx.name && locked) await runUnlockedAfterSession(ctx, ctx.logger, afterSignal, outcome.committed === true, lastRunAt, base, this.options.deferUnlocked === true);
    return outcome;
  }

  private async stages(
    ctx: RunContext,
    transport: Transport,
    onLock: (release: () => Promise<void>) => void,
    elapsed: () => number,
  ): Promise<Outcome> {
    const skipped = (s: Skip) => ({ ...empty(elapsed()), status: 'skipped' as const, exitCode: 75 as const, message: s.reason });
    let skip = await this.hooks.connect.promise(ctx);
    if (skip) return skipped(skip);

    const peer = await transport.handshake(ctx);
    ctx.name = peer.name;
    ctx.oneFileSystem = peer.oneFileSystem;
    if (peer.fakeSuper && ctx.mode === 'privileged') ctx.mode = 'fake-super';
    ctx.dir = await hostDirectory(ctx.root, ctx.name, this.options.mode);
    if (this.options.lock) onLock(await this.options.lock(ctx));
    skip = (await this.hooks.handshake.promise(ctx)) ?? (await transport.start(ctx));
    if (skip) return skipped(skip);

    const endpoint = await transport.endpoint(ctx);
    const command: RsyncCommand = {
      program: this.options.rsyncProgram ?? 'rsync',
      args: defaultRsyncArgs({ mode: ctx.mode, oneFileSystem: ctx.oneFileSystem, compress: endpoint.compress }),
      source: endpoint.source,
      destination: `${ctx.dir}/`,
      transportArgs: endpoint.transportArgs,
      env: endpoint.env,
      ...(endpoint.connection ? { connection: endpoint.connection } : {}),
    };
    skip = await this.hooks.rsyncPre.promise(command, ctx);
    if (skip) return skipped(skip);

    ctx.signal.throwIfAborted();
    // What the receiver writes into ROOT/NAME must match what it wrote there before: snapshots
    // never become a mirror (rsync --delete would wipe them), a mirror's files are never taken
    // for snapshots, and one store kind never reads another's. Then the store makes the
    // snapshot, after every rsync.pre tap: nothing is made for a skipped run, and a tap that
    // replaced rsync's options cannot drop the store's.
    const provider = this.driver.store?.provider ?? mirrorStoreProvider;
    await claimHostKind(ctx.root, ctx.name, ctx.dir, provider.kind, this.driver.store ? provider.module : undefined);
    const store = provider.open({ root: ctx.root, name: ctx.name, dir: ctx.dir });
    const prepared = await store.prepare({ command, now: ctx.startedAt, mode: ctx.mode, logger: ctx.logger, signal: ctx.signal });
    setPreparedSnapshot(ctx, store, prepared);
    // rsync's progress, when someone follows it: the client (it asked) or a plugin's progress tap.
    const relay = endpoint.progress;
    if (relay || this.hooks.progress.isUsed()) {
      command.transportArgs.push('--info=progress2');
      command.onProgress = (event) => {
        this.driver.progress(event, ctx);
        relay?.(event);
      };
    }
    if (prepared.id) ctx.logger.debug(`snapshot ${prepared.id} (${provider.kind}) prepared in ${prepared.workTree}`);
    let ran: RsyncResult;
    try {
      ran = (await this.hooks.rsync.promise(command, ctx)) ?? (await runRsync(command, ctx));
    } finally {
      // rsync gave its destination the client's top-directory mode and owner: take them back.
      await keepPrivate(command.destination, ctx.dir);
    }
    const result = await this.hooks.rsyncPost.promise(ran, ctx);
    if (result.exitCode !== 0) return failure(rsyncFailed(result, ctx), result, elapsed());
    await this.hooks.beforeCommit.promise(result, ctx);
    return { ...empty(elapsed()), status: 'success', exitCode: 0, rsync: result };
  }

  // After the report, before the done taps: a snapshot that was not committed goes back to its
  // store (kept to be continued, or removed if empty); a committed one's store tidies up after
  // the session (interrupted runs it supersedes).
  private async settleSnapshot(outcome: Outcome, ctx: RunContext): Promise<void> {
    const store = runStore(ctx);
    const prepared = preparedSnapshot(ctx);
    if (!store || !prepared) return;
    const logger = ctx.logger.scope(store.kind);
    if (!outcome.committed) {
      await store.abandon(prepared, logger).catch((error: unknown) => logger.warn(`could not set the uncommitted snapshot aside: ${oneLine(error)}`));
      return;
    }
    const work = await store.tidy(prepared, logger).catch((error: unknown) => {
      logger.warn(`could not look for what the new snapshot supersedes: ${oneLine(error)}`);
      return null;
    });
    if (work) scheduleAfterSession(ctx, { name: this.driver.store?.plugin ?? store.kind, timeoutMs: TIDY_TIMEOUT_MS, run: work });
  }
}

/** How long a store's tidying after a committed run may take (removing superseded snapshots of big trees). */
const TIDY_TIMEOUT_MS = 60 * 60 * 1000;

function empty(durationMs: number): Outcome {
  return { status: 'success', exitCode: 0, message: null, error: null, rsync: null, durationMs };
}

// A failed outcome from any error: exit 2 for configuration errors, 1 otherwise.
function failure(error: unknown, rsync: RsyncResult | null, durationMs: number): Outcome {
  const wrapped = isSshRSyncError(error) ? error : new SshRSyncError('EINTERNAL', oneLine(error), { cause: error });
  const exitCode = wrapped.code === 'EUSAGE' || wrapped.code === 'ECONFIG' ? 2 : 1;
  return { status: 'failure', exitCode, message: wrapped.message, error: wrapped, rsync, durationMs };
}

// A run stopped from outside (a signal, a vanished peer, --max-run-time) fails for that reason,
// not for what the stop did to the step that was running (a hook "killed by SIGKILL").
function stopped(reason: unknown, error: unknown): SshRSyncError {
  const why = oneLine(reason);
  const what = oneLine(error);
  return new SshRSyncError(isSshRSyncError(reason) ? reason.code : 'EINTERNAL', what === why ? why : `${why}; ${what}`, { cause: error });
}

// rsync's failure, in words: why the run was stopped, or what rsync's own output says.
function rsyncFailed(result: RsyncResult, ctx: RunContext): SshRSyncError {
  const why = describeRsyncFailure(result, ctx.root);
  const tail = result.output.trimEnd().split('\n').slice(-20).join('\n');
  const message = ctx.signal.aborted ? `${oneLine(ctx.signal.reason)}; ${why}` : why;
  return new SshRSyncError('ERSYNC', message, { details: tail });
}
