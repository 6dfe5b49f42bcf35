// Loads one of the commands' bundles (dist/bundle/NAME.cjs, made by scripts/bundle.mjs) with V8's
// code cache when there is a valid one: every backup starts a client and a receiver, and the cache
// spares each of them compiling ~340 KB of JavaScript (≈ 15–20 ms here; see bench/README.md).
//
// NAME.cjs.cache holds the SHA-256 of the bundle it was made from, a newline, then V8's cached
// data. It is used only when that hash matches the bundle read now (V8's own check is weaker)
// and V8 accepts it; otherwise the bundle is compiled as usual. It is written only by
// `prime()`, at build time, next to the bundle: never at run time.
'use strict';
const { createHash } = require('node:crypto');
const { readFileSync, renameSync, writeFileSync } = require('node:fs');
const { createRequire, wrap } = require('node:module');
const { join } = require('node:path');
const vm = require('node:vm');

const dir = join(__dirname, '..', 'dist', 'bundle');

function compile(name, withCache) {
  const filename = join(dir, `${name}.cjs`);
  const source = readFileSync(filename, 'utf8');
  const hash = createHash('sha256').update(source).digest('hex');
  let cachedData;
  let state = 'not asked for';
  if (withCache) {
    try {
      const cache = readFileSync(`${filename}.cache`);
      if (cache.subarray(0, 64).toString('latin1') === hash && cache[64] === 0x0a) cachedData = cache.subarray(65);
      else state = 'made for another build of the bundle: ignored';
    } catch {
      state = 'missing'; // compile as usual
    }
  }
  // No import() may run inside it (it would have no module to resolve from): core routes its
  // on-demand imports through @ssh-r-sync/core/dynamic-import, a real file.
  const script = new vm.Script(wrap(source), { filename, cachedData });
  if (cachedData) state = script.cachedDataRejected ? 'rejected by V8 (another node version?): compiled as usual' : 'used';
  if (withCache && process.env.SSH_R_SYNC_DEBUG) process.stderr.write(`ssh-r-sync: code cache of ${name}.cjs: ${state}\n`);
  const module = { exports: {}, filename, id: filename, loaded: false };
  script.runInThisContext().call(module.exports, module.exports, createRequire(filename), module, filename, dir);
  return { exports: module.exports, script, hash, filename };
}

// Runs the command NAME (client, recv or admin).
exports.run = function run(name) {
  compile(name, true).exports.main();
};

// Writes NAME.cjs.cache from a load of the bundle (its top level run, main() not called).
exports.prime = function prime(name) {
  const { script, hash, filename } = compile(name, false);
  const tmp = `${filename}.cache.${process.pid}`;
  writeFileSync(tmp, Buffer.concat([Buffer.from(`${hash}\n`, 'latin1'), script.createCachedData()]));
  renameSync(tmp, `${filename}.cache`);
};
