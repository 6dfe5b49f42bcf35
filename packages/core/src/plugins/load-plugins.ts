// Turns plugin specs into plugin objects: npm names resolve as resolve-plugin.ts says (the
// config's folder, the commands' own install), paths load as JS or (through jiti) TypeScript.
import { existsSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { importTypeScript, type PluginEntry } from './config.js';
import { SshRSyncError, isSshRSyncError, oneLine } from '../errors.js';
import { resolveScriptPath } from '../exec/exec-plugin.js';
import { assertPlugin, type Plugin } from './plugin.js';
import { resolvePackage } from './resolve-plugin.js';
import { importModule } from '@ssh-r-sync/core/dynamic-import';

// The first-party plugins the commands ship inside their bundle, by package name: loading one is
// evaluating code already there, not importing a package and core's unbundled modules from
// node_modules (80-150 ms on every backup). Global: a plugin brings its own copy of core.
const SHIPPED = Symbol.for('ssh-r-sync.shipped-plugins');
const shipped = ((globalThis as Record<symbol, unknown>)[SHIPPED] ??= new Map<string, () => Promise<unknown>>()) as Map<string, () => Promise<unknown>>;

// Makes package `name` load from `load` (the bundled copy of that very package) instead of node_modules.
export function registerShippedPlugin(name: string, load: () => Promise<unknown>): void {
  shipped.set(name, load);
}

// Loads one plugin entry, resolving names and paths from `baseDir`.
export async function loadPlugin(entry: PluginEntry, baseDir: string): Promise<Plugin> {
  if (typeof entry === 'object' && !Array.isArray(entry)) {
    assertPlugin(entry, 'a plugin in the config');
    return entry;
  }
  const [spec, options] = typeof entry === 'string' ? [entry, undefined] : entry;
  const where = `plugin "${spec}"`;
  try {
    const bundled = isPath(spec) ? undefined : shipped.get(spec);
    const module = (bundled ? await bundled() : await importFile(isPath(spec) ? resolveScriptPath(spec.startsWith('~') || spec.includes('/') ? spec : `./${spec}`, baseDir) : resolvePackage(spec, baseDir))) as { default?: unknown };
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
