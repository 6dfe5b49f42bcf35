#!/usr/bin/env node
// Bundles each command into one CommonJS file after `tsc -b`, then makes V8's code cache for it
// (packages/cli/bin/load-bundle.js loads both). Measured: a command's start-up drops from ~0.34 s
// (hundreds of small ESM files) to ~0.17 s bundled, and by another ~30 ms as CommonJS with the
// code cache — and every backup starts two of them. Plugins loaded at run time keep importing
// @ssh-r-sync/core from node_modules; state that must be shared with them (the tap scope) is kept
// under a global symbol.
import { build } from 'esbuild';
import { spawnSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const out = `${root}packages/cli/dist/bundle`;
const names = ['client', 'recv', 'admin'];

rmSync(out, { recursive: true, force: true }); // no stale bundle or cache survives a rebuild
await build({
  entryPoints: Object.fromEntries(names.map((name) => [name, `${root}packages/cli/dist/${name}.js`])),
  outdir: out,
  outExtension: { '.js': '.cjs' },
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'cjs',
  // The sources are ESM: their import.meta.url becomes the bundle's own file URL.
  banner: { js: "const __srsImportMetaUrl = require('node:url').pathToFileURL(__filename).href;" },
  define: { 'import.meta.url': '__srsImportMetaUrl' },
  // Loaded on demand (a config file, a .ts plugin, a hook script): left to node_modules, so they
  // cost nothing on runs that do not need them. core imports them through its dynamic-import.cjs,
  // a real file (import() inside code compiled with a code cache has nowhere to resolve from).
  // @napi-rs/xattr (plugin-manifest's, which the admin tools read manifests with) is a native addon.
  external: ['jiti', 'cosmiconfig', 'execa', 'typescript', '@ssh-r-sync/core/dynamic-import', '@napi-rs/xattr'],
  logLevel: 'warning',
  legalComments: 'none',
});

const loader = `${root}packages/cli/bin/load-bundle.js`;
for (const name of names) {
  const primed = spawnSync(process.execPath, ['-e', `require(${JSON.stringify(loader)}).prime(${JSON.stringify(name)})`], { stdio: 'inherit' });
  if (primed.status !== 0) {
    console.error(`bundle: could not make the code cache of ${name} (the command still works, only slower to start)`);
  }
}
