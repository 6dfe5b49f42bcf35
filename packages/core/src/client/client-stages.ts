// The client runs the same stage names around its own work, so a client-side script or plugin
// can, say, dump a database before its data is served: connect (before ssh), handshake (the
// receiver accepted us), rsync.pre (before the daemon serves), rsync.post (the result arrived),
// done. The points are driven by the receiver's driver (stage-driver.ts): the same guard,
// timeouts, records, plugins and scripts.
import type { Mode, Outcome, RsyncResult, RunContext, Skip } from '../pipeline/context.js';
import { SshRSyncError } from '../errors.js';
import { parseHookSpec, scriptsPlugin } from '../exec/exec-plugin.js';
import type { Logger } from '../logger.js';
import type { Plugin } from '../plugins/plugin.js';
import { StageDriver } from '../pipeline/stage-driver.js';
import type { RsyncProgress } from '../rsync/progress.js';

export interface ClientStagesOptions {
  /** `--hook POINT:PATH` values as given. */
  hooks: readonly string[];
  /** Plugins from the client's config and --plugin, applied before the --hook scripts. */
  plugins?: readonly Plugin[];
  timeoutMs: number;
  path: string;
  mode: Mode;
  logger: Logger;
  /** Stops the stages; `done` scripts still run. */
  signal: AbortSignal;
  /** Kills `done` scripts too (the second signal). */
  killSignal?: AbortSignal | undefined;
}

export interface ClientStages {
  readonly ctx: RunContext;
  readonly used: boolean;
  connect(): Promise<Skip | undefined>;
  /** handshake, then rsync.pre: the client's pre-work before its data is served. */
  beforeServing(name: string): Promise<Skip | undefined>;
  afterResult(result: { rsyncExitCode: number | null; message: string | null; files: number | null; bytes: number | null; durationMs: number }): Promise<void>;
  done(outcome: Outcome): Promise<void>;
  /** A plugin here taps `hooks.progress`: the receiver is asked to relay rsync's progress. */
  readonly followsProgress: boolean;
  /** rsync's progress as the receiver relayed it, to the progress taps. */
  progress(event: RsyncProgress): void;
}

// Builds the client's hooks from its --hook options (validated at once: a typo is a usage error).
export function clientStages(options: ClientStagesOptions): ClientStages {
  const specs = options.hooks.map((spec) => parseHookSpec(spec));
  const driver = new StageDriver({ role: 'client', hookTimeoutMs: options.timeoutMs });
  const { hooks } = driver;
  // The first signal stops the stages, but done taps still run (bounded by --hook-timeout), so a
  // snapshot or database lock taken in connect is released; a second signal kills them.
  const follow = (signal: AbortSignal | undefined, then: (reason: unknown) => void) => {
    if (signal?.aborted) then(signal.reason);
    else signal?.addEventListener('abort', () => then(signal.reason), { once: true });
  };
  follow(options.signal, (reason) => driver.stop(reason));
  follow(options.killSignal, (reason) => driver.kill(reason));
  for (const plugin of options.plugins ?? []) driver.use(plugin);
  if (specs.length) driver.use(scriptsPlugin(specs));
  const ctx: RunContext = {
    role: 'client',
    root: options.path,
    dir: options.path,
    name: '',
    mode: options.mode,
    oneFileSystem: false,
    signal: driver.signal,
    logger: options.logger,
    startedAt: new Date(),
    snapshot: null,
    data: new Map(),
    taps: driver.taps,
  };
  return {
    ctx,
    used: specs.length > 0 || (options.plugins?.length ?? 0) > 0,
    get followsProgress() {
      return hooks.progress.isUsed();
    },
    progress: (event) => driver.progress(event, ctx),
    connect: () => hooks.connect.promise(ctx),
    async beforeServing(name) {
      ctx.name = name;
      const refused = await hooks.handshake.promise(ctx);
      if (refused) return refused;
      const command = { program: 'rsync', args: [] as string[], source: options.path, destination: '', transportArgs: [], env: {} };
      const skipped = await hooks.rsyncPre.promise(command, ctx);
      // Options a client-side rsync.pre prints have no rsync to go to: refused, never dropped.
      if (!skipped && command.args.length > 0) {
        throw new SshRSyncError(
          'EHOOK',
          `a client rsync.pre hook printed rsync options (${command.args.slice(0, 5).join(' ').slice(0, 200)}), but the client's daemon options are fixed: ` +
            'give rsync options to the server (a receiver rsync.pre hook) and filters with -f/--filter-file',
        );
      }
      return skipped;
    },
    async afterResult(result) {
      const rsync: RsyncResult = {
        exitCode: result.rsyncExitCode ?? 0,
        originalExitCode: result.rsyncExitCode ?? 0,
        signal: null,
        output: result.message ?? '',
        files: result.files,
        bytes: result.bytes,
        durationMs: result.durationMs,
      };
      const mapped = await hooks.rsyncPost.promise(rsync, ctx);
      // The receiver decided the result (and committed, or not): a client cannot change it.
      if (mapped.exitCode !== rsync.exitCode) {
        throw new SshRSyncError(
          'EHOOK',
          `a client rsync.post hook changed rsync's exit code from ${rsync.exitCode} to ${mapped.exitCode}, but the receiver decides the result: map exit codes with a receiver rsync.post hook`,
        );
      }
    },
    async done(outcome) {
      const failed = await driver.done(outcome, ctx);
      if (failed) throw failed.error;
    },
  };
}
