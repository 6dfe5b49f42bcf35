// @ssh-r-sync/plugin-manifest: after a successful rsync, writes the list of every file of the
// backup as the client has it (path, type, mode, owner, size, mtime, link target, devices,
// ACL/xattr flags; in fake-super mode from rsync's %stat xattr) beside it, before the core's commit
// point (which writes the done mark, recording the manifest's summary). Works on snapshots
// (plugin-link-dest) and on a plain mirror.
import { mkdir } from 'node:fs/promises';
import { basename } from 'node:path';
import { contributeToDoneMark, currentSnapshot, currentTap, type PipelineHooks, type Plugin } from '@ssh-r-sync/core';
import { writeManifest } from './write-manifest.js';

export { writeManifest, type ManifestSummary, type WriteManifestOptions } from './write-manifest.js';
export { HEADER, COLUMNS, COLUMNS_V1, COLUMNS_V2, FORMAT_VERSION, type FormatVersion, entryLine, seconds, typeOfMode, type Entry, type EntryType } from './entry.js';
export { readManifest, parseEntryLine, parseHeader, type Manifest } from './read-manifest.js';
export { escapeName, unescapeName } from './escape.js';
export { hashFile } from './hash-file.js';

export const PLUGIN_NAME = 'manifest';

/** Runs after every other rsync.post tap: the exit code it sees is final (e.g. 24 mapped to 0). */
const AFTER_MAPPINGS = 100;

// The plugin factory. It takes no options yet (an empty object is accepted).
export default function manifest(options: Record<string, unknown> = {}): Plugin {
  const unknown = Object.keys(options ?? {});
  if (unknown.length) throw new TypeError(`${PLUGIN_NAME} takes no options, got ${unknown.map((key) => JSON.stringify(key)).join(', ')}`);
  return {
    name: PLUGIN_NAME,
    apply(hooks: PipelineHooks) {
      hooks.rsyncPost.tapPromise({ name: PLUGIN_NAME, stage: AFTER_MAPPINGS }, async (result, ctx) => {
        if (result.exitCode !== 0) return result;
        const paths = currentSnapshot(ctx);
        await mkdir(paths.meta, { recursive: true, mode: 0o700 });
        const summary = await writeManifest(paths.tree, paths.manifest, { signal: currentTap()?.signal ?? ctx.signal, mode: ctx.mode });
        contributeToDoneMark(ctx, PLUGIN_NAME, { file: basename(paths.manifest), ...summary });
        ctx.logger.scope(PLUGIN_NAME).debug(`${summary.entries} entries listed in ${paths.manifest}`);
        return result;
      });
    },
  };
}
export { streamManifest, MAX_LINE_BYTES, type StreamedEntry } from './stream-manifest.js';
export { describeEntry, type Described } from './describe-entry.js';
export { compareManifestPaths } from './order.js';
