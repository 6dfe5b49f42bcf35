// @ssh-r-sync/plugin-manifest: after a successful rsync, writes the list of every file of the
// backup as the client has it (path, type, mode, owner, size, mtime, link target, devices,
// ACL/xattr flags; in fake-super mode from rsync's %stat xattr) beside it, before the core's commit
// point (which writes the done mark, recording the manifest's summary). Works on snapshots
// (plugin-link-dest) and on a plain mirror. Unchanged files reuse the previous complete backup's
// hashes: only new data is read.
import { mkdir } from 'node:fs/promises';
import { basename } from 'node:path';
import { contributeToDoneMark, currentTap, oneLine, preparedSnapshot, type PipelineHooks, type Plugin, type PreparedSnapshot, type RunContext } from '@ssh-r-sync/core';
import { committedManifest } from './previous-backup.js';
import type { CommittedManifest } from './previous-hashes.js';
import { writeManifest } from './write-manifest.js';

export { writeManifest, type ManifestSummary, type WriteManifestOptions } from './write-manifest.js';
export { HEADER, COLUMNS, COLUMNS_V1, COLUMNS_V2, FORMAT_VERSION, type FormatVersion, entryLine, seconds, typeOfMode, type Entry, type EntryType } from './entry.js';
export { readManifest, parseEntryLine, parseHeader, type Manifest } from './read-manifest.js';
export { escapeName, unescapeName } from './escape.js';
export { hashFile } from './hash-file.js';
export { PreviousHashes, recordedHash, walkOrder, matchesDoneMark, type CommittedManifest, type HashCounts } from './previous-hashes.js';
export { committedManifest } from './previous-backup.js';

export const PLUGIN_NAME = 'manifest';

// The plugin factory. It takes no options yet (an empty object is accepted).
export default function manifest(options: Record<string, unknown> = {}): Plugin {
  const unknown = Object.keys(options ?? {});
  if (unknown.length) throw new TypeError(`${PLUGIN_NAME} takes no options, got ${unknown.map((key) => JSON.stringify(key)).join(', ')}`);
  return {
    name: PLUGIN_NAME,
    apply(hooks: PipelineHooks) {
      // Once rsync succeeded and every rsync.post tap gave its final exit code (e.g. 24 mapped to
      // 0), before the commit: the manifest is what the commit vouches for.
      hooks.beforeCommit.tapPromise(PLUGIN_NAME, async (_result, ctx) => {
        const snapshot = preparedSnapshot(ctx);
        if (!snapshot) throw new Error('no snapshot was prepared for this run');
        const logger = ctx.logger.scope(PLUGIN_NAME);
        const previous = await findPrevious(snapshot, ctx);
        const { paths } = snapshot;
        await mkdir(paths.meta, { recursive: true, mode: 0o700 });
        const summary = await writeManifest(snapshot.workTree, paths.manifest, {
          signal: currentTap()?.signal ?? ctx.signal,
          mode: ctx.mode,
          previous,
          inPlace: snapshot.inPlace,
          ...(snapshot.createdEmptyAt ? { newSnapshotSince: snapshot.createdEmptyAt } : {}),
          onReuseProblem: (why) => logger.warn(`${why}: hashing every file`),
        });
        // The done mark's shape stays as it was: how many entries were carried over is logged only.
        const { carried, ...recorded } = summary;
        contributeToDoneMark(ctx, PLUGIN_NAME, { file: basename(paths.manifest), ...recorded });
        const { read, readBytes, reused } = summary.hashes;
        logger.debug(`${carried} entries taken over unchanged from the previous manifest`);
        const from = previous ? (previous.id ? ` from snapshot ${previous.id}` : " from the mirror's last manifest") : '';
        logger.debug(`${summary.entries} entries listed in ${paths.manifest}; ${read} files hashed (${readBytes} bytes), ${reused} hashes reused${from}`);
      });
    },
  };
}

// The committed manifest this run may take hashes from, or null. Problems finding it are logged,
// never fatal: without it every file is read.
async function findPrevious(snapshot: PreparedSnapshot, ctx: RunContext): Promise<CommittedManifest | null> {
  try {
    return snapshot.previous ? committedManifest(snapshot.previous.paths, snapshot.previous.done) : null;
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
