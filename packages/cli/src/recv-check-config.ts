// `ssh-r-sync-recv --check-config`: loads the receiver's config as a run would and says what it
// found (like `rsnapshot configtest`): the file and how it was found, the settings, every plugin
// (loaded, with its options) and every hook script (its point, whether it can run). Each problem
// is one line on stderr; any problem exits 2, so a config is checked before the first backup.
import { accessSync, constants, statSync } from 'node:fs';
import { delimiter, join, resolve } from 'node:path';
import {
  assemblePipeline,
  configDirs,
  loadConfig,
  loadPlugin,
  oneLine,
  parseHookSpec,
  runLogPath,
  silentLogger,
  type HookSpec,
  type LoadedConfig,
  type PluginEntry,
} from '@ssh-r-sync/core/internal';

export interface CheckConfigOptions {
  configFile?: string | undefined;
  /** --plugin and -x/--hook from the command line, checked as well. */
  plugins: string[];
  hooks: string[];
  root?: string | undefined;
}

const PLACE_WORDS = { option: 'given with --config', system: 'the system place', user: "the account's place", cwd: 'found in the working directory' } as const;

// Checks the config and prints the report; resolves to the exit code (0 fine, 2 any problem).
export async function checkConfig(prefix: string, options: CheckConfigOptions): Promise<number> {
  const out: string[] = [];
  const problems: string[] = [];
  const cwd = process.cwd();
  let loaded: LoadedConfig | null = null;
  try {
    loaded = await loadConfig({ file: options.configFile, cwd });
  } catch (error) {
    problems.push(oneLine(error));
  }
  if (loaded) {
    const { system, user } = configDirs();
    out.push(
      loaded.filepath
        ? `config: ${loaded.filepath} (${PLACE_WORDS[loaded.place ?? 'cwd']})`
        : `config: none found in ${system}/, ${user}/ or ${cwd}: the defaults apply`,
    );
    for (const file of loaded.shadowed ?? []) out.push(`  not read: ${file} (the file above wins)`);
    const { config } = loaded;
    for (const key of ['mode', 'rsync', 'hookTimeout', 'handshakeTimeout', 'lockWait', 'syslog'] as const) if (config[key] !== undefined) out.push(`${key}: ${String(config[key])}`);
    if (config.names) out.push(`names: ${Object.keys(config.names).length} key fingerprint(s) mapped to host names`);
    for (const entry of config.plugins ?? []) out.push(await checkPlugin(entry, loaded.baseDir, 'config', problems));
    for (const [point, paths] of Object.entries(config.hooks ?? {})) {
      for (const path of Array.isArray(paths) ? paths : [paths]) out.push(checkHook(`${point}:${path}`, loaded.baseDir, 'config', problems));
    }
  }
  for (const spec of options.plugins) out.push(await checkPlugin(spec, cwd, 'command line', problems));
  for (const spec of options.hooks) out.push(checkHook(spec, cwd, 'command line', problems));
  if (options.root !== undefined) out.push(checkRoot(options.root, problems));
  // Each part loaded: now all together, as a run taps them (a plugin may fail only in apply()).
  if (loaded && !problems.length) {
    try {
      await assemblePipeline({ root: options.root ?? '.', configFile: options.configFile, cwd, hooks: options.hooks, plugins: options.plugins, logger: silentLogger });
    } catch (error) {
      problems.push(oneLine(error));
    }
  }
  out.push(problems.length ? `${problems.length} problem${problems.length === 1 ? '' : 's'}` : 'config ok');
  process.stdout.write(`${out.filter(Boolean).join('\n')}\n`);
  for (const problem of problems) process.stderr.write(`${prefix}: ${problem}\n`);
  return problems.length ? 2 : 0;
}

async function checkPlugin(entry: PluginEntry, baseDir: string, origin: string, problems: string[]): Promise<string> {
  const spec = typeof entry === 'string' ? entry : Array.isArray(entry) ? entry[0] : `a plugin object "${entry.name}"`;
  const options = Array.isArray(entry) ? ` options ${JSON.stringify(entry[1])}` : '';
  try {
    const plugin = await loadPlugin(entry, baseDir);
    return `plugin ${spec} (${origin}): loaded, named "${plugin.name}"${options}`;
  } catch (error) {
    problems.push(oneLine(error));
    return `plugin ${spec} (${origin}): does not load${options}`;
  }
}

function checkHook(text: string, baseDir: string, origin: string, problems: string[]): string {
  let spec: HookSpec;
  try {
    spec = parseHookSpec(text, baseDir);
  } catch (error) {
    problems.push(oneLine(error));
    return `hook ${text} (${origin}): invalid`;
  }
  const problem = scriptProblem(spec.path);
  if (problem) problems.push(`hook ${spec.point}: ${problem}`);
  return `hook ${spec.point}: ${spec.path} (${origin})${problem ? ': cannot run' : ''}`;
}

// Why a hook script cannot run, or null: missing, not a file, not executable, not in PATH.
function scriptProblem(path: string): string | null {
  const candidates = path.includes('/') ? [path] : (process.env.PATH ?? '').split(delimiter).filter(Boolean).map((dir) => join(dir, path));
  for (const file of candidates) {
    const info = statSync(file, { throwIfNoEntry: false });
    if (!info) continue;
    if (!info.isFile()) return `${file} is not a file`;
    try {
      accessSync(file, constants.X_OK);
      return null;
    } catch {
      return `${file} is not executable: chmod +x ${file}`;
    }
  }
  return path.includes('/') ? `${path} does not exist` : `${path} is not in PATH (${process.env.PATH ?? ''}): give its absolute path`;
}

function checkRoot(root: string, problems: string[]): string {
  const absolute = resolve(root);
  const info = statSync(absolute, { throwIfNoEntry: false });
  if (!info?.isDirectory()) {
    problems.push(`BACKUP_ROOT ${absolute} is not a directory: create it (mkdir -m 700 ${absolute}) or fix the path`);
    return `BACKUP_ROOT: ${absolute}: missing`;
  }
  try {
    accessSync(absolute, constants.W_OK | constants.X_OK);
  } catch {
    problems.push(`BACKUP_ROOT ${absolute} is not writable by this account: chown it to the backup account`);
  }
  return `BACKUP_ROOT: ${absolute} (run log: ${runLogPath(absolute, 'NAME')})`;
}
