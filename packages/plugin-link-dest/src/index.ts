// @ssh-r-sync/plugin-link-dest: every run writes a new snapshot ROOT/NAME/<UTC time>, hard-linked
// with rsync --link-dest against the newest complete snapshot, so unchanged files cost no space.
// An interrupted run stays marked in progress and feeds the next run as an extra --link-dest;
// once a run completes, `latest` points at it and the interrupted ones are removed.
import { readdir } from 'node:fs/promises';
import {
  beginSnapshot,
  claimHostKind,
  listSnapshots,
  removeSnapshot,
  scheduleAfterSession,
  setCurrentSnapshot,
  type PipelineHooks,
  type Plugin,
  type SnapshotInfo,
  type SnapshotPaths,
} from '@ssh-r-sync/core';
import { MAX_BASIS_DIRS, chooseBasis, countBasisDirs } from './basis.js';

export { MAX_BASIS_DIRS, chooseBasis, countBasisDirs, type Basis } from './basis.js';

export const PLUGIN_NAME = 'link-dest';

export interface LinkDestOptions {
  /** How many interrupted snapshots (newest first) go in as extra --link-dest: 0 to 19, default 19. */
  maxResume?: number;
}

/** Runs after every other rsync.pre tap: nothing is created for a run that a tap skips, and a
 *  tap that replaces rsync's options (a leading \0) cannot drop the --link-dest options. */
const AFTER_OTHER_TAPS = 100;
/** Removing superseded interrupted snapshots may take long on big trees: after the session, bounded. */
const CLEANUP_TIMEOUT_MS = 60 * 60 * 1000;
/** Before other done taps, so that its cleanup is queued before plugin-rotate's pruning plans
 *  the host (rotate then sees the superseded snapshots gone, not as its own to delete). */
const FIRST_AT_DONE = -100;

interface RunState {
  hostDir: string;
  paths: SnapshotPaths;
  /** Interrupted snapshots that this run makes obsolete once it is complete. */
  superseded: SnapshotInfo[];
}

// The plugin factory; options as in the config's `['@ssh-r-sync/plugin-link-dest', { … }]`.
export default function linkDest(options: LinkDestOptions = {}): Plugin {
  const maxResume = checkOptions(options ?? {});
  return {
    name: PLUGIN_NAME,
    apply(hooks: PipelineHooks) {
      hooks.rsyncPre.tapPromise({ name: PLUGIN_NAME, stage: AFTER_OTHER_TAPS }, async (command, ctx) => {
        const hostDir = ctx.dir;
        // Before anything in ROOT/NAME is read as a snapshot: a mirror's files are the client's.
        await claimHostKind(ctx.root, ctx.name, hostDir, 'snapshots');
        const basis = chooseBasis(await listSnapshots(hostDir), maxResume);
        const paths = await beginSnapshot(hostDir, new Date());
        const room = Math.max(0, MAX_BASIS_DIRS - countBasisDirs(command.args));
        const sources = [...(basis.complete ? [basis.complete] : []), ...basis.resumed].slice(0, room);
        command.args.push(...sources.map((source) => `--link-dest=${source.paths.tree}`));
        command.destination = `${paths.tree}/`;
        setCurrentSnapshot(ctx, paths);
        ctx.data.set(PLUGIN_NAME, { hostDir, paths, superseded: basis.interrupted } satisfies RunState);
        const against = sources.length ? `linked against ${sources.map((source) => source.id + (source.complete ? '' : ' (interrupted)')).join(', ')}` : 'a full copy';
        ctx.logger.scope(PLUGIN_NAME).debug(`snapshot ${paths.id}: ${against}`);
        return undefined;
      });

      hooks.done.tapPromise({ name: PLUGIN_NAME, stage: FIRST_AT_DONE }, async (outcome, ctx) => {
        const state = ctx.data.get(PLUGIN_NAME) as RunState | undefined;
        if (!state) return;
        const logger = ctx.logger.scope(PLUGIN_NAME);
        // By the commit, not the status: a committed run fails afterwards when its result cannot
        // be sent (the client vanished), and its snapshot (maybe of an empty directory) is complete.
        if (!outcome.committed) {
          // Nothing transferred (skipped or failed before rsync wrote): nothing to resume from.
          if (await isEmpty(state.paths.tree)) await removeSnapshot(state.paths);
          else logger.debug(`snapshot ${state.paths.id} stays incomplete; the next run resumes from it`);
          return;
        }
        // The core committed the snapshot (done mark, latest) before the client heard of it. The
        // interrupted runs it supersedes go after the session: a leftover is retried next run.
        if (state.superseded.length === 0) return;
        scheduleAfterSession(ctx, {
          name: PLUGIN_NAME,
          timeoutMs: CLEANUP_TIMEOUT_MS,
          async run(signal) {
            const failed: string[] = [];
            for (const old of state.superseded) {
              signal.throwIfAborted();
              await removeSnapshot(old.paths, { signal }).then(
                () => logger.debug(`removed interrupted snapshot ${old.id}`),
                (error: Error) => failed.push(`${old.id} (${error.message})`),
              );
            }
            if (failed.length) throw new Error(`could not remove interrupted snapshot${failed.length === 1 ? '' : 's'} ${failed.join('; ')}; the next run retries`);
          },
        });
      });
    },
  };
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

async function isEmpty(dir: string): Promise<boolean> {
  const entries = await readdir(dir).catch(() => []);
  return entries.length === 0;
}
