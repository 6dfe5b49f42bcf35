// The config file: found by cosmiconfig (module name `ssh-r-sync`, `.ts` through jiti) or
// named with --config, then checked against one schema.
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import * as z from 'zod/mini';
import { SshRSyncError, oneLine } from './errors.js';
import type { Plugin } from './plugin.js';
import { NAME_PATTERN } from './host-dir.js';
import './protocol/zod-setup.js';
import { importModule } from '@ssh-r-sync/core/dynamic-import';

const pluginObject = z.custom<Plugin>(
  (value) => typeof value === 'object' && value !== null && typeof (value as Plugin).apply === 'function',
  'expected a plugin object { name, apply }',
);

const nonEmpty = () => z.string().check(z.minLength(1));

const pluginEntry = z.union([nonEmpty(), z.tuple([nonEmpty(), z.record(z.string(), z.unknown())]), pluginObject]);

export const configSchema = z.strictObject({
  /** Plugins: "pkg", ["pkg", {options}], "./file.ts", or plugin objects in a JS/TS config. */
  plugins: z.optional(z.array(pluginEntry)),
  /** Scripts per point: { "rsync.pre": ["./a.sh", "b"] }; relative paths from the config's folder. */
  hooks: z.optional(z.record(z.string(), z.union([nonEmpty(), z.array(nonEmpty())]))),
  /** Seconds; bounds every hook, scripts and plugins. */
  hookTimeout: z.optional(z.number().check(z.nonnegative())),
  /** Receiver: how rsync keeps ownership; the client cannot raise it. */
  mode: z.optional(z.enum(['privileged', 'fake-super', 'plain'])),
  /** Receiver: the rsync program. */
  rsync: z.optional(nonEmpty()),
  /** Receiver: key fingerprint (SHA256:…) → host name. */
  names: z.optional(z.record(z.string(), z.string().check(z.regex(NAME_PATTERN, 'host names match ^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$')))),
  /** Seconds each handshake read may take. */
  handshakeTimeout: z.optional(z.number().check(z.positive())),
  /** Seconds to wait for a busy host's lock; 0 refuses at once. */
  lockWait: z.optional(z.number().check(z.nonnegative())),
});

export type Config = z.infer<typeof configSchema>;
export type PluginEntry = z.infer<typeof pluginEntry>;

export interface LoadedConfig {
  config: Config;
  /** The file it came from; null when none was found. */
  filepath: string | null;
  /** Where relative paths and npm names in it resolve from. */
  baseDir: string;
}

// Imports a TypeScript file at run time (plain Node 20 cannot).
export async function importTypeScript(path: string): Promise<unknown> {
  // Loaded on demand: most runs have no TypeScript to load, and every run pays for imports.
  const { createJiti } = await importModule<typeof import('jiti')>('jiti');
  const jiti = createJiti(import.meta.url, { interopDefault: true, moduleCache: false });
  return jiti.import(path, { default: true });
}

const tsLoader = (filepath: string) => importTypeScript(filepath);

/** Where the config is searched, in the working directory, in this order. */
export const SEARCH_PLACES = [
  'package.json',
  '.ssh-r-syncrc',
  '.ssh-r-syncrc.json',
  '.ssh-r-syncrc.yaml',
  '.ssh-r-syncrc.yml',
  '.ssh-r-syncrc.js',
  '.ssh-r-syncrc.mjs',
  '.ssh-r-syncrc.ts',
  'ssh-r-sync.config.js',
  'ssh-r-sync.config.mjs',
  'ssh-r-sync.config.ts',
  'ssh-r-sync.config.mts',
  'ssh-r-sync.config.json',
];

// Finds and validates the config: `file` when given, else a search from `cwd`.
export async function loadConfig(options: { file?: string | undefined; cwd?: string } = {}): Promise<LoadedConfig> {
  const cwd = options.cwd ?? process.cwd();
  // Most receivers have no config file: then cosmiconfig (and its parsers) need not load at all.
  if (!options.file && !SEARCH_PLACES.some((place) => existsSync(join(cwd, place)))) return { config: {}, filepath: null, baseDir: cwd };
  const { cosmiconfig } = await importModule<typeof import('cosmiconfig')>('cosmiconfig');
  const explorer = cosmiconfig('ssh-r-sync', {
    loaders: { '.ts': tsLoader, '.mts': tsLoader, '.cts': tsLoader },
    searchPlaces: SEARCH_PLACES,
  });
  let found: { config: unknown; filepath: string; isEmpty?: boolean } | null;
  try {
    found = options.file ? await explorer.load(options.file) : await explorer.search(cwd);
  } catch (error) {
    const where = options.file ?? `the config found from ${cwd}`;
    throw new SshRSyncError('ECONFIG', `cannot load ${where}: ${oneLine(error)}`, { cause: error });
  }
  if (!found || found.isEmpty) return { config: {}, filepath: found?.filepath ?? null, baseDir: found ? dirname(found.filepath) : cwd };
  const parsed = configSchema.safeParse(found.config);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const at = issue?.path.length ? issue.path.join('.') : '(top level)';
    throw new SshRSyncError('ECONFIG', `invalid config ${found.filepath}: ${at}: ${issue?.message ?? 'invalid'}`);
  }
  return { config: parsed.data, filepath: found.filepath, baseDir: dirname(found.filepath) };
}
