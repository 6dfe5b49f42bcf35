// @ssh-r-sync/plugin-prometheus: after each run, and from the status timer, writes every host's
// last run, snapshots, verify and lock as a textfile for node_exporter's textfile collector.
// It never fails nor holds up a backup: a file it cannot write is logged. See README.md.
import { isAbsolute } from 'node:path';
import { SshRSyncError, currentTap, oneLine, scheduleAfterSession, type Logger, type Outcome, type PipelineHooks, type Plugin, type RunContext, type StatusReport } from '@ssh-r-sync/core';
import { collect, type CollectOptions, type CurrentRun } from './collect.js';
import { readMaxAges, render } from './exposition.js';
import { readTextfile, writeTextfile } from './textfile.js';

export { FAMILIES, OUTCOMES, PREFIX, escapeLabelValue, render, readMaxAges, type HostMetrics } from './exposition.js';
export { collect, hostNames, type CollectOptions } from './collect.js';
export { writeTextfile } from './textfile.js';
export { lockHeld } from './lock-state.js';

export const PLUGIN_NAME = 'prometheus';

/** The plugin's options. */
export interface PrometheusOptions {
  /** The file node_exporter reads: absolute, ending in `.prom`, in its --collector.textfile.directory. */
  textfile: string;
}

/** How long the file written after a committed run may take (after the session: nobody waits for it). */
const AFTER_SESSION_LIMIT_MS = 60_000;
/** How long the `done` tap of a run that was not committed waits for its write before it lets the run end. */
const DONE_WAIT_MS = 2_000;
const KNOWN = new Set(['textfile']);
/** A tapable stage after the default (0) of every other tap. */
const AFTER_OTHER_TAPS = 100;

// Creates the plugin; a missing or unusable `textfile` throws here, when the config is loaded.
export default function prometheus(options: PrometheusOptions = {} as PrometheusOptions): Plugin {
  const textfile = checkOptions(options);
  // The file of one ROOT, written as a whole from that ROOT's records.
  const write = async (root: string, collectOptions: Omit<CollectOptions, 'maxAges'>, extraMaxAges?: Map<string, number>) => {
    const maxAges = readMaxAges(await readTextfile(textfile));
    for (const [host, seconds] of extraMaxAges ?? []) maxAges.set(host, seconds);
    const hosts = await collect(root, { ...collectOptions, maxAges });
    await writeTextfile(textfile, render(hosts));
  };
  // The errno says it all (the temporary file's name would only confuse).
  const failedWrite = (error: unknown) =>
    `cannot write the metrics file ${textfile} (${(error as NodeJS.ErrnoException).code ?? oneLine(error)}): create its directory, or make it writable by the receiver's account`;

  return {
    name: PLUGIN_NAME,
    apply(hooks: PipelineHooks) {
      // After the other done taps (stage): their work after the session (rotate's pruning) is
      // queued before this plugin's, so the file counts the snapshots that are left.
      hooks.done.tapPromise({ name: PLUGIN_NAME, stage: AFTER_OTHER_TAPS }, async (outcome, ctx) => {
        const logger = ctx.logger.scope(PLUGIN_NAME);
        // Refused before its name was known: no host's numbers changed.
        if (!ctx.name || !ctx.dir) return;
        try {
          if (outcome.committed) {
            // After the session the client is gone and the host's records hold this run (the run
            // log and the host record are written after done), as final as they get: a done tap
            // that failed after this one is in them too.
            scheduleAfterSession(ctx, {
              name: PLUGIN_NAME,
              timeoutMs: AFTER_SESSION_LIMIT_MS,
              run: async () => write(ctx.root, { now: new Date() }).catch((error: unknown) => {
                throw new Error(failedWrite(error), { cause: error });
              }),
            });
            return;
          }
          // Work after the session runs only for committed runs, and a failure must reach the
          // file: it is written now, with this run taken from the outcome (the records get it only
          // after done), bounded so a slow disk cannot hold the client's goodbye for long.
          await writeBounded(write(ctx.root, { now: new Date(), current: currentRun(outcome, ctx) }), logger, failedWrite);
        } catch (error) {
          logger.warn(`${failedWrite(error)}; the run's outcome stands`);
        }
      });
    },
    async status(report: StatusReport, logger: Logger) {
      // The timer's report: every host's health with its own max age, kept in the file for the runs' rewrites.
      const known = new Map(report.hosts.map((h) => [h.name, h]));
      const maxAges = new Map(report.hosts.filter((h) => h.maxAgeSeconds !== null).map((h) => [h.name, h.maxAgeSeconds!]));
      try {
        await write(report.root, { now: new Date(report.at), known }, maxAges);
      } catch (error) {
        throw new SshRSyncError('ESTORAGE', failedWrite(error), { cause: error });
      }
      logger.scope(PLUGIN_NAME).debug(`wrote ${textfile} (${report.hosts.length} hosts reported)`);
    },
  };
}

// Waits for the write at most DONE_WAIT_MS (or until the tap is stopped); a write that takes
// longer goes on, and is logged if it fails.
async function writeBounded(work: Promise<void>, logger: Logger, failedWrite: (error: unknown) => string): Promise<void> {
  const signal = currentTap()?.signal;
  let timer: NodeJS.Timeout | undefined;
  let stop = () => {};
  const waited = new Promise<'late'>((resolve) => {
    timer = setTimeout(() => resolve('late'), DONE_WAIT_MS);
    stop = () => resolve('late');
    signal?.addEventListener('abort', stop, { once: true });
  });
  try {
    const ended = await Promise.race([work.then(() => 'written' as const), waited]);
    if (ended === 'late') {
      logger.warn(`the metrics file is still being written after ${DONE_WAIT_MS / 1000} s: the run ends without waiting for it`);
      work.catch((error: unknown) => logger.warn(failedWrite(error)));
    }
  } finally {
    clearTimeout(timer);
    signal?.removeEventListener('abort', stop);
  }
}

// This run as the records will tell it, from the outcome the done taps see.
function currentRun(outcome: Outcome, ctx: RunContext): CurrentRun {
  return {
    name: ctx.name,
    run: {
      startedAt: ctx.startedAt.toISOString(),
      at: new Date().toISOString(),
      status: outcome.status,
      exitCode: outcome.exitCode,
      rsyncExitCode: outcome.rsync?.exitCode ?? null,
      files: outcome.rsync?.files ?? null,
      bytes: outcome.rsync?.bytes ?? null,
      durationMs: outcome.durationMs,
    },
  };
}

function checkOptions(options: PrometheusOptions): string {
  const fail = (message: string) => new SshRSyncError('ECONFIG', `@ssh-r-sync/plugin-prometheus: ${message}`);
  if (typeof options !== 'object' || options === null) throw fail('options must be an object: ["@ssh-r-sync/plugin-prometheus", {"textfile": "/var/lib/prometheus/node-exporter/ssh-r-sync.prom"}]');
  const unknown = Object.keys(options).filter((key) => !KNOWN.has(key));
  if (unknown.length) throw fail(`unknown option ${JSON.stringify(unknown[0])} (known: ${[...KNOWN].join(', ')})`);
  const { textfile } = options;
  if (textfile === undefined) throw fail('textfile is missing: the file node_exporter reads, e.g. "/var/lib/prometheus/node-exporter/ssh-r-sync.prom"');
  if (typeof textfile !== 'string' || !isAbsolute(textfile) || !textfile.endsWith('.prom') || textfile.endsWith('/.prom')) {
    throw fail(`textfile must be an absolute path ending in .prom (node_exporter's textfile collector reads only *.prom), got ${JSON.stringify(textfile)}`);
  }
  return textfile;
}
