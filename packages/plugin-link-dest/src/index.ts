// @ssh-r-sync/plugin-link-dest: every run writes a new snapshot ROOT/NAME/<UTC time>, hard-linked
// with rsync --link-dest against the newest complete snapshot, so unchanged files cost no space.
// The plugin is its store (store.ts); it taps no hook: the pipeline prepares, commits and
// abandons the run's snapshot through the store.
import type { Plugin } from '@ssh-r-sync/core';
import { MAX_BASIS_DIRS } from './basis.js';
import { linkDestStore } from './store.js';

export { MAX_BASIS_DIRS, chooseBasis, countBasisDirs, type Basis } from './basis.js';
export { linkDestStore, MODULE } from './store.js';

export const PLUGIN_NAME = 'link-dest';

export interface LinkDestOptions {
  /** How many interrupted snapshots (newest first) go in as extra --link-dest: 0 to 19, default 19. */
  maxResume?: number;
}

// The plugin factory; options as in the config's `['@ssh-r-sync/plugin-link-dest', { … }]`.
export default function linkDest(options: LinkDestOptions = {}): Plugin {
  const maxResume = checkOptions(options ?? {});
  return { name: PLUGIN_NAME, apply() {}, store: linkDestStore(maxResume) };
}

// Validates the options; returns maxResume.
function checkOptions(options: LinkDestOptions): number {
  for (const key of Object.keys(options)) {
    if (key !== 'maxResume') throw new TypeError(`${PLUGIN_NAME}: unknown option ${JSON.stringify(key)} (known: maxResume)`);
  }
  const { maxResume = MAX_BASIS_DIRS - 1 } = options;
  if (!Number.isInteger(maxResume) || maxResume < 0 || maxResume > MAX_BASIS_DIRS - 1) {
    throw new TypeError(`${PLUGIN_NAME}: maxResume must be an integer from 0 to ${MAX_BASIS_DIRS - 1}, got ${JSON.stringify(maxResume)}`);
  }
  return maxResume;
}
