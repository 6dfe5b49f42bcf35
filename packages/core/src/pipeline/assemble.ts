// Builds a pipeline from the config file and the command line, in one fixed order:
// the config's hooks, the config's plugins, then --plugin, then -x/--hook.
import type { Mode, RunContext } from './context.js';
import { loadConfig, type Config, type LoadedConfig } from '../plugins/config.js';
import { UsageError } from '../errors.js';
import { parseHookSpec, scriptsPlugin, type HookSpec } from '../exec/exec-plugin.js';
import { loadPlugin } from '../plugins/load-plugins.js';
import type { Logger } from '../logger.js';
import { Pipeline } from './pipeline.js';

/** A run that takes longer than a day is stuck, not slow (a first backup of a huge tree may need --max-run-time). */
export const DEFAULT_MAX_RUN_TIME_SECONDS = 86400;

export interface AssembleOptions {
  root: string;
  role?: 'receiver' | 'client';
  /** --config FILE; otherwise the config is searched from `cwd`. */
  configFile?: string | undefined;
  cwd?: string;
  /** -x/--hook POINT:PATH, as given. */
  hooks?: readonly string[];
  /** --plugin SPEC, as given; resolved from the cwd. */
  plugins?: readonly string[];
  /** Command-line values win over the config's. */
  mode?: Mode | undefined;
  hookTimeoutSeconds?: number | undefined;
  /** --max-run-time: the whole run's limit; default a day, 0 = none. */
  maxRunTimeSeconds?: number | undefined;
  rsyncProgram?: string | undefined;
  /** --defer-unlocked: leave the unlocked after-session tasks (off-site copies) to another process. */
  deferUnlocked?: boolean | undefined;
  logger: Logger;
  /** Takes the host's lock once the host is known; gets the loaded config (its lockWait). */
  lock?: (ctx: RunContext, config: Config) => Promise<() => Promise<void>>;
}

export interface Assembled {
  pipeline: Pipeline;
  loaded: LoadedConfig;
  mode: Mode;
}

// Loads config and plugins and taps everything onto a new pipeline.
export async function assemblePipeline(options: AssembleOptions): Promise<Assembled> {
  const cwd = options.cwd ?? process.cwd();
  const loaded = await loadConfig({ file: options.configFile, cwd });
  const { config } = loaded;
  const configHooks: HookSpec[] = Object.entries(config.hooks ?? {}).flatMap(([point, paths]) =>
    (Array.isArray(paths) ? paths : [paths]).map((path) => parseHookSpec(`${point}:${path}`, loaded.baseDir)),
  );
  const cliHooks = (options.hooks ?? []).map((spec) => parseHookSpec(spec, cwd));
  const mode = options.mode ?? config.mode ?? (process.getuid?.() === 0 ? 'privileged' : 'fake-super');
  const hookTimeoutSeconds = options.hookTimeoutSeconds ?? config.hookTimeout ?? 0;
  if (!Number.isFinite(hookTimeoutSeconds) || hookTimeoutSeconds < 0) throw new UsageError(`invalid hook timeout: ${hookTimeoutSeconds}`);
  const pipeline = new Pipeline({
    role: options.role ?? 'receiver',
    root: options.root,
    mode,
    rsyncProgram: options.rsyncProgram ?? config.rsync ?? 'rsync',
    hookTimeoutMs: Math.round(hookTimeoutSeconds * 1000),
    maxRunTimeMs: Math.round((options.maxRunTimeSeconds ?? DEFAULT_MAX_RUN_TIME_SECONDS) * 1000),
    logger: options.logger,
    ...(options.deferUnlocked ? { deferUnlocked: true } : {}),
    ...(options.lock ? { lock: (ctx: RunContext) => options.lock!(ctx, config) } : {}),
  });
  if (configHooks.length) pipeline.use({ ...scriptsPlugin(configHooks), name: `scripts from ${loaded.filepath}` });
  for (const entry of config.plugins ?? []) pipeline.use(await loadPlugin(entry, loaded.baseDir));
  for (const spec of options.plugins ?? []) pipeline.use(await loadPlugin(spec, cwd));
  if (cliHooks.length) pipeline.use(scriptsPlugin(cliHooks));
  return { pipeline, loaded, mode };
}
