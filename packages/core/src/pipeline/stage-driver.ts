// The one driver of the hook points, for both roles: the receiver's pipeline and the client's
// stages around its own work tap the same hooks, through the same guard (per-tap timeouts, the
// tap's abort signal, the record of how each tap ended), with plugins and scripts applied the
// same way and every `done` tap run even when one fails. What differs between the roles is only
// what happens between the points.
import type { Outcome, Role, RunContext } from './context.js';
import type { RsyncProgress } from '../rsync/progress.js';
import { SshRSyncError, oneLine } from '../errors.js';
import { createHooks, type PipelineHooks } from './hooks.js';
import { assertPlugin, type Plugin } from '../plugins/plugin.js';
import { registerStoreProvider } from '../storage/host-store.js';
import { MIRROR_KIND, type StoreProvider } from '../storage/store.js';
import type { Retention } from '../storage/retention.js';
import { KIND_PATTERN } from '../storage/host-record.js';
import { HookError, guardHooks, type TapRecord } from './tap-guard.js';

export interface StageDriverOptions {
  role: Role;
  /** Per-tap limit in milliseconds (scripts and plugins alike); 0 = none. */
  hookTimeoutMs?: number;
}

export class StageDriver {
  readonly hooks: PipelineHooks = createHooks();
  readonly plugins: Plugin[] = [];
  /** Every tap that finished, in order (the done mark records them). */
  readonly taps: TapRecord[] = [];
  private readonly stopController = new AbortController();
  private readonly killController = new AbortController();
  private readonly doneErrors: HookError[] = [];
  private storeEntry: { provider: StoreProvider; plugin: string } | undefined;
  private retentionEntry: { retention: Retention; plugin: string } | undefined;
  private progressFailed = false;

  constructor(private readonly options: StageDriverOptions) {
    guardHooks(this.hooks, {
      timeoutMs: options.hookTimeoutMs ?? 0,
      // The stop ends the stages; done taps still run (a lock taken at connect is released) until the kill.
      signalFor: (point) => (point === 'done' ? this.killController.signal : this.stopController.signal),
      record: (entry) => this.taps.push(entry),
      // Every done tap runs: one that fails (a notification) must not skip the next (a lock release).
      // One killed by the run's kill fails for that reason, not for the signal it got.
      collect: { done: (error) => this.doneErrors.push(this.killController.signal.aborted ? killedTap(this.killController.signal.reason, error) : error) },
    });
  }

  /** Aborted when the stages must stop. */
  get signal(): AbortSignal {
    return this.stopController.signal;
  }

  /** Aborted when done taps must stop too. */
  get killSignal(): AbortSignal {
    return this.killController.signal;
  }

  /** The snapshot store a plugin brought (receiver only); undefined: a plain mirror. */
  get store(): { provider: StoreProvider; plugin: string } | undefined {
    return this.storeEntry;
  }

  /** The retention policy a plugin brought (plugin-rotate's); undefined: none. */
  get retention(): Retention | undefined {
    return this.retentionEntry?.retention;
  }

  // Applies a plugin; a plugin that throws while tapping is a configuration error.
  use(plugin: Plugin): this {
    assertPlugin(plugin, 'plugin');
    if (plugin.store) this.takeStore(plugin, plugin.store);
    if (plugin.retention) this.takeRetention(plugin, plugin.retention);
    try {
      plugin.apply(this.hooks);
    } catch (error) {
      throw new SshRSyncError('ECONFIG', `plugin "${plugin.name}" failed to apply: ${oneLine(error)}`, { cause: error });
    }
    this.plugins.push(plugin);
    return this;
  }

  /** Stops the stages (running taps are aborted); `done` taps still run. */
  stop(reason: unknown): void {
    this.stopController.abort(reason instanceof Error ? reason : new SshRSyncError('EINTERNAL', String(reason)));
  }

  /** Stops everything, `done` taps included. */
  kill(reason: unknown): void {
    this.stop(reason);
    this.killController.abort(reason instanceof Error ? reason : new SshRSyncError('EINTERNAL', String(reason)));
  }

  // Hands a progress event to the progress taps; one that throws is logged once per run.
  progress(event: RsyncProgress, ctx: RunContext): void {
    try {
      this.hooks.progress.call(event, ctx);
    } catch (error) {
      if (this.progressFailed) return;
      this.progressFailed = true;
      ctx.logger.warn(`a progress tap failed (its later failures are not logged): ${oneLine(error)}`);
    }
  }

  // Runs every done tap; returns their failures as one error (each named), or null.
  async done(outcome: Outcome, ctx: RunContext): Promise<{ error: SshRSyncError; errors: HookError[] } | null> {
    await this.hooks.done.promise(outcome, ctx);
    if (this.doneErrors.length === 0) return null;
    const errors = [...this.doneErrors];
    const error = errors.length === 1 ? errors[0]! : new SshRSyncError('EHOOK', `${errors.length} done hooks failed: ${errors.map((e) => e.message).join('; ')}`, { cause: errors[0] });
    return { error, errors };
  }

  private takeRetention(plugin: Plugin, retention: Retention): void {
    if (typeof retention.plan !== 'function' || typeof retention.summary !== 'string') {
      throw new SshRSyncError('ECONFIG', `plugin "${plugin.name}" brings a retention policy without plan() and summary`);
    }
    // The same plugin twice (the config's, then --plugin's): the later options win.
    const current = this.retentionEntry;
    if (current && current.plugin !== plugin.name) {
      throw new SshRSyncError('ECONFIG', `plugins "${current.plugin}" and "${plugin.name}" both bring a retention policy: load only one of them`);
    }
    this.retentionEntry = { retention, plugin: plugin.name };
  }

  private takeStore(plugin: Plugin, provider: StoreProvider): void {
    if (typeof provider.kind !== 'string' || !KIND_PATTERN.test(provider.kind) || provider.kind === MIRROR_KIND || typeof provider.module !== 'string' || provider.module === '') {
      throw new SshRSyncError('ECONFIG', `plugin "${plugin.name}" brings a store whose kind ${JSON.stringify(String(provider.kind)).slice(0, 40)} is not ${KIND_PATTERN.source} (and not "mirror"), or that names no module`);
    }
    if (this.options.role === 'client') {
      throw new SshRSyncError('ECONFIG', `plugin "${plugin.name}" stores snapshots, which only the receiver keeps: load it in the server's config`);
    }
    // The same store twice (the config's, then --plugin's) is one store: the later options win.
    const current = this.storeEntry;
    if (current && (current.provider.kind !== provider.kind || current.provider.module !== provider.module)) {
      throw new SshRSyncError('ECONFIG', `plugins "${current.plugin}" and "${plugin.name}" both store snapshots (${current.provider.kind}, ${provider.kind}): load only one of them`);
    }
    this.storeEntry = { provider, plugin: plugin.name };
    registerStoreProvider(provider);
  }
}

// A done tap's failure after the run was killed, with the kill's reason first.
function killedTap(reason: unknown, error: HookError): HookError {
  return new HookError(error.code === 'ECONFIG' ? 'ECONFIG' : 'EHOOK', error.point, error.tap, `${oneLine(reason)}; ${error.message}`, error);
}
