// Wraps every tap of every hook, scripts and TS plugins alike, with the same timeout and the
// same error attribution. A tap can find its own abort signal through `currentTap()`.
import { AsyncLocalStorage } from 'node:async_hooks';
import pTimeout, { TimeoutError } from 'p-timeout';
import { SshRSyncError, isSshRSyncError, oneLine } from '../errors.js';
import { PART_OF_POINT, type PipelineHooks } from './hooks.js';
import { HOOK_KEYS, POINT_NAMES, type PointName } from './points.js';
import { timerLimit } from './timer-limit.js';

export interface TapScope {
  readonly point: PointName;
  readonly tap: string;
  /** Aborted when the tap times out or the run stops: a tap's subprocesses must die then. */
  readonly signal: AbortSignal;
}

// One store per process, even when a plugin brings its own copy of core (the commands ship
// bundled): the copies find each other through a global symbol.
const SCOPES = Symbol.for('ssh-r-sync.tap-scopes');
const scopes: AsyncLocalStorage<TapScope> = ((globalThis as Record<symbol, unknown>)[SCOPES] ??= new AsyncLocalStorage<TapScope>()) as AsyncLocalStorage<TapScope>;

// The point, name and abort signal of the tap that is running now.
export function currentTap(): TapScope | undefined {
  return scopes.getStore();
}

/** A tap's failure, attributed to its point and tap. */
export class HookError extends SshRSyncError {
  readonly point: PointName;
  readonly tap: string;
  constructor(code: 'EHOOK' | 'ETIMEOUT' | 'ECONFIG', point: PointName, tap: string, message: string, cause?: unknown) {
    super(code, message, { cause });
    this.point = point;
    this.tap = tap;
  }
}

export interface GuardOptions {
  /** Per-tap time limit in milliseconds; 0 or undefined means none. */
  timeoutMs?: number;
  /** The signal that aborts a running tap of this point (the run's stop, or its kill for `done`). */
  signalFor(point: PointName): AbortSignal;
  /** Called once per finished tap, for the run's record of hook outcomes. */
  record?: (entry: TapRecord) => void;
  /**
   * Points whose taps must all run: a failing tap's error goes here and the next tap still runs
   * (`done`: a failed notification must not skip the release of a snapshot lock).
   */
  collect?: Partial<Record<PointName, (error: HookError) => void>>;
}

/** How one tap ended: kept for the done mark and for debugging. */
export interface TapRecord {
  point: PointName;
  tap: string;
  outcome: 'ok' | 'skipped' | 'failed' | 'timed out';
  durationMs: number;
}

type AnyFn = (...args: unknown[]) => unknown;

// Installs the guard on every hook; taps registered later are wrapped as they come.
export function guardHooks(hooks: PipelineHooks, options: GuardOptions): void {
  const guarded: [PointName, PipelineHooks[keyof PipelineHooks]][] = [
    ...POINT_NAMES.map((point) => [point, hooks[HOOK_KEYS[point]]] as [PointName, PipelineHooks[keyof PipelineHooks]]),
    ...Object.entries(PART_OF_POINT).map(([key, point]) => [point, hooks[key as keyof typeof PART_OF_POINT]] as [PointName, PipelineHooks[keyof PipelineHooks]]),
  ];
  for (const [point, hook] of guarded) {
    hook.intercept({
      name: 'ssh-r-sync-guard',
      register: (tap) => {
        const call = asPromise(tap.type, tap.fn as AnyFn);
        const collect = options.collect?.[point];
        const guarded = (...args: unknown[]) => runGuarded(point, tap.name, options, () => call(...args));
        const fn = collect ? (...args: unknown[]) => guarded(...args).catch((error: HookError) => collect(error)) : guarded;
        return { ...tap, type: 'promise', fn };
      },
    });
  }
}

// Normalises sync, callback and promise taps into one promise-returning function.
function asPromise(type: 'sync' | 'async' | 'promise', fn: AnyFn): (...args: unknown[]) => Promise<unknown> {
  if (type === 'async') {
    return (...args) =>
      new Promise((resolve, reject) => {
        fn(...args, (error: unknown, result: unknown) => (error ? reject(error) : resolve(result)));
      });
  }
  return async (...args) => fn(...args);
}

async function runGuarded(point: PointName, tap: string, options: GuardOptions, call: () => Promise<unknown>): Promise<unknown> {
  const controller = new AbortController();
  const outer = options.signalFor(point);
  const stop = () => controller.abort(outer.reason);
  if (outer.aborted) stop();
  else outer.addEventListener('abort', stop, { once: true });
  const work = scopes.run({ point, tap, signal: controller.signal }, call);
  const started = performance.now();
  const record = (outcome: TapRecord['outcome']) =>
    options.record?.({ point, tap, outcome, durationMs: Math.round(performance.now() - started) });
  // A tap can only be asked to stop: one that ignores its signal (a plugin awaiting what never
  // comes) is abandoned a moment after the run's stop, or the stop would never end the run.
  let abandon: NodeJS.Timeout | undefined;
  let giveUp = () => {};
  const abandoned = new Promise<never>((_, reject) => {
    const deaf = new SshRSyncError('EHOOK', `did not stop within ${seconds(ABANDON_AFTER_MS)} of the run's stop`);
    giveUp = () => (abandon ??= setTimeout(() => reject(deaf), ABANDON_AFTER_MS));
  });
  abandoned.catch(() => {});
  if (outer.aborted) giveUp();
  else outer.addEventListener('abort', giveUp, { once: true });
  try {
    const limit = timerLimit(options.timeoutMs ?? 0);
    const result = await Promise.race([limit ? pTimeout(work, { milliseconds: limit }) : work, abandoned]);
    record(typeof result === 'object' && result !== null && (result as { skip?: unknown }).skip === true ? 'skipped' : 'ok');
    return result;
  } catch (error) {
    record(error instanceof TimeoutError ? 'timed out' : 'failed');
    if (error instanceof TimeoutError) {
      controller.abort(error);
      // Give the tap a moment to kill its processes before the run moves on.
      await settleWithin(work, 2000);
      throw new HookError('ETIMEOUT', point, tap, `${point} hook "${tap}" timed out after ${seconds(options.timeoutMs!)}`);
    }
    throw attribute(point, tap, error);
  } finally {
    clearTimeout(abandon);
    outer.removeEventListener('abort', giveUp);
    outer.removeEventListener('abort', stop);
    controller.abort();
  }
}

/** How long a stopped tap may take to settle before the run goes on without it. */
const ABANDON_AFTER_MS = 2000;

// Wraps an error once, naming the point and the tap, and keeps the original as `cause`.
function attribute(point: PointName, tap: string, error: unknown): HookError {
  const earlier = error as Partial<HookError>;
  if (isSshRSyncError(error) && earlier.point === point && earlier.tap === tap) return error as HookError;
  // A tap that finds the configuration wrong (ECONFIG) makes the run a configuration error (exit 2).
  const code = isSshRSyncError(error) && (error.code === 'ETIMEOUT' || error.code === 'ECONFIG') ? error.code : 'EHOOK';
  return new HookError(code, point, tap, `${point} hook "${tap}" failed: ${oneLine(error)}`, error);
}

function seconds(ms: number): string {
  const s = ms / 1000;
  return `${Number.isInteger(s) ? s : s.toFixed(1)} s`;
}

// Waits for `work` to settle, but no longer than `ms`.
async function settleWithin(work: Promise<unknown>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([work.catch(() => undefined), new Promise((resolve) => (timer = setTimeout(resolve, ms)))]);
  clearTimeout(timer);
}
