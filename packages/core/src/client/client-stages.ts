// The client runs the same stage names around its own work, so a client-side script can, say,
// dump a database before its data is served: connect (before ssh), handshake (the receiver
// accepted us), rsync.pre (before the daemon serves), rsync.post (the result arrived), done.
import type { Mode, Outcome, RsyncResult, RunContext, Skip } from '../context.js';
import { parseHookSpec, scriptsPlugin } from '../exec-plugin.js';
import { createHooks } from '../hooks.js';
import type { Logger } from '../logger.js';
import { guardHooks } from '../tap-guard.js';

export interface ClientStagesOptions {
  /** `--hook POINT:PATH` values as given. */
  hooks: readonly string[];
  timeoutMs: number;
  path: string;
  mode: Mode;
  logger: Logger;
  signal: AbortSignal;
}

export interface ClientStages {
  readonly ctx: RunContext;
  readonly used: boolean;
  connect(): Promise<Skip | undefined>;
  /** handshake, then rsync.pre: the client's pre-work before its data is served. */
  beforeServing(name: string): Promise<Skip | undefined>;
  afterResult(result: { rsyncExitCode: number | null; message: string | null; files: number | null; bytes: number | null; durationMs: number }): Promise<void>;
  done(outcome: Outcome): Promise<void>;
}

// Builds the client's hooks from its --hook options (validated at once: a typo is a usage error).
export function clientStages(options: ClientStagesOptions): ClientStages {
  const specs = options.hooks.map((spec) => parseHookSpec(spec));
  const hooks = createHooks();
  guardHooks(hooks, { timeoutMs: options.timeoutMs, signalFor: () => options.signal });
  scriptsPlugin(specs).apply(hooks);
  const ctx: RunContext = {
    role: 'client',
    root: options.path,
    dir: options.path,
    name: '',
    mode: options.mode,
    oneFileSystem: false,
    signal: options.signal,
    logger: options.logger,
    startedAt: new Date(),
    snapshot: null,
    data: new Map(),
    taps: [],
  };
  return {
    ctx,
    used: specs.length > 0,
    connect: () => hooks.connect.promise(ctx),
    async beforeServing(name) {
      ctx.name = name;
      const skipped = await hooks.handshake.promise(ctx);
      if (skipped) return skipped;
      // Options a client-side rsync.pre prints have no rsync to go to: the daemon's options are fixed.
      return hooks.rsyncPre.promise({ program: 'rsync', args: [], source: options.path, destination: '', transportArgs: [], env: {} }, ctx);
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
      await hooks.rsyncPost.promise(rsync, ctx);
    },
    done: (outcome) => hooks.done.promise(outcome, ctx),
  };
}
