// Work that follows a committed backup but must never delay or fail it — rotation, removing
// superseded interrupted snapshots: it runs after the session has ended (the client has its
// answer and is gone), each task with its own time limit, and its errors go to the log and to
// the host's record (ROOT/.ssh-r-sync/hosts/NAME.json, shown by `ssh-r-sync-admin status`).
import pTimeout, { TimeoutError } from 'p-timeout';
import type { RunContext } from './context.js';
import { oneLine } from '../errors.js';
import { readHostRecord, writeHostRecord, type AfterSessionRecord } from '../storage/host-record.js';
import type { Logger } from '../logger.js';
import { timerLimit } from './timer-limit.js';
import { withHostLock } from '../storage/host-lock.js';

export interface AfterSessionTask {
  /** Names the task in logs and in the host's record (a plugin's name). */
  name: string;
  /** Its own time limit; 0 = none. */
  timeoutMs: number;
  /** The work; `signal` aborts when the limit passes or the receiver is stopped. */
  run(signal: AbortSignal): Promise<void>;
  /** Run it after a run that was not committed too (a failure's notification); default: committed runs only. */
  anyOutcome?: boolean;
  /** It reports what the others leave (a metrics file counting snapshots after pruning): it runs
   *  after every task that does not report, whatever order the plugins were given in, and again
   *  after the unlocked tasks (without the host's lock: a report only reads the records). */
  reports?: boolean;
  /**
   * It runs after the host's lock is released, so that however long it takes (an off-site copy
   * to a repository that hangs) the host's next backup is not refused. Such a task guards itself
   * (its own lock), never writes the host's record unless it takes the host's lock for that, and
   * touches only snapshots that no run deletes meanwhile (held ones). Its outcome joins the run's
   * record under the host's lock, taken briefly, unless a newer run has recorded itself by then
   * (then it is in the log only, and the task should keep its own account).
   */
  unlocked?: boolean;
  /** For an unlocked task that a receiver deferred (--defer-unlocked): the command that does the
   *  work apart, named in the log line that says it was not run (e.g. `ssh-r-sync-admin offsite sync …`). */
  deferredHint?: string;
}

const TASKS = 'ssh-r-sync:after-session';
/** Characters of a task's error kept in the host's record, which is read back bounded. */
const MAX_RECORDED_ERROR = 4000;

/** How long an unlocked task that timed out may take to end (restic: SIGINT, then SIGKILL after 10 s). */
const UNLOCKED_STOP_GRACE_MS = 20_000;

/** How long a stopped task may take to end before the receiver goes on without it. */
const ABANDON_AFTER_MS = 2000;

/** Why a task was given up: the receiver's stop, and that the task did not end after it. */
class Abandoned extends Error {
  constructor(reason: unknown) {
    super(`${oneLine(reason)}; the task did not stop within ${ABANDON_AFTER_MS / 1000} s`);
  }
}

// Queues work for after the session; only a committed run's tasks run, but for anyOutcome ones.
export function scheduleAfterSession(ctx: RunContext, task: AfterSessionTask): void {
  const tasks = (ctx.data.get(TASKS) as AfterSessionTask[] | undefined) ?? [];
  tasks.push(task);
  ctx.data.set(TASKS, tasks);
}

// Runs the queued tasks in order, each bounded; never throws. Records how they ended.
// `committed`: the run passed the commit point (else only anyOutcome tasks run); `locked`: it
// holds the host's lock, so it may write the host's record (a refused run must not).
export async function runAfterSession(ctx: RunContext, logger: Logger, signal: AbortSignal, committed = true, locked = true): Promise<AfterSessionRecord | null> {
  const queued = ((ctx.data.get(TASKS) as AfterSessionTask[] | undefined) ?? []).filter((task) => !task.unlocked && (committed || task.anyOutcome === true));
  // Work first, then the reports of it (ordered by purpose, not by the plugins' order).
  const tasks = [...queued.filter((task) => !task.reports), ...queued.filter((task) => task.reports)];
  // A run that was not committed leaves an older run's record of its after-session work alone.
  if (tasks.length === 0 && !committed) return null;
  if (tasks.length === 0) {
    await forgetAfterSession(ctx, logger);
    return null;
  }
  const record: AfterSessionRecord = { at: new Date().toISOString(), tasks: [] };
  for (const task of tasks) record.tasks.push(await runTask(task, logger, signal, committed, 2000));
  if (!locked) return record;
  try {
    const host = await readHostRecord(ctx.root, ctx.name);
    if (host) {
      // A committed run's record replaces both; an uncommitted one's goes beside the last committed one's.
      const { afterUncommitted: _older, ...rest } = host;
      await writeHostRecord(ctx.root, ctx.name, committed ? { ...rest, afterSession: record } : { ...host, afterUncommitted: record });
    }
  } catch (error) {
    logger.warn(`could not record the after-session work of ${ctx.name}: ${oneLine(error)}`);
  }
  return record;
}

// A committed run without such work: an older run's after-session failure is no longer news.
async function forgetAfterSession(ctx: RunContext, logger: Logger): Promise<void> {
  try {
    const host = await readHostRecord(ctx.root, ctx.name);
    if (!host?.afterSession && !host?.afterUncommitted) return;
    const { afterSession: _dropped, afterUncommitted: _older, ...rest } = host;
    await writeHostRecord(ctx.root, ctx.name, rest);
  } catch (error) {
    logger.warn(`could not update the host record of ${ctx.name}: ${oneLine(error)}`);
  }
}

