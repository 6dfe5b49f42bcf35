// @ssh-r-sync/plugin-notify: tells healthchecks.io-style ping URLs, a JSON webhook and a command
// when a host's backup starts and how it ended (success, failure, skipped), and — from the status
// timer — when a host went stale. Per host targets; bounded time, retries, no secret in a log
// line; a notification that cannot be delivered is logged and counted, never a failed backup.
// See README.md.
import { randomUUID } from 'node:crypto';
import { SshRSyncError, oneLine, scheduleAfterSession, type Logger, type PipelineHooks, type Plugin, type RunContext, type StatusReport } from '@ssh-r-sync/core';
import { parseOptions, targetsFor, hasTargets, type NotifyOptions, type ParsedOptions } from './options.js';
import { finishEvent, startEvent, staleEvent } from './event.js';
import { deliver } from './deliver.js';
import { readNotifyState, updateNotifyState } from './state.js';

export { EVENT_SCHEMA, type NotifyEvent } from './event.js';
export { readNotifyState, notifyStatePath, STATE_SCHEMA, type NotifyState, type Channel } from './state.js';
export { redactUrl } from './redact.js';
export type { NotifyOptions, NotifyTargets } from './options.js';

export const PLUGIN_NAME = 'notify';
const USER_AGENT = 'ssh-r-sync-plugin-notify/0.1.0';

/** What one run keeps between its handshake and its end. */
interface RunState {
  /** healthchecks.io's run id: the end ping names the start ping it closes. */
  runId: string;
  /** The start notification, sent while the backup goes on; the end waits for it (order). */
  started: Promise<unknown>;
}

// Creates the plugin; a bad option throws here, when the config is loaded, not after a backup.
export default function notify(options: NotifyOptions = {}): Plugin {
  let parsed: ParsedOptions;
  try {
    parsed = parseOptions(options);
  } catch (error) {
    throw new SshRSyncError('ECONFIG', `@ssh-r-sync/plugin-notify: ${oneLine(error)}`, { cause: error });
  }
  const runs = new WeakMap<RunContext, RunState>();
  // The receiver knows the outcome, keeps the record and runs work after the session; on the
  // client ROOT is the tree being backed up, where nothing of this plugin's belongs.
  const onClient = (ctx: RunContext) => {
    if (ctx.role === 'receiver') return false;
    ctx.logger.scope(PLUGIN_NAME).warn('@ssh-r-sync/plugin-notify belongs in the receiver\'s config (ssh-r-sync-recv): on the client it sends nothing');
    return true;
  };
  const send = (ctx: RunContext, logger: Logger, signal: AbortSignal | undefined, runId: string | undefined) => ({ root: ctx.root, options: parsed, logger, signal, runId, userAgent: USER_AGENT });

  return {
    name: PLUGIN_NAME,
    apply(hooks: PipelineHooks) {
      // The host is known: the start ping goes out without holding the backup up.
      hooks.handshake.tapPromise(PLUGIN_NAME, async (ctx) => {
        if (onClient(ctx)) return undefined;
        const targets = targetsFor(parsed, ctx.name);
        if (!hasTargets(targets)) return undefined;
        const runId = randomUUID();
        const logger = ctx.logger.scope(PLUGIN_NAME);
        runs.set(ctx, { runId, started: deliver(startEvent(ctx), targets, send(ctx, logger, undefined, runId)).catch(() => {}) });
        return undefined;
      });

      // A run's end is told after the session (the client has its answer, and a notification
      // server that hangs costs it nothing), bounded by totalTimeout. Never throws.
      hooks.done.tapPromise(PLUGIN_NAME, async (outcome, ctx) => {
        const logger = ctx.logger.scope(PLUGIN_NAME);
        try {
          if (!ctx.name || ctx.role !== 'receiver') return; // before the handshake no host is known; the client: see onClient
          const targets = targetsFor(parsed, ctx.name);
          if (!hasTargets(targets)) return;
          const run = runs.get(ctx);
          const event = finishEvent(outcome, ctx, parsed.logBytes);
          // After the session, whatever the outcome (the client has its answer and no longer hears
          // the log): a failed target is the task's error, which core logs once and keeps in the
          // host's record (status shows it).
          scheduleAfterSession(ctx, {
            name: PLUGIN_NAME,
            anyOutcome: true,
            timeoutMs: 2 * parsed.totalTimeoutMs + 5000,
            run: async (signal) => {
              await run?.started;
              const failed = (await deliver(event, targets, { ...send(ctx, logger, signal, run?.runId), logFailures: false })).filter((d) => !d.ok);
              if (failed.length) throw new Error(failed.map((d) => d.problem).join('; '));
            },
          });
        } catch (error) {
          logger.warn(`${ctx.name}: notifications failed: ${oneLine(error)} (the backup is not affected)`);
        }
      });
    },

    // The dead-man's switch: a stale host's failure goes out once per episode (until the host is
    // fresh again, or its newest backup or last success changes); a host that is fresh again gets
    // nothing here — its own successful run already sent the success ping.
    // `logger` comes scoped to this plugin (ssh-r-sync-admin status --report).
    async status(report: StatusReport, scoped: Logger): Promise<void> {
      const undelivered = await Promise.all(
        report.hosts.map(async (host) => {
          const targets = targetsFor(parsed, host.name);
          if (!hasTargets(targets)) return 0;
          const key = `${host.newestComplete?.startedAt ?? 'none'} ${host.lastSuccess ?? 'never'}`;
          const state = await readNotifyState(report.root, host.name);
          if (!host.stale) {
            if (state.staleSent) await updateNotifyState(report.root, host.name, (s) => void (s.staleSent = null)).catch((error: unknown) => scoped.warn(`${host.name}: could not update its notify record: ${oneLine(error)}`));
            return 0;
          }
          if (state.staleSent?.key === key) {
            scoped.debug(`${host.name}: still stale, already reported at ${state.staleSent.at}`);
            return 0;
          }
          const deliveries = await deliver(staleEvent(host, report.at, parsed.logBytes), targets, { root: report.root, options: parsed, logger: scoped, userAgent: USER_AGENT });
          const failed = deliveries.filter((d) => !d.ok).length;
          // Only a report that reached every target counts as sent; otherwise the next timer tries again.
          if (failed === 0) await updateNotifyState(report.root, host.name, (s) => void (s.staleSent = { at: report.at, key, problem: host.problem }));
          return failed;
        }),
      );
      const failed = undelivered.reduce((sum, n) => sum + n, 0);
      if (failed) throw new SshRSyncError('EINTERNAL', `${failed} stale-host notification${failed === 1 ? '' : 's'} could not be delivered (see the lines above; counted in ${report.root}/.ssh-r-sync/notify/NAME.json)`);
    },
  };
}
