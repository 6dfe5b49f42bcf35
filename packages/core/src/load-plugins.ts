// Turns plugin specs into plugin objects: npm names resolve from the config file's folder,
// paths load as JS or (through jiti) TypeScript.
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { importTypeScript, type PluginEntry } from './config.js';
import { SshRSyncError, isSshRSyncError, oneLine } from './errors.js';
import { resolveScriptPath } from './exec-plugin.js';
import { assertPlugin, type Plugin } from './plugin.js';
import { importModule } from '@ssh-r-sync/core/dynamic-import';

// Loads one plugin entry, resolving names and paths from `baseDir`.
export async function loadPlugin(entry: PluginEntry, baseDir: string): Promise<Plugin> {
  if (typeof entry === 'object' && !Array.isArray(entry)) {
    assertPlugin(entry, 'a plugin in the config');
    return entry;
  }
  const [spec, options] = typeof entry === 'string' ? [entry, undefined] : entry;
  const where = `plugin "${spec}"`;
  try {
    const file = isPath(spec) ? resolveScriptPath(spec.startsWith('~') || spec.includes('/') ? spec : `./${spec}`, baseDir) : resolvePackage(spec, baseDir);
    const module = (await importFile(file)) as { default?: unknown };
    const exported = module && typeof module === 'object' && 'default' in module ? module.default : module;
    const plugin = typeof exported === 'function' ? await (exported as (o?: unknown) => unknown)(options ?? {}) : exported;
    if (options !== undefined && typeof exported !== 'function') throw new Error('it takes no options (its default export is not a function)');
    assertPlugin(plugin, `its default export`);
    return plugin;
  } catch (error) {
    // By mark, not instanceof: a plugin may throw with its own copy of core.
    if (isSshRSyncError(error)) throw error;
    throw new SshRSyncError('ECONFIG', `cannot load ${where} (from ${baseDir}): ${oneLine(error)}`, { cause: error });
  }
}

function isPath(spec: string): boolean {
  return spec.startsWith('.') || spec.startsWith('/') || spec.startsWith('~') || /\.(c|m)?(j|t)s$/.test(spec);
}

async function importFile(file: string): Promise<unknown> {
  if (!existsSync(file)) throw new Error(`${file} does not exist`);
  if (/\.(c|m)?ts$/.test(file)) return importTypeScript(file);
  return importModule(pathToFileURL(file).href);
}

// Finds an npm package's entry file from `baseDir` upwards, as Node's ESM resolver would.
export function resolvePackage(spec: string, baseDir: string): string {
  const parts = spec.split('/');
  const nameLength = spec.startsWith('@') ? 2 : 1;
  const name = parts.slice(0, nameLength).join('/');
  const subpath = parts.length > nameLength ? `./${parts.slice(nameLength).join('/')}` : '.';
  for (let dir = resolve(baseDir); ; dir = dirname(dir)) {
    const packageDir = join(dir, 'node_modules', name);
    const manifest = join(packageDir, 'package.json');
    if (existsSync(manifest)) {
      const pkg = JSON.parse(readFileSync(manifest, 'utf8')) as { exports?: unknown; main?: string };
      const target = pkg.exports === undefined ? (subpath === '.' ? pkg.main ?? 'index.js' : subpath) : exportTarget(pkg.exports, subpath);
      if (!target) throw new Error(`package ${name} does not export ${subpath}`);
      return join(packageDir, target);
    }
    if (dirname(dir) === dir) break;
  }
  throw new Error(`package "${name}" is not installed (npm install ${name})`);
}

function exportTarget(exports: unknown, subpath: string): string | undefined {
  const entry = typeof exports === 'string' || Array.isArray(exports) || !hasSubpaths(exports) ? (subpath === '.' ? exports : undefined) : (exports as Record<string, unknown>)[subpath];
  return pickCondition(entry);
}

function hasSubpaths(exports: unknown): boolean {
  return typeof exports === 'object' && exports !== null && Object.keys(exports).some((key) => key.startsWith('.'));
}

function pickCondition(entry: unknown): string | undefined {
  if (typeof entry === 'string') return entry;
  if (Array.isArray(entry)) return entry.map(pickCondition).find(Boolean);
  if (typeof entry !== 'object' || entry === null) return undefined;
  const conditions = entry as Record<string, unknown>;
  for (const key of ['import', 'node', 'default', 'require']) {
    const found = pickCondition(conditions[key]);
    if (found) return found;
  }
  return undefined;
}
