// @ssh-r-sync/plugin-prometheus: after each run, and from the status timer, writes every host's
// last run, snapshots, verify and lock as a textfile for node_exporter's textfile collector.
// It never fails nor holds up a backup: a file it cannot write is logged. See README.md.
import { basename, dirname, isAbsolute, join } from 'node:path';
import { SshRSyncError, isSshRSyncError, oneLine, scheduleAfterSession, withFileLock, type Logger, type PipelineHooks, type Plugin, type StatusReport } from '@ssh-r-sync/core';
import { collect, type CollectOptions } from './collect.js';
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

/** How long writing the file after a run may take (after the session: nobody waits for it). */
const AFTER_SESSION_LIMIT_MS = 60_000;
const KNOWN = new Set(['textfile']);
/** How long a write waits for another one to finish. */
const LOCK_WAIT_SECONDS = 30;

// The lock file beside the textfile: hidden, not ending in .prom (the collector reads only those).
export function lockPath(textfile: string): string {
  return join(dirname(textfile), `.${basename(textfile)}.lock`);
}

// Creates the plugin; a missing or unusable `textfile` throws here, when the config is loaded.
export default function prometheus(options: PrometheusOptions = {} as PrometheusOptions): Plugin {
  const textfile = checkOptions(options);
  // The file of one ROOT, written as a whole from that ROOT's records.
  // `reported`: the status report's max ages (null: the host has none now), over those the file kept.
  // Under a lock beside the file: receivers of two hosts finishing together each read every
  // host's records and rename their file over the other's; unlocked, the later rename could
  // carry a view read before the other run's records were final.
  const write = (root: string, collectOptions: Omit<CollectOptions, 'maxAges'>, reported?: Map<string, number | null>, signal?: AbortSignal) =>
    withFileLock(lockPath(textfile), { waitSeconds: LOCK_WAIT_SECONDS, signal }, async () => {
      const maxAges = readMaxAges(await readTextfile(textfile));
      for (const [host, seconds] of reported ?? []) {
        if (seconds === null) maxAges.delete(host);
        else maxAges.set(host, seconds);
      }
      const hosts = await collect(root, { ...collectOptions, maxAges });
      await writeTextfile(textfile, render(hosts));
    });
  // The errno says it all (the temporary file's name would only confuse).
  const failedWrite = (error: unknown) =>
    isSshRSyncError(error) && error.code === 'ELOCK' ? `cannot write the metrics file ${textfile}: ${error.message}` :
    `cannot write the metrics file ${textfile} (${(error as NodeJS.ErrnoException).code ?? oneLine(error)}): create its directory, or make it writable by the receiver's account`;

  return {
    name: PLUGIN_NAME,
    apply(hooks: PipelineHooks) {
      hooks.done.tapPromise(PLUGIN_NAME, async (_outcome, ctx) => {
        // Refused before its name was known: no host's numbers changed.
        if (!ctx.name) return;
        // After the session, for every outcome (a failure must reach the file too): the client
        // has its answer and is gone, and the host's records hold this run as final as they get
        // (the run log and the host record are written after done, a failed done tap included).
        // A write that fails is logged by core and kept in the host's record; the run's outcome stands.
        scheduleAfterSession(ctx, {
          name: PLUGIN_NAME,
          timeoutMs: AFTER_SESSION_LIMIT_MS,
          anyOutcome: true,
          // It reports what the other work after the session leaves (rotate's pruning): it runs after it.
          reports: true,
          run: async (signal) => write(ctx.root, { now: new Date() }, undefined, signal).catch((error: unknown) => {
            throw new Error(failedWrite(error), { cause: error });
          }),
        });
      });
    },
    async status(report: StatusReport, logger: Logger) {
      // The timer's report: every host's health with its own max age, kept in the file for the runs' rewrites.
      const known = new Map(report.hosts.map((h) => [h.name, h]));
      const maxAges = new Map(report.hosts.map((h) => [h.name, h.maxAgeSeconds]));
      try {
        await write(report.root, { now: new Date(report.at), known }, maxAges);
      } catch (error) {
        throw new SshRSyncError('ESTORAGE', failedWrite(error), { cause: error });
      }
      logger.scope(PLUGIN_NAME).debug(`wrote ${textfile} (${report.hosts.length} hosts reported)`);
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
