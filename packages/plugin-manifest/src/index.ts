// @ssh-r-sync/plugin-manifest: after a successful rsync, writes the list of every file of the
// backup (path, type, mode, owner, size, mtime, link target) beside it, and the done mark that
// makes the backup complete. Works on snapshots (plugin-link-dest) and on a plain mirror.
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { basename } from 'node:path';
import { contributeToDoneMark, currentSnapshot, currentTap, finishSnapshot, type PipelineHooks, type Plugin } from '@ssh-r-sync/core';
import { writeManifest } from './write-manifest.js';

export { writeManifest, type ManifestSummary, type WriteManifestOptions } from './write-manifest.js';
export { HEADER, COLUMNS, FORMAT_VERSION, entryLine, seconds, type EntryType } from './entry.js';
export { escapeName, unescapeName } from './escape.js';

export const PLUGIN_NAME = 'manifest';

/** Runs before any tap that replaces the rsync runner, so a mirror is marked before it changes. */
const BEFORE_RUNNERS = -100;
/** Runs after every other rsync.post tap: the exit code it sees is final (e.g. 24 mapped to 0). */
const AFTER_MAPPINGS = 100;
/** Runs before other done taps: done scripts and plugin-rotate see a complete backup. */
const FIRST_AT_DONE = -100;

// The plugin factory. It takes no options yet (an empty object is accepted).
export default function manifest(options: Record<string, unknown> = {}): Plugin {
  const unknown = Object.keys(options ?? {});
  if (unknown.length) throw new TypeError(`${PLUGIN_NAME} takes no options, got ${unknown.map((key) => JSON.stringify(key)).join(', ')}`);
  return {
    name: PLUGIN_NAME,
    apply(hooks: PipelineHooks) {
      // A mirror is rewritten in place: its old done mark and manifest stop being true now.
      hooks.rsync.tapPromise({ name: PLUGIN_NAME, stage: BEFORE_RUNNERS }, async (_command, ctx) => {
        const paths = currentSnapshot(ctx);
        if (paths.id !== '') return undefined;
        await mkdir(paths.meta, { recursive: true, mode: 0o700 });
        await rm(paths.doneMark, { force: true });
        await rm(paths.manifest, { force: true });
        await writeFile(paths.inProgress, `${JSON.stringify({ pid: process.pid, startedAt: new Date().toISOString() })}\n`, { mode: 0o600 });
        return undefined;
      });

      hooks.rsyncPost.tapPromise({ name: PLUGIN_NAME, stage: AFTER_MAPPINGS }, async (result, ctx) => {
        if (result.exitCode !== 0) return result;
        const paths = currentSnapshot(ctx);
        await mkdir(paths.meta, { recursive: true, mode: 0o700 });
        const summary = await writeManifest(paths.tree, paths.manifest, { signal: currentTap()?.signal ?? ctx.signal });
        contributeToDoneMark(ctx, PLUGIN_NAME, { file: basename(paths.manifest), ...summary });
        ctx.logger.scope(PLUGIN_NAME).debug(`${summary.entries} entries listed in ${paths.manifest}`);
        return result;
      });

      // The done mark, if no other snapshot plugin wrote it already (only on success).
      hooks.done.tapPromise({ name: PLUGIN_NAME, stage: FIRST_AT_DONE }, async (outcome, ctx) => {
        await finishSnapshot(ctx, outcome);
      });
    },
  };
}
