// Sends one event to every target of a host at once — the healthchecks ping, the webhook, the
// command — within the delivery's total time; a target that fails is logged in one line (its URL
// redacted) and counted in the host's notify record. Never throws: a notification never fails
// a backup.
import { oneLine, type Logger } from '@ssh-r-sync/core';
import type { NotifyEvent } from './event.js';
import { postWithRetries } from './http-send.js';
import { runCommand } from './command-send.js';
import type { ParsedOptions, ResolvedTargets } from './options.js';
import { redactUrl, scrub } from './redact.js';
import { updateNotifyState, type Channel } from './state.js';

/** healthchecks.io's endpoint per event: `/start`, the bare URL (success), `/fail`; a skip is only logged. */
const PING_SUFFIX: Record<NotifyEvent['status'], string> = { started: '/start', success: '', failure: '/fail', skipped: '/log' };

export interface DeliverOptions {
  root: string;
  options: ParsedOptions;
  logger: Logger;
  /** Aborted when the run is killed; the delivery also ends at its own total time. */
  signal?: AbortSignal | undefined;
  /** healthchecks.io's run id (`rid`), pairing a run's start and end pings. */
  runId?: string | undefined;
  userAgent: string;
  /** Log each failed target (default); false: the caller reports `Delivery.problem` itself. */
  logFailures?: boolean;
}

export interface Delivery {
  channel: Channel;
  ok: boolean;
  error: string | null;
  /** A failed target in words, its URL redacted: `could not send the success notification to …: …`. */
  problem: string | null;
}

// Delivers `event` to `targets`; resolves to one entry per target, having logged and recorded failures.
export async function deliver(event: NotifyEvent, targets: ResolvedTargets, options: DeliverOptions): Promise<Delivery[]> {
  const total = AbortSignal.timeout(options.options.totalTimeoutMs);
  const signal = options.signal ? AbortSignal.any([total, options.signal]) : total;
  const secrets = [targets.healthchecks, targets.webhook].filter((url): url is string => url !== null);
  const send = { timeoutMs: options.options.timeoutMs, retries: options.options.retries, signal, userAgent: options.userAgent };
  const jobs: Promise<Delivery>[] = [];
  if (targets.healthchecks !== null) {
    const url = pingUrl(targets.healthchecks, PING_SUFFIX[event.status], options.runId);
    jobs.push(postWithRetries(url, event.log, 'text/plain; charset=utf-8', send).then((r) => result('healthchecks', r.ok ? null : r.error)));
  }
  if (targets.webhook !== null) {
    jobs.push(postWithRetries(targets.webhook, JSON.stringify(event), 'application/json', send).then((r) => result('webhook', r.ok ? null : r.error)));
  }
  if (targets.command !== null) {
    const run = runCommand(targets.command, event, { timeoutMs: options.options.timeoutMs, signal, logger: options.logger.scope('command') });
    jobs.push(run.then((r) => result('command', r.ok ? null : r.error)));
  }
  const deliveries = await Promise.all(jobs.map((job, i) => job.catch((error: unknown) => result(channelAt(targets, i), oneLine(error)))));
  const where = (channel: Channel) => (channel === 'command' ? `the command ${JSON.stringify(targets.command![0])}` : `${channel} ${redactUrl(channel === 'healthchecks' ? targets.healthchecks! : targets.webhook!)}`);
  for (const d of deliveries) {
    if (d.ok) options.logger.debug(`${event.host}: ${event.status} sent to ${where(d.channel)}`);
    else {
      d.error = scrub(d.error ?? 'failed', secrets);
      d.problem = `could not send the ${event.status} notification to ${where(d.channel)}: ${d.error}`;
      if (options.logFailures !== false) options.logger.warn(`${event.host}: ${d.problem} (the backup is not affected)`);
    }
  }
  try {
    await updateNotifyState(options.root, event.host, (state) => {
      const at = new Date().toISOString();
      for (const d of deliveries) {
        if (d.ok) state.lastDelivered = { at, channel: d.channel, status: event.status };
        else {
          state.failures++;
          state.lastFailure = { at, channel: d.channel, status: event.status, error: d.error! };
        }
      }
    });
  } catch (error) {
    options.logger.warn(`${event.host}: could not record the notifications in ${options.root}/.ssh-r-sync/notify: ${scrub(oneLine(error), secrets)}`);
  }
  return deliveries;
}

// healthchecks' URL for an event: the suffix goes on the path (a slug URL may carry `?create=1`).
function pingUrl(base: string, suffix: string, runId: string | undefined): string {
  const url = new URL(base);
  url.pathname = `${url.pathname.replace(/\/+$/, '')}${suffix}`;
  if (runId) url.searchParams.set('rid', runId);
  return url.href;
}

function result(channel: Channel, error: string | null): Delivery {
  return { channel, ok: error === null, error, problem: null };
}

function channelAt(targets: ResolvedTargets, index: number): Channel {
  const channels: Channel[] = [];
  if (targets.healthchecks !== null) channels.push('healthchecks');
  if (targets.webhook !== null) channels.push('webhook');
  if (targets.command !== null) channels.push('command');
  return channels[index]!;
}
