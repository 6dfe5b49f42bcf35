// What a plugin is: a named object whose `apply` taps the pipeline's hooks.
import type { PipelineHooks } from '../pipeline/hooks.js';
import type { StoreProvider } from '../storage/store.js';

export interface Plugin {
  /** Shown in `--hook-list`, used as tap name and in error messages. */
  readonly name: string;
  apply(hooks: PipelineHooks): void;
  /** How this plugin stores snapshots (at most one plugin of a pipeline has one; none: a mirror). */
  readonly store?: StoreProvider;
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
