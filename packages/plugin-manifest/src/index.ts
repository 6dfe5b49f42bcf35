// @ssh-r-sync/plugin-manifest: after a successful rsync, writes the list of every file of the
// backup as the client has it (path, type, mode, owner, size, mtime, link target, devices,
// ACL/xattr flags; in fake-super mode from rsync's %stat xattr) beside it, before the core's commit
// point (which writes the done mark, recording the manifest's summary). Works on snapshots
// (plugin-link-dest) and on a plain mirror. Unchanged files reuse the previous complete backup's
// hashes: only new data is read.
import { mkdir, rm } from 'node:fs/promises';
import { basename } from 'node:path';
import { contributeToDoneMark, currentSnapshot, currentTap, oneLine, type PipelineHooks, type Plugin, type RunContext, type RsyncCommand } from '@ssh-r-sync/core';
import { keepMirrorManifest, previousSnapshotManifest } from './previous-backup.js';
import type { CommittedManifest } from './previous-hashes.js';
import { writeManifest } from './write-manifest.js';

export { writeManifest, type ManifestSummary, type WriteManifestOptions } from './write-manifest.js';
export { HEADER, COLUMNS, COLUMNS_V1, COLUMNS_V2, FORMAT_VERSION, type FormatVersion, entryLine, seconds, typeOfMode, type Entry, type EntryType } from './entry.js';
export { readManifest, parseEntryLine, parseHeader, type Manifest } from './read-manifest.js';
export { escapeName, unescapeName } from './escape.js';
export { hashFile } from './hash-file.js';
export { PreviousHashes, recordedHash, walkOrder, matchesDoneMark, type CommittedManifest, type HashCounts } from './previous-hashes.js';
export { previousSnapshotManifest, keepMirrorManifest, MIRROR_PREVIOUS } from './previous-backup.js';

export const PLUGIN_NAME = 'manifest';

/** Runs after every other rsync.post tap: the exit code it sees is final (e.g. 24 mapped to 0). */
const AFTER_MAPPINGS = 100;
/** After plugin-link-dest's rsync.pre tap (stage 100), which decides whether this run writes a snapshot. */
const AFTER_LINK_DEST = 200;
/** ctx.data key: the committed manifest whose hashes this run may reuse. */
const PREVIOUS = `${PLUGIN_NAME}:previous`;

// The plugin factory. It takes no options yet (an empty object is accepted).
export default function manifest(options: Record<string, unknown> = {}): Plugin {
  const unknown = Object.keys(options ?? {});
  if (unknown.length) throw new TypeError(`${PLUGIN_NAME} takes no options, got ${unknown.map((key) => JSON.stringify(key)).join(', ')}`);
  return {
    name: PLUGIN_NAME,
    apply(hooks: PipelineHooks) {
      // Before rsync: which committed manifest lends its hashes (a mirror's is kept aside now,
      // before the core removes it). Finding none only means every file is read.
      hooks.rsyncPre.tapPromise({ name: PLUGIN_NAME, stage: AFTER_LINK_DEST }, async (command, ctx) => {
        ctx.data.set(PREVIOUS, await findPrevious(command, ctx));
        return undefined;
      });
      hooks.rsyncPost.tapPromise({ name: PLUGIN_NAME, stage: AFTER_MAPPINGS }, async (result, ctx) => {
        const previous = ctx.data.get(PREVIOUS) as CommittedManifest | null | undefined;
        const logger = ctx.logger.scope(PLUGIN_NAME);
        try {
          if (result.exitCode !== 0) return result;
          const paths = currentSnapshot(ctx);
          await mkdir(paths.meta, { recursive: true, mode: 0o700 });
          const summary = await writeManifest(paths.tree, paths.manifest, {
            signal: currentTap()?.signal ?? ctx.signal,
            mode: ctx.mode,
            previous: previous ?? null,
            // A snapshot's tree is created empty by this run (core's beginSnapshot); a mirror's is not.
            ...(paths.id ? { newSnapshotSince: ctx.startedAt } : {}),
            onReuseProblem: (why) => logger.warn(`${why}: hashing every file`),
          });
          // The done mark's shape stays as it was: how many entries were carried over is logged only.
          const { carried, ...recorded } = summary;
          contributeToDoneMark(ctx, PLUGIN_NAME, { file: basename(paths.manifest), ...recorded });
          const { read, readBytes, reused } = summary.hashes;
          logger.debug(`${carried} entries taken over unchanged from the previous manifest`);
          const from = previous ? (previous.id ? ` from snapshot ${previous.id}` : " from the mirror's last manifest") : '';
          logger.debug(`${summary.entries} entries listed in ${paths.manifest}; ${read} files hashed (${readBytes} bytes), ${reused} hashes reused${from}`);
          return result;
        } finally {
          // A mirror's kept manifest is of no use once this run is over, whatever its end.
          if (previous && !previous.id) await rm(previous.file, { force: true });
        }
      });
    },
  };
}
// The committed manifest this run may take hashes from, or null. Problems finding it are logged,
// never fatal: without it every file is read.
async function findPrevious(command: RsyncCommand, ctx: RunContext): Promise<CommittedManifest | null> {
  const current = currentSnapshot(ctx);
  try {
    return current.id ? await previousSnapshotManifest(ctx.dir, current) : await keepMirrorManifest(current, command.args);
  } catch (error) {
    ctx.signal.throwIfAborted();
    ctx.logger.scope(PLUGIN_NAME).warn(`cannot find the previous backup's manifest (${oneLine(error)}): hashing every file`);
    return null;
  }
}

export { streamManifest, MAX_LINE_BYTES, type StreamedEntry } from './stream-manifest.js';
export { describeEntry, describeStats, type Described } from './describe-entry.js';
export { mayCarry, type CarryRule } from './carry-entry.js';
export { compareManifestPaths } from './order.js';
