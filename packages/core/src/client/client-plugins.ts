// The client's plugins and scripts from its config and its command line, in the receiver's
// order: the config's scripts, the config's plugins, then --plugin (the --hook scripts are
// applied last by the stages).
import { loadClientConfig } from '../plugins/config.js';
import { parseHookSpec, scriptsPlugin, type HookSpec } from '../exec/exec-plugin.js';
import { loadPlugin } from '../plugins/load-plugins.js';
import type { Plugin } from '../plugins/plugin.js';

export interface ClientPlugins {
  plugins: Plugin[];
  /** The config file read, or null. */
  configFile: string | null;
  /** The config's hookTimeout in seconds, if it sets one. */
  hookTimeoutSeconds: number | undefined;
}

// Loads the client's config (--config FILE or the fixed places) and its plugins; --plugin specs resolve from `cwd`.
export async function loadClientPlugins(options: { configFile?: string | undefined; plugins?: readonly string[]; cwd?: string }): Promise<ClientPlugins> {
  const cwd = options.cwd ?? process.cwd();
  const loaded = await loadClientConfig({ file: options.configFile });
  const { config } = loaded;
  const plugins: Plugin[] = [];
  const scripts: HookSpec[] = Object.entries(config.hooks ?? {}).flatMap(([point, paths]) =>
    (Array.isArray(paths) ? paths : [paths]).map((path) => parseHookSpec(`${point}:${path}`, loaded.baseDir)),
  );
  if (scripts.length) plugins.push({ ...scriptsPlugin(scripts), name: `scripts from ${loaded.filepath}` });
  for (const entry of config.plugins ?? []) plugins.push(await loadPlugin(entry, loaded.baseDir));
  for (const spec of options.plugins ?? []) plugins.push(await loadPlugin(spec, cwd));
  return { plugins, configFile: loaded.filepath, hookTimeoutSeconds: config.hookTimeout };
}
