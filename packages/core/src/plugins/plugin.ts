// What a plugin is: a named object whose `apply` taps the pipeline's hooks.
import type { PipelineHooks } from '../pipeline/hooks.js';
import type { Logger } from '../logger.js';
import type { HostStatus } from '../report/host-status.js';
import type { StoreProvider } from '../storage/store.js';
import type { Retention } from '../storage/retention.js';

/** What `ssh-r-sync-admin status --report` hands to the receiver's plugins (the status timer):
 *  every host's health, so a host that stopped calling in is reported though no run fires a hook. */
export interface StatusReport {
  /** BACKUP_ROOT (a real path). */
  root: string;
  /** When the status was taken (ISO time). */
  at: string;
  /** Each host; `stale` and `problem` count the host's own max age (config `hosts.NAME.maxAge`) or --max-age. */
  hosts: (HostStatus & { maxAgeSeconds: number | null })[];
}

export interface Plugin {
  /** Shown in `--hook-list`, used as tap name and in error messages. */
  readonly name: string;
  apply(hooks: PipelineHooks): void;
  /** How this plugin stores snapshots (at most one plugin of a pipeline has one; none: a mirror). */
  readonly store?: StoreProvider;
  /** The host's retention policy (plugin-rotate brings one; at most one plugin of a pipeline),
   *  which others apply elsewhere: plugin-restic's `keep: "rotate"` off-site. */
  readonly retention?: Retention;
  /** Called by `ssh-r-sync-admin status --report` (the status timer) with every host's health;
   *  bounded by the caller, a throw is logged and makes status exit 1. */
  status?(report: StatusReport, logger: Logger): Promise<void>;
}

/** A plugin module's default export: a plugin, or a factory that takes the config's options. */
export type PluginFactory = (options?: Record<string, unknown>) => Plugin;

// Checks the shape of a loaded plugin; `where` says where it came from for the message.
export function assertPlugin(value: unknown, where: string): asserts value is Plugin {
  const candidate = value as Partial<Plugin> | null;
  if (typeof candidate !== 'object' || candidate === null || typeof candidate.name !== 'string' || candidate.name === '' || typeof candidate.apply !== 'function') {
    throw new TypeError(`${where} must export { name, apply(hooks) } or a function returning one`);
  }
}
