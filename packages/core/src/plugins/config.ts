// The config file: named with --config, else found in the fixed places (the system's
// /etc/ssh-r-sync/, then the backup account's ~/.config/ssh-r-sync/), else by cosmiconfig's
// search in the working directory (module name `ssh-r-sync`, `.ts` through jiti); then checked
// against one schema. Only one file is read: the first found wins, the rest are `shadowed`.
import { accessSync, constants, existsSync, statSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, isAbsolute, join } from 'node:path';
import * as z from 'zod/mini';
import { SshRSyncError, oneLine } from '../errors.js';
import type { Plugin } from './plugin.js';
import { NAME_PATTERN } from '../storage/host-dir.js';
import '../session/protocol/zod-setup.js';
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
  /** Receiver: one summary line per run to the system log; false: none; a path: that socket (logger --socket). Default true. */
  syslog: z.optional(z.union([z.boolean(), z.string().check(z.regex(/^\//, 'false, true or the absolute path of a syslog socket'))])),
  /** `status --report` (the status timer): a host whose newest complete backup is older than this is stale (a duration: 36h, 2d). */
  maxAge: z.optional(nonEmpty()),
  /** Per-host settings: { "laptop": { "maxAge": "8d" } }. */
  hosts: z.optional(z.record(z.string().check(z.regex(NAME_PATTERN, 'host names match ^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$')), z.strictObject({ maxAge: z.optional(nonEmpty()) }))),
});

export type Config = z.infer<typeof configSchema>;
export type PluginEntry = z.infer<typeof pluginEntry>;

/** Where the config file was found: --config, a fixed place, or the working directory. */
export type ConfigPlace = 'option' | 'system' | 'user' | 'cwd';

export interface LoadedConfig {
  config: Config;
  /** The file it came from; null when none was found. */
  filepath: string | null;
  /** Where relative paths and npm names in it resolve from. */
  baseDir: string;
  /** How the file was found; null when none was (the defaults apply). */
  place?: ConfigPlace | null;
  /** Config files in later places, not read because an earlier one won. */
  shadowed?: string[];
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

/** The file names looked for in each fixed place, in this order (cosmiconfig's names for a global config). */
export const PLACE_FILES = ['config', 'config.json', 'config.yaml', 'config.yml', 'config.js', 'config.ts', 'config.cjs', 'config.mjs'];

/** The environment variable that moves the system place (tests, packagers); default /etc/ssh-r-sync. */
export const CONFIG_DIR_ENV = 'SSH_R_SYNC_CONFIG_DIR';

// The two fixed places: the system's (SSH_R_SYNC_CONFIG_DIR or /etc/ssh-r-sync) and the account's
// ($XDG_CONFIG_HOME/ssh-r-sync, else ~/.config/ssh-r-sync).
export function configDirs(env: NodeJS.ProcessEnv = process.env): { system: string; user: string } {
  const xdg = env.XDG_CONFIG_HOME;
  return {
    system: env[CONFIG_DIR_ENV] || '/etc/ssh-r-sync',
    user: join(xdg && isAbsolute(xdg) ? xdg : join(homedir(), '.config'), 'ssh-r-sync'),
  };
}

// Every config file present in the fixed places and the working directory, in the order they count.
export function configCandidates(cwd: string): { place: ConfigPlace; file: string }[] {
  const { system, user } = configDirs();
  const found: { place: ConfigPlace; file: string }[] = [];
  for (const [place, dir] of [['system', system], ['user', user]] as const) {
    const names = placeFiles(dir);
    for (const name of names) found.push({ place, file: join(dir, name) });
  }
  // package.json counts only when it has an "ssh-r-sync" key: cosmiconfig's search decides that.
  for (const name of SEARCH_PLACES) if (name !== 'package.json' && existsSync(join(cwd, name))) found.push({ place: 'cwd', file: join(cwd, name) });
  return found;
}

// The config files in one fixed place; a place the account cannot search is an error, not "none".
function placeFiles(dir: string): string[] {
  if (!statSync(dir, { throwIfNoEntry: false })?.isDirectory()) return [];
  try {
    accessSync(dir, constants.X_OK);
  } catch (error) {
    throw new SshRSyncError('ECONFIG', `cannot search the config directory ${dir}: ${oneLine(error)}: let this account read it (chmod a+rx ${dir}) or give --config FILE`, { cause: error });
  }
  return PLACE_FILES.filter((name) => statSync(join(dir, name), { throwIfNoEntry: false }) !== undefined);
}

// Finds and validates the config: `file` when given, else the first in the fixed places, else a search from `cwd`.
export async function loadConfig(options: { file?: string | undefined; cwd?: string } = {}): Promise<LoadedConfig> {
  const cwd = options.cwd ?? process.cwd();
  const candidates = options.file ? [] : configCandidates(cwd);
  const fixed = candidates.find((candidate) => candidate.place !== 'cwd');
  // Most receivers have no config file: then cosmiconfig (and its parsers) need not load at all.
  if (!options.file && !candidates.length && !existsSync(join(cwd, 'package.json'))) return { config: {}, filepath: null, baseDir: cwd, place: null, shadowed: [] };
  const { cosmiconfig } = await importModule<typeof import('cosmiconfig')>('cosmiconfig');
  const explorer = cosmiconfig('ssh-r-sync', {
    loaders: { '.ts': tsLoader, '.mts': tsLoader, '.cts': tsLoader },
    searchPlaces: SEARCH_PLACES,
  });
  let found: { config: unknown; filepath: string; isEmpty?: boolean } | null;
  const file = options.file ?? fixed?.file;
  try {
    found = file ? await explorer.load(file) : await explorer.search(cwd);
  } catch (error) {
    const where = file ?? `the config found from ${cwd}`;
    throw new SshRSyncError('ECONFIG', `cannot load ${where}: ${oneLine(error)}`, { cause: error });
  }
  const place: ConfigPlace | null = options.file ? 'option' : fixed ? fixed.place : found ? 'cwd' : null;
  const shadowed = candidates.map((candidate) => candidate.file).filter((path) => path !== found?.filepath);
  if (!found || found.isEmpty) return { config: {}, filepath: found?.filepath ?? null, baseDir: found ? dirname(found.filepath) : cwd, place, shadowed };
  const parsed = configSchema.safeParse(found.config);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const at = issue?.path.length ? issue.path.join('.') : '(top level)';
    throw new SshRSyncError('ECONFIG', `invalid config ${found.filepath}: ${at}: ${issue?.message ?? 'invalid'}`);
  }
  return { config: parsed.data, filepath: found.filepath, baseDir: dirname(found.filepath), place, shadowed };
}

// ---- the client's own config: plugins and scripts around its work ----

export const clientConfigSchema = z.strictObject({
  /** Client-side plugins: "pkg", ["pkg", {options}], "./file.ts", or plugin objects in a JS/TS config. */
  plugins: z.optional(z.array(pluginEntry)),
  /** Client-side scripts per point; relative paths from the config's folder. */
  hooks: z.optional(z.record(z.string(), z.union([nonEmpty(), z.array(nonEmpty())]))),
  /** Seconds; bounds every client-side hook, scripts and plugins. */
  hookTimeout: z.optional(z.number().check(z.nonnegative())),
});

export type ClientConfig = z.infer<typeof clientConfigSchema>;

/** The client's file names in each fixed place (`client.*`, beside a receiver's `config.*`). */
export const CLIENT_PLACE_FILES = ['client.json', 'client.yaml', 'client.yml', 'client.js', 'client.ts', 'client.cjs', 'client.mjs'];

// The client's config: `file` when given, else the first client.* in the system's, then the
// account's place; no search of the working directory (a client runs from cron and timers).
export async function loadClientConfig(options: { file?: string | undefined } = {}): Promise<{ config: ClientConfig; filepath: string | null; baseDir: string }> {
  const { system, user } = configDirs();
  const file = options.file ?? [system, user].flatMap((dir) => (statSync(dir, { throwIfNoEntry: false })?.isDirectory() ? CLIENT_PLACE_FILES.map((name) => join(dir, name)) : [])).find((path) => existsSync(path));
  if (!file) return { config: {}, filepath: null, baseDir: process.cwd() };
  const { cosmiconfig } = await importModule<typeof import('cosmiconfig')>('cosmiconfig');
  const explorer = cosmiconfig('ssh-r-sync', { loaders: { '.ts': tsLoader, '.mts': tsLoader, '.cts': tsLoader } });
  let found: { config: unknown; filepath: string; isEmpty?: boolean } | null;
  try {
    found = await explorer.load(file);
  } catch (error) {
    throw new SshRSyncError('ECONFIG', `cannot load ${file}: ${oneLine(error)}`, { cause: error });
  }
  if (!found || found.isEmpty) return { config: {}, filepath: file, baseDir: dirname(file) };
  const parsed = clientConfigSchema.safeParse(found.config);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const at = issue?.path.length ? issue.path.join('.') : '(top level)';
    throw new SshRSyncError('ECONFIG', `invalid client config ${found.filepath}: ${at}: ${issue?.message ?? 'invalid'} (a client config takes plugins, hooks and hookTimeout)`);
  }
  return { config: parsed.data, filepath: found.filepath, baseDir: dirname(found.filepath) };
}
