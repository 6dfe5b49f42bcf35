// What a notification says: one JSON event (the webhook's body, the command's stdin) and a short
// text log of the run (a ping's body), both built from what the pipeline hands to `done` or
// from the status report — never from the client's files, never with a secret.
import type { Outcome, RunContext, StatusReport, TapRecord } from '@ssh-r-sync/core';

/** The JSON shape's version: a consumer checks it; a field's meaning never changes under one number. */
export const EVENT_SCHEMA = 1;

/** One notification, as the webhook and the command receive it. */
export interface NotifyEvent {
  schema: typeof EVENT_SCHEMA;
  /** `run`: a backup's start or end; `status`: the status timer found the host stale. */
  source: 'run' | 'status';
  status: 'started' | 'success' | 'failure' | 'skipped';
  host: string;
  /** When the event was made (ISO time). */
  at: string;
  /** The run's exit code (0, 1, 2, 75); null for `started` and status events. */
  exitCode: number | null;
  /** The outcome's message, or the status report's problem; null when there is nothing to say. */
  message: string | null;
  snapshot: string | null;
  /** The backup passed the commit point (it is complete on disk). */
  committed: boolean;
  startedAt: string | null;
  durationMs: number | null;
  rsync: { exitCode: number; files: number | null; bytes: number | null; durationMs: number } | null;
  /** Status events: what the timer saw. */
  report: { problem: string | null; lastSuccess: string | null; newestComplete: string | null; maxAgeSeconds: number | null } | null;
  /** The run's log tail (the ping's body), bounded by `logBytes`. */
  log: string;
}

// The event sent when the host is known (handshake).
export function startEvent(ctx: RunContext): NotifyEvent {
  const base = blank('run', 'started', ctx.name);
  base.startedAt = ctx.startedAt.toISOString();
  base.log = `${ctx.name}: backup started at ${base.startedAt}\n`;
  return base;
}

// The event for how a run ended, with its log tail.
export function finishEvent(outcome: Outcome, ctx: RunContext, logBytes: number): NotifyEvent {
  const event = blank('run', outcome.status, ctx.name);
  event.exitCode = outcome.exitCode;
  event.message = outcome.message;
  event.snapshot = outcome.snapshot ?? null;
  event.committed = outcome.committed === true;
  event.startedAt = ctx.startedAt.toISOString();
  event.durationMs = outcome.durationMs;
  const rsync = outcome.rsync;
  event.rsync = rsync ? { exitCode: rsync.exitCode, files: rsync.files, bytes: rsync.bytes, durationMs: rsync.durationMs } : null;
  event.log = tail(runLog(outcome, ctx), logBytes);
  return event;
}

// The event for a host that the status report finds stale.
export function staleEvent(host: StatusReport['hosts'][number], at: string, logBytes: number): NotifyEvent {
  const event = blank('status', 'failure', host.name);
  event.at = at;
  event.message = host.problem;
  event.report = { problem: host.problem, lastSuccess: host.lastSuccess, newestComplete: host.newestComplete?.id ?? host.newestComplete?.startedAt ?? null, maxAgeSeconds: host.maxAgeSeconds };
  const lines = [`${host.name}: ${host.problem ?? 'stale'} (status at ${at})`];
  if (host.lastFailure) lines.push(`last failure at ${host.lastFailure.at}: ${host.lastFailure.detail}`);
  for (const warning of host.warnings) lines.push(`warning: ${warning}`);
  event.log = tail(`${lines.join('\n')}\n`, logBytes);
  return event;
}

function blank(source: NotifyEvent['source'], status: NotifyEvent['status'], host: string): NotifyEvent {
  return { schema: EVENT_SCHEMA, source, status, host, at: new Date().toISOString(), exitCode: null, message: null, snapshot: null, committed: false, startedAt: null, durationMs: null, rsync: null, report: null, log: '' };
}

/** rsync's lines worth a reader's eye: its errors and warnings, not its file list or stats. */
const RSYNC_PROBLEM = /^rsync(:| error| warning)|^(file has vanished|IO error|cannot delete)|error|warning|failed|denied|No space left/i;
/** At most this many of them (the end of the list: the summary line comes last). */
const RSYNC_LINES = 40;

// The run in a few lines: outcome, snapshot, rsync's problem lines and numbers, failed taps.
function runLog(outcome: Outcome, ctx: RunContext): string {
  const lines = [`${ctx.name}: ${outcome.status} (exit ${outcome.exitCode}) after ${(outcome.durationMs / 1000).toFixed(1)} s, started at ${ctx.startedAt.toISOString()}`];
  if (outcome.snapshot) lines.push(`snapshot ${outcome.snapshot}${outcome.committed ? ' (complete)' : ' (not complete)'}`);
  if (outcome.message) lines.push(outcome.message);
  for (const tap of ctx.taps.filter(failedTap)) lines.push(`${tap.point} tap "${tap.tap}" ${tap.outcome} after ${(tap.durationMs / 1000).toFixed(1)} s`);
  const rsync = outcome.rsync;
  if (rsync) {
    lines.push(`rsync exit ${rsync.exitCode}${rsync.signal ? ` (${rsync.signal})` : ''}${rsync.files !== null ? `, ${rsync.files} files` : ''}${rsync.bytes !== null ? `, ${rsync.bytes} bytes` : ''} in ${(rsync.durationMs / 1000).toFixed(1)} s`);
    if (rsync.exitCode !== 0 || rsync.originalExitCode !== 0) {
      const problems = rsync.output.split('\n').filter((line) => RSYNC_PROBLEM.test(line)).slice(-RSYNC_LINES);
      lines.push(...problems.map((line) => (line.startsWith('rsync') ? line : `rsync: ${line}`)));
    }
  }
  for (const error of outcome.doneErrors ?? []) lines.push(`done: ${error.message}`);
  return `${lines.join('\n')}\n`;
}

function failedTap(tap: TapRecord): boolean {
  return tap.outcome === 'failed' || tap.outcome === 'timed out';
}

// The last `max` bytes of `text` (UTF-8, cut at a line or character start), marked when cut.
export function tail(text: string, max: number): string {
  const bytes = Buffer.from(text);
  if (bytes.length <= max) return text;
  const mark = '…(earlier lines cut)\n';
  if (max < 2 * Buffer.byteLength(mark)) return '';
  let start = bytes.length - Math.max(0, max - Buffer.byteLength(mark));
  while (start < bytes.length && (bytes[start]! & 0xc0) === 0x80) start++;
  const rest = bytes.subarray(start).toString();
  const newline = rest.indexOf('\n');
  const cut = newline >= 0 && newline < rest.length - 1 ? rest.slice(newline + 1) : rest;
  return mark + cut;
}