// The tasks that run after the host's lock is released (unlocked), in order, each bounded; after
// a committed run only (unless anyOutcome); never throws. Their outcomes join the run's record of
// its after-session work under the host's lock, taken briefly (waiting up to 30 s), and only while
// no newer run has recorded itself (the host record's lastRun is still `lastRunAt`).
// `defer` (--defer-unlocked): none runs here; each is logged once and recorded as "deferred", for a
// process of its own to do (a systemd unit started after a pull), so that this one ends now.
export async function runUnlockedAfterSession(ctx: RunContext, logger: Logger, signal: AbortSignal, committed: boolean, lastRunAt: string | null, base: AfterSessionRecord | null, defer = false): Promise<void> {
  const tasks = ((ctx.data.get(TASKS) as AfterSessionTask[] | undefined) ?? []).filter((task) => task.unlocked === true && (committed || task.anyOutcome === true));
  if (tasks.length === 0) return;
  const at = new Date().toISOString();
  const entries: AfterSessionRecord['tasks'] = [];
  // Nobody waits for an unlocked task: a stopped one gets time to record how it ended.
  for (const task of tasks) entries.push(defer ? deferTask(task, logger) : await runTask(task, logger, signal, committed, UNLOCKED_STOP_GRACE_MS));
  try {
    await withHostLock({ root: ctx.root, name: ctx.name, waitSeconds: 30, logger, brief: true }, async () => {
      const host = await readHostRecord(ctx.root, ctx.name);
      if (!host || (host.lastRun?.at ?? null) !== lastRunAt) return logger.debug(`a newer run of ${ctx.name} recorded itself: the outcome of ${tasks.map((t) => t.name).join(', ')} is only in the log`);
      const key = committed ? 'afterSession' : 'afterUncommitted';
      const current = host[key];
      const record: AfterSessionRecord = current && base && current.at === base.at ? { ...current, tasks: [...current.tasks, ...entries] } : { at, tasks: entries };
      await writeHostRecord(ctx.root, ctx.name, { ...host, [key]: record });
    });
  } catch (error) {
    logger.warn(`could not record the after-session work of ${ctx.name}: ${oneLine(error)}`);
  }
  if (defer) return;
  // The reports were made before this work ended: they report again, so that what they show (the
  // metrics file) has its outcome and facts (the off-site copy's lag). Only failures are logged.
  const reports = ((ctx.data.get(TASKS) as AfterSessionTask[] | undefined) ?? []).filter((task) => task.reports === true && !task.unlocked && (committed || task.anyOutcome === true));
  for (const task of reports) await runTask(task, logger, signal, committed, 2000);
}

// A task this receiver does not run (--defer-unlocked): one info line naming what does it instead.
function deferTask(task: AfterSessionTask, logger: Logger): AfterSessionRecord['tasks'][number] {
  logger.info(`${task.name}: deferred (--defer-unlocked): it runs apart${task.deferredHint ? `, e.g. ${task.deferredHint}` : ''}`);
  return { name: task.name, outcome: 'deferred', error: null, durationMs: 0 };
}

// Runs one task, bounded by its limit and by `signal` (a task that ignores it is abandoned 2 s
// after it aborts; one that timed out gets `graceMs` to end); logs a failure; never throws.
async function runTask(task: AfterSessionTask, logger: Logger, signal: AbortSignal, committed: boolean, graceMs: number): Promise<AfterSessionRecord['tasks'][number]> {
  const started = performance.now();
  const controller = new AbortController();
  const stop = () => controller.abort(signal.reason);
  if (signal.aborted) stop();
  else signal.addEventListener('abort', stop, { once: true });
  const work = task.run(controller.signal);
  // A task that ignores its signal is abandoned soon after the receiver is stopped (SIGTERM).
  let abandon: NodeJS.Timeout | undefined;
  let giveUp = () => {};
  const abandoned = new Promise<never>((_, reject) => {
    giveUp = () => (abandon ??= setTimeout(() => reject(new Abandoned(signal.reason)), ABANDON_AFTER_MS));
  });
  abandoned.catch(() => {});
  if (signal.aborted) giveUp();
  else signal.addEventListener('abort', giveUp, { once: true });
  try {
    const limit = timerLimit(task.timeoutMs);
    await Promise.race([limit ? pTimeout(work, { milliseconds: limit }) : work, abandoned]);
    return { name: task.name, outcome: 'ok', error: null, durationMs: Math.round(performance.now() - started) };
  } catch (error) {
    const timedOut = error instanceof TimeoutError;
    controller.abort(error);
    if (timedOut) await Promise.race([work.catch(() => undefined), new Promise((resolve) => setTimeout(resolve, graceMs).unref())]);
    const message = timedOut ? `timed out after ${task.timeoutMs / 1000} s` : oneLine(error);
    logger.error(committed ? `after the backup, ${task.name} failed: ${message} (the backup itself is complete)` : `after the run, ${task.name} failed: ${message} (the run's outcome stands)`);
    const recorded = message.length > MAX_RECORDED_ERROR ? `${message.slice(0, MAX_RECORDED_ERROR)}…` : message;
    return { name: task.name, outcome: timedOut ? 'timed out' : 'failed', error: recorded, durationMs: Math.round(performance.now() - started) };
  } finally {
    clearTimeout(abandon);
    signal.removeEventListener('abort', giveUp);
    signal.removeEventListener('abort', stop);
  }
}
