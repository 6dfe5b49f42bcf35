// @ssh-r-sync/plugin-link-dest: every run writes a new snapshot ROOT/NAME/<UTC time>, hard-linked
// with rsync --link-dest against the newest complete snapshot, so unchanged files cost no space.
// An interrupted run stays marked in progress and feeds the next run as an extra --link-dest;
// once a run completes, `latest` points at it and the interrupted ones are removed.
import { readdir } from 'node:fs/promises';
import {
  beginSnapshot,
  finishSnapshot,
  listSnapshots,
  pointLatest,
  removeSnapshot,
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
/** Runs before other done taps: done scripts and plugin-rotate see the snapshot complete and `latest` on it. */
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
        if (outcome.status !== 'success') {
          // Nothing transferred (skipped or failed before rsync wrote): nothing to resume from.
          if (await isEmpty(state.paths.tree)) await removeSnapshot(state.paths);
          else logger.debug(`snapshot ${state.paths.id} stays incomplete; the next run resumes from it`);
          return;
        }
        await finishSnapshot(ctx, outcome);
        await pointLatest(state.hostDir, state.paths.id);
        for (const old of state.superseded) {
          // The backup is complete whatever happens here: a leftover is retried on the next run.
          await removeSnapshot(old.paths).then(
            () => logger.debug(`removed interrupted snapshot ${old.id}`),
            (error: Error) => logger.warn(`could not remove interrupted snapshot ${old.id}: ${error.message}`),
          );
        }
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
