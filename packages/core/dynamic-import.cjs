// import() from a real module file. The commands run from a CommonJS bundle compiled with V8's
// code cache (packages/cli/bin/load-bundle.js), and import() inside such code has no module to
// resolve from; so core's on-demand imports (execa, cosmiconfig, jiti, plugin files) go through
// here, resolved from @ssh-r-sync/core itself, where its dependencies are installed.
'use strict';
exports.importModule = (specifier) => import(specifier);
