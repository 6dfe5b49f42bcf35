// Finds a plugin package by name with Node's own resolution algorithm (import-meta-resolve:
// "exports", conditions, scopes and symlinks as `import` treats them), tried from a short,
// fixed list of places, so that a name means the same in any config file and on any forced command.
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { moduleResolve } from 'import-meta-resolve';

const FIRST_PARTY_SCOPE = '@ssh-r-sync/';
const CONDITIONS = new Set(['node', 'import']);

// The package the running commands belong to: in an install the ssh-r-sync package, whose
// node_modules holds the first-party plugins, and whose parent is the global node_modules after
// `npm install -g`; in the repository, the workspace package they were built from.
export function installDir(): string {
  const start = dirname(fileURLToPath(import.meta.url));
  for (let dir = start; ; dir = dirname(dir)) {
    if (existsSync(join(dir, 'package.json'))) return dir;
    if (dirname(dir) === dir) return start;
  }
}

// The folders a name is looked up from, each with its parents' node_modules, in order: first-party
// names (@ssh-r-sync/…) from the commands' own install first, so they are always the plugins shipped
// with (and tested against) this core; any other name from `baseDir` first (the config's folder,
// or the working directory for --plugin).
export function pluginPlaces(spec: string, baseDir: string): string[] {
  const places = spec.startsWith(FIRST_PARTY_SCOPE) ? [installDir(), resolve(baseDir)] : [resolve(baseDir), installDir()];
  return [...new Set(places)];
}

// The entry file of package `spec` (a name, maybe with a subpath), from the first place that has it.
export function resolvePackage(spec: string, baseDir: string): string {
  const places = pluginPlaces(spec, baseDir);
  for (const place of places) {
    try {
      return fileURLToPath(moduleResolve(spec, pathToFileURL(join(place, 'package.json')), CONDITIONS));
    } catch (error) {
      // Only "no such package here" moves on; a package that is there but broken (a missing
      // export, a main file that does not exist: those errors carry the `url` they point to)
      // must not be passed over for another copy further on.
      if (!isPackageMissing(error)) throw error;
    }
  }
  const name = packageName(spec);
  throw new Error(`package "${name}" is not installed in node_modules of ${places.join(', nor of ')} (or their parents): npm install ${name} in ${resolve(baseDir)}, or npm install -g ${name}`);
}

function isPackageMissing(error: unknown): boolean {
  const { code, url } = error as { code?: unknown; url?: unknown };
  return code === 'ERR_MODULE_NOT_FOUND' && url === undefined;
}

function packageName(spec: string): string {
  return spec.split('/').slice(0, spec.startsWith('@') ? 2 : 1).join('/');
}
